//! tower middleware over a fleet limiter (feature `tower`): one limit for every replica of an HTTP or
//! gRPC service, in its `ServiceBuilder`.
//!
//! [`RedisRateLimitLayer`] takes one unit of a [`RedisLimiter`] per request, and
//! [`RedisKeyedRateLimitLayer`] one unit of a [`RedisKeyedLimiter`]'s bucket for the request's key (a
//! tenant, a user, a client address), taken from the request by a closure. Either waits for the unit
//! ([`new`](RedisRateLimitLayer::new): grants in the order Redis took the requests, across the fleet,
//! one sleep each) or refuses a request over the rate at once ([`shed`](RedisRateLimitLayer::shed):
//! one round trip, and [`RateLimited`] with the time after which the same request would be let
//! through).
//!
//! A grant needs a round trip to Redis, so the unit is taken in the response future, and the inner
//! service is cloned into each response future, as tower's `Buffer` and axum's router do. A waiting
//! request that carries a [`Context`] in its extensions (from `bounded_cancel::tower::ContextLayer`)
//! waits under it: a grant that would come after the request's deadline is refused at once, without
//! taking anything, instead of sleeping until the deadline first, and a wait its context ends gives
//! its place back.
//!
//! What a refused request gets:
//!
//! | why | plain HTTP (the default): the error | gRPC mode ([`grpc`](RedisRateLimitLayer::grpc)): the status |
//! | --- | --- | --- |
//! | over the rate (shedding) | [`RateLimited`], with `retry_after()` | `RESOURCE_EXHAUSTED`, with `grpc-retry-pushback-ms` |
//! | the grant would come after the request's deadline, or the deadline passed | [`AcquireError`] (`is_deadline()`) | `DEADLINE_EXCEEDED` |
//! | the request's context ended otherwise (the service is draining) | [`AcquireError::Cancelled`] | `UNAVAILABLE` |
//! | Redis could not be asked, under [`OnUnavailable::Refuse`](crate::OnUnavailable) | [`Unavailable`] (shedding), [`AcquireError::Unavailable`] (waiting) | `UNAVAILABLE` |
//!
//! In gRPC mode the refusal is a response, not an error: a gRPC server (tonic's) that gets an error
//! from its middleware resets the stream, which clients read as `INTERNAL`.
//!
//! # Examples
//!
//! ```no_run
//! use bounded_ratelimit::Quota;
//! use bounded_ratelimit_redis::tower::{RateLimited, RedisKeyedRateLimitLayer, RedisRateLimitLayer};
//! use bounded_ratelimit_redis::{RedisKeyedLimiter, RedisLimiter};
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = redis::Client::open("redis://127.0.0.1/")?.get_connection_manager().await?;
//! let partner = RedisLimiter::new(conn.clone(), "partner-api", Quota::per_second(50))?;
//! let tenants = RedisKeyedLimiter::new(conn, "tenant", Quota::per_second(5))?;
//! let svc = ServiceBuilder::new()
//!     // Each tenant's requests over its rate are refused at once...
//!     .layer(RedisKeyedRateLimitLayer::shed(tenants, |req: &http::Request<()>| {
//!         req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or("anonymous").to_owned()
//!     }))
//!     // ...and the rest wait their turn for the partner's fleet-wide limit.
//!     .layer(RedisRateLimitLayer::new(partner))
//!     .service_fn(|_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>("sent") });
//! # let _ = svc;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bounded_cancel::Context;
use http::HeaderValue;
use tower_layer::Layer;
use tower_service::Service;

pub use bounded_cancel::tower::{Grpc, Http};
pub use bounded_ratelimit::tower::{BoxError, RateLimited};

use crate::{AcquireError, RedisKeyedLimiter, RedisLimiter, TryAcquireError, Unavailable};

/// The response future of the fleet limiter's services.
pub type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// Applies a [`RedisLimiter`] to a service: one unit per request. See the [module docs](self).
///
/// # Cancel safety
///
/// A response future dropped while it waits for its unit gives its reservation back (under the
/// limiter's never-over-grant rule: only when no later reservation was computed from it). Once it
/// has the unit, a clone of the inner service is made ready and called, so no readiness of the
/// inner service (a concurrency limit's permit, say) is held while a request waits; a unit taken is
/// spent, even if the future is dropped while that clone becomes ready.
///
/// # Examples
///
/// ```no_run
/// # use bounded_ratelimit_redis::RedisLimiter;
/// use bounded_ratelimit_redis::tower::RedisRateLimitLayer;
/// # fn run(limiter: RedisLimiter) {
/// let waits = RedisRateLimitLayer::new(limiter.clone()); // callers wait their turn
/// let sheds = RedisRateLimitLayer::shed(limiter); // callers over the rate get `RateLimited` at once
/// # let _ = (waits, sheds);
/// # }
/// ```
pub struct RedisRateLimitLayer<P = Http> {
    limiter: RedisLimiter,
    shed: bool,
    protocol: PhantomData<fn() -> P>,
}

impl RedisRateLimitLayer {
    /// Requests wait for their unit, granted in the order Redis took them across the fleet.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::{tower::RedisRateLimitLayer, RedisLimiter};
    /// # fn run(limiter: RedisLimiter) {
    /// let layer = RedisRateLimitLayer::new(limiter);
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn new(limiter: RedisLimiter) -> Self {
        RedisRateLimitLayer {
            limiter,
            shed: false,
            protocol: PhantomData,
        }
    }

    /// Requests over the rate are refused at once (one round trip) and never reach the inner service.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::{tower::RedisRateLimitLayer, RedisLimiter};
    /// # fn run(limiter: RedisLimiter) {
    /// let layer = RedisRateLimitLayer::shed(limiter);
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn shed(limiter: RedisLimiter) -> Self {
        RedisRateLimitLayer {
            shed: true,
            ..RedisRateLimitLayer::new(limiter)
        }
    }

    /// Answers a refused request with its gRPC status instead of an error (see the
    /// [module docs](self)), for a gRPC server: the service's responses must be
    /// `http::Response<B>` with a `B: Default` (tonic's and axum's bodies are).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::{tower::RedisRateLimitLayer, RedisLimiter};
    /// # fn run(limiter: RedisLimiter) {
    /// let layer = RedisRateLimitLayer::shed(limiter).grpc();
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn grpc(self) -> RedisRateLimitLayer<Grpc> {
        RedisRateLimitLayer {
            limiter: self.limiter,
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

impl<P> Clone for RedisRateLimitLayer<P> {
    fn clone(&self) -> Self {
        RedisRateLimitLayer {
            limiter: self.limiter.clone(),
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

impl<P> fmt::Debug for RedisRateLimitLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimitLayer")
            .field("limiter", &self.limiter)
            .field("shed", &self.shed)
            .field("protocol", &std::any::type_name::<P>())
            .finish()
    }
}

impl<S, P> Layer<S> for RedisRateLimitLayer<P> {
    type Service = RedisRateLimit<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RedisRateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service limited by a [`RedisLimiter`], from [`RedisRateLimitLayer`].
pub struct RedisRateLimit<S, P = Http> {
    inner: S,
    layer: RedisRateLimitLayer<P>,
}

impl<S: Clone, P> Clone for RedisRateLimit<S, P> {
    fn clone(&self) -> Self {
        RedisRateLimit {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for RedisRateLimit<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimit")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, B> Service<http::Request<B>> for RedisRateLimit<S, Http>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        // The inner service is made ready in the response future, once the request has its unit.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let bucket = Bucket::One(self.layer.limiter.clone());
        let admitted = admitted(self.inner.clone(), req, bucket, self.layer.shed);
        Box::pin(async move {
            admitted
                .await
                .unwrap_or_else(|refusal| Err(refusal.into_error()))
        })
    }
}

impl<S, B, RB> Service<http::Request<B>> for RedisRateLimit<S, Grpc>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        // The inner service is made ready in the response future, once the request has its unit.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let bucket = Bucket::One(self.layer.limiter.clone());
        let admitted = admitted(self.inner.clone(), req, bucket, self.layer.shed);
        Box::pin(async move {
            admitted
                .await
                .unwrap_or_else(|refusal| Ok(refusal.into_grpc()))
        })
    }
}

/// Applies a [`RedisKeyedLimiter`] to a service: one unit of the request's key per request, the key
/// taken from the request by `key`. See the [module docs](self).
///
/// # Cancel safety
///
/// As [`RedisRateLimitLayer`]'s.
///
/// # Examples
///
/// ```no_run
/// # use bounded_ratelimit_redis::RedisKeyedLimiter;
/// use bounded_ratelimit_redis::tower::RedisKeyedRateLimitLayer;
/// # fn run(limiter: RedisKeyedLimiter) {
/// let per_client = RedisKeyedRateLimitLayer::shed(limiter, |req: &http::Request<()>| {
///     req.headers().get("x-client-id").map_or("unknown".to_owned(), |v| {
///         String::from_utf8_lossy(v.as_bytes()).into_owned()
///     })
/// });
/// # let _ = per_client;
/// # }
/// ```
pub struct RedisKeyedRateLimitLayer<F, P = Http> {
    limiter: RedisKeyedLimiter,
    key: Arc<F>,
    shed: bool,
    protocol: PhantomData<fn() -> P>,
}

impl<F> RedisKeyedRateLimitLayer<F> {
    /// Requests wait for a unit of their key's bucket.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::{tower::RedisKeyedRateLimitLayer, RedisKeyedLimiter};
    /// # fn run(limiter: RedisKeyedLimiter) {
    /// let layer = RedisKeyedRateLimitLayer::new(limiter, |req: &http::Request<()>| req.uri().path().to_owned());
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn new(limiter: RedisKeyedLimiter, key: F) -> Self {
        RedisKeyedRateLimitLayer {
            limiter,
            key: Arc::new(key),
            shed: false,
            protocol: PhantomData,
        }
    }

    /// Requests over their key's rate are refused at once (one round trip).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::{tower::RedisKeyedRateLimitLayer, RedisKeyedLimiter};
    /// # fn run(limiter: RedisKeyedLimiter) {
    /// let layer = RedisKeyedRateLimitLayer::shed(limiter, |req: &http::Request<()>| req.uri().path().to_owned());
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn shed(limiter: RedisKeyedLimiter, key: F) -> Self {
        RedisKeyedRateLimitLayer {
            shed: true,
            ..RedisKeyedRateLimitLayer::new(limiter, key)
        }
    }

    /// Answers a refused request with its gRPC status instead of an error, as
    /// [`RedisRateLimitLayer::grpc`] does.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::{tower::RedisKeyedRateLimitLayer, RedisKeyedLimiter};
    /// # fn run(limiter: RedisKeyedLimiter) {
    /// let layer = RedisKeyedRateLimitLayer::shed(limiter, |req: &http::Request<()>| req.uri().path().to_owned())
    ///     .grpc();
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn grpc(self) -> RedisKeyedRateLimitLayer<F, Grpc> {
        RedisKeyedRateLimitLayer {
            limiter: self.limiter,
            key: self.key,
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

impl<F, P> Clone for RedisKeyedRateLimitLayer<F, P> {
    fn clone(&self) -> Self {
        RedisKeyedRateLimitLayer {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

impl<F, P> fmt::Debug for RedisKeyedRateLimitLayer<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyedRateLimitLayer")
            .field("limiter", &self.limiter)
            .field("shed", &self.shed)
            .field("protocol", &std::any::type_name::<P>())
            .finish_non_exhaustive()
    }
}

impl<S, F, P> Layer<S> for RedisKeyedRateLimitLayer<F, P> {
    type Service = RedisKeyedRateLimit<S, F, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RedisKeyedRateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service limited per key by a [`RedisKeyedLimiter`], from [`RedisKeyedRateLimitLayer`].
pub struct RedisKeyedRateLimit<S, F, P = Http> {
    inner: S,
    layer: RedisKeyedRateLimitLayer<F, P>,
}

impl<S: Clone, F, P> Clone for RedisKeyedRateLimit<S, F, P> {
    fn clone(&self) -> Self {
        RedisKeyedRateLimit {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, F, P> fmt::Debug for RedisKeyedRateLimit<S, F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyedRateLimit")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, F, K, B> Service<http::Request<B>> for RedisKeyedRateLimit<S, F, Http>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    F: Fn(&http::Request<B>) -> K,
    K: AsRef<str>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        // The inner service is made ready in the response future, once the request has its unit.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let key = (self.layer.key)(&req).as_ref().to_owned();
        let bucket = Bucket::Keyed(self.layer.limiter.clone(), key);
        let admitted = admitted(self.inner.clone(), req, bucket, self.layer.shed);
        Box::pin(async move {
            admitted
                .await
                .unwrap_or_else(|refusal| Err(refusal.into_error()))
        })
    }
}

impl<S, F, K, B, RB> Service<http::Request<B>> for RedisKeyedRateLimit<S, F, Grpc>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    F: Fn(&http::Request<B>) -> K,
    K: AsRef<str>,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        // The inner service is made ready in the response future, once the request has its unit.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let key = (self.layer.key)(&req).as_ref().to_owned();
        let bucket = Bucket::Keyed(self.layer.limiter.clone(), key);
        let admitted = admitted(self.inner.clone(), req, bucket, self.layer.shed);
        Box::pin(async move {
            admitted
                .await
                .unwrap_or_else(|refusal| Ok(refusal.into_grpc()))
        })
    }
}

/// Where a request's unit comes from.
enum Bucket {
    One(RedisLimiter),
    Keyed(RedisKeyedLimiter, String),
}

/// Why a request was not let through.
enum Refusal {
    /// Over the rate, when shedding.
    Limited(RateLimited),
    /// Redis could not be asked, under the refuse policy, when shedding.
    Unavailable(Unavailable),
    /// A wait that did not end in a grant.
    Wait(AcquireError),
}

/// The inner service's answer to `req` once the request has its unit, or why it has none.
async fn admitted<S, B>(
    mut inner: S,
    req: http::Request<B>,
    bucket: Bucket,
    shed: bool,
) -> Result<Result<S::Response, BoxError>, Refusal>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    let ctx = req.extensions().get::<Context>().cloned();
    if shed {
        let taken = match &bucket {
            Bucket::One(limiter) => limiter.try_acquire().await,
            Bucket::Keyed(limiter, key) => limiter.try_acquire(key).await,
        };
        taken.map_err(|err| match err {
            TryAcquireError::Unavailable(err) => Refusal::Unavailable(err),
            other => Refusal::Limited(RateLimited::new(other.retry_after())),
        })?;
    } else {
        let granted = match (&bucket, &ctx) {
            (Bucket::One(limiter), Some(ctx)) => limiter.acquire_with(ctx).await,
            (Bucket::One(limiter), None) => limiter.acquire().await,
            (Bucket::Keyed(limiter, key), Some(ctx)) => limiter.acquire_with(ctx, key).await,
            (Bucket::Keyed(limiter, key), None) => limiter.acquire(key).await,
        };
        granted.map_err(Refusal::Wait)?;
    }
    // Made ready only now, so a request waiting for its unit holds no readiness of the inner service
    // (a concurrency limit's permit, say) that the requests already granted need.
    let answered = async {
        std::future::poll_fn(|cx| inner.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        inner.call(req).await.map_err(Into::into)
    };
    Ok(answered.await)
}

impl Refusal {
    /// The refusal as the services' error.
    fn into_error(self) -> BoxError {
        match self {
            Refusal::Limited(err) => Box::new(err),
            Refusal::Unavailable(err) => Box::new(err),
            Refusal::Wait(err) => Box::new(err),
        }
    }

    /// The refusal as a gRPC "trailers-only" response: the status in the headers, no body.
    fn into_grpc<B: Default>(self) -> http::Response<B> {
        let (code, message) = match &self {
            Refusal::Limited(limited) => return limited.grpc_response(),
            Refusal::Unavailable(_) | Refusal::Wait(AcquireError::Unavailable(_)) => (
                "14", // UNAVAILABLE
                "the fleet rate limit could not ask Redis and refuses meanwhile",
            ),
            Refusal::Wait(err) if err.is_deadline() => (
                "4", // DEADLINE_EXCEEDED
                "the fleet rate limit would grant this request only after its deadline",
            ),
            Refusal::Wait(AcquireError::InsufficientCapacity(_)) => (
                "8", // RESOURCE_EXHAUSTED
                "the request needs more units than the fleet rate limit's burst",
            ),
            Refusal::Wait(_) => (
                "14",
                "the request's context ended while it waited for the fleet rate limit: the service is shutting down",
            ),
        };
        let mut response = http::Response::new(B::default());
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from_static(code));
        headers.insert("grpc-message", HeaderValue::from_static(message));
        response
    }
}
