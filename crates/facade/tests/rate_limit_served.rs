//! A waiting rate limit in a real axum server, over HTTP/1.1 on port 0: behind `ContextLayer`, a
//! request whose unit would come after its deadline is answered at once (504), and one waiting for
//! its unit is answered when the service drains (503); neither reaches the handler. hyper drives each
//! request's `poll_ready` and `call` in the request's own future, so a wait in `poll_ready` would
//! escape both. Real time.

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
use bounded::ratelimit::{AcquireError, Limiter, Quota};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::ServiceBuilder;

/// Serves `/work` at one request a second (the first at once), each request with 1.5 s under
/// `service_ctx`; counts the handler's calls.
async fn serve(service_ctx: &Context, calls: Arc<AtomicUsize>) -> SocketAddr {
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
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
                    let deadline = match (
                        err.downcast_ref::<RequestEnded>(),
                        err.downcast_ref::<AcquireError>(),
                    ) {
                        (Some(ended), _) => ended.is_deadline(),
                        (_, Some(refused)) => refused.is_deadline(),
                        _ => return StatusCode::INTERNAL_SERVER_ERROR,
                    };
                    match deadline {
                        true => StatusCode::GATEWAY_TIMEOUT,
                        false => StatusCode::SERVICE_UNAVAILABLE,
                    }
                }))
                .layer(ContextLayer::new(service_ctx).timeout(Duration::from_millis(1500)))
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
async fn a_request_that_cannot_make_its_deadline_is_refused_at_once_and_a_waiting_one_at_the_drain()
{
    let service_ctx = Context::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = serve(&service_ctx, calls.clone()).await;
    assert_eq!(get_work(addr).await.0, 200);

    // The next unit, about a second away, is within the 1.5 s: this request waits for it.
    let waiting = tokio::spawn(get_work(addr));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The one after it, about two seconds away, is not: answered at once.
    let (status, took) = get_work(addr).await;
    assert_eq!(status, 504);
    assert!(took < Duration::from_millis(500), "answered after {took:?}");

    // A drain answers the request still waiting then, before its unit comes.
    let drained = Instant::now();
    service_ctx.cancel();
    let (status, took) = waiting.await.unwrap();
    assert_eq!(status, 503);
    assert!(
        drained.elapsed() < Duration::from_millis(500) && took < Duration::from_millis(800),
        "answered {:?} after the drain, {took:?} after it was sent",
        drained.elapsed()
    );
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "only the first reached the handler"
    );
}
