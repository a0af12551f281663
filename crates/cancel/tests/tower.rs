//! `ContextLayer` driven as a tower service: each request's context has the deadline and the parent it
//! should, the response ends with the right cause when either ends it, the handler is dropped then, and
//! the context ends with the response.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::tower::{ContextLayer, RequestEnded};
use bounded_cancel::{Cause, Context, Shutdown, live};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

/// Sets its flag when dropped: the handler's future was dropped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn request() -> http::Request<()> {
    http::Request::new(())
}

#[tokio::test(start_paused = true)]
async fn a_request_past_its_deadline_ends_with_deadline_exceeded_and_its_handler_is_dropped() {
    let dropped = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(None));
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(&Context::new()).timeout(Duration::from_millis(250)))
        .service_fn({
            let (dropped, seen) = (dropped.clone(), seen.clone());
            move |req: http::Request<()>| {
                let guard = Dropped(dropped.clone());
                let ctx = req.extensions().get::<Context>().cloned();
                *seen.lock().unwrap() = ctx.as_ref().and_then(Context::deadline);
                async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_secs(60)).await; // ignores its context
                    Ok::<_, Infallible>(())
                }
            }
        });
    let start = Instant::now();
    let err = svc.oneshot(request()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    let ended = err.downcast_ref::<RequestEnded>().expect("RequestEnded");
    assert!(ended.is_deadline(), "{ended}");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler's future was dropped"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        Some(start + Duration::from_millis(250)),
        "the handler saw its deadline"
    );
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_drain_ends_requests_in_flight_with_the_services_cause() {
    let shutdown = Shutdown::new();
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(shutdown.context()).timeout(Duration::from_secs(30)))
        .service_fn(|_req: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, Infallible>(())
        });
    let in_flight: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(request())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.trigger();
    for request in in_flight {
        let err = request.await.unwrap().unwrap_err();
        let ended = err.downcast_ref::<RequestEnded>().expect("RequestEnded");
        assert!(!ended.is_deadline(), "the drain, not the deadline: {ended}");
        assert!(matches!(ended.cause(), Cause::Cancelled));
    }
    // A request arriving during the drain ends at once.
    let start = Instant::now();
    assert!(svc.oneshot(request()).await.is_err());
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_context_ends_with_the_response_and_answers_in_time_pass_through() {
    let kept = Arc::new(Mutex::new(None));
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(&Context::new()).timeout(Duration::from_secs(1)))
        .service_fn({
            let kept = kept.clone();
            move |req: http::Request<()>| {
                let ctx = req.extensions().get::<Context>().unwrap().clone();
                *kept.lock().unwrap() = Some(ctx.clone());
                async move {
                    assert!(!ctx.is_cancelled());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok::<_, Infallible>("fast")
                }
            }
        });
    assert_eq!(svc.oneshot(request()).await.unwrap(), "fast");
    let ctx = kept.lock().unwrap().take().unwrap();
    assert!(
        ctx.is_cancelled(),
        "work left running under the request's context is told to stop"
    );
    assert!(matches!(ctx.cause(), Some(Cause::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn without_a_timeout_a_request_lives_as_long_as_its_parent() {
    let parent = Context::new();
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(&parent).timeout(Duration::MAX))
        .service_fn(|req: http::Request<()>| async move {
            let ctx = req.extensions().get::<Context>().unwrap().clone();
            Ok::<_, Infallible>(ctx.deadline())
        });
    assert_eq!(
        svc.clone().oneshot(request()).await.unwrap(),
        None,
        "Duration::MAX: no deadline"
    );
    parent.cancel();
    assert!(svc.oneshot(request()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn the_context_ends_when_the_response_is_dropped_unfinished() {
    // A server drops a request's response future when its client closes the connection; as Go's
    // server cancels a request's context then, work left running under it is told to stop.
    let kept = Arc::new(Mutex::new(None));
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(&Context::new()).timeout(Duration::from_secs(60)))
        .service_fn({
            let kept = kept.clone();
            move |req: http::Request<()>| {
                let ctx = req.extensions().get::<Context>().unwrap().clone();
                *kept.lock().unwrap() = Some(ctx.clone());
                async move {
                    ctx.cancelled().await;
                    Ok::<_, Infallible>("never")
                }
            }
        });
    let response = svc.oneshot(request());
    let unfinished = tokio::time::timeout(Duration::from_millis(10), response).await;
    assert!(unfinished.is_err(), "still waiting when dropped");
    let ctx = kept.lock().unwrap().take().unwrap();
    assert!(
        ctx.is_cancelled(),
        "work left running under the request's context is told to stop"
    );
    assert!(matches!(ctx.cause(), Some(Cause::Cancelled)));
}
