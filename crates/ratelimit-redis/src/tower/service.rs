//! [`RedisRateLimit`]: the service a [`RedisRateLimitLayer`](super::RedisRateLimitLayer) makes.

use std::fmt;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use bounded_cancel::tower::{Grpc, Http};
use bounded_ratelimit::tower::BoxError;

use super::layer::RedisRateLimitLayer;
use super::{Bucket, ResponseFuture, admitted};

/// A service limited by a [`RedisLimiter`](crate::RedisLimiter), from [`RedisRateLimitLayer`].
pub struct RedisRateLimit<S, P = Http> {
    pub(super) inner: S,
    pub(super) layer: RedisRateLimitLayer<P>,
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
