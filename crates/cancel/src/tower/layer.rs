//! [`ContextLayer`]: runs each request of a server under a [`Context`](crate::Context) of its
//! own.

use std::marker::PhantomData;
use std::time::Duration;

use tower_layer::Layer;

use super::service::WithContext;
use super::{Grpc, Http, grpc};
use crate::Context;

/// Runs each request under a child of a [`Context`], with an optional deadline. See the
/// [module docs](crate::tower).
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
    /// The response's body is wrapped in a [`ContextBody`](super::ContextBody), which a tonic
    /// server accepts as it is.
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
    pub(super) fn request_context(&self, client_headers: Option<&http::HeaderMap>) -> Context {
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
