//! [`RateLimitLayer`]: puts a [`Limiter`](crate::Limiter) in front of a service.

use std::marker::PhantomData;

use tower_layer::Layer;

use super::service::RateLimit;
use crate::Limiter;
use crate::tower::{Grpc, Http};

/// Applies a [`Limiter`] to a service: one unit per request. See the [module docs](crate::tower).
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
    /// whose deadline comes first is refused at once with
    /// [`AcquireError::DeadlineTooSoon`](crate::AcquireError::DeadlineTooSoon).
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

    /// Requests over the rate are refused at once with [`RateLimited`](super::RateLimited) (the
    /// service stays ready, as tower's `LoadShed` does), and never reach the inner service.
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
    /// carrying the retry-after in `grpc-retry-pushback-ms` (and the
    /// [`RateLimited`](super::RateLimited) in its extensions), instead of the error. The service's
    /// requests must be `http::Request<B>` and its responses `http::Response<B>` with a `B:
    /// Default` (tonic's and axum's bodies are).
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
        RateLimit::new(inner, self.limiter.clone(), self.shed)
    }
}
