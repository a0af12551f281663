//! tower middleware that runs each request under a [`Context`] (feature `tower`).
//!
//! [`ContextLayer`] gives every HTTP request (`http::Request<B>`, as axum, hyper and tonic use) its own
//! context: a child of the service's context (a [`Shutdown`](crate::Shutdown)'s, typically) with the
//! request's own deadline (the layer's [`timeout`](ContextLayer::timeout), or, for gRPC, the client's
//! own with [`grpc_timeout`](ContextLayer::grpc_timeout), whichever comes first). The context is put
//! in the request's extensions, so a handler takes it (`Extension<Context>` in axum) and passes it to
//! everything it waits on. The response future ends when the context does, with [`RequestEnded`]
//! carrying the cause: the deadline passed, or the service began to drain. The handler's future is
//! dropped then, so its work stops at its next await; a handler that answers as its context ends
//! (with a partial result, say) has its answer sent, since the response wins a tie. A request that
//! arrives after the service's context ended is answered with `RequestEnded` without calling the
//! handler. And the context ends when the response is ready, or when the server drops the response
//! future unfinished (its client closed the connection), as a Go `http.Server` request's does, so
//! work the handler left running under it stops too. "Ready" is the response's head: a streaming body
//! is sent after it, so a body that must keep working should not wait on the request's context.
//!
//! [`ClientContextLayer`] is the client's side: a request sent with a context in its extensions is given
//! up when that context ends, and, for gRPC, carries the time it has left to the server.
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
        Some(&self.cause)
    }
}

/// Runs each request under a child of a [`Context`], with an optional deadline. See the
/// [module docs](self).
///
/// # Cancel safety
///
/// A response future dropped unfinished (its client hung up) drops the handler's future and ends
/// the request's context, so work the handler started under it stops too.
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
pub struct ContextLayer {
    parent: Context,
    timeout: Option<Duration>,
    grpc_timeout: bool,
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
            grpc_timeout: false,
        }
    }

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

    /// Each request also ends at the deadline its client sent in a `grpc-timeout` header, when that
    /// comes first, as a Go gRPC server's contexts do: gRPC clients (tonic's, Go's) send the time they
    /// will wait, and work for a client that has given up is wasted. The header is read as the gRPC
    /// protocol writes it: up to eight digits and a unit (`H`, `M`, `S`, `m`, `u` or `n`, hours down
    /// to nanoseconds: `250m` is 250 ms). A header that does not parse is ignored, and the layer's
    /// own timeout, if any, still applies.
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
    ///     .layer(ContextLayer::new(&Context::new()).timeout(Duration::from_secs(2)).grpc_timeout())
    ///     .service_fn(|req: http::Request<()>| async move {
    ///         let ctx = req.extensions().get::<Context>().expect("set by the layer");
    ///         Ok::<_, std::convert::Infallible>(ctx.remaining())
    ///     });
    /// let req = http::Request::builder().header("grpc-timeout", "250m").body(()).unwrap();
    /// assert_eq!(svc.oneshot(req).await.unwrap(), Some(Duration::from_millis(250)));
    /// # }
    /// ```
    pub fn grpc_timeout(mut self) -> Self {
        self.grpc_timeout = true;
        self
    }
}

/// A `grpc-timeout` header's value: 1 to 8 ASCII digits, then the unit (gRPC over HTTP/2).
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Eight digits fit in a u64 whatever the unit: at most 99,999,999 hours.
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

impl<S> Layer<S> for ContextLayer {
    type Service = WithContext<S>;

    fn layer(&self, inner: S) -> WithContext<S> {
        WithContext {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose requests run under their own [`Context`], from [`ContextLayer`].
#[derive(Clone, Debug)]
pub struct WithContext<S> {
    inner: S,
    layer: ContextLayer,
}

/// The response future of [`WithContext`]: the inner response, or [`RequestEnded`].
pub type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, B> Service<http::Request<B>> for WithContext<S>
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
        let client = if self.layer.grpc_timeout {
            req.headers()
                .get("grpc-timeout")
                .and_then(|value| parse_grpc_timeout(value.as_bytes()))
        } else {
            None
        };
        let timeout = match (self.layer.timeout, client) {
            (Some(ours), Some(theirs)) => Some(ours.min(theirs)),
            (ours, theirs) => ours.or(theirs),
        };
        let ctx = match timeout {
            Some(timeout) => self.layer.parent.with_timeout(timeout),
            None => self.layer.parent.child(),
        };
        if let Some(cause) = ctx.cause() {
            // The service is draining (or its context ended): the handler is not called at all.
            return Box::pin(async move { Err(Box::new(RequestEnded::new(cause)) as BoxError) });
        }
        req.extensions_mut().insert(ctx.clone());
        let response = self.inner.call(req);
        // As Go's `http.Server` does: the request's context ends with its response, or when the
        // server drops the response unfinished (its client closed the connection), so work the
        // handler left running under it stops too.
        let ends = EndsWithResponse(ctx);
        Box::pin(async move {
            let result = unless_ended(response, &ends.0).await;
            drop(ends);
            result
        })
    }
}

/// The client's side of [`ContextLayer`]: an outgoing request that carries a [`Context`] in its
/// extensions is given up when that context ends, and, with
/// [`grpc_timeout`](ClientContextLayer::grpc_timeout), tells the server its deadline, as a Go gRPC
/// client's calls do. Requests without a context pass through untouched.
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
/// // A stand-in for the network: answers after a second, echoing the timeout it was sent.
/// let backend = tower::service_fn(|req: http::Request<()>| async move {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     Ok::<_, std::convert::Infallible>(req.headers().get("grpc-timeout").cloned())
/// });
/// let client = ServiceBuilder::new().layer(ClientContextLayer::new().grpc_timeout()).service(backend);
///
/// let ctx = Context::new().with_timeout(Duration::from_millis(1500));
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(ctx);
/// // 1.5 s, in the smallest unit that holds it in eight digits, as gRPC writes it.
/// assert_eq!(client.clone().oneshot(req).await.unwrap().unwrap(), "1500000u");
///
/// let short = Context::new().with_timeout(Duration::from_millis(300));
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(short);
/// let err = client.oneshot(req).await.unwrap_err();
/// assert!(err.downcast_ref::<RequestEnded>().unwrap().is_deadline()); // given up at 300 ms
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientContextLayer {
    grpc_timeout: bool,
}

impl ClientContextLayer {
    /// Requests are given up when their context ends; no header is sent.
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

    /// Also sends the time the context has left in a `grpc-timeout` header (in the smallest unit that
    /// holds it in eight digits, rounded up, as Go's gRPC client writes it), or keeps the header the
    /// request already has (from tonic's `Request::set_timeout`) when that one is shorter.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::tower::ClientContextLayer;
    /// let layer = ClientContextLayer::new().grpc_timeout();
    /// # let _ = layer;
    /// ```
    pub fn grpc_timeout(mut self) -> Self {
        self.grpc_timeout = true;
        self
    }
}

impl<S> Layer<S> for ClientContextLayer {
    type Service = ClientContext<S>;

    fn layer(&self, inner: S) -> ClientContext<S> {
        ClientContext {
            inner,
            layer: self.clone(),
        }
    }
}

/// A client whose requests end with their [`Context`], from [`ClientContextLayer`].
#[derive(Clone, Debug)]
pub struct ClientContext<S> {
    inner: S,
    layer: ClientContextLayer,
}

impl<S, B> Service<http::Request<B>> for ClientContext<S>
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
        let Some(ctx) = req.extensions().get::<Context>().cloned() else {
            let response = self.inner.call(req);
            return Box::pin(async move { response.await.map_err(Into::into) });
        };
        if let Some(cause) = ctx.cause() {
            return Box::pin(async move { Err(Box::new(RequestEnded::new(cause)) as BoxError) });
        }
        if self.layer.grpc_timeout
            && let Some(left) = ctx.remaining()
        {
            let sent = req
                .headers()
                .get("grpc-timeout")
                .and_then(|value| parse_grpc_timeout(value.as_bytes()));
            if sent.is_none_or(|sent| left < sent) {
                req.headers_mut()
                    .insert("grpc-timeout", encode_grpc_timeout(left));
            }
        }
        let response = self.inner.call(req);
        Box::pin(async move { unless_ended(response, &ctx).await })
    }
}

/// The response, or [`RequestEnded`] if `ctx` ends first; the response wins a tie.
async fn unless_ended<F, T, E>(response: F, ctx: &Context) -> Result<T, BoxError>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    tokio::select! {
        biased;
        response = response => response.map_err(Into::into),
        cause = ctx.cancelled() => Err(Box::new(RequestEnded::new(cause)) as BoxError),
    }
}

/// `timeout` as a `grpc-timeout` header: the smallest unit that holds it in eight digits, rounded up,
/// so that the server never gives the call less time than the client has left.
fn encode_grpc_timeout(timeout: Duration) -> http::HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let (count, unit) = units
        .iter()
        .map(|&(per, unit)| (nanos.div_ceil(per), unit))
        .find(|&(count, _)| count <= MAX)
        .unwrap_or((MAX, 'H'));
    http::HeaderValue::try_from(format!("{count}{unit}")).expect("digits and a letter")
}

/// A request's context, cancelled when the response future that holds it ends or is dropped.
struct EndsWithResponse(Context);

impl Drop for EndsWithResponse {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::{encode_grpc_timeout, parse_grpc_timeout};
    use std::time::Duration;

    #[test]
    fn grpc_timeouts_are_written_in_the_smallest_unit_that_holds_them_rounded_up() {
        let encode = |d: Duration| encode_grpc_timeout(d).to_str().unwrap().to_owned();
        assert_eq!(encode(Duration::ZERO), "0n");
        assert_eq!(encode(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(encode(Duration::from_nanos(100_000_000)), "100000u");
        assert_eq!(
            encode(Duration::from_nanos(100_000_001)),
            "100001u",
            "rounded up"
        );
        assert_eq!(encode(Duration::from_millis(1500)), "1500000u");
        assert_eq!(encode(Duration::from_secs(100)), "100000m");
        assert_eq!(encode(Duration::from_secs(3 * 86_400)), "259200S");
        assert_eq!(encode(Duration::from_secs(100_000_000)), "1666667M");
        assert_eq!(
            encode(Duration::MAX),
            "99999999H",
            "the most the protocol can say"
        );
        for d in [1, 999, 1_000_001, 123_456_789_012, 7_200_000_000_001] {
            let d = Duration::from_nanos(d);
            let back = parse_grpc_timeout(encode_grpc_timeout(d).as_bytes()).unwrap();
            // Under one unit more, and a unit is chosen only once the one below it (a thousandth
            // or a sixtieth of it) needs more than eight digits.
            assert!(
                back >= d && back - d < d / 100_000 + Duration::from_nanos(1),
                "{d:?}: {back:?}"
            );
        }
    }

    #[test]
    fn grpc_timeouts_parse_as_the_protocol_writes_them() {
        let parse = |s: &str| parse_grpc_timeout(s.as_bytes());
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("0n"), Some(Duration::ZERO));
        assert_eq!(
            parse("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600)),
            "the longest the protocol can say"
        );
        for bad in [
            "",
            "m",
            "250",
            "250ms",
            "-1S",
            "+1S",
            "1.5S",
            "1 S",
            "123456789n",
            "1h",
            "1s",
            "١S",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
