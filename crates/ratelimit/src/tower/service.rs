//! [`RateLimit`]: the service a [`RateLimitLayer`](super::RateLimitLayer) makes.

use std::fmt;
use std::marker::PhantomData;
use std::task::{Context as TaskContext, Poll};

use bounded_cancel::Context;
use tower_service::Service;

use super::future::ResponseFuture;
use crate::reservation::Reservation;
use crate::tower::{BoxError, Grpc, Http};
use crate::{AcquireError, Limiter};

/// A service limited by a [`Limiter`], from [`RateLimitLayer`](super::RateLimitLayer).
///
/// Waiting (`RateLimitLayer::new`), `poll_ready` is ready at once and the request takes its place in
/// the limiter's line when it is called, unless the `Context` in its extensions has ended or its
/// deadline comes before the request's unit would ([`AcquireError`], at once, taking nothing). The
/// response future waits for the unit, then for a clone of the inner service to be ready, and then
/// calls it. Shedding (`RateLimitLayer::shed`), `poll_ready` is the inner service's, and `call`
/// either passes the request on with a unit or answers the refusal at once.
///
/// # Cancel safety
///
/// The wait is part of the response, so whatever ends the response (a
/// [`ContextLayer`](bounded_cancel::tower::ContextLayer)'s drain, a timeout, a client gone) ends the
/// wait. A response future dropped before the request was passed on gives the request's place in
/// line, or a unit granted to it and not yet used, back, under the limiter's never-over-grant rule;
/// the inner service was not called.
pub struct RateLimit<S, P = Http> {
    inner: S,
    limiter: Limiter,
    shed: bool,
    protocol: PhantomData<fn() -> P>,
}

impl<S, P> RateLimit<S, P> {
    /// `inner` behind `limiter`, waiting for units or, with `shed`, refusing at once.
    pub(super) fn new(inner: S, limiter: Limiter, shed: bool) -> Self {
        RateLimit {
            inner,
            limiter,
            shed,
            protocol: PhantomData,
        }
    }
}

impl<S: Clone, P> Clone for RateLimit<S, P> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            shed: self.shed,
            protocol: PhantomData,
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for RateLimit<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .field("shed", &self.shed)
            .finish_non_exhaustive()
    }
}

impl<S, P> RateLimit<S, P> {
    /// Shedding, the inner service must be ready for `call`; waiting, a clone of it is made ready in
    /// the response future, once the unit is granted, so no readiness (a concurrency limit's permit,
    /// say) is held while the request waits for its turn.
    fn poll_inner<Req>(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        match self.shed {
            true => self.inner.poll_ready(cx).map_err(Into::into),
            false => Poll::Ready(Ok(())),
        }
    }

    /// The request passed on with a unit, queued for one, or refused.
    fn call_limited<B>(&mut self, req: http::Request<B>) -> ResponseFuture<S, http::Request<B>, P>
    where
        S: Service<http::Request<B>> + Clone,
    {
        if self.shed {
            match self.limiter.try_acquire_n(1) {
                Ok(()) => ResponseFuture::called(self.inner.call(req)),
                Err(err) => ResponseFuture::refused(err.into()),
            }
        } else {
            match reserve_within(&self.limiter, req.extensions().get::<Context>()) {
                Ok(reservation) => ResponseFuture::waiting(reservation, self.inner.clone(), req),
                Err(err) => ResponseFuture::failed(err),
            }
        }
    }
}

/// The request's place in the limiter's line, or why it takes none: its context has ended, or its
/// deadline comes before its grant would (as [`Limiter::acquire_with`] refuses it, at once).
fn reserve_within(limiter: &Limiter, ctx: Option<&Context>) -> Result<Reservation, AcquireError> {
    if let Some(cause) = ctx.and_then(Context::cause) {
        limiter.shared.lock().ended_before_asking();
        return Err(AcquireError::Cancelled(cause));
    }
    let reservation = limiter.reserve_n(1)?;
    if let Some(remaining) = ctx.and_then(Context::remaining) {
        let wait = reservation.delay();
        if wait >= remaining {
            reservation.cancel();
            limiter.shared.rejected();
            return Err(AcquireError::DeadlineTooSoon { wait, remaining });
        }
    }
    Ok(reservation)
}

impl<S, B> Service<http::Request<B>> for RateLimit<S, Http>
where
    S: Service<http::Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, http::Request<B>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_inner::<http::Request<B>>(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.call_limited(req)
    }
}

impl<S, B, RB> Service<http::Request<B>> for RateLimit<S, Grpc>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    RB: Default,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, http::Request<B>, Grpc>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_inner::<http::Request<B>>(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.call_limited(req)
    }
}
