use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::{Cause, Context};

pin_project! {
    /// Future returned by [`Context::cancelled`]: resolves to the [`Cause`] once the context ends.
    #[must_use = "futures do nothing unless polled"]
    pub struct Cancelled<'a> {
        #[pin]
        wait: WaitForCancellationFuture<'a>,
        ctx: &'a Context,
    }
}

impl<'a> Cancelled<'a> {
    pub(crate) fn new(token: &'a CancellationToken, ctx: &'a Context) -> Self {
        Cancelled {
            wait: token.cancelled(),
            ctx,
        }
    }
}

impl Future for Cancelled<'_> {
    type Output = Cause;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Cause> {
        let this = self.project();
        // The token only fires after a cause is stored, so the fallback is never seen in practice.
        ready!(this.wait.poll(cx));
        Poll::Ready(this.ctx.cause_or_cancelled())
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
