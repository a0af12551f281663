//! tower middleware that runs each request under a [`Context`] (feature `tower`).
//!
//! [`ContextLayer`] gives every HTTP request (`http::Request<B>`, as axum, hyper and tonic use) its own
//! context: a child of the service's context (a [`Shutdown`](crate::Shutdown)'s, typically) with the
//! request's own deadline (the layer's [`timeout`](ContextLayer::timeout), or, for gRPC, the client's
//! own, whichever comes first). The context is put in the request's extensions, so a handler takes
//! it (`Extension<Context>` in axum) and passes it to everything it waits on. In plain HTTP mode, the
//! response future ends when the context does, with [`RequestEnded`] carrying the cause: the
//! deadline passed, or the service began to drain. The handler's future is
//! dropped then, so its work stops at its next await; a handler that answers as its context ends
//! (with a partial result, say) has its answer sent, since the response wins a tie. A request that
//! arrives after the service's context ended is answered with `RequestEnded` without calling the
//! handler. And the context ends when the response is ready, or when the server drops the response
//! future unfinished (its client closed the connection), as a Go `http.Server` request's does, so
//! work the handler left running under it stops too. "Ready" is the response's head: a streaming body
//! is sent after it, so in plain HTTP mode a body that must keep working should not wait on the
//! request's context (gRPC mode keeps the context for the whole response).
//!
//! [`ClientContextLayer`] is the client's side: a request sent with a context in its extensions is given
//! up when that context ends, and, for gRPC, carries the time it has left to the server.
//!
//! Both layers speak plain HTTP by default ([`Http`]): a request whose context ends before its response
//! ends with the error [`RequestEnded`]. Their gRPC mode ([`ContextLayer::grpc`],
//! [`ClientContextLayer::grpc`]) speaks as Go's gRPC does: the deadline travels in `grpc-timeout`, an
//! ended call is answered with a gRPC status (`DEADLINE_EXCEEDED`, `UNAVAILABLE`, `CANCELLED`) that
//! clients read as such rather than as a broken stream, and a request's context lasts until its whole
//! response, a stream included, has been sent.
//!
//! # Examples
//!
//! ```
//! use bounded_cancel::tower::{ContextLayer, RequestEnded};
//! use bounded_cancel::{Context, Shutdown};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let shutdown = Shutdown::new();
//! let svc = ServiceBuilder::new()
//!     .layer(ContextLayer::new(shutdown.context()).timeout(Duration::from_millis(100)))
//!     .service_fn(|req: http::Request<()>| async move {
//!         let ctx = req.extensions().get::<Context>().expect("set by the layer").clone();
//!         if req.uri().path() == "/partial" {
//!             // A handler that watches its context can still answer when the deadline comes.
//!             let done = ctx.run(tokio::time::sleep(Duration::from_secs(5))).await;
//!             return Ok::<_, std::convert::Infallible>(if done.is_ok() { "all" } else { "partial" });
//!         }
//!         tokio::time::sleep(Duration::from_secs(5)).await; // one that does not is cut short
//!         Ok("all")
//!     });
//! let err = svc.clone().oneshot(http::Request::new(())).await.unwrap_err();
//! assert!(err.downcast_ref::<RequestEnded>().unwrap().is_deadline());
//! let partial = http::Request::builder().uri("/partial").body(()).unwrap();
//! assert_eq!(svc.oneshot(partial).await.unwrap(), "partial");
//! # }
//! ```

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use crate::{Cause, Context};

/// The error type of [`WithContext`]: the inner service's error, or [`RequestEnded`].
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A request's context ended before its response was ready; the handler was dropped.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Cause;
/// use bounded_cancel::tower::RequestEnded;
///
/// let ended = RequestEnded::new(Cause::DeadlineExceeded);
/// assert!(ended.is_deadline());
/// assert!(ended.to_string().contains("deadline"));
/// ```
#[derive(Clone, Debug)]
pub struct RequestEnded {
    cause: Cause,
}

impl RequestEnded {
    /// A request ended by `cause`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Cause;
    /// # use bounded_cancel::tower::RequestEnded;
    /// assert!(!RequestEnded::new(Cause::Cancelled).is_deadline());
    /// ```
    pub fn new(cause: Cause) -> Self {
        RequestEnded { cause }
    }

    /// Why the context ended: its deadline, or the service's context (a shutdown, say).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Cause;
    /// # use bounded_cancel::tower::RequestEnded;
    /// assert!(RequestEnded::new(Cause::Cancelled).cause().error().is_none());
    /// ```
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// Whether the request's deadline ended it (an HTTP service answers `504 Gateway Timeout` or
    /// `408`); otherwise the service's context did (`503 Service Unavailable` while draining).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Cause;
    /// # use bounded_cancel::tower::RequestEnded;
    /// assert!(RequestEnded::new(Cause::DeadlineExceeded).is_deadline());
    /// ```
    pub fn is_deadline(&self) -> bool {
        self.cause.is_deadline_exceeded()
    }
}

impl fmt::Display for RequestEnded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request's context ended before its response was ready: {}",
            self.cause
        )
    }
}

impl Error for RequestEnded {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        // The cause is in the message already: the chain goes on below it.
        self.cause.source()
    }
}

mod grpc;

pub use grpc::ContextBody;

/// Plain HTTP, the protocol `bounded`'s tower layers speak by default: a request a layer ends or
/// refuses ends with an error ([`RequestEnded`] here, `RateLimited` from the rate-limit layers), for
/// the service to answer as it sees fit (`504`, `503`, `429`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Http;

/// gRPC, from each layer's `grpc()` ([`ContextLayer::grpc`], [`ClientContextLayer::grpc`], and the
/// rate-limit layers'): a call a layer ends or refuses is answered with the gRPC status clients read
/// as such (`DEADLINE_EXCEEDED`, `UNAVAILABLE`, `CANCELLED`, `RESOURCE_EXHAUSTED`) rather than an
/// error, which a gRPC server would turn into a reset stream. The context layers also carry
/// deadlines in the `grpc-timeout` header and keep a request's context for its whole response, a
/// stream included.
#[derive(Clone, Copy, Debug, Default)]
pub struct Grpc;

/// Runs each request under a child of a [`Context`], with an optional deadline. See the
/// [module docs](self).
///
/// # Cancel safety
///
/// A response future dropped unfinished (its client hung up) drops the handler's future and ends
/// the request's context, so work the handler started under it stops too. In gRPC mode the same
/// holds for the response's body: dropped unfinished, it ends the request's context.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_cancel::tower::ContextLayer;
/// use std::time::Duration;
///
/// let service_ctx = Context::new();
/// let layer = ContextLayer::new(&service_ctx).timeout(Duration::from_secs(2));
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct ContextLayer<P = Http> {
    parent: Context,
    timeout: Option<Duration>,
    protocol: PhantomData<fn() -> P>,
}

impl ContextLayer {
    /// Each request's context is a child of `parent`: it ends when `parent` does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::{tower::ContextLayer, Shutdown};
    /// let shutdown = Shutdown::new();
    /// let layer = ContextLayer::new(shutdown.context());
    /// # let _ = layer;
    /// ```
    pub fn new(parent: &Context) -> Self {
        ContextLayer {
            parent: parent.clone(),
            timeout: None,
            protocol: PhantomData,
        }
    }

    /// Speaks gRPC, as a Go gRPC server's contexts do, for a gRPC server (tonic's):
    ///
    /// - each request also ends at the deadline its client sent in the `grpc-timeout` header, when
    ///   that comes first (gRPC clients send the time they will wait, and work for a client that has
    ///   given up is wasted). The header is read as the gRPC protocol writes it: up to eight digits
    ///   and a unit (`H`, `M`, `S`, `m`, `u` or `n`, hours down to nanoseconds: `250m` is 250 ms).
    ///   A header that does not parse is ignored, and the layer's own timeout, if any, still applies;
    /// - a request whose context ends is answered with a gRPC status instead of an error:
    ///   `DEADLINE_EXCEEDED` at its deadline, `UNAVAILABLE` when the service's context ended (it is
    ///   draining: clients may retry on another replica), and a request that arrives after the
    ///   service's context ended is answered `UNAVAILABLE` without calling the handler. A gRPC
    ///   server that got an error from its middleware would reset the stream, which clients read
    ///   as `INTERNAL`;
    /// - the request's context lasts until the response's last frame has been sent (or the
    ///   response is dropped), so a streaming response's producer can work under it. If the context
    ///   ends first, the rest of the response is not sent: the stream ends there, with the status in
    ///   its trailers. A stream that ends by itself with `OK` after its context ended (its producer
    ///   saw the context end and stopped) gets the context's status too, so a client never takes a
    ///   cut stream for a whole one. So a call is `OK` only if its whole response was sent before its
    ///   context ended: a handler that answers with a partial result as its context ends, which
    ///   plain HTTP mode sends, is reported with the context's status here, since a gRPC client
    ///   cannot tell a partial answer from a whole one.
    ///
    /// The response's body is wrapped in a [`ContextBody`], which a tonic server accepts as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::tower::ContextLayer;
    /// use bounded_cancel::Context;
    /// use std::time::Duration;
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let svc = ServiceBuilder::new()
    ///     .layer(ContextLayer::new(&Context::new()).timeout(Duration::from_secs(2)).grpc())
    ///     .service_fn(|req: http::Request<()>| async move {
    ///         let ctx = req.extensions().get::<Context>().expect("set by the layer");
    ///         let left = ctx.remaining().unwrap();
    ///         tokio::time::sleep(Duration::from_secs(5)).await; // longer than the client waits
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(format!("{left:?}")))
    ///     });
    /// let req = http::Request::builder().header("grpc-timeout", "250m").body(()).unwrap();
    /// let res = svc.oneshot(req).await.unwrap();
    /// assert_eq!(res.headers()["grpc-status"], "4"); // DEADLINE_EXCEEDED, at 250 ms
    /// # }
    /// ```
    pub fn grpc(self) -> ContextLayer<Grpc> {
        ContextLayer {
            parent: self.parent,
            timeout: self.timeout,
            protocol: PhantomData,
        }
    }
}

impl<P> ContextLayer<P> {
    /// Each request gets this long, from when it is called (`Duration::MAX`: no deadline). A handler
    /// can give the work it starts less, with `ctx.with_timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::{tower::ContextLayer, Context};
    /// # use std::time::Duration;
    /// let layer = ContextLayer::new(&Context::new()).timeout(Duration::from_millis(500));
    /// # let _ = layer;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The context of a request with these headers (`None`: the client's timeout is not read).
    fn request_context(&self, client_headers: Option<&http::HeaderMap>) -> Context {
        let client = client_headers
            .and_then(|headers| headers.get("grpc-timeout"))
            .and_then(|value| grpc::parse_timeout(value.as_bytes()));
        let timeout = match (self.timeout, client) {
            (Some(ours), Some(theirs)) => Some(ours.min(theirs)),
            (ours, theirs) => ours.or(theirs),
        };
        match timeout {
            Some(timeout) => self.parent.with_timeout(timeout),
            None => self.parent.child(),
        }
    }
}

impl<S, P: Clone> Layer<S> for ContextLayer<P> {
    type Service = WithContext<S, P>;

    fn layer(&self, inner: S) -> WithContext<S, P> {
        WithContext {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose requests run under their own [`Context`], from [`ContextLayer`].
#[derive(Clone, Debug)]
pub struct WithContext<S, P = Http> {
    inner: S,
    layer: ContextLayer<P>,
}

/// The response future of [`WithContext`]: the inner response, or [`RequestEnded`].
pub type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, B> Service<http::Request<B>> for WithContext<S, Http>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let ctx = self.layer.request_context(None);
        if let Some(cause) = ctx.cause() {
            // The service is draining (or its context ended): the handler is not called at all.
            return Box::pin(async move { Err(Box::new(RequestEnded::new(cause)) as BoxError) });
        }
        req.extensions_mut().insert(ctx.clone());
        let response = self.inner.call(req);
        // As Go's `http.Server` does: the request's context ends with its response, or when the
        // server drops the response unfinished (its client closed the connection), so work the
        // handler left running under it stops too.
        let ends = Ends::with_response(ctx);
        Box::pin(async move {
            match until_ended(response, ends.context()).await {
                Ok(response) => response.map_err(Into::into),
                Err(cause) => Err(Box::new(RequestEnded::new(cause)) as BoxError),
            }
        })
    }
}

/// The client's side of [`ContextLayer`]: an outgoing request that carries a [`Context`] in its
/// extensions is given up when that context ends, and, with [`grpc`](ClientContextLayer::grpc),
/// tells the server its deadline and reports the call's end as a gRPC status, as a Go gRPC client's
/// calls do. Requests without a context pass through untouched.
///
/// Put it in front of a tower client (a tonic `Channel`, a hyper-util client); to send a request
/// under a context, insert the context into the request's extensions (tonic copies a
/// `tonic::Request`'s extensions into the HTTP request it sends). When the context ends before the
/// response, the response future ends with [`RequestEnded`] and drops the inner call, which is how
/// tower cancels one (hyper's HTTP/1 client then closes its connection, its HTTP/2 client resets the
/// stream); a context already ended sends nothing at all.
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
    /// Requests are given up when their context ends, with [`RequestEnded`]; no header is sent.
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
    /// The response's body is wrapped in a [`ContextBody`], which a tonic client accepts as it is.
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

/// A client whose requests end with their [`Context`], from [`ClientContextLayer`].
#[derive(Clone, Debug)]
pub struct ClientContext<S, P = Http> {
    inner: S,
    protocol: PhantomData<fn() -> P>,
}

impl<S, B> Service<http::Request<B>> for ClientContext<S, Http>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Some(ctx) = req.extensions().get::<Context>().cloned() else {
            let response = self.inner.call(req);
            return Box::pin(async move { response.await.map_err(Into::into) });
        };
        if let Some(cause) = ctx.cause() {
            return Box::pin(async move { Err(Box::new(RequestEnded::new(cause)) as BoxError) });
        }
        let response = self.inner.call(req);
        Box::pin(async move {
            match until_ended(response, &ctx).await {
                Ok(response) => response.map_err(Into::into),
                Err(cause) => Err(Box::new(RequestEnded::new(cause)) as BoxError),
            }
        })
    }
}

/// The response, or the cause if `ctx` ends first; the response wins a tie.
async fn until_ended<F: Future>(response: F, ctx: &Context) -> Result<F::Output, Cause> {
    tokio::select! {
        biased;
        response = response => Ok(response),
        cause = ctx.cancelled() => Err(cause),
    }
}

/// A request's context, ended when this is dropped if it is the server's (the client's context is
/// the caller's, and only watched).
struct Ends {
    ctx: Context,
    server: bool,
}

impl Ends {
    /// The server's context of a request: it ends with its response.
    fn with_response(ctx: Context) -> Self {
        Ends { ctx, server: true }
    }

    /// A caller's context: watched, never ended here.
    fn watching(ctx: Context) -> Self {
        Ends { ctx, server: false }
    }

    fn context(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for Ends {
    fn drop(&mut self) {
        if self.server {
            self.ctx.cancel();
        }
    }
}

impl fmt::Debug for Ends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ends")
            .field("ctx", &self.ctx)
            .field("server", &self.server)
            .finish()
    }
}
