//! [`ClientContext`]: the client a [`ClientContextLayer`](super::ClientContextLayer) makes.

use std::marker::PhantomData;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use super::request_ended::RequestEnded;
use super::{BoxError, Http, ResponseFuture, until_ended};
use crate::Context;

/// A client whose requests end with their [`Context`], from
/// [`ClientContextLayer`](super::ClientContextLayer).
#[derive(Clone, Debug)]
pub struct ClientContext<S, P = Http> {
    pub(super) inner: S,
    pub(super) protocol: PhantomData<fn() -> P>,
}

impl<S, B> Service<http::Request<B>> for ClientContext<S, Http>
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

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Some(ctx) = req.extensions().get::<Context>().cloned() else {
            let response = self.inner.call(req);
            return Box::pin(async move { response.await.map_err(Into::into) });
        };
        if let Some(cause) = ctx.cause() {
            return Box::pin(async move { Err(Box::new(RequestEnded::new(cause)) as BoxError) });
        }
        let response = self.inner.call(req);
        Box::pin(async move {
            match until_ended(response, &ctx).await {
                Ok(response) => response.map_err(Into::into),
                Err(cause) => Err(Box::new(RequestEnded::new(cause)) as BoxError),
            }
        })
    }
}
