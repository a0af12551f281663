//! A call given up crossing a real socket: a client under `ClientContextLayer` calls an axum server
//! under `ContextLayer` over HTTP/1.1 on port 0. The client's transport closes its connection when a
//! call is given up, as hyper's HTTP/1 client does, and the server's request context ends with it.
//! Real time. (Deadlines sent across, over gRPC: `grpc.rs`.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use axum::{Extension, Router};
use bounded::cancel::tower::{BoxError, ClientContextLayer, ContextLayer, RequestEnded};
use bounded::cancel::{Cause, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

/// Serves `/hang` (never answers; reports how its request's context ended). Each request's context
/// comes from `ContextLayer`.
async fn serve() -> (SocketAddr, mpsc::UnboundedReceiver<Cause>) {
    let (ended, seen) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/hang",
            get(move |Extension(ctx): Extension<Context>| {
                let ended = ended.clone();
                async move {
                    // Outlives the handler, which the server drops when the client hangs up.
                    tokio::spawn(async move {
                        let _ = ended.send(ctx.cancelled().await);
                    });
                    std::future::pending::<&'static str>().await
                }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|err: BoxError| async move {
                    (axum::http::StatusCode::GATEWAY_TIMEOUT, err.to_string())
                }))
                .layer(ContextLayer::new(&Context::new())),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// A request sent on a connection of its own, headers and all; dropping the call closes the
/// connection. Answers the response's body.
async fn send(addr: SocketAddr, req: axum::http::Request<()>) -> Result<String, Infallible> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n",
        req.uri()
    );
    for (name, value) in req.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    Ok(response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned())
}

fn under(ctx: &Context, path: &str) -> axum::http::Request<()> {
    let mut req = axum::http::Request::builder().uri(path).body(()).unwrap();
    req.extensions_mut().insert(ctx.clone());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_given_up_by_its_caller_ends_the_servers_context_too() {
    let (addr, mut seen) = serve().await;
    let client = ServiceBuilder::new()
        .layer(ClientContextLayer::new())
        .service_fn(move |req| send(addr, req));

    // Cancelled by the caller: no deadline was sent, so only the closed connection tells the server.
    let caller = Context::new();
    let call = tokio::spawn(client.clone().oneshot(under(&caller, "/hang")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    caller.cancel();
    let err = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the call was given up")
        .unwrap()
        .unwrap_err();
    assert!(err.downcast_ref::<RequestEnded>().is_some(), "{err}");
    server_context_ended(&mut seen, start).await;

    // The caller's deadline: the server, which was not told of it over plain HTTP, hears of it when
    // the client hangs up.
    let start = Instant::now();
    let caller = Context::new().with_timeout(Duration::from_millis(300));
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        client.oneshot(under(&caller, "/hang")),
    )
    .await
    .expect("the call ended at its deadline")
    .unwrap_err();
    assert!(err.downcast_ref::<RequestEnded>().unwrap().is_deadline());
    assert!(start.elapsed() >= Duration::from_millis(300));
    server_context_ended(&mut seen, start).await;
}

/// Waits for the server to report its request's context ended (a cancel: the client hung up), and
/// requires it within 2 s of `start`.
async fn server_context_ended(seen: &mut mpsc::UnboundedReceiver<Cause>, start: Instant) {
    let cause = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .expect("the server's context ended")
        .unwrap();
    assert!(matches!(cause, Cause::Cancelled), "{cause}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}
