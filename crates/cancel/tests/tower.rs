//! The context layers in their plain HTTP mode, driven as tower services: each request's context has
//! the deadline and the parent it should, the response ends with the right cause when either ends it,
//! the handler is dropped then, and the context ends with the response; a client call is given up
//! when its context ends. (The gRPC mode: `grpc.rs`.)
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::tower::{ClientContextLayer, ContextLayer, RequestEnded};
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

/// A request carrying `ctx`, if given.
fn request_under(ctx: Option<&Context>) -> http::Request<()> {
    let mut req = request();
    if let Some(ctx) = ctx {
        req.extensions_mut().insert(ctx.clone());
    }
    req
}

#[tokio::test(start_paused = true)]
async fn a_client_call_is_given_up_and_dropped_when_its_context_ends() {
    let calls = Arc::new(Mutex::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let client = ServiceBuilder::new()
        .layer(ClientContextLayer::new())
        .service_fn({
            let (calls, dropped) = (calls.clone(), dropped.clone());
            move |_req: http::Request<()>| {
                *calls.lock().unwrap() += 1;
                let guard = Dropped(dropped.clone());
                async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok::<_, Infallible>("answered")
                }
            }
        });

    // The deadline passes first.
    let start = Instant::now();
    let ctx = Context::new().with_timeout(Duration::from_millis(200));
    let err = client
        .clone()
        .oneshot(request_under(Some(&ctx)))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<RequestEnded>().unwrap().is_deadline());
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert!(dropped.load(Ordering::SeqCst), "the call was dropped");

    // Cancelled from above.
    dropped.store(false, Ordering::SeqCst);
    let parent = Context::new();
    let call = tokio::spawn(client.clone().oneshot(request_under(Some(&parent.child()))));
    tokio::time::sleep(Duration::from_millis(50)).await;
    parent.cancel();
    let err = call.await.unwrap().unwrap_err();
    let ended = err.downcast_ref::<RequestEnded>().unwrap();
    assert!(matches!(ended.cause(), Cause::Cancelled), "{ended}");
    assert!(dropped.load(Ordering::SeqCst));

    // Already ended: nothing is sent.
    let ended = Context::new();
    ended.cancel();
    let before = *calls.lock().unwrap();
    assert!(
        client
            .clone()
            .oneshot(request_under(Some(&ended)))
            .await
            .is_err()
    );
    assert_eq!(*calls.lock().unwrap(), before, "no call was made");

    // Dropped by its caller mid-wait: the call is dropped with it, and the caller's context, only
    // watched, goes on.
    dropped.store(false, Ordering::SeqCst);
    let caller = Context::new();
    let call = tokio::spawn(client.clone().oneshot(request_under(Some(&caller))));
    tokio::time::sleep(Duration::from_millis(50)).await;
    call.abort();
    let _ = call.await;
    assert!(dropped.load(Ordering::SeqCst), "the call was dropped");
    assert!(!caller.is_cancelled());

    // No context: untouched, answered in its own time.
    let start = Instant::now();
    assert_eq!(
        client.oneshot(request_under(None)).await.unwrap(),
        "answered"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}
