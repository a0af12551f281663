//! [`WithContext`]: the service a [`ContextLayer`](super::ContextLayer) makes.

use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use super::layer::ContextLayer;
use super::request_ended::RequestEnded;
use super::{BoxError, Ends, Http, ResponseFuture, until_ended};

/// A service whose requests run under their own [`Context`](crate::Context), from [`ContextLayer`].
#[derive(Clone, Debug)]
pub struct WithContext<S, P = Http> {
    pub(super) inner: S,
    pub(super) layer: ContextLayer<P>,
}

impl<S, B> Service<http::Request<B>> for WithContext<S, Http>
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

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let ctx = self.layer.request_context(None);
        if let Some(cause) = ctx.cause() {
            // The service is draining (or its context ended): the handler is not called at all.
            return Box::pin(async move { Err(Box::new(RequestEnded::new(cause)) as BoxError) });
        }
        req.extensions_mut().insert(ctx.clone());
        let response = self.inner.call(req);
        // As Go's `http.Server` does: the request's context ends with its response, or when the
        // server drops the response unfinished (its client closed the connection), so work the
        // handler left running under it stops too.
        let ends = Ends::with_response(ctx);
        Box::pin(async move {
            match until_ended(response, ends.context()).await {
                Ok(response) => response.map_err(Into::into),
                Err(cause) => Err(Box::new(RequestEnded::new(cause)) as BoxError),
            }
        })
    }
}
