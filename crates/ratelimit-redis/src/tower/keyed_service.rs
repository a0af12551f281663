//! [`RedisKeyedRateLimit`]: the service a
//! [`RedisKeyedRateLimitLayer`](super::RedisKeyedRateLimitLayer) makes.

use std::fmt;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use bounded_cancel::tower::{Grpc, Http};
use bounded_ratelimit::tower::BoxError;

use super::keyed_layer::RedisKeyedRateLimitLayer;
use super::{Bucket, ResponseFuture, admitted};

/// A service limited per key by a [`RedisKeyedLimiter`](crate::RedisKeyedLimiter), from
/// [`RedisKeyedRateLimitLayer`].
pub struct RedisKeyedRateLimit<S, F, P = Http> {
    pub(super) inner: S,
    pub(super) layer: RedisKeyedRateLimitLayer<F, P>,
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
