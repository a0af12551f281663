//! [`RedisRateLimitLayer`]: puts a [`RedisLimiter`](crate::RedisLimiter) in front of a service.

use std::fmt;
use std::marker::PhantomData;

use tower_layer::Layer;

use bounded_cancel::tower::{Grpc, Http};

use super::service::RedisRateLimit;
use crate::RedisLimiter;

/// Applies a [`RedisLimiter`] to a service: one unit per request. See the [module
/// docs](crate::tower).
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
    pub(super) limiter: RedisLimiter,
    pub(super) shed: bool,
    pub(super) protocol: PhantomData<fn() -> P>,
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
    /// [module docs](crate::tower)), for a gRPC server: the service's responses must be
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
