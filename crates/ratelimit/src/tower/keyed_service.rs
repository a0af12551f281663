//! [`KeyedRateLimit`]: the service a [`KeyedRateLimitLayer`](super::KeyedRateLimitLayer) makes.

use std::fmt;
use std::hash::Hash;
use std::task::{Context as TaskContext, Poll};

use bounded_cancel::Context;
use tower_service::Service;

use super::future::{Answer, KeyedResponseFuture, Short};
use super::keyed_layer::KeyedRateLimitLayer;
use crate::tower::{BoxError, Grpc, Http};

/// A service limited per key by a [`KeyedLimiter`](crate::KeyedLimiter), from [`KeyedRateLimitLayer`].
pub struct KeyedRateLimit<S, K: Hash + Eq + Clone, F, P = Http> {
    inner: S,
    layer: KeyedRateLimitLayer<K, F, P>,
}

impl<S, K: Hash + Eq + Clone, F, P> KeyedRateLimit<S, K, F, P> {
    /// `inner` behind the layer's limiter.
    pub(super) fn new(inner: S, layer: KeyedRateLimitLayer<K, F, P>) -> Self {
        KeyedRateLimit { inner, layer }
    }
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
