use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::{AcquireError, TryAcquireError};

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls `fut`, spending the caller's tokio budget when it is ready, as the local limiter does: an
/// answer that needs no round trip (an unlimited quota, a refusal decided here) is ready at once, and
/// a loop of them still yields every so often. Out of budget, `fut` is not polled at all.
fn poll_spending_budget<T>(
    fut: Pin<&mut (dyn Future<Output = T> + Send + '_)>,
    cx: &mut TaskContext<'_>,
) -> Poll<T> {
    let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
    let out = std::task::ready!(fut.poll(cx));
    coop.made_progress();
    Poll::Ready(out)
}

/// A wait for units of a fleet limiter, from `acquire`, `acquire_n`, `acquire_with` or
/// `acquire_n_with`.
///
/// One allocation per call, next to a network round trip.
///
/// # Cancel safety
///
/// Dropping it gives back whatever it reserved, unless a later reservation depends on it (then it
/// stays taken, which under-grants and never over-grants).
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    inner: Boxed<'a, Result<(), AcquireError>>,
}

impl<'a> Acquire<'a> {
    pub(crate) fn new(fut: impl Future<Output = Result<(), AcquireError>> + Send + 'a) -> Self {
        Acquire {
            inner: Box::pin(fut),
        }
    }
}

impl Future for Acquire<'_> {
    type Output = Result<(), AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        poll_spending_budget(self.inner.as_mut(), cx)
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire").finish_non_exhaustive()
    }
}

/// One round trip to Redis that takes units only if they are free now, from `try_acquire` or
/// `try_acquire_n`.
///
/// # Cancel safety
///
/// Dropping it while Redis is answering gives back what the answer granted.
#[must_use = "futures do nothing unless polled"]
pub struct TryAcquire<'a> {
    inner: Boxed<'a, Result<(), TryAcquireError>>,
}

impl<'a> TryAcquire<'a> {
    pub(crate) fn new(fut: impl Future<Output = Result<(), TryAcquireError>> + Send + 'a) -> Self {
        TryAcquire {
            inner: Box::pin(fut),
        }
    }
}

impl Future for TryAcquire<'_> {
    type Output = Result<(), TryAcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        poll_spending_budget(self.inner.as_mut(), cx)
    }
}

impl fmt::Debug for TryAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryAcquire").finish_non_exhaustive()
    }
}
