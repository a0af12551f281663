//! The context layers' gRPC mode driven as tower services on the paused clock: deadlines read from
//! and written to `grpc-timeout`, calls whose context ended answered with the status a gRPC client
//! reads, and a request's context that lasts as long as its streamed response and cuts it short,
//! never leaving a cut stream looking whole.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bounded_cancel::tower::{ClientContextLayer, ContextBody, ContextLayer, Grpc, RequestEnded};
use bounded_cancel::{Cause, Context, live};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sets its flag when dropped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A response body fed frame by frame through a channel, as a gRPC server streams messages; it
/// ends when the channel closes.
struct Feed {
    frames: mpsc::Receiver<Frame<Bytes>>,
    _dropped: Dropped,
}

impl Body for Feed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.frames.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

/// A body that, when first polled, ends `ctx` and then says the call went well: a producer that
/// stopped because its context ended, caught between the layer's look at the context and its look
/// at the body.
struct EndsThenOk(Context);

impl Body for EndsThenOk {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.cancel();
        Poll::Ready(Some(Ok(Frame::trailers(trailers("0")))))
    }
}

fn trailers(code: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", code.parse().unwrap());
    trailers
}

/// A gRPC request with `grpc-timeout: sent`, if given.
fn call(sent: Option<&str>) -> http::Request<()> {
    let mut req = http::Request::builder();
    if let Some(value) = sent {
        req = req.header("grpc-timeout", value);
    }
    req.body(()).unwrap()
}

/// The same request, carrying `ctx`.
fn call_under(ctx: Option<&Context>, sent: Option<&str>) -> http::Request<()> {
    let mut req = call(sent);
    if let Some(ctx) = ctx {
        req.extensions_mut().insert(ctx.clone());
    }
    req
}

/// What a gRPC client reads from a response: its messages, and the status from the head (a
/// trailers-only response) or else from the trailers; `None` if the stream ended without one.
async fn read<B>(response: http::Response<B>) -> (Vec<Bytes>, Option<String>)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let code = |headers: &HeaderMap| {
        headers
            .get("grpc-status")
            .map(|code| code.to_str().unwrap().to_owned())
    };
    if let Some(status) = code(response.headers()) {
        return (Vec::new(), Some(status));
    }
    let mut body = response.into_body();
    let mut messages = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame.unwrap().into_data() {
            Ok(data) => messages.push(data),
            Err(frame) => return (messages, code(frame.trailers_ref().unwrap())),
        }
    }
    (messages, None)
}

/// When a call whose handler never answers is answered, from its start, under `layer`, with `sent`
/// as its `grpc-timeout`, and the status it gets; `None` if it is still running after an hour.
async fn answered_after(layer: ContextLayer<Grpc>, sent: Option<&str>) -> Option<Duration> {
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_req: http::Request<()>| async {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(http::Response::new(http_body_util::Empty::<Bytes>::new()))
        });
    let start = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(3600), svc.oneshot(call(sent)))
        .await
        .ok()?
        .expect("answered with a status, not an error");
    assert_eq!(response.headers()["content-type"], "application/grpc");
    let ended = response.extensions().get::<RequestEnded>().unwrap().clone();
    assert!(ended.is_deadline(), "{ended}");
    assert_eq!(read(response).await, (Vec::new(), Some("4".to_owned())));
    Some(start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_clients_deadline_ends_the_request_with_deadline_exceeded_when_it_comes_first() {
    let parent = Context::new();
    let honoured = || ContextLayer::new(&parent).timeout(ms(1000)).grpc();
    let no_timeout = || ContextLayer::new(&parent).grpc();
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
    ];
    for (layer, sent, expected, what) in cases {
        assert_eq!(answered_after(layer, sent).await, expected, "{what}");
    }

    // A plain HTTP layer does not read the header.
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(&parent).timeout(ms(1000)))
        .service_fn(|req: http::Request<()>| async move {
            Ok::<_, Infallible>(req.extensions().get::<Context>().unwrap().remaining())
        });
    assert_eq!(
        svc.oneshot(call(Some("100m"))).await.unwrap(),
        Some(ms(1000))
    );
}

#[tokio::test(start_paused = true)]
async fn a_drain_answers_unavailable_and_a_late_call_is_not_handled() {
    let service = Context::new();
    let handled = Arc::new(Mutex::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let svc = ServiceBuilder::new()
        .layer(
            ContextLayer::new(&service)
                .timeout(Duration::from_secs(30))
                .grpc(),
        )
        .service_fn({
            let (handled, dropped) = (handled.clone(), dropped.clone());
            move |_req: http::Request<()>| {
                *handled.lock().unwrap() += 1;
                let guard = Dropped(dropped.clone());
                async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok::<_, Infallible>(http::Response::new(http_body_util::Empty::<Bytes>::new()))
                }
            }
        });
    let in_flight = tokio::spawn(svc.clone().oneshot(call(None)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    service.cancel();
    let response = in_flight.await.unwrap().expect("a status, not an error");
    let ended = response.extensions().get::<RequestEnded>().unwrap().clone();
    assert!(matches!(ended.cause(), Cause::Cancelled), "{ended}");
    assert_eq!(read(response).await, (Vec::new(), Some("14".to_owned())));
    assert!(dropped.load(Ordering::SeqCst), "the handler was dropped");

    let start = Instant::now();
    let late = svc.oneshot(call(None)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(read(late).await, (Vec::new(), Some("14".to_owned())));
    assert_eq!(*handled.lock().unwrap(), 1, "the late call was not handled");
    live::assert_none_alive().await;
}

/// A server whose handler answers at once with a stream of `count` messages, one every 100 ms, made
/// by a task that works under the request's context and stops when it ends (dropping its end of
/// the stream, as a tonic handler's stream ends); then `OK` trailers. Its contexts are kept.
fn streaming_server(
    layer: ContextLayer<Grpc>,
    count: u32,
    contexts: Arc<Mutex<Vec<Context>>>,
    dropped: Arc<AtomicBool>,
) -> impl tower::Service<
    http::Request<()>,
    Response = http::Response<ContextBody<Feed>>,
    Error = bounded_cancel::tower::BoxError,
> + Clone {
    ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |req: http::Request<()>| {
            let ctx = req.extensions().get::<Context>().unwrap().clone();
            contexts.lock().unwrap().push(ctx.clone());
            let (tx, frames) = mpsc::channel(1);
            tokio::spawn(async move {
                for i in 0..count {
                    let sent = async {
                        tokio::time::sleep(ms(100)).await;
                        tx.send(Frame::data(Bytes::from(i.to_string()))).await
                    };
                    if ctx.run(sent).await.is_err() {
                        return; // the context ended: stop, and let the stream end
                    }
                }
                let _ = tx.send(Frame::trailers(trailers("0"))).await;
            });
            let body = Feed {
                frames,
                _dropped: Dropped(dropped.clone()),
            };
            async move { Ok::<_, Infallible>(http::Response::new(body)) }
        })
}

#[tokio::test(start_paused = true)]
async fn a_streamed_response_is_made_under_the_requests_context_until_its_end() {
    let contexts = Arc::new(Mutex::new(Vec::new()));
    let dropped = Arc::new(AtomicBool::new(false));
    let layer = ContextLayer::new(&Context::new())
        .timeout(Duration::from_secs(2))
        .grpc();
    let svc = streaming_server(layer, 10, contexts.clone(), dropped.clone());
    let start = Instant::now();
    let (messages, status) = read(svc.oneshot(call(None)).await.unwrap()).await;
    assert_eq!(start.elapsed(), ms(1000));
    assert_eq!(
        messages.len(),
        10,
        "every message, though the head came first"
    );
    assert_eq!(status.as_deref(), Some("0"));
    let ctx = contexts.lock().unwrap()[0].clone();
    assert!(
        matches!(ctx.cause(), Some(Cause::Cancelled)),
        "and the context ends with the stream"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_cuts_a_streamed_response_with_deadline_exceeded_never_ok() {
    let contexts = Arc::new(Mutex::new(Vec::new()));
    let dropped = Arc::new(AtomicBool::new(false));
    let layer = ContextLayer::new(&Context::new()).timeout(ms(450)).grpc();
    let svc = streaming_server(layer, 10, contexts.clone(), dropped.clone());
    let start = Instant::now();
    let (messages, status) = read(svc.clone().oneshot(call(None)).await.unwrap()).await;
    assert_eq!(start.elapsed(), ms(450));
    assert_eq!(messages.len(), 4, "the messages sent before the deadline");
    assert_eq!(status.as_deref(), Some("4"), "DEADLINE_EXCEEDED, not OK");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the rest of the stream was dropped"
    );

    // The client's own deadline does the same.
    let (messages, status) = read(svc.oneshot(call(Some("250m"))).await.unwrap()).await;
    assert_eq!((messages.len(), status.as_deref()), (2, Some("4")));
}

#[tokio::test(start_paused = true)]
async fn a_drain_cuts_a_streamed_response_with_unavailable() {
    let service = Context::new();
    let contexts = Arc::new(Mutex::new(Vec::new()));
    let dropped = Arc::new(AtomicBool::new(false));
    let layer = ContextLayer::new(&service).grpc();
    let svc = streaming_server(layer, 10, contexts.clone(), dropped.clone());
    let response = svc.oneshot(call(None)).await.unwrap();
    let reading = tokio::spawn(read(response));
    tokio::time::sleep(ms(350)).await;
    service.cancel();
    let (messages, status) = reading.await.unwrap();
    assert_eq!((messages.len(), status.as_deref()), (3, Some("14")));
}

#[tokio::test(start_paused = true)]
async fn a_streamed_response_dropped_by_the_server_ends_its_context() {
    // A server drops a response's body when its client resets the stream.
    let contexts = Arc::new(Mutex::new(Vec::new()));
    let dropped = Arc::new(AtomicBool::new(false));
    let layer = ContextLayer::new(&Context::new()).grpc();
    let svc = streaming_server(layer, 10, contexts.clone(), dropped.clone());
    let mut body = svc.oneshot(call(None)).await.unwrap().into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    let ctx = contexts.lock().unwrap()[0].clone();
    assert!(!ctx.is_cancelled(), "alive while its response streams");
    drop(body);
    assert!(ctx.is_cancelled(), "the producer is told to stop");
}

#[tokio::test(start_paused = true)]
async fn ok_trailers_that_arrive_after_the_context_ended_carry_its_status() {
    let service = Context::new();
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(&service).grpc())
        .service_fn({
            let service = service.clone();
            move |_req: http::Request<()>| {
                let body = EndsThenOk(service.clone());
                async move { Ok::<_, Infallible>(http::Response::new(body)) }
            }
        });
    let (messages, status) = read(svc.oneshot(call(None)).await.unwrap()).await;
    assert!(messages.is_empty());
    assert_eq!(status.as_deref(), Some("14"), "the stream was cut: not OK");
}

#[tokio::test(start_paused = true)]
async fn an_answer_made_as_the_context_ends_is_reported_with_its_status() {
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(&Context::new()).timeout(ms(300)).grpc())
        .service_fn(|req: http::Request<()>| async move {
            let ctx = req.extensions().get::<Context>().unwrap().clone();
            // A partial answer once the deadline has come: a message, then `OK`.
            let _ = ctx.run(tokio::time::sleep(Duration::from_secs(5))).await;
            let (tx, frames) = mpsc::channel(2);
            tx.send(Frame::data(Bytes::from("partial"))).await.unwrap();
            tx.send(Frame::trailers(trailers("0"))).await.unwrap();
            let body = Feed {
                frames,
                _dropped: Dropped(Arc::new(AtomicBool::new(false))),
            };
            Ok::<_, Infallible>(http::Response::new(body))
        });
    let (_, status) = read(svc.oneshot(call(None)).await.unwrap()).await;
    assert_eq!(status.as_deref(), Some("4"), "not a whole answer: not OK");
}

#[tokio::test(start_paused = true)]
async fn a_handlers_own_status_passes_through_and_its_context_ends_with_the_response() {
    let contexts = Arc::new(Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(ContextLayer::new(&Context::new()).timeout(ms(500)).grpc())
        .service_fn({
            let contexts = contexts.clone();
            move |req: http::Request<()>| {
                contexts
                    .lock()
                    .unwrap()
                    .push(req.extensions().get::<Context>().unwrap().clone());
                async move {
                    // NOT_FOUND, trailers-only, as tonic answers a handler's `Err(Status)`.
                    let mut response = http::Response::new(http_body_util::Empty::<Bytes>::new());
                    response
                        .headers_mut()
                        .insert("grpc-status", "5".parse().unwrap());
                    Ok::<_, Infallible>(response)
                }
            }
        });
    let response = svc.oneshot(call(None)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await; // past the deadline, before the body is read
    assert_eq!(read(response).await, (Vec::new(), Some("5".to_owned())));
    let ctx = contexts.lock().unwrap()[0].clone();
    assert!(ctx.is_cancelled());
}

/// A backend that answers with a stream of a message every 100 ms, 10 of them and then `OK`,
/// and echoes the `grpc-timeout` it was sent in a header; its calls are counted.
fn backend(
    calls: Arc<Mutex<u32>>,
    dropped: Arc<AtomicBool>,
) -> impl tower::Service<
    http::Request<()>,
    Response = http::Response<Feed>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Feed>, Infallible>> + Send,
> + Clone {
    tower::service_fn(move |req: http::Request<()>| {
        *calls.lock().unwrap() += 1;
        let sent = req.headers().get("grpc-timeout").cloned();
        let (tx, frames) = mpsc::channel(1);
        tokio::spawn(async move {
            for i in 0..10 {
                tokio::time::sleep(ms(100)).await;
                if tx
                    .send(Frame::data(Bytes::from(i.to_string())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = tx.send(Frame::trailers(trailers("0"))).await;
        });
        let body = Feed {
            frames,
            _dropped: Dropped(dropped.clone()),
        };
        async move {
            let mut response = http::Response::new(body);
            if let Some(sent) = sent {
                response.headers_mut().insert("x-sent-timeout", sent);
            }
            Ok(response)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_client_call_ends_with_its_contexts_status_even_mid_stream() {
    let calls = Arc::new(Mutex::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let client = ServiceBuilder::new()
        .layer(ClientContextLayer::new().grpc())
        .service(backend(calls.clone(), dropped.clone()));

    // Time enough: the whole stream, `OK`, and the caller's context untouched.
    let caller = Context::new().with_timeout(Duration::from_secs(5));
    let response = client
        .clone()
        .oneshot(call_under(Some(&caller), None))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-sent-timeout"], "5000000u");
    let (messages, status) = read(response).await;
    assert_eq!((messages.len(), status.as_deref()), (10, Some("0")));
    assert!(!caller.is_cancelled());

    // The deadline passes mid-stream: what came before it, then DEADLINE_EXCEEDED, and the rest
    // of the call dropped.
    dropped.store(false, Ordering::SeqCst);
    let start = Instant::now();
    let short = Context::new().with_timeout(ms(350));
    let response = client
        .clone()
        .oneshot(call_under(Some(&short), None))
        .await
        .unwrap();
    let (messages, status) = read(response).await;
    assert_eq!(start.elapsed(), ms(350));
    assert_eq!((messages.len(), status.as_deref()), (3, Some("4")));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the rest of the call was dropped"
    );

    // Cancelled mid-stream: CANCELLED.
    let parent = Context::new();
    let response = client
        .clone()
        .oneshot(call_under(Some(&parent.child()), None))
        .await
        .unwrap();
    let reading = tokio::spawn(read(response));
    tokio::time::sleep(ms(250)).await;
    parent.cancel();
    let (messages, status) = reading.await.unwrap();
    assert_eq!((messages.len(), status.as_deref()), (2, Some("1")));

    // Already ended: a status at once, nothing sent.
    let before = *calls.lock().unwrap();
    let ended = Context::new();
    ended.cancel();
    let response = client
        .clone()
        .oneshot(call_under(Some(&ended), None))
        .await
        .unwrap();
    assert_eq!(read(response).await, (Vec::new(), Some("1".to_owned())));
    let out_of_time = Context::new().with_timeout(Duration::ZERO);
    let response = client
        .clone()
        .oneshot(call_under(Some(&out_of_time), None))
        .await
        .unwrap();
    assert_eq!(read(response).await, (Vec::new(), Some("4".to_owned())));
    assert_eq!(*calls.lock().unwrap(), before, "no call was made");

    // No context: untouched, no header.
    let response = client.oneshot(call_under(None, None)).await.unwrap();
    assert!(!response.headers().contains_key("x-sent-timeout"));
    let (messages, status) = read(response).await;
    assert_eq!((messages.len(), status.as_deref()), (10, Some("0")));
}

#[tokio::test(start_paused = true)]
async fn a_client_call_waiting_for_its_head_is_given_up_with_its_status() {
    let dropped = Arc::new(AtomicBool::new(false));
    let client = ServiceBuilder::new()
        .layer(ClientContextLayer::new().grpc())
        .service_fn({
            let dropped = dropped.clone();
            move |_req: http::Request<()>| {
                let guard = Dropped(dropped.clone());
                async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok::<_, Infallible>(http::Response::new(http_body_util::Empty::<Bytes>::new()))
                }
            }
        });
    let start = Instant::now();
    let ctx = Context::new().with_timeout(ms(200));
    let response = client.oneshot(call_under(Some(&ctx), None)).await.unwrap();
    assert_eq!(start.elapsed(), ms(200));
    let ended = response.extensions().get::<RequestEnded>().unwrap().clone();
    assert!(ended.is_deadline());
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(read(response).await, (Vec::new(), Some("4".to_owned())));
    assert!(dropped.load(Ordering::SeqCst), "the call was dropped");
}

#[tokio::test(start_paused = true)]
async fn a_client_sends_the_shorter_of_its_contexts_time_and_a_timeout_already_set() {
    let echo = tower::service_fn(|req: http::Request<()>| async move {
        let sent = req
            .headers()
            .get("grpc-timeout")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok::<_, Infallible>(http::Response::new(sent))
    });
    let sends = ServiceBuilder::new()
        .layer(ClientContextLayer::new().grpc())
        .service(echo);
    let sent = |response: http::Response<ContextBody<Option<String>>>| {
        response.into_body().into_inner().unwrap()
    };
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
    for (ctx, already, expected, what) in cases {
        let got = sent(
            sends
                .clone()
                .oneshot(call_under(ctx, already))
                .await
                .unwrap(),
        );
        assert_eq!(got.as_deref(), expected, "{what}");
    }
    let quiet = ServiceBuilder::new()
        .layer(ClientContextLayer::new())
        .service(echo);
    let got = quiet
        .oneshot(call_under(Some(&second), None))
        .await
        .unwrap();
    assert_eq!(got.into_body(), None, "no header from a plain HTTP layer");
    let unbounded = Context::new();
    assert_eq!(
        sent(
            sends
                .oneshot(call_under(Some(&unbounded), None))
                .await
                .unwrap()
        ),
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
                .grpc(),
        )
        .service_fn(|req: http::Request<()>| async move {
            let ctx = req.extensions().get::<Context>().unwrap();
            Ok::<_, Infallible>(http::Response::new(ctx.remaining()))
        });
    let client = ServiceBuilder::new()
        .layer(ClientContextLayer::new().grpc())
        // The network: only the headers cross it, and the body comes back as it was sent.
        .map_request(|mut req: http::Request<()>| {
            req.extensions_mut().clear();
            req
        })
        .map_response(|res: http::Response<ContextBody<Option<Duration>>>| {
            res.map(|body| body.into_inner().unwrap())
        })
        .service(server);
    // The caller's context (a request being served, say) has 700 ms left.
    let caller = Context::new().with_timeout(ms(700));
    let response = client
        .oneshot(call_under(Some(&caller), None))
        .await
        .unwrap();
    assert_eq!(response.into_body().into_inner().unwrap(), Some(ms(700)));
}
