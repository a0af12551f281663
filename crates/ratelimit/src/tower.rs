//! tower middleware over a [`Limiter`] and a [`KeyedLimiter`] (feature `tower`).
//!
//! [`RateLimitLayer`] puts a limiter in front of a tower `Service` of HTTP or gRPC requests
//! (`http::Request<B>`, as axum, tonic and hyper serve them): every request takes one unit. Unlike
//! tower's own `RateLimit`, the service is `Clone` (clones share the limiter), and waiting callers are
//! served in the order they called with one wake-up per grant (no herd). A request waits for its unit
//! in its response future, not in `poll_ready`: the wait is part of the response, so what bounds the
//! response bounds the wait. With a [`ContextLayer`](bounded_cancel::tower::ContextLayer) before this
//! layer in the `ServiceBuilder`, each request carries its `Context`, and the wait follows
//! [`Limiter::acquire_with`]'s rules: a request whose deadline comes before its unit would is refused
//! at once with [`AcquireError::DeadlineTooSoon`] and takes nothing (an HTTP service answers `504`),
//! and one still waiting when the service drains ends then, its place in line (or a unit granted to
//! it and not yet used) given back. tower's `RateLimit` waits in `poll_ready`, before `call`, where
//! no timeout reaches. [`RateLimitLayer::shed`] answers at once instead of waiting: the response
//! future fails with [`RateLimited`], which carries the retry-after an HTTP service turns into `429
//! Too Many Requests` and a `Retry-After` header.
//!
//! [`KeyedRateLimitLayer`] does the same per key (a tenant, a user, a client address), with the key
//! taken from each request by a closure.
//!
//! For a gRPC server (tonic's), [`RateLimitLayer::grpc`] and [`KeyedRateLimitLayer::grpc`] answer a
//! refused request with the status gRPC clients expect, `RESOURCE_EXHAUSTED` with the retry-after in a
//! `grpc-retry-pushback-ms` header, instead of the error [`RateLimited`] (and a deadline that comes
//! before the unit with `DEADLINE_EXCEEDED`, a request whose context ended otherwise with
//! `UNAVAILABLE`): a gRPC server that gets an error from its middleware resets the stream, which
//! clients read as `INTERNAL`.
//!
//! # Examples
//!
//! ```
//! use bounded_ratelimit::tower::RateLimitLayer;
//! use bounded_ratelimit::{Limiter, Quota};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limiter = Limiter::new(Quota::per_second(100).burst(10)).unwrap();
//! let mut svc = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(limiter))
//!     .service_fn(|req: http::Request<&'static str>| async move {
//!         Ok::<_, std::convert::Infallible>(req.body().len())
//!     });
//! let len = svc.ready().await.unwrap().call(http::Request::new("hello")).await.unwrap();
//! assert_eq!(len, 5);
//! # }
//! ```

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use http::HeaderValue;
use tower_layer::Layer;
use tower_service::Service;

pub use bounded_cancel::tower::{Grpc, Http};

use bounded_cancel::Context;

use crate::reservation::Reservation;
use crate::{AcquireError, KeyedLimiter, Limiter, TryAcquireError};

/// The error type of the rate-limit services: the inner service's error, or [`RateLimited`].
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A shedding rate limit refused a request: it was not sent to the inner service.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::tower::RateLimited;
/// use std::time::Duration;
///
/// let err = RateLimited::new(Some(Duration::from_millis(1500)));
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
/// assert_eq!(err.retry_after_secs(), Some(2), "rounded up for a Retry-After header");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    retry_after: Option<Duration>,
}

impl RateLimited {
    /// A refusal that can be retried after `retry_after` (`None`: never, the request needs more than
    /// the burst).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimited;
    /// assert_eq!(RateLimited::new(None).retry_after(), None);
    /// ```
    pub fn new(retry_after: Option<Duration>) -> Self {
        RateLimited { retry_after }
    }

    /// How long until the same request would be let through.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimited;
    /// # use std::time::Duration;
    /// assert_eq!(RateLimited::new(Some(Duration::ZERO)).retry_after(), Some(Duration::ZERO));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The retry-after in whole seconds, rounded up (at least 1), as an HTTP `Retry-After` header
    /// carries it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimited;
    /// # use std::time::Duration;
    /// assert_eq!(RateLimited::new(Some(Duration::from_millis(20))).retry_after_secs(), Some(1));
    /// ```
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|wait| {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            secs.max(1)
        })
    }
}

impl RateLimited {
    /// The refusal as a gRPC "trailers-only" response, as the layers' gRPC mode answers it:
    /// `RESOURCE_EXHAUSTED` in the headers, the retry-after in whole milliseconds (rounded up) in
    /// `grpc-retry-pushback-ms`, no body, and the refusal itself in the response's extensions.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimited;
    /// # use std::time::Duration;
    /// let refused: http::Response<String> =
    ///     RateLimited::new(Some(Duration::from_micros(1500))).grpc_response();
    /// assert_eq!(refused.headers()["grpc-status"], "8");
    /// assert_eq!(refused.headers()["grpc-retry-pushback-ms"], "2");
    /// ```
    pub fn grpc_response<B: Default>(self) -> http::Response<B> {
        let (message, pushback) = match self.retry_after {
            Some(wait) => {
                let ms = wait.as_millis() + u128::from(wait.subsec_nanos() % 1_000_000 > 0);
                let ms = u64::try_from(ms).unwrap_or(u64::MAX);
                ("rate limited: retry after the pushback", Some(ms))
            }
            None => (
                "rate limited: the request needs more units than the burst",
                None,
            ),
        };
        let mut response = grpc_status("8", message, self); // RESOURCE_EXHAUSTED
        if let Some(ms) = pushback {
            let headers = response.headers_mut();
            headers.insert("grpc-retry-pushback-ms", HeaderValue::from(ms));
        }
        response
    }
}

/// A gRPC trailers-only response: `code` and `message` in its headers, `why` in its extensions.
fn grpc_status<B: Default, T: Clone + Send + Sync + 'static>(
    code: &'static str,
    message: &'static str,
    why: T,
) -> http::Response<B> {
    let mut response = http::Response::new(B::default());
    response.extensions_mut().insert(why);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static(code));
    headers.insert("grpc-message", HeaderValue::from_static(message));
    response
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after {
            Some(wait) => write!(
                f,
                "rate limited: the request was not sent; retry after {wait:?}"
            ),
            None => f.write_str(
                "rate limited: the request needs more units than the burst and can never be sent",
            ),
        }
    }
}

impl Error for RateLimited {}

impl From<TryAcquireError> for RateLimited {
    fn from(err: TryAcquireError) -> Self {
        RateLimited::new(err.retry_after())
    }
}

/// Applies a [`Limiter`] to a service: one unit per request. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::tower::RateLimitLayer;
/// use bounded_ratelimit::{Limiter, Quota};
///
/// let limiter = Limiter::new(Quota::per_second(50)).unwrap();
/// let waits = RateLimitLayer::new(limiter.clone()); // callers wait their turn
/// let sheds = RateLimitLayer::shed(limiter); // callers over the rate get `RateLimited` at once
/// # let _ = (waits, sheds);
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitLayer<P = Http> {
    limiter: Limiter,
    shed: bool,
    protocol: PhantomData<fn() -> P>,
}

impl RateLimitLayer {
    /// Requests wait for their unit in their response futures, in the order they were called; one
    /// whose deadline comes first is refused at once with [`AcquireError::DeadlineTooSoon`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimitLayer;
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// let layer = RateLimitLayer::new(Limiter::new(Quota::per_second(10)).unwrap());
    /// # let _ = layer;
    /// ```
    pub fn new(limiter: Limiter) -> Self {
        RateLimitLayer {
            limiter,
            shed: false,
            protocol: PhantomData,
        }
    }

    /// Requests over the rate are refused at once with [`RateLimited`] (the service stays ready, as
    /// tower's `LoadShed` does), and never reach the inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimitLayer;
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// let layer = RateLimitLayer::shed(Limiter::new(Quota::per_second(10)).unwrap());
    /// # let _ = layer;
    /// ```
    pub fn shed(limiter: Limiter) -> Self {
        RateLimitLayer {
            limiter,
            shed: true,
            protocol: PhantomData,
        }
    }

    /// For a gRPC server: a refused request is answered with a `RESOURCE_EXHAUSTED` status response
    /// carrying the retry-after in `grpc-retry-pushback-ms` (and the [`RateLimited`] in its
    /// extensions), instead of the error. The service's requests must be `http::Request<B>` and its
    /// responses `http::Response<B>` with a `B: Default` (tonic's and axum's bodies are).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_ratelimit::tower::RateLimitLayer;
    /// use bounded_ratelimit::{Limiter, Quota};
    /// use tower::{Service, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    /// let mut svc = ServiceBuilder::new()
    ///     .layer(RateLimitLayer::shed(limiter).grpc())
    ///     .service_fn(|_req: http::Request<()>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("served")))
    ///     });
    /// let served = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
    /// assert_eq!(served.body(), "served");
    /// let refused = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
    /// assert_eq!(refused.headers()["grpc-status"], "8"); // RESOURCE_EXHAUSTED
    /// assert_eq!(refused.headers()["grpc-retry-pushback-ms"], "100");
    /// # }
    /// ```
    pub fn grpc(self) -> RateLimitLayer<Grpc> {
        RateLimitLayer {
            limiter: self.limiter,
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

impl<S, P> Layer<S> for RateLimitLayer<P> {
    type Service = RateLimit<S, P>;

    fn layer(&self, inner: S) -> RateLimit<S, P> {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

/// A service limited by a [`Limiter`], from [`RateLimitLayer`].
///
/// Waiting (`RateLimitLayer::new`), `poll_ready` is ready at once and the request takes its place in
/// the limiter's line when it is called, unless the `Context` in its extensions has ended or its
/// deadline comes before the request's unit would ([`AcquireError`], at once, taking nothing). The
/// response future waits for the unit, then for a clone of the inner service to be ready, and then
/// calls it. Shedding (`RateLimitLayer::shed`), `poll_ready` is the inner service's, and `call`
/// either passes the request on with a unit or answers the refusal at once.
///
/// # Cancel safety
///
/// The wait is part of the response, so whatever ends the response (a
/// [`ContextLayer`](bounded_cancel::tower::ContextLayer)'s drain, a timeout, a client gone) ends the
/// wait. A response future dropped before the request was passed on gives the request's place in
/// line, or a unit granted to it and not yet used, back, under the limiter's never-over-grant rule;
/// the inner service was not called.
pub struct RateLimit<S, P = Http> {
    inner: S,
    limiter: Limiter,
    shed: bool,
    protocol: PhantomData<fn() -> P>,
}

impl<S: Clone, P> Clone for RateLimit<S, P> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for RateLimit<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .field("shed", &self.shed)
            .finish_non_exhaustive()
    }
}

impl<S, P> RateLimit<S, P> {
    /// Shedding, the inner service must be ready for `call`; waiting, a clone of it is made ready in
    /// the response future, once the unit is granted, so no readiness (a concurrency limit's permit,
    /// say) is held while the request waits for its turn.
    fn poll_inner<Req>(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        match self.shed {
            true => self.inner.poll_ready(cx).map_err(Into::into),
            false => Poll::Ready(Ok(())),
        }
    }

    /// The request passed on with a unit, queued for one, or refused.
    fn call_limited<B>(&mut self, req: http::Request<B>) -> ResponseFuture<S, http::Request<B>, P>
    where
        S: Service<http::Request<B>> + Clone,
    {
        let state = if self.shed {
            match self.limiter.try_acquire_n(1) {
                Ok(()) => Response::Called {
                    fut: self.inner.call(req),
                },
                Err(err) => Response::Refused {
                    refused: Some(err.into()),
                },
            }
        } else {
            match reserve_within(&self.limiter, req.extensions().get::<Context>()) {
                Ok(reservation) => Response::Waiting {
                    unit: Unused(Some(reservation)),
                    inner: Some(self.inner.clone()),
                    req: Some(req),
                },
                Err(err) => Response::Failed { error: Some(err) },
            }
        };
        ResponseFuture {
            state,
            protocol: PhantomData,
        }
    }
}

/// The request's place in the limiter's line, or why it takes none: its context has ended, or its
/// deadline comes before its grant would (as [`Limiter::acquire_with`] refuses it, at once).
fn reserve_within(limiter: &Limiter, ctx: Option<&Context>) -> Result<Reservation, AcquireError> {
    if let Some(cause) = ctx.and_then(Context::cause) {
        limiter.shared.lock().ended_before_asking();
        return Err(AcquireError::Cancelled(cause));
    }
    let reservation = limiter.reserve_n(1)?;
    if let Some(remaining) = ctx.and_then(Context::remaining) {
        let wait = reservation.delay();
        if wait >= remaining {
            reservation.cancel();
            limiter.shared.rejected();
            return Err(AcquireError::DeadlineTooSoon { wait, remaining });
        }
    }
    Ok(reservation)
}

impl<S, B> Service<http::Request<B>> for RateLimit<S, Http>
where
    S: Service<http::Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, http::Request<B>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_inner::<http::Request<B>>(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.call_limited(req)
    }
}

impl<S, B, RB> Service<http::Request<B>> for RateLimit<S, Grpc>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    RB: Default,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, http::Request<B>, Grpc>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_inner::<http::Request<B>>(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.call_limited(req)
    }
}

/// A reservation not yet used by a call: given back if dropped so.
struct Unused(Option<Reservation>);

impl Drop for Unused {
    fn drop(&mut self) {
        if let Some(reservation) = self.0.take() {
            reservation.cancel();
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of a [`RateLimit`] service: the wait for the request's unit, then the inner
    /// service's response; or the refusal ([`RateLimited`], or in gRPC mode its status response).
    /// Dropping it before the request was passed on gives the request's place or unit back.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, Req, P = Http>
    where
        S: Service<Req>,
    {
        #[pin]
        state: Response<S, Req, S::Future>,
        protocol: PhantomData<fn() -> P>,
    }
}

pin_project_lite::pin_project! {
    #[project = ResponseProj]
    enum Response<S, Req, F> {
        Waiting { unit: Unused, inner: Option<S>, req: Option<Req> },
        Called { #[pin] fut: F },
        Refused { refused: Option<RateLimited> },
        Failed { error: Option<AcquireError> },
    }
}

/// Turns a request's outcome into the protocol's answer: plain HTTP's error or gRPC's status.
type Answer<T> = fn(Result<T, Short>) -> Result<T, BoxError>;

/// How a [`ResponseFuture`] ended short of the inner service's response.
enum Short {
    /// Shedding: over the rate.
    Refused(RateLimited),
    /// Waiting: the request's context ended, or its deadline comes before its grant would.
    Wait(AcquireError),
    /// The inner service failed, or the unit could not be had.
    Failed(BoxError),
}

impl<S, Req, P> ResponseFuture<S, Req, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    /// The inner service's response, once the request has its unit and the service is ready; or
    /// why the request was not passed on.
    fn poll_response(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<S::Response, Short>> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                ResponseProj::Called { fut } => {
                    return fut.poll(cx).map_err(|err| Short::Failed(err.into()));
                }
                ResponseProj::Refused { refused } => {
                    let refused = refused.take().expect("a refusal is answered once");
                    return Poll::Ready(Err(Short::Refused(refused)));
                }
                ResponseProj::Failed { error } => {
                    let error = error.take().expect("a failure is answered once");
                    return Poll::Ready(Err(Short::Wait(error)));
                }
                ResponseProj::Waiting { unit, inner, req } => {
                    let reservation = unit.0.as_mut().expect("waiting holds its reservation");
                    if let Err(err) = ready!(reservation.poll_ready(cx)) {
                        return Poll::Ready(Err(Short::Wait(err.into())));
                    }
                    let svc = inner.as_mut().expect("waiting holds the service");
                    if let Err(err) = ready!(svc.poll_ready(cx)) {
                        // The unit goes back with the future: the request was never passed on.
                        return Poll::Ready(Err(Short::Failed(err.into())));
                    }
                    // Used now: a reservation dropped once granted keeps its unit.
                    drop(unit.0.take());
                    let fut = svc.call(req.take().expect("a request is passed on once"));
                    state.set(Response::Called { fut });
                }
            }
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req, Http>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.poll_response(cx).map_err(Short::into_error)
    }
}

impl<S, B, RB> Future for ResponseFuture<S, http::Request<B>, Grpc>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Default,
{
    type Output = Result<http::Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.poll_response(cx)
            .map(|answered| answered.or_else(Short::into_grpc))
    }
}

impl Short {
    /// In plain HTTP: the error.
    fn into_error(self) -> BoxError {
        match self {
            Short::Refused(refused) => Box::new(refused),
            Short::Wait(error) => Box::new(error),
            Short::Failed(error) => error,
        }
    }

    /// In gRPC: a trailers-only status for a refusal or a wait that ended without a unit
    /// (`RESOURCE_EXHAUSTED` over the rate or the burst, `DEADLINE_EXCEEDED` for a deadline,
    /// `UNAVAILABLE` for a context ended otherwise: a drain, retryable on another replica), with the
    /// refusal or the error in the extensions; the inner service's own failure stays an error.
    fn into_grpc<B: Default>(self) -> Result<http::Response<B>, BoxError> {
        let error = match self {
            Short::Refused(refused) => return Ok(refused.grpc_response()),
            Short::Wait(error) => error,
            Short::Failed(error) => return Err(error),
        };
        let (code, message) = match &error {
            err if err.is_deadline() => (
                "4",
                "the rate limit would grant this request only after its deadline",
            ),
            AcquireError::InsufficientCapacity(_) => (
                "8",
                "rate limited: the request needs more units than the burst",
            ),
            _ => (
                "14",
                "the request's context ended before its rate-limit unit was granted",
            ),
        };
        Ok(grpc_status(code, message, error))
    }
}

impl<S: Service<Req>, Req, P> fmt::Debug for ResponseFuture<S, Req, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// Applies a [`KeyedLimiter`] to a service: one unit of the request's key per request, the key taken
/// from the request by `key`. See the [module docs](self).
///
/// As with [`RateLimit`], the unit is taken in the response future, under the `Context` the request
/// carries ([`KeyedLimiter::acquire_with`]: a deadline that comes first is refused at once), and once
/// it has the unit a clone of the inner service (cloned into each response future, as tower's
/// `Buffer` and axum's router do) is made ready and called. Waiting, nothing of the inner service's
/// readiness is held while a request waits for its key's turn, so a concurrency limit inside is never
/// taken up by requests that are not yet let through.
///
/// # Cancel safety
///
/// A response future dropped while it waits for its unit gives its place (and a unit granted to it
/// but not yet taken) back, and the inner service is not called. A unit taken is spent, even if the
/// future is dropped while the inner service's clone becomes ready.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::tower::KeyedRateLimitLayer;
/// use bounded_ratelimit::{KeyedLimiter, Quota};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let per_user = KeyedLimiter::new(Quota::per_second(1).burst(1), 10_000).unwrap();
/// let user = |req: &http::Request<()>| req.headers()["x-user"].to_str().unwrap().to_owned();
/// let mut svc = ServiceBuilder::new()
///     .layer(KeyedRateLimitLayer::shed(per_user, user))
///     .service_fn(|_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>("served") });
/// let from = |name: &str| http::Request::builder().header("x-user", name).body(()).unwrap();
/// assert_eq!(svc.ready().await.unwrap().call(from("ada")).await.unwrap(), "served");
/// assert!(svc.ready().await.unwrap().call(from("ada")).await.is_err(), "ada's second, at once");
/// assert_eq!(svc.ready().await.unwrap().call(from("bob")).await.unwrap(), "served");
/// # }
/// ```
pub struct KeyedRateLimitLayer<K: Hash + Eq + Clone, F, P = Http> {
    limiter: KeyedLimiter<K>,
    key: Arc<F>,
    shed: bool,
    protocol: PhantomData<fn() -> P>,
}

impl<K: Hash + Eq + Clone, F> KeyedRateLimitLayer<K, F> {
    /// Requests wait for a unit of their key.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::KeyedRateLimitLayer;
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// let layer = KeyedRateLimitLayer::new(
    ///     KeyedLimiter::<String>::new(Quota::per_second(5), 1_000).unwrap(),
    ///     |req: &http::Request<()>| req.uri().path().to_owned(),
    /// );
    /// # let _ = layer;
    /// ```
    pub fn new(limiter: KeyedLimiter<K>, key: F) -> Self {
        KeyedRateLimitLayer {
            limiter,
            key: Arc::new(key),
            shed: false,
            protocol: PhantomData,
        }
    }

    /// Requests over their key's rate are refused at once with [`RateLimited`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::KeyedRateLimitLayer;
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// let layer = KeyedRateLimitLayer::shed(
    ///     KeyedLimiter::<String>::new(Quota::per_second(5), 1_000).unwrap(),
    ///     |req: &http::Request<()>| req.uri().path().to_owned(),
    /// );
    /// # let _ = layer;
    /// ```
    pub fn shed(limiter: KeyedLimiter<K>, key: F) -> Self {
        KeyedRateLimitLayer {
            limiter,
            key: Arc::new(key),
            shed: true,
            protocol: PhantomData,
        }
    }

    /// For a gRPC server: a refused request is answered with a `RESOURCE_EXHAUSTED` status response,
    /// as [`RateLimitLayer::grpc`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::KeyedRateLimitLayer;
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// let per_path = KeyedRateLimitLayer::shed(
    ///     KeyedLimiter::<String>::new(Quota::per_second(5), 1_000).unwrap(),
    ///     |req: &http::Request<()>| req.uri().path().to_owned(),
    /// )
    /// .grpc();
    /// # let _ = per_path;
    /// ```
    pub fn grpc(self) -> KeyedRateLimitLayer<K, F, Grpc> {
        KeyedRateLimitLayer {
            limiter: self.limiter,
            key: self.key,
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

impl<K: Hash + Eq + Clone, F, P> Clone for KeyedRateLimitLayer<K, F, P> {
    fn clone(&self) -> Self {
        KeyedRateLimitLayer {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

impl<K: Hash + Eq + Clone + fmt::Debug, F, P> fmt::Debug for KeyedRateLimitLayer<K, F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("shed", &self.shed)
            .finish_non_exhaustive()
    }
}

impl<S, K: Hash + Eq + Clone, F, P> Layer<S> for KeyedRateLimitLayer<K, F, P> {
    type Service = KeyedRateLimit<S, K, F, P>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service limited per key by a [`KeyedLimiter`], from [`KeyedRateLimitLayer`].
pub struct KeyedRateLimit<S, K: Hash + Eq + Clone, F, P = Http> {
    inner: S,
    layer: KeyedRateLimitLayer<K, F, P>,
}

impl<S: Clone, K: Hash + Eq + Clone, F, P> Clone for KeyedRateLimit<S, K, F, P> {
    fn clone(&self) -> Self {
        KeyedRateLimit {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, K: Hash + Eq + Clone, F, P> fmt::Debug for KeyedRateLimit<S, K, F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimit")
            .field("inner", &self.inner)
            .field("shed", &self.layer.shed)
            .finish_non_exhaustive()
    }
}

/// The response future of a [`KeyedRateLimit`] service.
pub type KeyedResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, K: Hash + Eq + Clone, F, P> KeyedRateLimit<S, K, F, P> {
    /// The response future of a request whose unit is taken (or waited for), or, shedding, the
    /// refusal; `answer` turns the outcome into the protocol's answer.
    fn admit<B>(
        &mut self,
        req: http::Request<B>,
        answer: Answer<S::Response>,
    ) -> KeyedResponseFuture<S::Response>
    where
        S: Service<http::Request<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        K: Send + Sync + 'static,
        F: Fn(&http::Request<B>) -> K,
        B: Send + 'static,
    {
        let key = (self.layer.key)(&req);
        if self.layer.shed {
            return match self.layer.limiter.try_acquire_n(&key, 1) {
                Ok(()) => {
                    let fut = self.inner.call(req);
                    Box::pin(
                        async move { answer(fut.await.map_err(|err| Short::Failed(err.into()))) },
                    )
                }
                Err(err) => {
                    let refused = Short::Refused(err.into());
                    Box::pin(async move { answer(Err(refused)) })
                }
            };
        }
        // Made ready only once the unit is granted, so a request waiting for its key's turn holds no
        // readiness of the inner service (a concurrency limit's permit, say) that other keys need.
        let mut inner = self.inner.clone();
        let limiter = self.layer.limiter.clone();
        let ctx = req.extensions().get::<Context>().cloned();
        Box::pin(async move {
            let answered = async {
                match &ctx {
                    // Refused at once if the request's deadline comes before its grant would.
                    Some(ctx) => limiter.acquire_with(ctx, &key).await.map_err(Short::Wait)?,
                    None => limiter.acquire(&key).await,
                }
                let failed = |err: S::Error| Short::Failed(err.into());
                std::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(failed)?;
                inner.call(req).await.map_err(failed)
            };
            answer(answered.await)
        })
    }

    /// Shedding, the inner service must be ready for `call`; waiting, a clone of it is made ready in
    /// the response future.
    fn poll_inner<Req>(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        match self.layer.shed {
            true => self.inner.poll_ready(cx).map_err(Into::into),
            false => Poll::Ready(Ok(())),
        }
    }
}

impl<S, K, F, B> Service<http::Request<B>> for KeyedRateLimit<S, K, F, Http>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Fn(&http::Request<B>) -> K + Send + Sync + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = KeyedResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_inner::<http::Request<B>>(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.admit(req, |answered| answered.map_err(Short::into_error))
    }
}

impl<S, K, F, B, RB> Service<http::Request<B>> for KeyedRateLimit<S, K, F, Grpc>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Fn(&http::Request<B>) -> K + Send + Sync + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = KeyedResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_inner::<http::Request<B>>(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.admit(req, |answered| answered.or_else(Short::into_grpc))
    }
}
