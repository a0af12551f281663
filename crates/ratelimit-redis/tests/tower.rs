//! The fleet limiter's tower layers against a real `redis-server`: requests never reach the inner
//! service faster than the shared quota allows, whichever replica they arrive at; shedding refuses at
//! once with the retry-after; a waiting request's deadline is refused at once and takes nothing; a
//! dropped wait gives its place back; a waiting request holds no concurrency permit of the inner
//! service; and in gRPC mode every refusal is the status a gRPC client
//! reads. Real time (Redis's clock decides).
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::tower::{
    BoxError, RateLimited, RedisKeyedRateLimitLayer, RedisRateLimitLayer,
};
use bounded_ratelimit_redis::{
    AcquireError, OnUnavailable, RedisKeyedLimiter, RedisLimiter, Unavailable,
};
use bounded_testkit::redis_server::RedisServer;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

const PATIENT: Duration = Duration::from_secs(3);

async fn limiter(server: &RedisServer, key: &str, quota: Quota) -> RedisLimiter {
    RedisLimiter::builder(server.connect().await, key, quota)
        .timeout(PATIENT)
        .build()
        .unwrap()
}

/// An inner service that records when each request reached it, and answers `200` with an empty body.
fn recorder(
    reached: Arc<Mutex<Vec<Instant>>>,
) -> impl Service<
    http::Request<()>,
    Response = http::Response<String>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<String>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: http::Request<()>| {
        reached.lock().unwrap().push(Instant::now());
        async { Ok(http::Response::new(String::new())) }
    })
}

fn request() -> http::Request<()> {
    http::Request::new(())
}

fn request_under(ctx: &Context) -> http::Request<()> {
    let mut req = request();
    req.extensions_mut().insert(ctx.clone());
    req
}

fn tenant(name: &str) -> http::Request<()> {
    http::Request::builder()
        .header("x-tenant", name)
        .body(())
        .unwrap()
}

fn tenant_of(req: &http::Request<()>) -> String {
    req.headers()["x-tenant"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_reach_the_service_at_the_fleets_rate_whichever_replica_they_reach() {
    let server = RedisServer::start();
    let quota = Quota::per_second(20).burst(2);
    let reached = Arc::new(Mutex::new(Vec::new()));
    // Three replicas, each with its own connection and limiter over the one key.
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let layer = RedisRateLimitLayer::new(limiter(&server, "fleet-wait", quota).await);
        replicas.push(
            ServiceBuilder::new()
                .layer(layer)
                .service(recorder(reached.clone())),
        );
    }
    let start = Instant::now();
    let calls: Vec<_> = (0..12)
        .map(|i| tokio::spawn(replicas[i % 3].clone().oneshot(request())))
        .collect();
    for call in calls {
        call.await
            .unwrap()
            .expect("every waiting request is served");
    }
    let mut reached = reached.lock().unwrap().clone();
    reached.sort();
    assert_eq!(reached.len(), 12);
    // The burst at once, then one every 50 ms: never ahead of the quota.
    for (i, at) in reached.iter().enumerate() {
        let allowed = Duration::from_millis(50) * (i.saturating_sub(1) as u32);
        assert!(
            at.duration_since(start) + Duration::from_millis(5) >= allowed,
            "request {i} reached the service at {:?}, before {allowed:?}",
            at.duration_since(start)
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    live::assert_none_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shedding_refuses_at_once_across_replicas_with_the_retry_after() {
    let server = RedisServer::start();
    let quota = Quota::per_second(10).burst(3);
    let reached = Arc::new(Mutex::new(Vec::new()));
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let layer = RedisRateLimitLayer::shed(limiter(&server, "fleet-shed", quota).await);
        replicas.push(
            ServiceBuilder::new()
                .layer(layer)
                .service(recorder(reached.clone())),
        );
    }
    let start = Instant::now();
    let mut refused = Vec::new();
    for i in 0..8 {
        match replicas[i % 2].clone().oneshot(request()).await {
            Ok(_) => {}
            Err(err) => refused.push(*err.downcast_ref::<RateLimited>().expect("RateLimited")),
        }
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "refused at once"
    );
    assert_eq!(
        reached.lock().unwrap().len(),
        3,
        "the burst, shared by both replicas"
    );
    assert_eq!(refused.len(), 5);
    for limited in refused {
        let wait = limited.retry_after().expect("can be retried");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_has_its_own_fleet_bucket() {
    let server = RedisServer::start();
    let reached = Arc::new(Mutex::new(Vec::new()));
    let tenants = RedisKeyedLimiter::builder(
        server.connect().await,
        "tenant",
        Quota::per_second(1).burst(2),
    )
    .timeout(PATIENT)
    .build()
    .unwrap();
    let svc = ServiceBuilder::new()
        .layer(RedisKeyedRateLimitLayer::shed(tenants, tenant_of))
        .service(recorder(reached.clone()));
    let mut answers = Vec::new();
    for name in ["acme", "acme", "acme", "globex", "acme", "globex", "globex"] {
        answers.push(svc.clone().oneshot(tenant(name)).await.is_ok());
    }
    assert_eq!(
        answers,
        [true, true, false, true, false, true, false],
        "two each, whatever the other tenant does"
    );
    assert_eq!(reached.lock().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_its_key_holds_no_concurrency_permit_of_the_inner_service() {
    let server = RedisServer::start();
    let reached = Arc::new(Mutex::new(Vec::new()));
    let tenants = RedisKeyedLimiter::builder(
        server.connect().await,
        "tenant-permit",
        Quota::per_second(1).burst(1),
    )
    .timeout(PATIENT)
    .build()
    .unwrap();
    let svc = ServiceBuilder::new()
        .layer(RedisKeyedRateLimitLayer::new(tenants, tenant_of))
        .concurrency_limit(1)
        .service(recorder(reached.clone()));
    svc.clone().oneshot(tenant("acme")).await.unwrap();
    // acme's next unit is about a second away; globex must not wait behind it for the one permit.
    let start = Instant::now();
    let acme = tokio::spawn(svc.clone().oneshot(tenant("acme")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    svc.clone().oneshot(tenant("globex")).await.unwrap();
    let globex = start.elapsed();
    assert!(
        globex < Duration::from_millis(600),
        "globex waited {globex:?} for a permit held by acme's wait"
    );
    acme.await.unwrap().unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "acme waited for its unit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_whose_deadline_comes_first_is_refused_at_once_and_takes_nothing() {
    let server = RedisServer::start();
    let reached = Arc::new(Mutex::new(Vec::new()));
    let layer = RedisRateLimitLayer::new(
        limiter(&server, "fleet-deadline", Quota::per_second(2).burst(1)).await,
    );
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(recorder(reached.clone()));
    let start = Instant::now();
    svc.clone().oneshot(request()).await.unwrap();

    // The next grant is 500 ms away; this request has 100 ms.
    let ctx = Context::new().with_timeout(Duration::from_millis(100));
    let err = svc.clone().oneshot(request_under(&ctx)).await.unwrap_err();
    match err.downcast_ref::<AcquireError>() {
        Some(AcquireError::DeadlineTooSoon { .. }) => {}
        other => panic!("expected DeadlineTooSoon, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "refused at once"
    );

    // Nothing was taken: the next request is granted at the 500 ms mark, not a turn later.
    svc.oneshot(request()).await.unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(900),
        "{took:?}"
    );
    assert_eq!(reached.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_wait_gives_its_place_to_the_next_request() {
    let server = RedisServer::start();
    let reached = Arc::new(Mutex::new(Vec::new()));
    let layer = RedisRateLimitLayer::new(
        limiter(&server, "fleet-drop", Quota::per_second(2).burst(1)).await,
    );
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(recorder(reached.clone()));
    let start = Instant::now();
    svc.clone().oneshot(request()).await.unwrap();
    // The second request waits for the 500 ms mark; its caller gives up at 100 ms.
    let waited =
        tokio::time::timeout(Duration::from_millis(100), svc.clone().oneshot(request())).await;
    assert!(waited.is_err(), "still waiting when dropped");
    // The give-back is a call to Redis of its own, made by a task of the limiter's.
    live::settle(Duration::from_secs(2))
        .await
        .expect("the give-back task ends");
    // The third takes the place it gave back.
    svc.oneshot(request()).await.unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(900),
        "{took:?}"
    );
    assert_eq!(
        reached.lock().unwrap().len(),
        2,
        "the dropped request never reached it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_mode_answers_every_refusal_with_its_status() {
    let server = RedisServer::start();
    let reached = Arc::new(Mutex::new(Vec::new()));
    let status = |response: &http::Response<String>| {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        (header("grpc-status"), header("grpc-retry-pushback-ms"))
    };

    // Over the rate: RESOURCE_EXHAUSTED, with the pushback.
    let quota = Quota::per_second(10).burst(1);
    let svc = ServiceBuilder::new()
        .layer(RedisRateLimitLayer::shed(limiter(&server, "grpc-shed", quota).await).grpc())
        .service(recorder(reached.clone()));
    let ok = svc.clone().oneshot(request()).await.unwrap();
    assert_eq!(status(&ok), (None, None), "the service's own answer");
    let refused = svc
        .oneshot(request())
        .await
        .expect("a response, not an error");
    let (code, pushback) = status(&refused);
    assert_eq!(code.as_deref(), Some("8"));
    let pushback: u64 = pushback.expect("a pushback").parse().unwrap();
    assert!((1..=100).contains(&pushback), "{pushback} ms");
    assert_eq!(refused.headers()["content-type"], "application/grpc");
    assert!(refused.extensions().get::<RateLimited>().is_some());

    // A waiting request whose deadline comes first: DEADLINE_EXCEEDED.
    let svc = ServiceBuilder::new()
        .layer(
            RedisRateLimitLayer::new(
                limiter(&server, "grpc-wait", Quota::per_second(1).burst(1)).await,
            )
            .grpc(),
        )
        .service(recorder(reached.clone()));
    svc.clone().oneshot(request()).await.unwrap();
    let ctx = Context::new().with_timeout(Duration::from_millis(100));
    let refused = svc.oneshot(request_under(&ctx)).await.unwrap();
    assert_eq!(status(&refused), (Some("4".to_owned()), None));

    // A keyed limiter's refusal, the same way.
    let tenants = RedisKeyedLimiter::builder(server.connect().await, "grpc-tenant", quota)
        .timeout(PATIENT)
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(RedisKeyedRateLimitLayer::shed(tenants, tenant_of).grpc())
        .service(recorder(reached.clone()));
    assert_eq!(
        status(&svc.clone().oneshot(tenant("a")).await.unwrap()).0,
        None
    );
    assert_eq!(
        status(&svc.clone().oneshot(tenant("a")).await.unwrap())
            .0
            .as_deref(),
        Some("8")
    );
    assert_eq!(status(&svc.oneshot(tenant("b")).await.unwrap()).0, None);
    assert_eq!(
        reached.lock().unwrap().len(),
        4,
        "no refused request reached the service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unavailable_under_the_refuse_policy_is_unavailable_in_either_mode() {
    let mut server = RedisServer::start();
    let reached = Arc::new(Mutex::new(Vec::new()));
    let limiter = RedisLimiter::builder(server.connect().await, "gone", Quota::per_second(10))
        .timeout(Duration::from_millis(300))
        .on_unavailable(OnUnavailable::Refuse)
        .build()
        .unwrap();
    server.kill();
    let plain = ServiceBuilder::new()
        .layer(RedisRateLimitLayer::shed(limiter.clone()))
        .service(recorder(reached.clone()));
    let err: BoxError = plain.oneshot(request()).await.unwrap_err();
    assert!(err.downcast_ref::<Unavailable>().is_some(), "{err}");
    let waiting = ServiceBuilder::new()
        .layer(RedisRateLimitLayer::new(limiter.clone()))
        .service(recorder(reached.clone()));
    let err = waiting.oneshot(request()).await.unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<AcquireError>(),
            Some(AcquireError::Unavailable(_))
        ),
        "{err}"
    );
    let grpc = ServiceBuilder::new()
        .layer(RedisRateLimitLayer::new(limiter).grpc())
        .service(recorder(reached.clone()));
    let refused = grpc.oneshot(request()).await.unwrap();
    assert_eq!(refused.headers()["grpc-status"], "14");
    assert!(reached.lock().unwrap().is_empty());
}
