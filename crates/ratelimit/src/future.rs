use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bounded_cancel::{Cancelled, Context};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::state::{Left, Outcome, Shared, Taken};
use crate::{AcquireError, InsufficientCapacity, Limiter, driver};

/// Why a wait ended without a grant, before the caller's context is considered.
enum Refusal {
    Capacity(InsufficientCapacity),
    TooSoon { wait: Duration, remaining: Duration },
}

/// The limiter a wait belongs to: borrowed by the plain futures, owned by the `*_owned` ones.
enum Held<'a> {
    Borrowed(&'a Limiter),
    Owned(Limiter),
}

impl std::ops::Deref for Held<'_> {
    type Target = Limiter;

    fn deref(&self) -> &Limiter {
        match self {
            Held::Borrowed(limiter) => limiter,
            Held::Owned(limiter) => limiter,
        }
    }
}

/// The refusal of units that conform at `at` (decided at `now`, both on the limiter's time line)
/// when that is at or after the caller's deadline: waiting could only end in the deadline's error.
fn too_soon(shared: &Shared, at: u64, now: u64, deadline: Option<Instant>) -> Option<Refusal> {
    let deadline = shared.clock.nanos(deadline?);
    (at >= deadline).then(|| Refusal::TooSoon {
        wait: Duration::from_nanos(at.saturating_sub(now)),
        remaining: Duration::from_nanos(deadline.saturating_sub(now)),
    })
}

/// A place in a limiter's queue; leaving the queue (by drop) gives back whatever it held.
struct Waiting<'a> {
    limiter: Held<'a>,
    n: u32,
    seq: Option<u64>,
    finished: bool,
    #[cfg(feature = "metrics")]
    queued_at: Option<Instant>,
    /// Open from joining the queue until leaving it, in the caller's span: a trace shows the wait.
    #[cfg(feature = "tracing")]
    span: Option<tracing::Span>,
}

impl<'a> Waiting<'a> {
    fn new(limiter: &'a Limiter, n: u32) -> Self {
        Waiting::holding(Held::Borrowed(limiter), n)
    }

    fn holding(limiter: Held<'a>, n: u32) -> Self {
        Waiting {
            limiter,
            n,
            seq: None,
            finished: false,
            #[cfg(feature = "metrics")]
            queued_at: None,
            #[cfg(feature = "tracing")]
            span: None,
        }
    }

    fn poll(
        &mut self,
        cx: &mut TaskContext<'_>,
        deadline: Option<Instant>,
    ) -> Poll<Result<(), Refusal>> {
        assert!(
            !self.finished,
            "a rate limit wait was polled after it completed"
        );
        if self.seq.is_some() {
            return self.poll_locked(cx, deadline);
        }
        // A wait that is answered at its first poll spends the caller's tokio budget, as acquiring
        // a tokio `Semaphore` does: a loop of grants yields every so often instead of keeping its
        // thread from the runtime's other tasks. Out of budget, it has asked for nothing and holds
        // no place; one that joins the queue gives the unit back.
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let polled = self.poll_first(cx, deadline);
        if polled.is_ready() {
            coop.made_progress();
        }
        polled
    }

    /// `poll` before the wait has joined the queue.
    fn poll_first(
        &mut self,
        cx: &mut TaskContext<'_>,
        deadline: Option<Instant>,
    ) -> Poll<Result<(), Refusal>> {
        let shared = &self.limiter.shared;
        if self.n > 0 {
            // Decided without the lock when the lock-free way is open; only a wait takes the lock.
            let refused = match shared.take_fast(self.n, || shared.clock.now()) {
                Taken::Granted(_) => {
                    shared.granted(self.n);
                    return self.finish(Ok(()));
                }
                Taken::Capacity(err) => Refusal::Capacity(err),
                Taken::NotBefore { at, now } => match too_soon(shared, at, now, deadline) {
                    Some(refusal) => refusal,
                    None => return self.poll_locked(cx, deadline),
                },
                Taken::Closed => return self.poll_locked(cx, deadline),
            };
            shared.rejected();
            return self.finish(Err(refused));
        }
        self.poll_locked(cx, deadline)
    }

    /// `poll` under the lock: a first poll the lock-free way could not decide, and every later one.
    fn poll_locked(
        &mut self,
        cx: &mut TaskContext<'_>,
        deadline: Option<Instant>,
    ) -> Poll<Result<(), Refusal>> {
        let shared = &self.limiter.shared;
        let mut state = shared.lock();
        let result = match self.seq {
            None => {
                if self.n == 0 {
                    Ok(())
                } else if let Err(err) = state.gcra.fits(self.n) {
                    state.rejected += 1;
                    Err(Refusal::Capacity(err))
                } else {
                    let now = shared.clock.now();
                    match state.try_take(now, self.n) {
                        Ok(()) => Ok(()),
                        Err(at) => match too_soon(shared, at, now, deadline) {
                            Some(refusal) => {
                                state.rejected += 1;
                                Err(refusal)
                            }
                            None => {
                                self.seq = Some(state.enqueue(self.n, now, cx.waker().clone()));
                                driver::ensure(shared, state);
                                #[cfg(feature = "metrics")]
                                {
                                    self.queued_at = Some(Instant::now());
                                    shared.export.queued();
                                }
                                #[cfg(feature = "tracing")]
                                {
                                    self.span = Some(tracing::info_span!(
                                        target: "bounded_ratelimit",
                                        "rate limit wait",
                                        units = self.n
                                    ));
                                }
                                return Poll::Pending;
                            }
                        },
                    }
                }
            }
            Some(seq) => match state.poll_waiter(seq, cx.waker()) {
                Some((Outcome::Granted, _)) => Ok(()),
                Some((Outcome::Refused(err), _)) => Err(Refusal::Capacity(err)),
                None => {
                    // Its driver may have gone with its runtime: the head starts another.
                    driver::ensure(shared, state);
                    return Poll::Pending;
                }
            },
        };
        drop(state);
        self.finish(result)
    }

    /// A wait for units with no deadline: granted, or refused as more than the burst.
    fn poll_units(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), InsufficientCapacity>> {
        match self.poll(cx, None) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(Refusal::Capacity(err))) => Poll::Ready(Err(err)),
            Poll::Ready(Err(Refusal::TooSoon { .. })) => unreachable!("no deadline was given"),
        }
    }

    fn finish(&mut self, result: Result<(), Refusal>) -> Poll<Result<(), Refusal>> {
        self.finished = true;
        #[cfg(feature = "tracing")]
        if let Some(span) = self.span.take() {
            match &result {
                Ok(()) => tracing::trace!(target: "bounded_ratelimit", parent: &span, "granted"),
                Err(_) => tracing::debug!(target: "bounded_ratelimit", parent: &span, "refused"),
            }
        }
        #[cfg(feature = "metrics")]
        {
            let export = &self.limiter.shared.export;
            if let Some(queued_at) = self.queued_at.take() {
                export.left(result.is_ok().then(|| queued_at.elapsed()));
            }
            match result {
                Ok(()) if self.n > 0 => export.granted(self.n),
                Ok(()) => {}
                Err(_) => export.rejected(),
            }
        }
        self.seq = None;
        Poll::Ready(result)
    }

    /// Leaves the queue now, giving back a grant not yet seen.
    fn abandon(&mut self) {
        self.finished = true;
        #[cfg(feature = "tracing")]
        if let Some(span) = self.span.take() {
            tracing::debug!(
                target: "bounded_ratelimit",
                parent: &span,
                "left the queue without a grant"
            );
        }
        #[cfg(feature = "metrics")]
        if self.queued_at.take().is_some() {
            self.limiter.shared.export.left(None);
        }
        if let Some(seq) = self.seq.take() {
            let left = self.limiter.shared.lock().leave(seq);
            match left {
                Left::Nothing => {}
                Left::NotifyDriver => self.limiter.shared.driver_wake.notify_one(),
                Left::Wake(head) => head.wake(),
            }
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.abandon();
    }
}

impl fmt::Debug for Waiting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiting")
            .field("n", &self.n)
            .field("queued", &self.seq.is_some())
            .finish()
    }
}

pin_project! {
    /// Future returned by [`Limiter::acquire`]: resolves once one unit is granted.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Acquire<'a> {
        waiting: Waiting<'a>,
    }
}

impl<'a> Acquire<'a> {
    pub(crate) fn new(limiter: &'a Limiter) -> Self {
        Acquire {
            waiting: Waiting::new(limiter, 1),
        }
    }
}

impl Future for Acquire<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        match self.project().waiting.poll(cx, None) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(()),
            // One unit always fits: every quota has a burst of at least 1, and no deadline was given.
            Poll::Ready(Err(_)) => unreachable!("a single unit is always within the burst"),
        }
    }
}

pin_project! {
    /// Future returned by [`Limiter::acquire_n`]: resolves once `n` units are granted together.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct AcquireN<'a> {
        waiting: Waiting<'a>,
    }
}

impl<'a> AcquireN<'a> {
    pub(crate) fn new(limiter: &'a Limiter, n: u32) -> Self {
        AcquireN {
            waiting: Waiting::new(limiter, n),
        }
    }
}

impl Future for AcquireN<'_> {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.project().waiting.poll_units(cx)
    }
}

pin_project! {
    /// Future returned by [`Limiter::acquire_with`] and [`Limiter::acquire_n_with`]: resolves once the
    /// units are granted, or with an [`AcquireError`] when the context ends first or its deadline is
    /// known to come too soon.
    #[must_use = "futures do nothing unless polled"]
    pub struct AcquireWith<'a> {
        waiting: Waiting<'a>,
        #[pin]
        cancelled: Cancelled<'a>,
        ctx: &'a Context,
    }
}

impl<'a> AcquireWith<'a> {
    pub(crate) fn new(limiter: &'a Limiter, ctx: &'a Context, n: u32) -> Self {
        AcquireWith {
            waiting: Waiting::new(limiter, n),
            cancelled: ctx.cancelled(),
            ctx,
        }
    }
}

impl Future for AcquireWith<'_> {
    type Output = Result<(), AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.waiting.seq.is_none() {
            // A context that has already ended takes nothing and queues nowhere.
            if let Some(cause) = this.ctx.cause() {
                this.waiting.limiter.shared.lock().ended_before_asking();
                this.waiting.finished = true;
                return Poll::Ready(Err(AcquireError::Cancelled(cause)));
            }
        }
        match this.waiting.poll(cx, this.ctx.deadline()) {
            Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
            Poll::Ready(Err(Refusal::Capacity(err))) => return Poll::Ready(Err(err.into())),
            Poll::Ready(Err(Refusal::TooSoon { wait, remaining })) => {
                return Poll::Ready(Err(AcquireError::DeadlineTooSoon { wait, remaining }));
            }
            Poll::Pending => {}
        }
        match this.cancelled.poll(cx) {
            Poll::Ready(cause) => {
                this.waiting.abandon();
                Poll::Ready(Err(AcquireError::Cancelled(cause)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

pin_project! {
    /// The future of [`Limiter::acquire_owned`] and [`Limiter::acquire_n_owned`]: it owns a clone of the
    /// limiter (which shares its state), so it can be spawned or stored.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct AcquireOwned {
        waiting: Waiting<'static>,
    }
}

impl AcquireOwned {
    pub(crate) fn new(limiter: Limiter, n: u32) -> Self {
        AcquireOwned {
            waiting: Waiting::holding(Held::Owned(limiter), n),
        }
    }
}

impl Future for AcquireOwned {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.project().waiting.poll_units(cx)
    }
}

impl fmt::Debug for AcquireWith<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireWith")
            .field("waiting", &self.waiting)
            .field("ctx", self.ctx)
            .finish()
    }
}
