//! The futures of a [`KeyedLimiter`](super::KeyedLimiter)'s waits.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bounded_cancel::{Cancelled, Context};
use pin_project_lite::pin_project;
use std::sync::atomic::Ordering;
use tokio::time::Sleep;

use super::reservation::Reservation;
use crate::{AcquireError, InsufficientCapacity};

pin_project! {
    /// Future returned by [`KeyedLimiter::acquire`].
    #[must_use = "futures do nothing unless polled"]
    pub struct KeyedAcquire<'a, K>
    where
        K: Hash,
        K: Eq,
        K: Clone,
    {
        reservation: Reservation<'a, K>,
        // Made when a wait is first reserved, so that making the future needs no runtime.
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<'a, K: Hash + Eq + Clone> KeyedAcquire<'a, K> {
    pub(super) fn new(reservation: Reservation<'a, K>) -> Self {
        KeyedAcquire {
            reservation,
            sleep: None,
        }
    }
}

impl<K: Hash + Eq + Clone> Future for KeyedAcquire<'_, K> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.project();
        match std::task::ready!(this.reservation.poll_wait(this.sleep, cx, None)) {
            Ok(()) => Poll::Ready(()),
            // One unit always fits the burst, and no deadline was given.
            Err(err) => unreachable!("a keyed wait for one unit failed: {err}"),
        }
    }
}

impl<K: Hash + Eq + Clone> fmt::Debug for KeyedAcquire<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedAcquire")
            .field("at", &self.reservation.at)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// Future returned by [`KeyedLimiter::acquire_with`].
    #[must_use = "futures do nothing unless polled"]
    pub struct KeyedAcquireWith<'a, K>
    where
        K: Hash,
        K: Eq,
        K: Clone,
    {
        reservation: Reservation<'a, K>,
        // Made when a wait is first reserved, so that making the future needs no runtime.
        #[pin]
        sleep: Option<Sleep>,
        #[pin]
        cancelled: Cancelled<'a>,
        ctx: &'a Context,
    }
}

impl<'a, K: Hash + Eq + Clone> KeyedAcquireWith<'a, K> {
    pub(super) fn new(reservation: Reservation<'a, K>, ctx: &'a Context) -> Self {
        KeyedAcquireWith {
            reservation,
            sleep: None,
            cancelled: ctx.cancelled(),
            ctx,
        }
    }
}

impl<K: Hash + Eq + Clone> Future for KeyedAcquireWith<'_, K> {
    type Output = Result<(), AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.reservation.at.is_none()
            && let Some(cause) = this.ctx.cause()
        {
            // A context that has already ended reserves nothing, and counts as abandoned.
            this.reservation
                .limiter
                .shared
                .abandoned
                .fetch_add(1, Ordering::Relaxed);
            this.reservation.finished = true;
            return Poll::Ready(Err(AcquireError::Cancelled(cause)));
        }
        if let Poll::Ready(done) = this
            .reservation
            .poll_wait(this.sleep, cx, this.ctx.deadline())
        {
            return Poll::Ready(done);
        }
        match this.cancelled.poll(cx) {
            Poll::Ready(cause) => {
                this.reservation.cancel();
                Poll::Ready(Err(AcquireError::Cancelled(cause)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

pin_project! {
    /// Future returned by [`KeyedLimiter::acquire_n`].
    #[must_use = "futures do nothing unless polled"]
    pub struct KeyedAcquireN<'a, K>
    where
        K: Hash,
        K: Eq,
        K: Clone,
    {
        reservation: Reservation<'a, K>,
        // Made when a wait is first reserved, so that making the future needs no runtime.
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<'a, K: Hash + Eq + Clone> KeyedAcquireN<'a, K> {
    pub(super) fn new(reservation: Reservation<'a, K>) -> Self {
        KeyedAcquireN {
            reservation,
            sleep: None,
        }
    }
}

impl<K: Hash + Eq + Clone> Future for KeyedAcquireN<'_, K> {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match std::task::ready!(this.reservation.poll_wait(this.sleep, cx, None)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(AcquireError::InsufficientCapacity(err)) => Poll::Ready(Err(err)),
            Err(err) => unreachable!("no context was given: {err}"),
        }
    }
}

impl<K: Hash + Eq + Clone> fmt::Debug for KeyedAcquireN<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedAcquireN")
            .field("n", &self.reservation.n)
            .field("at", &self.reservation.at)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> fmt::Debug for KeyedAcquireWith<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedAcquireWith")
            .field("at", &self.reservation.at)
            .field("ctx", self.ctx)
            .finish()
    }
}
