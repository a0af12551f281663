use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker, ready};

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::{Cause, Context};

/// Future returned by [`Context::cancelled`]: resolves to the [`Cause`] once the context ends.
///
/// It is `Unpin`: a struct of yours can hold it and poll it with `Pin::new`, without boxing it.
#[must_use = "futures do nothing unless polled"]
pub struct Cancelled<'a> {
    // The key of its waker in the context's waiters, registered at the first poll (invariant 8 of
    // `context`), until it sees the end or is dropped.
    key: Option<usize>,
    // Which waker it registered (see `WakerId`). A later poll with a waker that wakes the same task
    // (as every poll of a `Run` racing a busy future is) reads the cause instead of taking the
    // waiters' lock to look at the waker it holds.
    registered: WakerId,
    // Armed at the first poll when the context has a deadline; the wait's own timer, so that no
    // task has to exist for a deadline to end a wait. Boxed: a wait without a deadline (most of
    // them) stays small, which every task that holds one pays for.
    timer: Option<Pin<Box<Sleep>>>,
    ctx: &'a Context,
}

impl<'a> Cancelled<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Self {
        Cancelled {
            key: None,
            registered: WakerId::NONE,
            timer: None,
            ctx,
        }
    }

    /// The end, seen: the walk that recorded it takes this wait's waker (invariant 8), so the drop
    /// has nothing to take back.
    fn ended(&mut self, cause: Cause) -> Poll<Cause> {
        self.key = None;
        Poll::Ready(cause)
    }
}

impl Future for Cancelled<'_> {
    type Output = Cause;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Cause> {
        let this = self.get_mut();
        if this.registered == WakerId::of(cx.waker()) {
            if let Some(cause) = this.ctx.recorded_cause() {
                return this.ended(cause);
            }
        } else {
            // An end recorded already is read without registering: a context made after its
            // parent's end was passed by the walk, which would never take a waker left with it.
            if let Some(cause) = this.ctx.recorded_cause() {
                return this.ended(cause);
            }
            let registered = match this.key {
                None => this
                    .ctx
                    .register(cx.waker())
                    .map(|key| this.key = Some(key)),
                Some(key) => this.ctx.reregister(key, cx.waker()).then_some(()),
            };
            if registered.is_none() {
                // The end has woken this context's waits: its cause is recorded.
                return this.ended(this.ctx.cause_or_cancelled());
            }
            // Registered: an end from now on wakes this wait; one recorded since the look above is
            // read here, and its walk, which reaches this context, takes the waker.
            if let Some(cause) = this.ctx.recorded_cause() {
                return this.ended(cause);
            }
            this.registered = WakerId::of(cx.waker());
        }
        if let Some(deadline) = this.ctx.deadline() {
            if this.timer.is_none() {
                // The clock is read once here rather than in every poll: a passed deadline ends
                // the context at once, a future one arms the timer.
                if this.ctx.is_cancelled() {
                    return this.ended(this.ctx.cause_or_cancelled());
                }
                this.timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
            }
            if let Some(timer) = &mut this.timer {
                ready!(timer.as_mut().poll(cx));
                this.ctx.expire();
                return this.ended(this.ctx.cause_or_cancelled());
            }
        }
        Poll::Pending
    }
}

impl Drop for Cancelled<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.ctx.deregister(key);
        }
    }
}

/// A waker's data and vtable addresses: equal for two wakers exactly when `Waker::will_wake` says
/// they wake the same task. Kept instead of a clone of the waker, which would cost a reference count
/// on the task; the addresses cannot be reused by another task while the wait is registered, since
/// the context's waiters hold a clone of that waker until the end wakes it, and after the end the
/// cause is read first.
#[derive(Clone, Copy, PartialEq, Eq)]
struct WakerId(usize, usize);

impl WakerId {
    /// No waker yet: a vtable is never at address 0, so no waker's id is this.
    const NONE: WakerId = WakerId(0, 0);

    #[inline]
    fn of(waker: &Waker) -> Self {
        WakerId(
            waker.data() as usize,
            std::ptr::from_ref(waker.vtable()) as usize,
        )
    }
}

impl fmt::Debug for Cancelled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelled").field("ctx", self.ctx).finish()
    }
}

pin_project! {
    /// Future returned by [`Context::run`]: the inner future's output, or the cause if the context ends first.
    #[must_use = "futures do nothing unless polled"]
    pub struct Run<'a, F> {
        #[pin]
        cancelled: Cancelled<'a>,
        #[pin]
        fut: F,
    }
}

impl<'a, F> Run<'a, F> {
    pub(crate) fn new(cancelled: Cancelled<'a>, fut: F) -> Self {
        Run { cancelled, fut }
    }
}

impl<F: Future> Future for Run<'_, F> {
    type Output = Result<F::Output, Cause>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Cancellation is checked first so that an ended context never polls the future.
        if let Poll::Ready(cause) = this.cancelled.poll(cx) {
            return Poll::Ready(Err(cause));
        }
        this.fut.poll(cx).map(Ok)
    }
}

impl<F> fmt::Debug for Run<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("ctx", self.cancelled.ctx)
            .finish_non_exhaustive()
    }
}
