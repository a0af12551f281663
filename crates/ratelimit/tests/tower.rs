//! The rate-limit layers driven as tower services: order of service, one wake-up per grant, places
//! and units given back when a waiting response is dropped, waits ended by a `ContextLayer`'s deadline
//! and drain, no readiness of the inner service held while waiting, shed answers that carry the
//! retry-after, and in gRPC mode the `RESOURCE_EXHAUSTED` status with the pushback.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bounded_cancel::live;
use bounded_cancel::tower::{ClientContextLayer, ContextLayer, RequestEnded};
use bounded_ratelimit::tower::{KeyedRateLimitLayer, RateLimitLayer, RateLimited};
use bounded_ratelimit::{AcquireError, KeyedLimiter, Limiter, Quota};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

/// Counts the polls of a future.
struct CountPolls<F> {
    fut: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.fut.as_mut().poll(cx)
    }
}

/// Answers each request with its body.
fn echo()
-> impl Service<http::Request<u32>, Response = u32, Error = Infallible, Future: Send> + Clone + Send
{
    tower::service_fn(|req: http::Request<u32>| async move { Ok::<_, Infallible>(req.into_body()) })
}

fn req(n: u32) -> http::Request<u32> {
    http::Request::new(n)
}

#[tokio::test(start_paused = true)]
async fn waiting_callers_are_served_in_order_with_one_wake_up_each() {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter))
        .service(echo());
    let order = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut callers = Vec::new();
    for i in 0..10u32 {
        let (svc, order) = (svc.clone(), order.clone());
        let polls = Arc::new(AtomicUsize::new(0));
        let ready = CountPolls {
            fut: Box::pin(async move { svc.oneshot(req(i)).await }),
            polls: polls.clone(),
        };
        callers.push((
            tokio::spawn(async move {
                let n = ready.await.unwrap();
                order.lock().unwrap().push((n, start.elapsed()));
            }),
            polls,
        ));
        tokio::task::yield_now().await; // each reserves before the next starts
    }
    for (caller, polls) in callers {
        caller.await.unwrap();
        assert!(
            polls.load(Ordering::Relaxed) <= 2,
            "a waiter was polled {polls:?} times: a herd"
        );
    }
    let order = order.lock().unwrap().clone();
    let expected: Vec<_> = (0..10u32)
        .map(|i| (i, Duration::from_millis(100 * u64::from(i))))
        .collect();
    assert_eq!(order, expected, "served in order, one every 100 ms");
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_waiting_request_dropped_gives_its_place_and_its_unused_unit_back() {
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()))
        .service(echo());
    // Ready at once, and nothing reserved by it: the unit is taken by the call.
    let mut unused = svc.clone();
    unused.ready().await.unwrap();
    drop(unused);
    assert_eq!(limiter.tokens(), 1, "poll_ready reserved nothing");
    assert_eq!(svc.clone().oneshot(req(7)).await.unwrap(), 7);

    // A response dropped while it waits in line leaves the line.
    let mut waiting = Box::pin(svc.clone().oneshot(req(8)));
    assert!(futures_util::FutureExt::now_or_never(&mut waiting).is_none());
    drop(waiting);
    let start = Instant::now();
    svc.clone().oneshot(req(9)).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "not two seconds: the leaver's place was freed"
    );
    assert_eq!(limiter.metrics().granted, 2);

    // A unit granted to a request whose inner service never became ready goes back with it.
    let never_ready = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()))
        .service(NeverReady);
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut granted = Box::pin(never_ready.oneshot(req(10)));
    assert!(futures_util::FutureExt::now_or_never(&mut granted).is_none());
    assert_eq!(
        limiter.tokens(),
        0,
        "granted, waiting for the inner service"
    );
    drop(granted);
    assert_eq!(
        limiter.tokens(),
        1,
        "given back: the request was never sent"
    );
}

/// A service that is never ready.
#[derive(Clone)]
struct NeverReady;

impl Service<http::Request<u32>> for NeverReady {
    type Response = u32;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u32, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }

    fn call(&mut self, req: http::Request<u32>) -> Self::Future {
        unreachable!("called {} without being ready", req.body())
    }
}

/// A request's context, as the handler saw it, and a count of the handler's calls.
fn handler(
    calls: Arc<AtomicUsize>,
) -> impl Service<http::Request<()>, Response = http::Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    tower::service_fn(move |_req: http::Request<()>| {
        calls.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(http::Response::new(String::from("served"))) }
    })
}

#[tokio::test(start_paused = true)]
async fn under_a_context_layer_a_request_that_cannot_make_its_deadline_is_refused_at_once() {
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(
            ContextLayer::new(&bounded_cancel::Context::new()).timeout(Duration::from_millis(1500)),
        )
        .layer(RateLimitLayer::new(limiter.clone()))
        .service(handler(calls.clone()));
    let start = Instant::now();
    svc.clone().oneshot(http::Request::new(())).await.unwrap();

    // The next unit, at 1 s, is within the 1.5 s; the one after it, at 2 s, is not: refused now.
    let waiting = tokio::spawn(svc.clone().oneshot(http::Request::new(())));
    tokio::task::yield_now().await;
    let err = svc
        .clone()
        .oneshot(http::Request::new(()))
        .await
        .unwrap_err();
    let refused = err.downcast_ref::<AcquireError>().expect("AcquireError");
    assert!(
        matches!(
            refused,
            AcquireError::DeadlineTooSoon { wait, remaining }
                if *wait == Duration::from_secs(2) && *remaining == Duration::from_millis(1500)
        ),
        "{refused:?}"
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "refused at once");
    waiting.await.unwrap().expect("granted within its deadline");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "the refused one never reached the handler"
    );

    // It took nothing: the next unit is still at 2 s.
    tokio::time::sleep_until(start + Duration::from_secs(2)).await;
    svc.clone().oneshot(http::Request::new(())).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(limiter.metrics().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn under_a_context_layer_a_drain_ends_the_requests_waiting_for_their_units() {
    let service_ctx = bounded_cancel::Context::new();
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(&service_ctx).timeout(Duration::from_secs(10)))
        .layer(RateLimitLayer::new(limiter.clone()))
        .service(handler(calls.clone()));
    let start = Instant::now();
    svc.clone().oneshot(http::Request::new(())).await.unwrap();
    // Units at 1, 2 and 3 s, all within their deadlines: they wait.
    let waiting: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(http::Request::new(()))))
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    service_ctx.cancel();
    for wait in waiting {
        let err = wait.await.unwrap().unwrap_err();
        let ended = err.downcast_ref::<RequestEnded>().expect("RequestEnded");
        assert!(!ended.is_deadline(), "{ended}");
    }
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(30),
        "ended by the drain"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    // Their places went back: the next unit is at 1 s, not 4 s.
    limiter.acquire().await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_client_dispatches_at_the_rate_under_each_callers_context() {
    // Go's `limiter.Wait(ctx)` before `client.Do(req)`, as a tower client stack.
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let client = ServiceBuilder::new()
        .layer(ClientContextLayer::new())
        .layer(RateLimitLayer::new(limiter.clone()))
        .service(handler(sent.clone()));
    let call = |ctx: &bounded_cancel::Context| {
        let mut req = http::Request::new(());
        req.extensions_mut().insert(ctx.clone());
        client.clone().oneshot(req)
    };
    let start = Instant::now();
    call(&bounded_cancel::Context::new()).await.unwrap();

    // The next unit is a second away: a caller with half a second left is refused at once.
    let hurried = bounded_cancel::Context::new().with_timeout(Duration::from_millis(500));
    let err = call(&hurried).await.unwrap_err();
    assert!(
        err.downcast_ref::<AcquireError>().unwrap().is_deadline(),
        "{err}"
    );
    assert_eq!(start.elapsed(), Duration::ZERO);

    // A caller that gives up while it waits: the call ends then, and its place goes back.
    let leaving = bounded_cancel::Context::new();
    let waiting = tokio::spawn(call(&leaving));
    tokio::time::sleep(Duration::from_millis(200)).await;
    leaving.cancel();
    let err = waiting.await.unwrap().unwrap_err();
    assert!(err.downcast_ref::<RequestEnded>().is_some(), "{err}");
    call(&bounded_cancel::Context::new()).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "the next unit, not the one after"
    );
    assert_eq!(
        sent.load(Ordering::Relaxed),
        2,
        "the refused and the given-up calls were never sent"
    );
}

#[tokio::test(start_paused = true)]
async fn in_grpc_mode_a_request_that_cannot_make_its_deadline_is_answered_deadline_exceeded() {
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(
            ContextLayer::new(&bounded_cancel::Context::new())
                .timeout(Duration::from_millis(100))
                .grpc(),
        )
        .layer(RateLimitLayer::new(limiter).grpc())
        .service(handler(calls.clone()));
    svc.clone().oneshot(http::Request::new(())).await.unwrap();
    let start = Instant::now();
    let response = svc.clone().oneshot(http::Request::new(())).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(response.headers()["grpc-status"], "4"); // DEADLINE_EXCEEDED
    assert!(
        response
            .extensions()
            .get::<AcquireError>()
            .unwrap()
            .is_deadline()
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);

    // A request whose context has already ended otherwise (a drain) takes nothing: UNAVAILABLE.
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()).grpc())
        .service(handler(calls.clone()));
    let drained = bounded_cancel::Context::new();
    drained.cancel();
    let mut req = http::Request::new(());
    req.extensions_mut().insert(drained);
    let response = svc.oneshot(req).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "14"); // UNAVAILABLE
    assert_eq!(limiter.tokens(), 1, "took nothing");
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_keyed_request_that_cannot_make_its_deadline_is_refused_at_once() {
    let limiter = KeyedLimiter::new(Quota::per_second(1).burst(1), 100).unwrap();
    let svc = ServiceBuilder::new()
        .layer(
            ContextLayer::new(&bounded_cancel::Context::new()).timeout(Duration::from_millis(500)),
        )
        .layer(KeyedRateLimitLayer::new(
            limiter,
            |req: &http::Request<()>| req.uri().path().to_owned(),
        ))
        .service(tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(()))
        }));
    let to = |path: &str| http::Request::get(path).body(()).unwrap();
    let start = Instant::now();
    svc.clone().oneshot(to("/a")).await.unwrap();
    let err = svc.clone().oneshot(to("/a")).await.unwrap_err();
    assert!(
        err.downcast_ref::<AcquireError>().unwrap().is_deadline(),
        "{err}"
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "refused at once");
    svc.clone().oneshot(to("/b")).await.expect("another key");
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_its_key_holds_no_concurrency_permit_of_the_inner_service() {
    let limiter = KeyedLimiter::new(Quota::per_second(1).burst(1), 100).unwrap();
    let svc = ServiceBuilder::new()
        .layer(KeyedRateLimitLayer::new(
            limiter,
            |req: &http::Request<u32>| req.body() % 2,
        ))
        .concurrency_limit(1)
        .service(echo());
    let start = Instant::now();
    svc.clone().oneshot(req(0)).await.unwrap();
    // Key 0's next unit is a second away; key 1's request must not wait behind it for the permit.
    let waiting = tokio::spawn(svc.clone().oneshot(req(2)));
    tokio::task::yield_now().await;
    assert_eq!(svc.clone().oneshot(req(1)).await.unwrap(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO, "key 1 served at once");
    assert_eq!(waiting.await.unwrap().unwrap(), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn shedding_answers_at_once_with_the_retry_after_and_never_calls_the_service() {
    let limiter = Limiter::new(Quota::per_second(10).burst(2)).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = calls.clone();
        tower::service_fn(move |req: http::Request<u32>| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move { Ok::<_, Infallible>(req.into_body()) }
        })
    };
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::shed(limiter))
        .service(counted);
    assert_eq!(svc.clone().oneshot(req(1)).await.unwrap(), 1);
    assert_eq!(svc.clone().oneshot(req(2)).await.unwrap(), 2);
    let start = Instant::now();
    let err = svc.clone().oneshot(req(3)).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let refused = err
        .downcast_ref::<RateLimited>()
        .expect("a RateLimited error");
    assert_eq!(refused.retry_after(), Some(Duration::from_millis(100)));
    assert_eq!(refused.retry_after_secs(), Some(1));
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "the refused request never reached the service"
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(svc.clone().oneshot(req(4)).await.unwrap(), 4);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_limit() {
    let limiter = Limiter::new(Quota::per_second(5).burst(5)).unwrap();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::shed(limiter))
        .service(echo());
    let clones: Vec<_> = (0..10).map(|_| svc.clone()).collect();
    let mut served = 0;
    for (i, clone) in clones.into_iter().enumerate() {
        if clone.oneshot(req(i as u32)).await.is_ok() {
            served += 1;
        }
    }
    assert_eq!(served, 5, "ten clones, one burst of five");
}

#[tokio::test(start_paused = true)]
async fn keyed_waits_per_key_and_a_dropped_response_gives_its_place_back() {
    let limiter = KeyedLimiter::new(Quota::per_second(10).burst(1), 100).unwrap();
    let svc = ServiceBuilder::new()
        .layer(KeyedRateLimitLayer::new(
            limiter.clone(),
            |req: &http::Request<u32>| req.body() % 2,
        ))
        .service(echo());
    let start = Instant::now();
    // Keys 0 and 1 each serve one at once, then one every 100 ms.
    let mut calls = Vec::new();
    for n in 0..6u32 {
        let svc = svc.clone();
        calls.push(tokio::spawn(async move {
            (n, svc.oneshot(req(n)).await.unwrap(), start.elapsed())
        }));
        tokio::task::yield_now().await;
    }
    for call in calls {
        let (n, got, at) = call.await.unwrap();
        assert_eq!(got, n);
        assert_eq!(
            at,
            Duration::from_millis(100 * u64::from(n / 2)),
            "request {n}"
        );
    }
    // A waiting response dropped gives its place back: the next request on its key is not delayed by it.
    let mut waiting = Box::pin(svc.clone().oneshot(req(0)));
    assert!(futures_util::FutureExt::now_or_never(&mut waiting).is_none());
    drop(waiting);
    tokio::time::advance(Duration::from_millis(100)).await;
    let start = Instant::now();
    svc.clone().oneshot(req(2)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn keyed_shedding_refuses_one_key_and_serves_another() {
    let limiter = KeyedLimiter::new(Quota::per_second(2).burst(1), 100).unwrap();
    let svc = ServiceBuilder::new()
        .layer(KeyedRateLimitLayer::shed(
            limiter,
            |req: &http::Request<u32>| req.body() / 100,
        ))
        .service(echo());
    svc.clone().oneshot(req(101)).await.unwrap();
    let err = svc.clone().oneshot(req(102)).await.unwrap_err();
    let refused = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
    svc.clone()
        .oneshot(req(201))
        .await
        .expect("key 2 has its own bucket");
}

/// An inner gRPC service that counts its calls and answers with a body of its own.
fn grpc_inner(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    http::Request<String>,
    Response = http::Response<String>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send {
    tower::service_fn(move |_req: http::Request<String>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(http::Response::new("served".to_owned())) }
    })
}

/// The `grpc-status` and `grpc-retry-pushback-ms` of a response, if it has them.
fn status(response: &http::Response<String>) -> (Option<&str>, Option<&str>) {
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap())
    };
    (header("grpc-status"), header("grpc-retry-pushback-ms"))
}

#[tokio::test(start_paused = true)]
async fn grpc_mode_answers_a_refusal_with_resource_exhausted_and_the_pushback() {
    let calls = Arc::new(AtomicUsize::new(0));
    // 3 a second: a unit every 333.3 ms, so the pushback is rounded up to whole milliseconds.
    let limiter = Limiter::new(Quota::per_second(3).burst(2)).unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::shed(limiter).grpc())
        .service(grpc_inner(calls.clone()));
    let mut answers = Vec::new();
    for _ in 0..4 {
        let response = svc
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(String::new()))
            .await
            .expect("a response, not an error");
        answers.push(response);
    }
    assert_eq!(answers[0].body(), "served");
    assert_eq!(
        status(&answers[1]),
        (None, None),
        "the service's own answer"
    );
    for refused in &answers[2..] {
        assert_eq!(status(refused), (Some("8"), Some("334")));
        assert_eq!(refused.headers()["content-type"], "application/grpc");
        assert!(refused.body().is_empty());
        let limited = refused.extensions().get::<RateLimited>().unwrap();
        assert_eq!(
            limited.retry_after(),
            Some(Duration::from_nanos(333_333_334))
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "refusals never reach the service"
    );

    // Waiting mode refuses nothing: each request waits its turn.
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter).grpc())
        .service(grpc_inner(calls.clone()));
    let start = Instant::now();
    for _ in 0..3 {
        let response = svc
            .clone()
            .oneshot(http::Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(status(&response), (None, None));
    }
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn grpc_mode_answers_a_keyed_refusal_the_same_way() {
    let calls = Arc::new(AtomicUsize::new(0));
    let per_path = KeyedLimiter::new(Quota::per_second(10).burst(1), 100).unwrap();
    let svc = ServiceBuilder::new()
        .layer(
            KeyedRateLimitLayer::shed(per_path, |req: &http::Request<String>| {
                req.uri().path().to_owned()
            })
            .grpc(),
        )
        .service(grpc_inner(calls.clone()));
    let call = |path: &'static str| {
        let svc = svc.clone();
        async move {
            let req = http::Request::builder()
                .uri(path)
                .body(String::new())
                .unwrap();
            svc.oneshot(req).await.unwrap()
        }
    };
    assert_eq!(status(&call("/a").await), (None, None));
    assert_eq!(status(&call("/a").await), (Some("8"), Some("100")));
    assert_eq!(status(&call("/b").await), (None, None), "another key");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
