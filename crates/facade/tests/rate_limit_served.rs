//! A waiting rate limit in a real axum server, over HTTP/1.1 on port 0: a request that waits for its
//! unit behind `ContextLayer` is answered at its deadline (504) or when the service drains (503), not
//! when its unit comes, and never reaches the handler. hyper drives each request's `poll_ready` and
//! `call` in the request's own future, so this is where a wait in `poll_ready` would escape the
//! timeout. Real time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::routing::get;
use bounded::cancel::Context;
use bounded::cancel::tower::{BoxError, ContextLayer, RequestEnded};
use bounded::ratelimit::tower::RateLimitLayer;
use bounded::ratelimit::{Limiter, Quota};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::ServiceBuilder;

/// Serves `/work` at one request every 10 s (the first at once), each request with 300 ms under
/// `service_ctx`; counts the handler's calls.
async fn serve(service_ctx: &Context, calls: Arc<AtomicUsize>) -> SocketAddr {
    let limiter = Limiter::new(Quota::every(Duration::from_secs(10)).burst(1)).unwrap();
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                calls.fetch_add(1, Ordering::Relaxed);
                async { "done" }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|err: BoxError| async move {
                    match err.downcast_ref::<RequestEnded>() {
                        Some(ended) if ended.is_deadline() => StatusCode::GATEWAY_TIMEOUT,
                        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
                        None => StatusCode::INTERNAL_SERVER_ERROR,
                    }
                }))
                .layer(ContextLayer::new(service_ctx).timeout(Duration::from_millis(300)))
                .layer(RateLimitLayer::new(limiter)),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// `GET /work` on a connection of its own: the status code and when it came.
async fn get_work(addr: SocketAddr) -> (u16, Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /work HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"));
    (status, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_its_unit_is_answered_at_its_deadline_or_the_drain() {
    let service_ctx = Context::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = serve(&service_ctx, calls.clone()).await;
    assert_eq!(get_work(addr).await.0, 200);

    // The next unit is 10 s away: each request is answered at its 300 ms deadline.
    let waiting: Vec<_> = (0..3).map(|_| tokio::spawn(get_work(addr))).collect();
    for wait in waiting {
        let (status, took) = wait.await.unwrap();
        assert_eq!(status, 504);
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "answered after {took:?}"
        );
    }

    // A drain answers the requests still waiting then.
    let waiting = tokio::spawn(get_work(addr));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let drained = Instant::now();
    service_ctx.cancel();
    let (status, _) = waiting.await.unwrap();
    assert_eq!(status, 503);
    assert!(
        drained.elapsed() < Duration::from_secs(1),
        "answered {:?} after the drain",
        drained.elapsed()
    );
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "only the first reached the handler"
    );
}
