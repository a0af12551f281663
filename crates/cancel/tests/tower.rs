//! `ContextLayer` driven as a tower service: each request's context has the deadline and the parent it
//! should, the response ends with the right cause when either ends it, the handler is dropped then, and
//! the context ends with the response.
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

/// When a request whose handler never answers ends, from its start, under `layer`, with `header` as
/// its `grpc-timeout`; `None` if it is still running after an hour.
async fn ends_after(layer: ContextLayer, header: Option<&str>) -> Option<Duration> {
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_req: http::Request<()>| async {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(())
        });
    let mut req = http::Request::builder();
    if let Some(value) = header {
        req = req.header("grpc-timeout", value);
    }
    let start = Instant::now();
    let ended = tokio::time::timeout(
        Duration::from_secs(3600),
        svc.oneshot(req.body(()).unwrap()),
    )
    .await
    .ok()?;
    let err = ended.expect_err("the handler never answers");
    let ended = err
        .downcast_ref::<RequestEnded>()
        .expect("the context ended it");
    assert!(ended.is_deadline(), "{ended}");
    Some(start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_grpc_clients_deadline_ends_the_request_when_it_comes_first() {
    let parent = Context::new();
    let ms = Duration::from_millis;
    let honoured = || ContextLayer::new(&parent).timeout(ms(1000)).grpc_timeout();
    let no_timeout = || ContextLayer::new(&parent).grpc_timeout();
    let cases = [
        (
            honoured(),
            Some("100m"),
            Some(ms(100)),
            "the client's, sooner",
        ),
        (
            honoured(),
            Some("5S"),
            Some(ms(1000)),
            "the layer's, sooner",
        ),
        (honoured(), Some("1M"), Some(ms(1000)), "minutes"),
        (honoured(), Some("250000u"), Some(ms(250)), "microseconds"),
        (honoured(), Some("0n"), Some(ms(0)), "a client out of time"),
        (
            honoured(),
            Some("soon"),
            Some(ms(1000)),
            "malformed: ignored",
        ),
        (honoured(), None, Some(ms(1000)), "no header"),
        (
            no_timeout(),
            Some("300m"),
            Some(ms(300)),
            "only the client's",
        ),
        (
            no_timeout(),
            Some("99999999H"),
            None,
            "longer than the hour waited",
        ),
        (
            no_timeout(),
            Some("1.5S"),
            None,
            "malformed, and no timeout",
        ),
        (
            ContextLayer::new(&parent).timeout(ms(1000)),
            Some("100m"),
            Some(ms(1000)),
            "not asked to read the header",
        ),
    ];
    for (layer, header, expected, what) in cases {
        assert_eq!(ends_after(layer, header).await, expected, "{what}");
    }
}

/// A request carrying `ctx`, with `grpc-timeout` already set to `sent` if given.
fn request_under(ctx: Option<&Context>, sent: Option<&str>) -> http::Request<()> {
    let mut req = http::Request::builder();
    if let Some(value) = sent {
        req = req.header("grpc-timeout", value);
    }
    let mut req = req.body(()).unwrap();
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
        .oneshot(request_under(Some(&ctx), None))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<RequestEnded>().unwrap().is_deadline());
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert!(dropped.load(Ordering::SeqCst), "the call was dropped");

    // Cancelled from above.
    dropped.store(false, Ordering::SeqCst);
    let parent = Context::new();
    let call = tokio::spawn(
        client
            .clone()
            .oneshot(request_under(Some(&parent.child()), None)),
    );
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
            .oneshot(request_under(Some(&ended), None))
            .await
            .is_err()
    );
    assert_eq!(*calls.lock().unwrap(), before, "no call was made");

    // Dropped by its caller mid-wait: the call is dropped with it, and the caller's context, only
    // watched, goes on.
    dropped.store(false, Ordering::SeqCst);
    let caller = Context::new();
    let call = tokio::spawn(client.clone().oneshot(request_under(Some(&caller), None)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    call.abort();
    let _ = call.await;
    assert!(dropped.load(Ordering::SeqCst), "the call was dropped");
    assert!(!caller.is_cancelled());

    // No context: untouched, answered in its own time.
    let start = Instant::now();
    assert_eq!(
        client.oneshot(request_under(None, None)).await.unwrap(),
        "answered"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_client_sends_the_shorter_of_its_contexts_time_and_a_timeout_already_set() {
    let echo = tower::service_fn(|req: http::Request<()>| async move {
        Ok::<_, Infallible>(
            req.headers()
                .get("grpc-timeout")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    });
    let sends = ServiceBuilder::new()
        .layer(ClientContextLayer::new().grpc_timeout())
        .service(echo);
    let second = Context::new().with_timeout(Duration::from_secs(1));
    let cases = [
        (Some(&second), None, Some("1000000u"), "the context's"),
        (
            Some(&second),
            Some("100m"),
            Some("100m"),
            "the request's own, shorter",
        ),
        (
            Some(&second),
            Some("5S"),
            Some("1000000u"),
            "the context's, shorter",
        ),
        (
            Some(&second),
            Some("soon"),
            Some("1000000u"),
            "a malformed one replaced",
        ),
        (None, Some("5S"), Some("5S"), "no context: untouched"),
        (None, None, None, "nothing to send"),
    ];
    for (ctx, sent, expected, what) in cases {
        let got = sends
            .clone()
            .oneshot(request_under(ctx, sent))
            .await
            .unwrap();
        assert_eq!(got.as_deref(), expected, "{what}");
    }
    let quiet = ServiceBuilder::new()
        .layer(ClientContextLayer::new())
        .service(echo);
    assert_eq!(
        quiet
            .oneshot(request_under(Some(&second), None))
            .await
            .unwrap(),
        None,
        "no header unless asked"
    );
    let unbounded = Context::new();
    assert_eq!(
        sends
            .oneshot(request_under(Some(&unbounded), None))
            .await
            .unwrap(),
        None,
        "a context without a deadline sends none"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_travels_from_a_client_context_to_the_servers() {
    let server = ServiceBuilder::new()
        .layer(
            ContextLayer::new(&Context::new())
                .timeout(Duration::from_secs(2))
                .grpc_timeout(),
        )
        .service_fn(|req: http::Request<()>| async move {
            let ctx = req.extensions().get::<Context>().unwrap();
            Ok::<_, Infallible>(ctx.remaining())
        });
    let client = ServiceBuilder::new()
        .layer(ClientContextLayer::new().grpc_timeout())
        // The network: only the headers cross it.
        .map_request(|mut req: http::Request<()>| {
            req.extensions_mut().clear();
            req
        })
        .service(server);
    // The caller's context (a request being served, say) has 700 ms left.
    let caller = Context::new().with_timeout(Duration::from_millis(700));
    let got = client
        .oneshot(request_under(Some(&caller), None))
        .await
        .unwrap();
    assert_eq!(got, Some(Duration::from_millis(700)));
}
