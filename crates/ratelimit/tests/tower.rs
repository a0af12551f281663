//! The rate-limit layers driven as tower services: order of service, one wake-up per grant, units
//! given back when a service is dropped before `call`, shed answers that carry the retry-after, and in
//! gRPC mode the `RESOURCE_EXHAUSTED` status with the pushback.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bounded_cancel::live;
use bounded_ratelimit::tower::{KeyedRateLimitLayer, RateLimitLayer, RateLimited};
use bounded_ratelimit::{KeyedLimiter, Limiter, Quota};
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

fn echo() -> impl Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone + Send {
    tower::service_fn(|n: u32| async move { Ok::<_, Infallible>(n) })
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
            fut: Box::pin(async move { svc.oneshot(i).await }),
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
async fn a_unit_reserved_by_poll_ready_and_never_called_is_given_back() {
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()))
        .service(echo());
    let mut unused = svc.clone();
    unused.ready().await.unwrap(); // holds the only unit
    assert_eq!(limiter.tokens(), 0);
    drop(unused);
    assert_eq!(
        limiter.tokens(),
        1,
        "given back when the service was dropped"
    );
    let start = Instant::now();
    assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "served at once with the given-back unit"
    );

    // A service dropped while its reservation waits in line leaves the line.
    let mut waiting = svc.clone();
    let poll = futures_util::FutureExt::now_or_never(waiting.ready());
    assert!(poll.is_none(), "the second unit is a second away");
    drop(waiting);
    let start = Instant::now();
    svc.clone().oneshot(8).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "not two seconds: the leaver's place was freed"
    );
    assert_eq!(limiter.metrics().granted, 2);
}

#[tokio::test(start_paused = true)]
async fn shedding_answers_at_once_with_the_retry_after_and_never_calls_the_service() {
    let limiter = Limiter::new(Quota::per_second(10).burst(2)).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = calls.clone();
        tower::service_fn(move |n: u32| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move { Ok::<_, Infallible>(n) }
        })
    };
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::shed(limiter))
        .service(counted);
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
    assert_eq!(svc.clone().oneshot(2).await.unwrap(), 2);
    let start = Instant::now();
    let err = svc.clone().oneshot(3).await.unwrap_err();
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
    assert_eq!(svc.clone().oneshot(4).await.unwrap(), 4);
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
        if clone.oneshot(i as u32).await.is_ok() {
            served += 1;
        }
    }
    assert_eq!(served, 5, "ten clones, one burst of five");
}

#[tokio::test(start_paused = true)]
async fn keyed_waits_per_key_and_a_dropped_response_gives_its_place_back() {
    let limiter = KeyedLimiter::new(Quota::per_second(10).burst(1), 100).unwrap();
    let svc = ServiceBuilder::new()
        .layer(KeyedRateLimitLayer::new(limiter.clone(), |n: &u32| n % 2))
        .service(echo());
    let start = Instant::now();
    // Keys 0 and 1 each serve one at once, then one every 100 ms.
    let mut calls = Vec::new();
    for n in 0..6u32 {
        let svc = svc.clone();
        calls.push(tokio::spawn(async move {
            (n, svc.oneshot(n).await.unwrap(), start.elapsed())
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
    let mut waiting = Box::pin(svc.clone().oneshot(0));
    assert!(futures_util::FutureExt::now_or_never(&mut waiting).is_none());
    drop(waiting);
    tokio::time::advance(Duration::from_millis(100)).await;
    let start = Instant::now();
    svc.clone().oneshot(2).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn keyed_shedding_refuses_one_key_and_serves_another() {
    let limiter = KeyedLimiter::new(Quota::per_second(2).burst(1), 100).unwrap();
    let svc = ServiceBuilder::new()
        .layer(KeyedRateLimitLayer::shed(limiter, |n: &u32| *n / 100))
        .service(echo());
    svc.clone().oneshot(101).await.unwrap();
    let err = svc.clone().oneshot(102).await.unwrap_err();
    let refused = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
    svc.clone()
        .oneshot(201)
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
