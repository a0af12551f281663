//! A job as the pool holds it: boxed with where its result goes when it is queued, then polled by
//! the worker that took it, which counts how it ended (the invariants of `accounting.rs`).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use bounded_cancel::Context;
use bounded_sync::runtime::BoxIfLarge;

use crate::failure::Unclaimed;
use crate::inner::Inner;
use crate::job_handle::JobError;
use crate::metrics::{Ended, Tally};

/// A job with its result channel, boxed: not polled until a worker takes it.
pub(crate) type JobFuture = Pin<Box<dyn PoolJob>>;

/// A job on its worker, from the moment the worker takes it: a job it holds has always been
/// counted `taken` (under the queue's lock by the take that put it here, or by
/// [`take_from_hand`](Held::take_from_hand) as soon as it is put here). Dropped before the job
/// ended (its worker was aborted, or dropped by its runtime), it counts the job first, as never
/// started (not yet polled) or as cancelled, and only then drops it, which lets its handle see
/// `Cancelled`: so a resolved handle is always already in the metrics (accounting invariants 2 and
/// 3).
pub(crate) struct Held<'a> {
    /// `None` only until the worker's take puts the job there.
    pub(crate) job: Option<JobFuture>,
    pub(crate) inner: &'a Inner,
    /// The counts of the worker that took it.
    pub(crate) tally: &'a Tally,
    /// The worker's alias of the jobs' context, cloned for each job it runs.
    pub(crate) ctx: &'a Context,
    /// Polled at least once: a job dropped before it ended is cancelled, not never started.
    pub(crate) polled: bool,
    pub(crate) ended: bool,
}

impl Held<'_> {
    /// A job from the worker's hands is about to be polled for the first time: it leaves the
    /// queue's count now, and its place is freed after this, with the worker's next take.
    pub(crate) fn take_from_hand(&mut self) {
        self.inner.counters.taken(self.tally);
        self.inner.counters.exported_taken();
    }

    pub(crate) fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let Some(job) = self.job.as_mut() else {
            unreachable!("a job is taken before it is polled")
        };
        // Marks the thread with the pool and the job (its box's address) while the job runs, so
        // that a `submit` of the pool it calls can tell.
        let marked = (
            std::ptr::from_ref(self.inner).addr(),
            std::ptr::from_ref::<dyn PoolJob>(&**job)
                .cast::<()>()
                .addr(),
        );
        let _polling = JobPolled(JOB_POLLED.replace(marked));
        self.polled = true;
        let polled = job.as_mut().poll_job(cx, self.inner, self.tally, self.ctx);
        self.ended = polled.is_ready();
        polled
    }
}

thread_local! {
    /// The pool and the job this thread is polling, by their addresses (0 for none).
    pub(crate) static JOB_POLLED: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Puts back, when dropped, what the thread was marked with before a job's poll.
struct JobPolled((usize, usize));

impl Drop for JobPolled {
    fn drop(&mut self) {
        JOB_POLLED.set(self.0);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.job.is_none() {
            // No job was taken: nothing to count.
            return;
        }
        // Counted here, before `job` is dropped with the other fields after this body.
        match (self.ended, self.polled) {
            (true, _) => {}
            (false, true) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "bounded_pool", pool = %self.inner.name, "a pool job was aborted while running");
                self.inner.counters.ended(self.tally, Ended::Cancelled);
            }
            (false, false) => self.inner.counters.never_started_after_take(self.tally),
        }
    }
}

/// What a job sends its handle: its value, or its failure, which reports itself if unclaimed.
pub(crate) type Outcome<T, E> = Result<T, Box<Unclaimed<E>>>;

pub(crate) type ResultTx<T, E> = oneshot::Sender<Outcome<T, E>>;

/// A job on its way into the queue: the user's closure and where its result goes (`None` for a
/// detached job). Handed back whole when the job is refused, so the closure goes back to the caller.
pub(crate) struct Submission<J, T, E> {
    pub(crate) job: J,
    pub(crate) tx: Option<ResultTx<T, E>>,
}

/// A queued job, polled by the worker that took it with the pool's state and the context to hand
/// it, so that a job holds no handle on the pool of its own.
pub(crate) trait PoolJob: Send {
    /// Runs the job (its first poll calls the user's closure with a clone of `ctx`); once it ends,
    /// counts how, then hands its result to its handle, or its failure to the error hook. Not polled
    /// again after `Ready`.
    fn poll_job(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        inner: &Inner,
        tally: &Tally,
        ctx: &Context,
    ) -> std::task::Poll<()>;
}

pin_project_lite::pin_project! {
    /// A job as queued: the user's closure, then its future, and where its result goes (`None` for a
    /// detached job: its result is dropped, its failure goes to the hook).
    pub(crate) struct JobTask<J, Fut, T, E> {
        #[pin]
        run: Run<J, Fut>,
        tx: Option<ResultTx<T, E>>,
        timing: Timing,
        span: JobSpan,
    }

    impl<J, Fut, T, E> PinnedDrop for JobTask<J, Fut, T, E> {
        // The job's code is dropped in its span, as it ran in it, wherever the pool drops it (a
        // job that never started, one aborted while it ran, one that ended); a panic in its
        // destructor is caught, so that it takes no worker and no count with it.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let _entered = this.span.enter();
            let mut run = this.run;
            if let Err(payload) =
                std::panic::catch_unwind(AssertUnwindSafe(|| run.set(Run::Call { job: None })))
            {
                drop_panicked(payload);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A job's code: the closure until its first poll calls it, then the future it returned.
    #[project = RunProj]
    enum Run<J, Fut> {
        Call { job: Option<J> },
        Poll { #[pin] fut: Fut },
    }
}

impl<J, Fut, T, E> JobTask<J, Fut, T, E>
where
    J: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// The job as queued, in its own allocation. A future larger than tokio's threshold for boxing a
    /// task's future is boxed as the closure makes it, so that what moves through the worker's
    /// frames is a box, as in `tokio::spawn`: in a debug build each move is a copy on the stack, and
    /// a large future would overflow it. (A closure that large arrives boxed: see `Submit`.)
    #[inline]
    pub(crate) fn boxed(submission: Submission<J, T, E>, span: JobSpan) -> JobFuture {
        if BoxIfLarge::<Fut>::YES {
            let Submission { job, tx } = submission;
            let job = move |ctx| Box::pin(job(ctx));
            JobTask::<_, Pin<Box<Fut>>, T, E>::written(Submission { job, tx }, span)
        } else {
            Self::written(submission, span)
        }
    }

    /// The job as queued, in its own allocation, as it is.
    #[inline]
    fn written(submission: Submission<J, T, E>, span: JobSpan) -> JobFuture {
        let Submission { job, tx } = submission;
        // Allocated first, then written: `Box::pin(JobTask { .. })` builds the job on the stack and
        // copies it into the allocation, reading back in 16-byte loads what it stored moments
        // before in smaller pieces, which the core cannot forward from its store buffer.
        let place = Box::<Self>::new_uninit();
        let job = Box::write(
            place,
            JobTask {
                run: Run::Call { job: Some(job) },
                tx,
                timing: Timing::queued(),
                span,
            },
        );
        Box::into_pin(job)
    }
}

impl<J, Fut> Run<J, Fut>
where
    J: FnOnce(Context) -> Fut,
    Fut: Future,
{
    /// Calls the closure (on the first poll) and polls its future, each under `catch_unwind`: a
    /// panic in either is the job's result.
    fn poll_caught(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        ctx: &Context,
    ) -> std::task::Poll<std::thread::Result<Fut::Output>> {
        loop {
            match self.as_mut().project() {
                RunProj::Call { job } => {
                    let Some(job) = job.take() else {
                        unreachable!("a job is not polled again once its closure panicked")
                    };
                    match std::panic::catch_unwind(AssertUnwindSafe(|| job(ctx.clone()))) {
                        Ok(fut) => self.set(Run::Poll { fut }),
                        Err(payload) => return std::task::Poll::Ready(Err(payload)),
                    }
                }
                RunProj::Poll { fut } => {
                    return match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                        Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
                        Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
                        Err(payload) => std::task::Poll::Ready(Err(payload)),
                    };
                }
            }
        }
    }
}

/// The caller's code panicked where the pool drops or formats it on a worker: the destructor of a
/// job's closure that never started, of a job's future, of a value nobody reads or of the error that
/// answered a stop, or a failure's `Display` in its `tracing` event. The job was counted already;
/// the panic is told as an `error` event (feature `tracing`), and its payload dropped where a panic
/// cannot escape.
#[cold]
#[inline(never)]
fn drop_panicked(payload: Box<dyn std::any::Any + Send>) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "bounded_pool",
        panic = bounded_cancel::panic_message(&*payload),
        "a pool job's code panicked as the pool dropped it or formatted its error; the worker lives on"
    );
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| drop(payload)));
}

/// The job's span, entered for each of its polls (the span current at submission is its parent).
#[cfg(feature = "tracing")]
pub(crate) struct JobSpan(tracing::Span);

#[cfg(not(feature = "tracing"))]
pub(crate) struct JobSpan;

impl JobSpan {
    /// The span of a job of the pool named `pool`, child of the span current at submission.
    #[cfg(feature = "tracing")]
    pub(crate) fn new(pool: &str) -> Self {
        JobSpan(tracing::info_span!(target: "bounded_pool", "pool job", pool = %pool))
    }

    #[cfg(not(feature = "tracing"))]
    pub(crate) fn new(_pool: &str) -> Self {
        JobSpan
    }

    #[cfg(feature = "tracing")]
    fn enter(&self) -> tracing::span::Entered<'_> {
        self.0.enter()
    }

    /// Without the feature there is no span: nothing to enter, nothing to leave.
    #[cfg(not(feature = "tracing"))]
    fn enter(&self) -> &Self {
        self
    }
}

/// When a job was queued and when it started, for the exported wait and run times.
#[cfg(feature = "metrics")]
struct Timing {
    queued_at: tokio::time::Instant,
    started_at: Option<tokio::time::Instant>,
}

#[cfg(not(feature = "metrics"))]
struct Timing;

impl Timing {
    fn queued() -> Self {
        #[cfg(feature = "metrics")]
        return Timing {
            queued_at: tokio::time::Instant::now(),
            started_at: None,
        };
        #[cfg(not(feature = "metrics"))]
        Timing
    }
}

impl<J, Fut, T, E> PoolJob for JobTask<J, Fut, T, E>
where
    J: FnOnce(Context) -> Fut + Send,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: fmt::Display + Send,
{
    fn poll_job(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        inner: &Inner,
        tally: &Tally,
        ctx: &Context,
    ) -> std::task::Poll<()> {
        let this = self.project();
        #[cfg(feature = "metrics")]
        if this.timing.started_at.is_none() {
            inner
                .counters
                .exported
                .waited(this.timing.queued_at.elapsed());
            this.timing.started_at = Some(tokio::time::Instant::now());
        }
        let caught = {
            let _entered = this.span.enter();
            std::task::ready!(this.run.poll_caught(cx, ctx))
        };
        #[cfg(feature = "metrics")]
        if let Some(started_at) = this.timing.started_at {
            inner.counters.exported.ran(started_at.elapsed());
        }
        let ended = match &caught {
            Ok(Ok(_)) => Ended::Completed,
            // An error that follows the pool's stop is how the job answered its context ending: the
            // stop is the cause, so the job counts as cancelled and its error is not reported as a
            // failure.
            Ok(Err(_)) if inner.jobs_ctx.is_cancelled() => Ended::Cancelled,
            Ok(Err(_)) => Ended::Failed,
            Err(_) => Ended::Panicked,
        };
        // Counted before the handle can see it, so a resolved handle is always already in the
        // metrics; and before the result is made, which is then sent at once: made earlier, it
        // would be copied into the channel from memory written in pieces moments before, which the
        // core cannot forward from its store buffer.
        inner.counters.ended(tally, ended);
        let result = match (caught, ended) {
            (Ok(Ok(value)), _) => Ok(value),
            (Ok(Err(answer)), Ended::Cancelled) => {
                // How the job answered the stop, not a failure: dropped here, on the worker, where
                // a panic in its destructor (the caller's code) must not take the worker with it.
                if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| drop(answer))) {
                    drop_panicked(payload);
                }
                Err(JobError::Cancelled)
            }
            (Ok(Err(err)), _) => {
                // The event formats the error with its `Display`, the caller's code.
                #[cfg(feature = "tracing")]
                if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    tracing::warn!(target: "bounded_pool", pool = %inner.name, error = %err, "a pool job failed");
                })) {
                    drop_panicked(payload);
                }
                Err(JobError::Failed(err))
            }
            (Err(payload), _) => {
                let payload = bounded_cancel::PanicPayload::new(payload);
                #[cfg(feature = "tracing")]
                tracing::error!(
                    target: "bounded_pool",
                    pool = %inner.name,
                    panic = payload.message(),
                    "a pool job panicked"
                );
                Err(JobError::Panicked(payload))
            }
        };
        // A failure nobody claims (no handle, or one dropped before it awaits) goes to the error
        // hook as it is dropped: here, or wherever the handle is dropped.
        let outcome = result.map_err(|error| Unclaimed::new(error, &inner.hook));
        let unread = match this.tx.take() {
            Some(tx) => tx.send(outcome).err().map(oneshot::SendError::into_inner),
            None => Some(outcome),
        };
        // A value nobody will read (a detached job's, or one whose handle was dropped) is dropped
        // here, on the worker: a panic in its destructor is caught as one in the job's code is. A
        // failure reports itself as it is dropped, and catches panics itself.
        if let Some(Ok(value)) = unread
            && std::mem::needs_drop::<T>()
            && let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| drop(value)))
        {
            drop_panicked(payload);
        }
        std::task::Poll::Ready(())
    }
}
