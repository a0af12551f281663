//! `Pool`, what its users call. The mechanism under it is `Inner` (`inner.rs`), with the pool's
//! invariants.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bounded_cancel::Context;
use bounded_sync::queue::Refused;
use bounded_sync::runtime::BoxIfLarge;

use crate::builder::PoolBuilder;
use crate::error::{ResizeError, SubmitError, TrySubmitError};
use crate::inner::Inner;
use crate::job::{ResultTx, Submission};
use crate::job_handle::JobHandle;
use crate::metrics::Metrics;
use crate::report::PoolReport;
use crate::submit::{Detached, Submit, WithHandle};

/// After `shutdown_timeout`'s grace, how long running jobs have to return once their context is cancelled.
pub const CANCEL_WINDOW: Duration = Duration::from_millis(10);

/// The most workers a pool runs. Each worker is a tokio task that lives as long as the pool; more than
/// this is almost always a unit mistake, and would spend memory on tasks with nothing to do.
pub const MAX_WORKERS: usize = 65_536;

/// The longest queue a pool takes (`usize::MAX >> 3`, far above any real bound). A queue allocates
/// per job it holds, never for its bound, so a long bound costs nothing until it fills.
pub const MAX_QUEUE: usize = usize::MAX >> 3;

/// A long-lived pool of workers fed by a bounded queue: the common Go `Pool`, without its flaws.
///
/// See the [crate docs](crate) for the lifecycle. Every method takes `&self`; share a pool with an `Arc`.
/// Dropping the pool aborts it: queued jobs never start (their handles resolve as
/// [`JobError::Cancelled`](crate::JobError::Cancelled)) and running jobs are aborted. So does the
/// shutdown of the runtime the pool was built on, which takes its workers: submitters are then told
/// [`SubmitError::Closed`] rather than left waiting. Every task of the pool runs on that runtime, whichever runtime (or thread outside
/// one) submits to it, awaits its handles or resizes it.
///
/// # Examples
///
/// ```
/// use bounded_pool::Pool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder().workers(2).queue(4).build().unwrap();
/// let handle = pool.submit(|_ctx| async { Ok::<_, String>(6 * 7) }).await.unwrap();
/// assert_eq!(handle.await.unwrap(), 42);
/// let report = pool.shutdown().await;
/// assert_eq!(report.completed, 1);
/// # }
/// ```
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Starts configuring a pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(8).queue(16).build().unwrap();
    /// # }
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// The pool over its started state (`Inner::start`).
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Pool { inner }
    }

    /// Submits a job, waiting for room in the queue; the job receives the pool's context.
    ///
    /// # Errors
    ///
    /// Hands the job back, unrun, in a [`SubmitError`]: `Closed` once the pool takes no more jobs
    /// (closed, shut down, aborted, or its context ended), before or while waiting. Every entry point
    /// gives that same answer; `Cancelled` is only ever the caller's own context (see
    /// [`submit_with`](Pool::submit_with)). `Deadlock` when called from one of the pool's own jobs,
    /// with the queue full, and every other worker also running a job that waits for room in it: no
    /// worker could ever take a job, so the wait would never end (a job counts once however many of
    /// its submissions wait).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it resolves gives up its place in line; the job is dropped
    /// without running and nothing is counted as submitted.
    ///
    /// # Fairness
    ///
    /// Submitters waiting for room are served in the order they started waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    /// let handle = pool.submit(|_ctx| async { Ok::<_, String>("done") }).await.unwrap();
    /// assert_eq!(handle.await.unwrap(), "done");
    /// # }
    /// ```
    pub fn submit<J, Fut, T, E>(
        &self,
        job: J,
    ) -> impl Future<Output = Result<JobHandle<T, E>, SubmitError<J>>> + '_
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        Submit::<_, _, _, WithHandle>::new(&self.inner, None, job)
    }

    /// Like [`submit`](Pool::submit), but the wait for room also ends when the caller's `ctx` ends
    /// (cancelled, or its deadline passed), handing the job back with the cause.
    ///
    /// `ctx` bounds the wait only: the job, once accepted, runs under the pool's context, even if `ctx`
    /// has ended by the time a worker takes it. A job that should end with `ctx` races its work
    /// against it: `move |pool_ctx| async move { ctx.run(work(pool_ctx)).await }`, with a clone of
    /// `ctx` moved in, starts nothing once `ctx` has ended and drops the work where it stands when
    /// `ctx` ends.
    ///
    /// # Errors
    ///
    /// As `submit`, plus `SubmitError::Cancelled` with `ctx`'s cause when the caller's context ends
    /// first. A pool that takes no more jobs answers `Closed` even if `ctx` has ended too.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as `submit`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_pool::{Pool, SubmitError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    /// let request = Context::new();
    /// request.cancel();
    /// let err = pool.submit_with(&request, |_ctx| async { Ok::<_, String>(()) }).await.unwrap_err();
    /// assert!(matches!(err, SubmitError::Cancelled { .. }));
    /// # }
    /// ```
    pub fn submit_with<'a, J, Fut, T, E>(
        &'a self,
        ctx: &'a Context,
        job: J,
    ) -> impl Future<Output = Result<JobHandle<T, E>, SubmitError<J>>> + 'a
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        Submit::<_, _, _, WithHandle>::new(&self.inner, Some(ctx), job)
    }

    /// Submits a job whose result nobody will await, waiting for room in the queue: [`submit`]
    /// followed by [`JobHandle::detach`], without the handle. The job makes no result channel, so
    /// it costs less; its error or panic goes to the pool's error hook (see
    /// [`PoolBuilder::error_hook`](crate::PoolBuilder::error_hook)), and it counts in the metrics and
    /// the report as every job does.
    ///
    /// [`submit`]: Pool::submit
    ///
    /// # Errors
    ///
    /// As [`submit`]: the job is handed back, unrun, in a [`SubmitError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`submit`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(2).queue(8).build().unwrap();
    /// for n in 0..10 {
    ///     pool.submit_detached(move |_ctx| async move { Ok::<_, String>(n * 2) }).await.unwrap();
    /// }
    /// assert_eq!(pool.shutdown().await.completed, 10);
    /// # }
    /// ```
    pub fn submit_detached<J, Fut, T, E>(
        &self,
        job: J,
    ) -> impl Future<Output = Result<(), SubmitError<J>>> + '_
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        Submit::<_, _, _, Detached>::new(&self.inner, None, job)
    }

    /// Submits a job if the queue has room now; never waits.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] with the job when the queue is full, [`TrySubmitError::Closed`] once the
    /// pool is closed or its context has ended. The job is unrun either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::{Pool, TrySubmitError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    /// let wait = |ctx: bounded_cancel::Context| async move { ctx.cancelled().await; Ok::<_, String>(()) };
    /// pool.try_submit(wait).unwrap().detach(); // queued (no worker has run yet)
    /// assert!(matches!(pool.try_submit(wait), Err(TrySubmitError::Full(_))));
    /// # }
    /// ```
    pub fn try_submit<J, Fut, T, E>(&self, job: J) -> Result<JobHandle<T, E>, TrySubmitError<J>>
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let (tx, rx) = oneshot::async_channel();
        self.try_queue(job, Some(tx))?;
        Ok(JobHandle::new(rx))
    }

    /// [`try_submit`](Pool::try_submit) without a handle: see [`submit_detached`](Pool::submit_detached).
    ///
    /// # Errors
    ///
    /// As `try_submit`: `Full` or `Closed`, with the job, unrun.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::{Pool, TrySubmitError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    /// let wait = |ctx: bounded_cancel::Context| async move { ctx.cancelled().await; Ok::<_, String>(()) };
    /// pool.try_submit_detached(wait).unwrap(); // queued (no worker has run yet)
    /// assert!(matches!(pool.try_submit_detached(wait), Err(TrySubmitError::Full(_))));
    /// # }
    /// ```
    pub fn try_submit_detached<J, Fut, T, E>(&self, job: J) -> Result<(), TrySubmitError<J>>
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.try_queue(job, None)
    }

    /// Queues a job into a free place, if there is one and nobody waits in line for one. A job larger
    /// than tokio's threshold for boxing a task's future goes into a box of its own first, as in
    /// [`submit`](Pool::submit), and comes back out of it if refused.
    fn try_queue<J, Fut, T, E>(
        &self,
        job: J,
        tx: Option<ResultTx<T, E>>,
    ) -> Result<(), TrySubmitError<J>>
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        if BoxIfLarge::<J>::YES {
            let job = Box::new(job);
            self.try_queue_job(Submission { job, tx })
                .map_err(|refused| refused.map(|job| *job))
        } else {
            self.try_queue_job(Submission { job, tx })
        }
    }

    /// [`try_queue`](Pool::try_queue), the job as it comes.
    fn try_queue_job<J, Fut, T, E>(
        &self,
        submission: Submission<J, T, E>,
    ) -> Result<(), TrySubmitError<J>>
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let inner = &self.inner;
        if inner.is_closed() {
            return Err(inner.refused(TrySubmitError::Closed(submission.job)));
        }
        match inner.try_place(submission) {
            Ok(()) => Ok(()),
            Err((Refused::Full, submission)) => {
                Err(inner.refused(TrySubmitError::Full(submission.job)))
            }
            Err((Refused::Closed, submission)) => {
                Err(inner.refused(TrySubmitError::Closed(submission.job)))
            }
        }
    }

    /// Stops intake: later submissions are refused with `Closed`, and waiting ones are released with
    /// `Closed`. Jobs already accepted still run; workers end once the queue is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).queue(2).build().unwrap();
    /// let queued = pool.submit(|_ctx| async { Ok::<_, String>(1) }).await.unwrap();
    /// pool.close();
    /// assert!(pool.try_submit(|_ctx| async { Ok::<_, String>(2) }).is_err());
    /// assert_eq!(queued.await.unwrap(), 1); // accepted before close: it still runs
    /// # }
    /// ```
    pub fn close(&self) {
        self.inner.close();
    }

    /// Closes the pool and waits until every accepted job has ended, then reports how each ended.
    ///
    /// When it returns, the pool's context has ended too: the pool is finished. From inside one of
    /// the pool's jobs, call [`close`](Pool::close) and let the pool's owner await the shutdown: a
    /// job awaiting it would wait for itself.
    ///
    /// # Panics
    ///
    /// When awaited by one of the pool's own jobs, after closing the pool, instead of waiting for
    /// ever: the job ends as [`JobError::Panicked`](crate::JobError::Panicked), and the owner's
    /// shutdown reports it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future stops only this wait; the pool stays closed and drains on.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(2).queue(8).build().unwrap();
    /// for i in 0..5 {
    ///     pool.submit(move |_ctx| async move { if i == 3 { Err("three") } else { Ok(()) } })
    ///         .await
    ///         .unwrap()
    ///         .detach();
    /// }
    /// let report = pool.shutdown().await;
    /// assert_eq!((report.completed, report.failed, report.submitted), (4, 1, 5));
    /// # }
    /// ```
    pub async fn shutdown(&self) -> PoolReport {
        self.inner.close();
        self.inner.refuse_own_job("shutdown");
        self.inner.workers_exited().await;
        self.inner.finished().await
    }

    /// Closes the pool, drains for `grace`, then stops: queued jobs never start, running jobs see their
    /// context cancelled and have [`CANCEL_WINDOW`] to return, and jobs still running after that are aborted.
    ///
    /// The report's `completed + failed + panicked + cancelled + never_started` always equals `submitted`.
    /// When it returns, no worker is left and the pool's context has ended.
    ///
    /// The grace is timed on the caller's runtime, or on the pool's own when the caller runs outside
    /// any (a thread of its own, a signal handler), so it can be awaited there too. Any grace is
    /// accepted: `Duration::MAX` waits as [`shutdown`](Pool::shutdown) does, and `Duration::ZERO`
    /// stops at once, leaving running jobs only the [`CANCEL_WINDOW`].
    ///
    /// # Panics
    ///
    /// As [`shutdown`](Pool::shutdown), when awaited by one of the pool's own jobs: it would wait
    /// out the grace for that job, then abort it, and itself with it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe in that dropping it mid-wait loses no accounting; the pool stays closed and drains on.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).queue(4).build().unwrap();
    /// for _ in 0..3 {
    ///     pool.submit(|_ctx| async {
    ///         tokio::time::sleep(Duration::from_secs(60)).await;
    ///         Ok::<_, String>(())
    ///     }).await.unwrap().detach();
    /// }
    /// let report = pool.shutdown_timeout(Duration::from_secs(1)).await;
    /// assert_eq!((report.cancelled, report.never_started), (1, 2));
    /// # }
    /// ```
    pub async fn shutdown_timeout(&self, grace: Duration) -> PoolReport {
        let inner = &self.inner;
        inner.close();
        inner.refuse_own_job("shutdown_timeout");
        if inner.timeout(grace, inner.workers_exited()).await.is_err() {
            inner.drop_queue();
            inner.jobs_ctx.cancel();
            if (inner.timeout(CANCEL_WINDOW, inner.workers_exited()).await).is_err() {
                inner.abort_workers().await;
            }
        }
        inner.finished().await
    }

    /// Stops at once: intake ends, queued jobs never start (their handles resolve as
    /// [`JobError::Cancelled`](crate::JobError::Cancelled)), and running jobs see their context
    /// cancelled and are aborted.
    ///
    /// Cancelling the pool's context, or dropping the pool, does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::{JobError, Pool};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).queue(2).build().unwrap();
    /// let queued = pool.submit(|_ctx| async { Ok::<_, String>(()) }).await.unwrap();
    /// pool.abort();
    /// assert!(matches!(queued.await, Err(JobError::Cancelled)));
    /// # }
    /// ```
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// Changes the number of workers. Growing starts workers at once; shrinking retires idle workers at
    /// once and busy ones when their job ends, so no job is lost or interrupted.
    ///
    /// New workers start on the runtime the pool was built on, wherever `resize` is called: from one
    /// of its tasks, from a task of another runtime (whose shutdown then takes none of them), or from
    /// a thread outside any runtime.
    ///
    /// # Errors
    ///
    /// [`ResizeError::ZeroWorkers`] for 0, [`ResizeError::TooManyWorkers`] above
    /// [`MAX_WORKERS`](crate::MAX_WORKERS), [`ResizeError::Closed`] once the pool is closed. The
    /// number of workers is unchanged either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(2).build().unwrap();
    /// pool.resize(6).unwrap();
    /// assert_eq!(pool.workers(), 6);
    /// # }
    /// ```
    pub fn resize(&self, workers: usize) -> Result<(), ResizeError> {
        let n = ResizeError::check(workers)?.get();
        let inner = &self.inner;
        if inner.queue.is_refusing() {
            return Err(ResizeError::Closed);
        }
        let before = inner.headcount.set_target(n);
        if n > before {
            inner.spawn_workers(n - before);
        } else if n < before {
            inner.queue.wake_all();
        }
        Ok(())
    }

    /// The number of workers the pool is set to run (after a shrink, busy workers retire as they finish).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert_eq!(Pool::builder().workers(3).build().unwrap().workers(), 3);
    /// # }
    /// ```
    pub fn workers(&self) -> usize {
        self.inner.headcount.target()
    }

    /// A snapshot of the pool's counters; see [`Metrics`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().build().unwrap();
    /// assert_eq!(pool.metrics().submitted, 0);
    /// # }
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.inner.counters.snapshot()
    }

    /// The pool's context: cancelling it aborts the pool. Jobs receive a child of it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().build().unwrap();
    /// pool.context().cancel(); // same as pool.abort()
    /// # }
    /// ```
    pub fn context(&self) -> &Context {
        &self.inner.ctx
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.abort();
        if let Some(supervisor) = self.inner.supervisor.lock().take() {
            supervisor.abort();
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers())
            .field("queue", &self.inner.capacity)
            .field("metrics", &self.metrics())
            .finish()
    }
}
