//! [`RedisKeyedRateLimitLayer`]: puts a [`RedisKeyedLimiter`](crate::RedisKeyedLimiter) in front
//! of a service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;

use bounded_cancel::tower::{Grpc, Http};

use super::keyed_service::RedisKeyedRateLimit;
use crate::RedisKeyedLimiter;

/// Applies a [`RedisKeyedLimiter`] to a service: one unit of the request's key per request, the key
/// taken from the request by `key`. See the [module docs](crate::tower).
///
/// # Cancel safety
///
/// As [`RedisRateLimitLayer`](super::RedisRateLimitLayer)'s.
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
    pub(super) limiter: RedisKeyedLimiter,
    pub(super) key: Arc<F>,
    pub(super) shed: bool,
    pub(super) protocol: PhantomData<fn() -> P>,
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
    /// [`RedisRateLimitLayer::grpc`](super::RedisRateLimitLayer::grpc) does.
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
