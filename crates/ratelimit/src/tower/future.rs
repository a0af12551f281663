//! The response futures of the rate-limit services.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use tower_service::Service;

use super::rate_limited::{RateLimited, grpc_status};
use crate::AcquireError;
use crate::reservation::Reservation;
use crate::tower::{BoxError, Grpc, Http};

pin_project_lite::pin_project! {
    /// The response of a [`RateLimit`] service: the wait for the request's unit, then the inner
    /// service's response; or the refusal ([`RateLimited`], or in gRPC mode its status response).
    /// Dropping it before the request was passed on gives the request's place or unit back.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, Req, P = Http>
    where
        S: Service<Req>,
    {
        #[pin]
        state: Response<S, Req, S::Future>,
        protocol: PhantomData<fn() -> P>,
    }
}

pin_project_lite::pin_project! {
    #[project = ResponseProj]
    enum Response<S, Req, F> {
        Waiting { unit: Unused, inner: Option<S>, req: Option<Req> },
        Called { #[pin] fut: F },
        Refused { refused: Option<RateLimited> },
        Failed { error: Option<AcquireError> },
    }
}

/// A reservation not yet used by a call: given back if dropped so.
struct Unused(Option<Reservation>);

impl Drop for Unused {
    fn drop(&mut self) {
        if let Some(reservation) = self.0.take() {
            reservation.cancel();
        }
    }
}

impl<S: Service<Req>, Req, P> ResponseFuture<S, Req, P> {
    /// The request was passed on: the inner service's response.
    pub(super) fn called(fut: S::Future) -> Self {
        Self::new(Response::Called { fut })
    }

    /// Shed: refused at once.
    pub(super) fn refused(refused: RateLimited) -> Self {
        Self::new(Response::Refused {
            refused: Some(refused),
        })
    }

    /// In line for its unit: then `inner` is made ready and called with `req`.
    pub(super) fn waiting(reservation: Reservation, inner: S, req: Req) -> Self {
        Self::new(Response::Waiting {
            unit: Unused(Some(reservation)),
            inner: Some(inner),
            req: Some(req),
        })
    }

    /// Refused before it took a place in line (its context had ended, or its deadline comes first).
    pub(super) fn failed(error: AcquireError) -> Self {
        Self::new(Response::Failed { error: Some(error) })
    }

    fn new(state: Response<S, Req, S::Future>) -> Self {
        ResponseFuture {
            state,
            protocol: PhantomData,
        }
    }
}

/// Turns a request's outcome into the protocol's answer: plain HTTP's error or gRPC's status.
pub(super) type Answer<T> = fn(Result<T, Short>) -> Result<T, BoxError>;

/// How a [`ResponseFuture`] ended short of the inner service's response.
pub(super) enum Short {
    /// Shedding: over the rate.
    Refused(RateLimited),
    /// Waiting: the request's context ended, or its deadline comes before its grant would.
    Wait(AcquireError),
    /// The inner service failed, or the unit could not be had.
    Failed(BoxError),
}

impl<S, Req, P> ResponseFuture<S, Req, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    /// The inner service's response, once the request has its unit and the service is ready; or
    /// why the request was not passed on.
    fn poll_response(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<S::Response, Short>> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                ResponseProj::Called { fut } => {
                    return fut.poll(cx).map_err(|err| Short::Failed(err.into()));
                }
                ResponseProj::Refused { refused } => {
                    let refused = refused.take().expect("a refusal is answered once");
                    return Poll::Ready(Err(Short::Refused(refused)));
                }
                ResponseProj::Failed { error } => {
                    let error = error.take().expect("a failure is answered once");
                    return Poll::Ready(Err(Short::Wait(error)));
                }
                ResponseProj::Waiting { unit, inner, req } => {
                    let reservation = unit.0.as_mut().expect("waiting holds its reservation");
                    if let Err(err) = ready!(reservation.poll_ready(cx)) {
                        return Poll::Ready(Err(Short::Wait(err.into())));
                    }
                    let svc = inner.as_mut().expect("waiting holds the service");
                    if let Err(err) = ready!(svc.poll_ready(cx)) {
                        // The unit goes back with the future: the request was never passed on.
                        return Poll::Ready(Err(Short::Failed(err.into())));
                    }
                    // Used now: a reservation dropped once granted keeps its unit.
                    drop(unit.0.take());
                    let fut = svc.call(req.take().expect("a request is passed on once"));
                    state.set(Response::Called { fut });
                }
            }
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req, Http>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.poll_response(cx).map_err(Short::into_error)
    }
}

impl<S, B, RB> Future for ResponseFuture<S, http::Request<B>, Grpc>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Default,
{
    type Output = Result<http::Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.poll_response(cx)
            .map(|answered| answered.or_else(Short::into_grpc))
    }
}

impl Short {
    /// In plain HTTP: the error.
    pub(super) fn into_error(self) -> BoxError {
        match self {
            Short::Refused(refused) => Box::new(refused),
            Short::Wait(error) => Box::new(error),
            Short::Failed(error) => error,
        }
    }

    /// In gRPC: a trailers-only status for a refusal or a wait that ended without a unit
    /// (`RESOURCE_EXHAUSTED` over the rate or the burst, `DEADLINE_EXCEEDED` for a deadline,
    /// `UNAVAILABLE` for a context ended otherwise: a drain, retryable on another replica), with the
    /// refusal or the error in the extensions; the inner service's own failure stays an error.
    pub(super) fn into_grpc<B: Default>(self) -> Result<http::Response<B>, BoxError> {
        let error = match self {
            Short::Refused(refused) => return Ok(refused.grpc_response()),
            Short::Wait(error) => error,
            Short::Failed(error) => return Err(error),
        };
        let (code, message) = match &error {
            err if err.is_deadline() => (
                "4",
                "the rate limit would grant this request only after its deadline",
            ),
            AcquireError::InsufficientCapacity(_) => (
                "8",
                "rate limited: the request needs more units than the burst",
            ),
            _ => (
                "14",
                "the request's context ended before its rate-limit unit was granted",
            ),
        };
        Ok(grpc_status(code, message, error))
    }
}

impl<S: Service<Req>, Req, P> fmt::Debug for ResponseFuture<S, Req, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The response future of a [`KeyedRateLimit`](super::KeyedRateLimit) service.
pub type KeyedResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;
