//! [`KeyedRateLimitLayer`]: puts a [`KeyedLimiter`](crate::KeyedLimiter) in front of a service.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;

use super::keyed_service::KeyedRateLimit;
use crate::KeyedLimiter;
use crate::tower::{Grpc, Http};

/// Applies a [`KeyedLimiter`] to a service: one unit of the request's key per request, the key taken
/// from the request by `key`. See the [module docs](crate::tower).
///
/// As with [`RateLimit`](super::RateLimit), the unit is taken in the response future, under the
/// `Context` the request carries ([`KeyedLimiter::acquire_with`]: a deadline that comes first is
/// refused at once), and once it has the unit a clone of the inner service (cloned into each
/// response future, as tower's `Buffer` and axum's router do) is made ready and called. Waiting,
/// nothing of the inner service's readiness is held while a request waits for its key's turn, so a
/// concurrency limit inside is never taken up by requests that are not yet let through.
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
    pub(super) limiter: KeyedLimiter<K>,
    pub(super) key: Arc<F>,
    pub(super) shed: bool,
    pub(super) protocol: PhantomData<fn() -> P>,
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

    /// Requests over their key's rate are refused at once with [`RateLimited`](super::RateLimited).
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
    /// as [`RateLimitLayer::grpc`](super::RateLimitLayer::grpc) does.
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
        KeyedRateLimit::new(inner, self.clone())
    }
}
