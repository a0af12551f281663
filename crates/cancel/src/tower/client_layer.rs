//! [`ClientContextLayer`]: a client's outgoing requests carry their caller's
//! [`Context`](crate::Context).

use std::marker::PhantomData;

use tower_layer::Layer;

use super::client_service::ClientContext;
use super::{Grpc, Http};

/// The client's side of [`ContextLayer`](super::ContextLayer): an outgoing request that carries a
/// [`Context`](crate::Context) in its extensions is given up when that context ends, and, with
/// [`grpc`](ClientContextLayer::grpc), tells the server its deadline and reports the call's end as
/// a gRPC status, as a Go gRPC client's calls do. Requests without a context pass through
/// untouched.
///
/// Put it in front of a tower client (a tonic `Channel`, a hyper-util client); to send a request
/// under a context, insert the context into the request's extensions (tonic copies a
/// `tonic::Request`'s extensions into the HTTP request it sends). When the context ends before the
/// response, the response future ends with [`RequestEnded`](super::RequestEnded) and drops the
/// inner call, which is how tower cancels one (hyper's HTTP/1 client then closes its connection,
/// its HTTP/2 client resets the stream); a context already ended sends nothing at all.
///
/// # Cancel safety
///
/// A response future dropped by its caller drops the inner call with it and holds nothing else: the
/// layer spawns no task and keeps no state between calls. The caller's context is only watched,
/// never cancelled.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_cancel::tower::{ClientContextLayer, RequestEnded};
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // A stand-in for the network: answers after a second.
/// let backend = tower::service_fn(|_req: http::Request<()>| async move {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     Ok::<_, std::convert::Infallible>("answered")
/// });
/// let client = ServiceBuilder::new().layer(ClientContextLayer::new()).service(backend);
///
/// let ctx = Context::new().with_timeout(Duration::from_millis(1500));
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(ctx);
/// assert_eq!(client.clone().oneshot(req).await.unwrap(), "answered");
///
/// let short = Context::new().with_timeout(Duration::from_millis(300));
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(short);
/// let err = client.oneshot(req).await.unwrap_err();
/// assert!(err.downcast_ref::<RequestEnded>().unwrap().is_deadline()); // given up at 300 ms
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientContextLayer<P = Http> {
    protocol: PhantomData<fn() -> P>,
}

impl ClientContextLayer {
    /// Requests are given up when their context ends, with [`RequestEnded`](super::RequestEnded);
    /// no header is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::tower::ClientContextLayer;
    /// let layer = ClientContextLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> Self {
        ClientContextLayer::default()
    }

    /// Speaks gRPC, as a Go gRPC client's calls do:
    ///
    /// - the time the context has left travels in a `grpc-timeout` header (in the smallest unit
    ///   that holds it in eight digits, rounded up, as Go's gRPC client writes it), unless the
    ///   request already has a shorter one (from tonic's `Request::set_timeout`);
    /// - a call whose context ends before its response is complete is answered with a gRPC status,
    ///   which a tonic client returns as its `Status`: `DEADLINE_EXCEEDED` at the deadline,
    ///   `CANCELLED` when the context was cancelled. That holds for a streaming response too: once
    ///   the context ends, the stream ends there with that status, and the rest of the call is
    ///   dropped, which resets its HTTP/2 stream.
    ///
    /// The response's body is wrapped in a [`ContextBody`](super::ContextBody), which a tonic
    /// client accepts as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_cancel::tower::ClientContextLayer;
    /// use std::time::Duration;
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // A stand-in for the network: answers after a second, echoing the timeout it was sent.
    /// let backend = tower::service_fn(|req: http::Request<()>| async move {
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     let sent = req.headers()["grpc-timeout"].to_str().unwrap().to_owned();
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(sent))
    /// });
    /// let client = ServiceBuilder::new().layer(ClientContextLayer::new().grpc()).service(backend);
    ///
    /// let mut req = http::Request::new(());
    /// req.extensions_mut().insert(Context::new().with_timeout(Duration::from_millis(1500)));
    /// let res = client.clone().oneshot(req).await.unwrap();
    /// // 1.5 s, in the smallest unit that holds it in eight digits, as gRPC writes it.
    /// assert_eq!(res.into_body().into_inner(), Some("1500000u".to_owned()));
    ///
    /// let mut req = http::Request::new(());
    /// req.extensions_mut().insert(Context::new().with_timeout(Duration::from_millis(300)));
    /// let res = client.oneshot(req).await.unwrap();
    /// assert_eq!(res.headers()["grpc-status"], "4"); // DEADLINE_EXCEEDED, at 300 ms
    /// # }
    /// ```
    pub fn grpc(self) -> ClientContextLayer<Grpc> {
        ClientContextLayer {
            protocol: PhantomData,
        }
    }
}

impl<S, P> Layer<S> for ClientContextLayer<P> {
    type Service = ClientContext<S, P>;

    fn layer(&self, inner: S) -> ClientContext<S, P> {
        ClientContext {
            inner,
            protocol: PhantomData,
        }
    }
}
