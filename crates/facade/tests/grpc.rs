//! The context layers' gRPC mode between a tonic client and a tonic server over a real HTTP/2
//! connection on port 0: a caller's deadline reaches the server's context, a deadline or a drain
//! reaches the client as the gRPC status it is (`DEADLINE_EXCEEDED`, `UNAVAILABLE`, `CANCELLED`),
//! and a streamed response is made under its request's context until it ends, or is cut with a
//! status, never ending `OK` short; a rate limit's refusal reaches the client as
//! `RESOURCE_EXHAUSTED`, and a waiting rate limit that cannot serve a caller before its deadline
//! answers `DEADLINE_EXCEEDED` at once. Real time.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bounded::cancel::tower::{ClientContextLayer, ContextLayer};
use bounded::cancel::{Cause, Context};
use bounded::ratelimit::tower::RateLimitLayer;
use bounded::ratelimit::{Limiter, Quota};
use bytes::{Buf, BufMut};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{NamedService, ServerStreamingService, UnaryService};
use tonic::{Code, Request, Response, Status};
use tower::ServiceBuilder;

/// Messages as raw bytes: no schema needed for what these tests send.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// What the server's handlers saw: how each request's context ended, and how many were handled.
#[derive(Clone, Default)]
struct Seen {
    handled: Arc<Mutex<u32>>,
    ended: Arc<Mutex<Option<mpsc::UnboundedSender<Cause>>>>,
}

impl Seen {
    /// Reports how `ctx` ends, from a task of its own (the handler may be dropped first).
    fn watch(&self, ctx: &Context) {
        *self.handled.lock().unwrap() += 1;
        let ended = self.ended.lock().unwrap().clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let cause = ctx.cancelled().await;
            if let Some(ended) = ended {
                let _ = ended.send(cause);
            }
        });
    }
}

/// The test service, `t.T`: `Unary` answers `remaining` with the milliseconds its context has
/// left (or `none`) and anything else after 60 s; `Stream` sends `n` messages, one every 50 ms
/// (`n` given as the request), from a task working under the request's context that stops when it
/// ends.
#[derive(Clone)]
struct Probe(Seen);

impl NamedService for Probe {
    const NAME: &'static str = "t.T";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Probe {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let seen = self.0.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Raw);
            Ok(match req.uri().path() {
                "/t.T/Unary" => grpc.unary(Unary(seen), req).await,
                _ => grpc.server_streaming(Streaming(seen), req).await,
            })
        })
    }
}

struct Unary(Seen);

impl UnaryService<Vec<u8>> for Unary {
    type Response = Vec<u8>;
    type Future = BoxFuture<Result<Response<Vec<u8>>, Status>>;

    fn call(&mut self, req: Request<Vec<u8>>) -> Self::Future {
        let ctx = req.extensions().get::<Context>().unwrap().clone();
        self.0.watch(&ctx);
        Box::pin(async move {
            if req.get_ref() == b"remaining" {
                let left = ctx
                    .remaining()
                    .map_or("none".to_owned(), |left| left.as_millis().to_string());
                return Ok(Response::new(left.into_bytes()));
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Response::new(b"late".to_vec()))
        })
    }
}

struct Streaming(Seen);

type Messages = Pin<Box<dyn Stream<Item = Result<Vec<u8>, Status>> + Send>>;

impl ServerStreamingService<Vec<u8>> for Streaming {
    type Response = Vec<u8>;
    type ResponseStream = Messages;
    type Future = BoxFuture<Result<Response<Messages>, Status>>;

    fn call(&mut self, req: Request<Vec<u8>>) -> Self::Future {
        let ctx = req.extensions().get::<Context>().unwrap().clone();
        self.0.watch(&ctx);
        let count: u32 = std::str::from_utf8(req.get_ref()).unwrap().parse().unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        tokio::spawn(async move {
            for i in 0..count {
                let sent = async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    tx.send(Ok(i.to_string().into_bytes())).await
                };
                if ctx.run(sent).await.is_err() {
                    return; // its context ended: the stream ends here
                }
            }
        });
        let messages = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Box::pin(async move { Ok(Response::new(Box::pin(messages) as Messages)) })
    }
}

/// A tonic server on port 0 under `layer`, and how its requests' contexts end.
async fn serve(
    layer: ContextLayer<bounded::cancel::tower::Grpc>,
) -> (SocketAddr, Seen, mpsc::UnboundedReceiver<Cause>) {
    let (tx, ended) = mpsc::unbounded_channel();
    let seen = Seen::default();
    *seen.ended.lock().unwrap() = Some(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let probe = Probe(seen.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(probe)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, seen, ended)
}

/// Serves `Probe` under a request context (`ContextLayer::grpc`, no timeout) and `limit` inside it.
async fn serve_rate_limited(
    limit: RateLimitLayer<bounded::cancel::tower::Grpc>,
) -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let probe = Probe(seen.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(ContextLayer::new(&Context::new()).grpc())
            .layer(limit)
            .add_service(probe)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, seen)
}

/// A tonic channel to `addr`.
async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A unary call of `t.T/Unary` with `message`, under `ctx` if given, through a client under
/// `ClientContextLayer::grpc`.
async fn unary(addr: SocketAddr, message: &str, ctx: Option<&Context>) -> Result<String, Status> {
    let channel = ServiceBuilder::new()
        .layer(ClientContextLayer::new().grpc())
        .service(channel(addr).await);
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut req = Request::new(message.as_bytes().to_vec());
    if let Some(ctx) = ctx {
        req.extensions_mut().insert(ctx.clone());
    }
    let path = http::uri::PathAndQuery::from_static("/t.T/Unary");
    let res = client.unary(req, path, Raw).await?;
    Ok(String::from_utf8(res.into_inner()).unwrap())
}

/// A `t.T/Stream` call asking for `count` messages, under `ctx` if given: the messages received,
/// and how the stream ended (`Ok` only if it ended with `OK`).
async fn stream(addr: SocketAddr, count: u32, ctx: Option<&Context>) -> (u32, Result<(), Status>) {
    let channel = ServiceBuilder::new()
        .layer(ClientContextLayer::new().grpc())
        .service(channel(addr).await);
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut req = Request::new(count.to_string().into_bytes());
    if let Some(ctx) = ctx {
        req.extensions_mut().insert(ctx.clone());
    }
    let path = http::uri::PathAndQuery::from_static("/t.T/Stream");
    let mut messages = match client.server_streaming(req, path, Raw).await {
        Ok(response) => response.into_inner(),
        Err(status) => return (0, Err(status)),
    };
    let mut received = 0;
    loop {
        match messages.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => return (received, Ok(())),
            Err(status) => return (received, Err(status)),
        }
    }
}

/// Waits up to 2 s for the server to report that a request's context ended.
async fn server_ended(ended: &mut mpsc::UnboundedReceiver<Cause>) -> Cause {
    tokio::time::timeout(Duration::from_secs(2), ended.recv())
        .await
        .expect("the server's context ended")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_deadline_reaches_the_servers_context() {
    let (addr, _seen, _ended) = serve(ContextLayer::new(&Context::new()).grpc()).await;
    let caller = Context::new().with_timeout(Duration::from_millis(800));
    let left = unary(addr, "remaining", Some(&caller)).await.unwrap();
    let left: u64 = left.parse().unwrap_or_else(|_| panic!("a number: {left}"));
    // Sent with what the caller had left, less the time to get there.
    assert!((400..=800).contains(&left), "{left} ms left at the server");
    // Without a deadline, nothing is sent, and the server gives the request none.
    assert_eq!(
        unary(addr, "remaining", Some(&Context::new()))
            .await
            .unwrap(),
        "none"
    );
    assert_eq!(unary(addr, "remaining", None).await.unwrap(), "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_deadline_reaches_the_client_as_deadline_exceeded() {
    let layer = ContextLayer::new(&Context::new())
        .timeout(Duration::from_millis(200))
        .grpc();
    let (addr, _seen, mut ended) = serve(layer).await;
    let start = Instant::now();
    let status = unary(addr, "sleep", None).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let cause = server_ended(&mut ended).await;
    assert!(cause.is_deadline_exceeded(), "{cause}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_reaches_the_client_as_unavailable() {
    let service = Context::new();
    let (addr, seen, mut ended) = serve(ContextLayer::new(&service).grpc()).await;
    let call = tokio::spawn(async move { unary(addr, "sleep", None).await });
    let cause = tokio::time::timeout(Duration::from_secs(2), async {
        while *seen.handled.lock().unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        service.cancel();
        server_ended(&mut ended).await
    })
    .await
    .expect("the call was handled");
    assert!(matches!(cause, Cause::Cancelled), "{cause}");
    let status = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .expect("answered")
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // A call after the drain began is answered without being handled.
    let status = unary(addr, "remaining", None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(*seen.handled.lock().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_made_under_its_requests_context_to_its_end() {
    let layer = ContextLayer::new(&Context::new())
        .timeout(Duration::from_secs(10))
        .grpc();
    let (addr, _seen, mut ended) = serve(layer).await;
    let (received, end) = stream(addr, 10, None).await;
    assert_eq!(
        received, 10,
        "every message, though the head was sent first"
    );
    end.unwrap();
    let cause = server_ended(&mut ended).await;
    assert!(
        matches!(cause, Cause::Cancelled),
        "ended with the stream: {cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_cuts_a_stream_with_deadline_exceeded_at_either_end() {
    // The server's own timeout.
    let layer = ContextLayer::new(&Context::new())
        .timeout(Duration::from_millis(300))
        .grpc();
    let (addr, _seen, mut ended) = serve(layer).await;
    let (received, end) = stream(addr, 1000, None).await;
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!((1..20).contains(&received), "{received} messages");
    assert!(server_ended(&mut ended).await.is_deadline_exceeded());

    // The caller's deadline, which the server's context has too.
    let (addr, _seen, mut ended) = serve(ContextLayer::new(&Context::new()).grpc()).await;
    let caller = Context::new().with_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let (received, end) = stream(addr, 1000, Some(&caller)).await;
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!((1..20).contains(&received), "{received} messages");
    server_ended(&mut ended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_caller_hears_cancelled_and_the_server_stops() {
    let (addr, seen, mut ended) = serve(ContextLayer::new(&Context::new()).grpc()).await;
    let caller = Context::new();
    let call = tokio::spawn({
        let caller = caller.clone();
        async move { unary(addr, "sleep", Some(&caller)).await }
    });
    tokio::time::timeout(Duration::from_secs(2), async {
        while *seen.handled.lock().unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the call was handled");
    caller.cancel();
    let status = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .expect("given up")
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    // The call was dropped, which resets its stream: the server's request ends too.
    let cause = server_ended(&mut ended).await;
    assert!(matches!(cause, Cause::Cancelled), "{cause}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shed_request_reaches_the_client_as_resource_exhausted() {
    let limiter = Limiter::new(Quota::per_minute(1).burst(1)).unwrap();
    let (addr, seen) = serve_rate_limited(RateLimitLayer::shed(limiter).grpc()).await;
    assert_eq!(unary(addr, "remaining", None).await.unwrap(), "none");
    let status = unary(addr, "remaining", None).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let pushback: u64 = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((50_000..=60_000).contains(&pushback), "{pushback} ms");
    assert_eq!(
        *seen.handled.lock().unwrap(),
        1,
        "the refused call was not handled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_rate_limit_answers_a_caller_it_cannot_serve_in_time_with_deadline_exceeded_at_once()
 {
    let limiter = Limiter::new(Quota::per_minute(1).burst(1)).unwrap();
    let (addr, seen) = serve_rate_limited(RateLimitLayer::new(limiter).grpc()).await;
    assert_eq!(unary(addr, "remaining", None).await.unwrap(), "none");
    // The next unit is a minute away; the caller has two seconds.
    let caller = Context::new().with_timeout(Duration::from_secs(2));
    let start = Instant::now();
    let status = unary(addr, "remaining", Some(&caller)).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "answered after {:?}, not at once",
        start.elapsed()
    );
    assert_eq!(
        *seen.handled.lock().unwrap(),
        1,
        "the refused call was not handled"
    );
}
