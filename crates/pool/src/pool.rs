//! `Pool`: long-lived workers fed by a bounded queue.
//!
//! # Invariants
//!
//! The accounting of every job is stated in `accounting.rs`. Besides it:
//!
//! 1. The queue's slots bound it (`bounded_sync::queue`): a submitter's job is boxed only once its
//!    slot is certain (without the `tracing` feature, under the queue's lock when one is free at
//!    once, one lock for both; else once a slot is reserved or granted in line, as a guard), and the
//!    slot is free again when a worker takes the job, when the queue refuses it after an abort, when
//!    an abort drains it, or when the submitter panics before the job is queued (a tracing
//!    subscriber making the job's span). Its memory follows the jobs it holds, not its bound.
//! 2. After `close`, the queue closes only once every slot is free: no job that was accepted is ever
//!    refused by the queue, and idle workers then see the end.
//! 3. A worker retires only through `Headcount::retire_one` (see `accounting.rs`), so a shrink never
//!    retires more workers than asked, and a busy worker retires only between jobs. A shrink sets
//!    the target, then wakes the parked workers, which ask under the queue's lock before parking.
//! 4. No lock is held across `tokio::spawn` (bounded-sync's rule): workers are spawned, then their
//!    handles stored.
//! 5. A worker dropped without returning, and without the pool having aborted it, was dropped by its
//!    runtime's shutdown: the pool aborts itself, so that queued jobs count as never started and
//!    every submitter, waiting or later, is told `Closed` instead of waiting for a worker that no
//!    longer exists.
//! 6. A worker whose last job finished at its first poll (on a runtime with threads to spare, also
//!    within `LONG_POLL`, on the clock that times first polls there) takes what is queued, up to
//!    `MAX_RUN` jobs, in one lock (`release_and_try_take_many`), and runs them one after another: a
//!    *run*. On one thread nothing else runs while they do, so a run changes who runs a job, never
//!    when; with threads to spare a run holds its jobs only while each finishes at once and
//!    quickly, as a worker that took them one at a time would, and only the jobs behind one that
//!    turns out to compute wait for it, as queue invariant 7 already lets queued jobs wait. The jobs
//!    keep their places until the worker comes back to the queue, whose lock frees them with the
//!    next take; the first job of the run that waits (returns `Pending`) frees the places of the
//!    jobs started and gives the rest back to the front of the queue, in their order, which wakes a
//!    worker for them, before it waits. With threads to spare, the first job of the run whose first
//!    poll held its thread for `LONG_POLL` or more does the same as it ends, and its worker steps
//!    aside once, so that the idle thread takes the worker woken for them (or this one). So the
//!    queue never holds more than its bound, and no job waits behind one that waits. A give-back
//!    after an abort drained the queue queues nothing: the jobs stay in hand and count as never
//!    started. A job of a run that finds the queue full when it submits to its own pool frees the
//!    run's places first (the thread-local `RUN` tells it which), so it finds the room it would find
//!    outside a run. Before each job the run looks at `stopping`: after an abort from inside the
//!    run, the jobs in hand never start. A worker that ends or is dropped with jobs in hand counts
//!    them never started, drops them, and frees every place it holds (`Hands`). A worker does not
//!    park while it holds places: it frees them first.
//! 7. After `TAKES_BEFORE_YIELD` takes (a job, or a run) in a row without waiting (its take parked,
//!    its job waited, or it stepped aside), a worker yields to its runtime before its next take,
//!    freeing the places of its last run first: 128, as many receives as tokio's coop budget lets a
//!    task make from its channels in one poll. So a worker whose queue never empties (jobs that
//!    queue their successors, or submitters on another thread) does not keep its thread from the
//!    runtime's other tasks. Counted in the worker rather than on tokio's budget, which would cost
//!    two reads of a thread-local per take.
//! 8. On one thread each worker is a tokio task. With threads to spare, each worker has a task of
//!    its own (a `Shell`), and when a job of its first waits, if the take that gave it that job
//!    freed a place a submitter was waiting for (`Seat::saturated`; for a job of a run, if jobs of
//!    the run went back to the queue), it moves into the pool's one `Host`: a tokio task that polls
//!    up to `PLACES` workers, each through a waker of its own (`bounded_sync::places`), so that
//!    workers whose jobs wait run one after another on one thread instead of handing each other
//!    over between threads. Its shell waits meanwhile at its `Home` (`home.rs`: the hand-over's own
//!    invariants, and loom models of it). A hosted worker goes back to its shell when it parks on
//!    the queue (so a parked worker is never stuck behind a job that holds the host's thread, and a
//!    submission still wakes a worker that can run at once) and when it steps aside for a worker it
//!    woke (queue invariant 7). Only a saturated pool moves workers: a move in and out costs two
//!    locks and two wake-ups (and a host spawned when none runs), which jobs submitted one or a few
//!    at a time would pay at every job. The worker tells the task polling it through the
//!    thread-local `ASK`, read after each poll. A worker moves only between polls, and the task it
//!    moves to polls it first thing, so a wake that went to the other task's waker is never lost:
//!    the poll sees what the wake was for. The host times about one poll in `SAMPLE_EVERY`,
//!    picked at random (`bounded_sync::slow`): once the long ones fill its time (jobs that wait and,
//!    one in a hundred say, compute for a millisecond, which on one thread would leave the other
//!    idle), it sets `spread`, every worker it holds goes back to its shell at its next poll, and
//!    none moves in again. The host's `Intake` holds the workers on their way in,
//!    with their homes, and whether the host's task runs; the host ends when it holds none, and an
//!    adopt after that starts a new one (`intake.rs`, with loom models). A worker that ends in the
//!    host, or that the host drops (dropped before it ended: an abort, a runtime shutting down),
//!    closes its home and its shell ends; a shell dropped first closes its home, and the host drops
//!    the worker instead of sending it back. A dropped worker counts itself out (invariant 5);
//!    after an abort no worker moves in. Every task is spawned with its handle kept for an abort,
//!    as in invariant 4.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_cancel::live::TaskCounter;
use bounded_sync::Mutex;
use bounded_sync::busy::{Busy, LastJob, PollClock, Stamp, step_aside};
use bounded_sync::own::{OwnWait, OwnWaits};
use bounded_sync::places::{PLACES, Places};
use bounded_sync::slow::{LongPolls, Picker, SAMPLE_EVERY};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

use crate::accounting::{Headcount, Live};
use crate::builder::PoolBuilder;
use crate::error::{ResizeError, SubmitError, TrySubmitError};
use crate::failure::{Hook, Unclaimed};
use crate::home::Home;
use crate::intake::{Adopted, Intake};
use crate::job_handle::{JobError, JobHandle};
use crate::metrics::{Counters, Ended, Enrolled, Metrics, Tally};
use crate::report::PoolReport;
use bounded_sync::queue::{Place, Queue, Refused, Seat, Took};

use crate::submit::{Detached, Submit, WithHandle};

/// After `shutdown_timeout`'s grace, how long running jobs have to return once their context is cancelled.
pub const CANCEL_WINDOW: Duration = Duration::from_millis(10);

/// The most workers a pool runs. Each worker is a tokio task that lives as long as the pool; more than
/// this is almost always a unit mistake, and would spend memory on tasks with nothing to do.
pub const MAX_WORKERS: usize = 65_536;

/// The longest queue a pool takes (`usize::MAX >> 3`, far above any real bound). A queue allocates
/// per job it holds, never for its bound, so a long bound costs nothing until it fills.
pub const MAX_QUEUE: usize = usize::MAX >> 3;

/// A job with its result channel, boxed: not polled until a worker takes it.
pub(crate) type JobFuture = Pin<Box<dyn PoolJob>>;

/// A long-lived pool of workers fed by a bounded queue: the common Go `Pool`, without its flaws.
///
/// See the [crate docs](crate) for the lifecycle. Every method takes `&self`; share a pool with an `Arc`.
/// Dropping the pool aborts it: queued jobs never start (their handles resolve as
/// [`JobError::Cancelled`]) and running jobs are aborted. So does the shutdown of the runtime the pool
/// was built on, which takes its workers: submitters are then told [`SubmitError::Closed`] rather than
/// left waiting. Every task of the pool runs on that runtime, whichever runtime (or thread outside
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

pub(crate) struct Inner {
    /// The pool's own context: cancelling it (or a parent) aborts the pool.
    ctx: Context,
    /// What jobs receive: a child of `ctx`, also cancelled alone when a shutdown's grace runs out.
    jobs_ctx: Context,
    capacity: usize,
    /// Accepted jobs, each holding a slot until a worker takes it (invariant 1).
    pub(crate) queue: Queue<JobFuture>,
    counters: Counters,
    hook: Hook,
    /// Workers wanted and workers not yet retired.
    headcount: Headcount,
    /// Worker futures that still exist, counted down by each worker's `Alive` guard when it is dropped.
    live: Live,
    handles: Mutex<Vec<JoinHandle<()>>>,
    supervisor: Mutex<Option<AbortHandle>>,
    exited: Notify,
    /// Set before the pool aborts its own workers, so that a worker dropped without it was dropped
    /// by its runtime (invariant 5).
    stopping: AtomicBool,
    /// Jobs waiting in `submit` for room in their own pool's queue, each holding its worker (see
    /// `bounded_sync::own`).
    own_waits: OwnWaits,
    tasks: TaskCounter,
    /// Where workers whose jobs wait are polled together (invariant 8).
    hosting: Intake<Lent>,
    /// The host's long polls filled its time: its workers leave it, and no worker moves in again
    /// (invariant 8).
    spread: AtomicBool,
    /// Workers being polled right now: the threads the pool keeps busy (queue invariant 7).
    busy: Busy,
    /// The runtime the pool was built on, where every task of the pool runs, whoever starts it
    /// (`resize` may be called from another runtime or from none).
    runtime: Handle,
    /// The pool's name, for its spans and events.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    name: String,
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

    // How every job is accounted for: see the invariants in `accounting.rs`.
    pub(crate) fn start(
        workers: usize,
        capacity: usize,
        parent: &Context,
        hook: Hook,
        name: String,
    ) -> Self {
        let ctx = parent.child();
        let inner = Arc::new(Inner {
            runtime: Handle::current(),
            jobs_ctx: ctx.child(),
            ctx,
            capacity,
            queue: Queue::new(capacity),
            counters: Counters::new(&name),
            hook,
            headcount: Headcount::new(workers),
            live: Live::default(),
            handles: Mutex::default(),
            supervisor: Mutex::default(),
            exited: Notify::new(),
            stopping: AtomicBool::new(false),
            spread: AtomicBool::new(false),
            own_waits: OwnWaits::default(),
            busy: Busy::default(),
            tasks: TaskCounter::new(format!("{name} worker")),
            hosting: Intake::default(),
            name: name.clone(),
        });
        inner.spawn_workers(workers);
        let supervisor = supervise(
            &inner.runtime,
            Arc::downgrade(&inner),
            inner.ctx.clone(),
            format!("{name} supervisor"),
        );
        *inner.supervisor.lock() = Some(supervisor);
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
        self.try_queue_job(Submission { job, tx: Some(tx) })?;
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
        self.try_queue_job(Submission { job, tx: None })
    }

    /// Queues a job into a free place, if there is one and nobody waits in line for one.
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
    /// ever: the job ends as [`JobError::Panicked`], and the owner's shutdown reports it.
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
    /// [`JobError::Cancelled`]), and running jobs see their context cancelled and are aborted.
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
    /// [`ResizeError::ZeroWorkers`] for 0, [`ResizeError::Closed`] once the pool is closed.
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

/// Aborts the pool when its context ends from outside (a parent cancelled, or `context().cancel()`).
fn supervise(runtime: &Handle, inner: Weak<Inner>, ctx: Context, name: String) -> AbortHandle {
    let watch = async move {
        ctx.cancelled().await;
        if let Some(inner) = inner.upgrade() {
            inner.abort();
        }
    };
    runtime
        .spawn(bounded_cancel::live::tracked(name, watch))
        .abort_handle()
}

impl Inner {
    /// Queues a job in a free place, if there is one and nobody waits in line. Without the `tracing`
    /// feature the place is reserved and the job boxed and queued under one lock of the queue. With
    /// it, the job's span is made by the user's subscriber, which must not run under the queue's
    /// lock: the place is reserved first (a guard, free again if the subscriber panics), then filled,
    /// so a refused job makes no span.
    pub(crate) fn try_place<J, Fut, T, E>(
        &self,
        submission: Submission<J, T, E>,
    ) -> Result<(), (Refused, Submission<J, T, E>)>
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let mut submission = submission;
        loop {
            // Once more at most: a run's places are freed once.
            match self.place_now(submission) {
                Err((Refused::Full, refused)) if self.release_run() => submission = refused,
                placed => return placed,
            }
        }
    }

    fn place_now<J, Fut, T, E>(
        &self,
        submission: Submission<J, T, E>,
    ) -> Result<(), (Refused, Submission<J, T, E>)>
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        #[cfg(not(feature = "tracing"))]
        return self.queue.try_push_with(submission, |s| self.job(s));
        #[cfg(feature = "tracing")]
        match self.queue.try_reserve() {
            Ok(place) => {
                self.fill(place, submission);
                Ok(())
            }
            Err(refused) => Err((refused, submission)),
        }
    }

    /// Called by a job of a run on a full queue: frees the places that the run holds, if it is this
    /// pool's, so that a job submitting to its own pool finds the places of the jobs run before it,
    /// and its own, free, as it would have outside a run (invariant 6). `true` if it freed any.
    fn release_run(&self) -> bool {
        let (pool, done) = RUN.get();
        if done == 0 || pool != std::ptr::from_ref(self).addr() {
            return false;
        }
        RUN.set((pool, 0));
        self.queue.release(done);
        true
    }

    /// The job as queued, counted as submitted (before any worker can take it, so a job that ended is
    /// always already counted). Without the `tracing` feature it runs under the queue's lock when a
    /// place is free at once, and runs no user code and wakes nothing; with it, it makes the job's
    /// span (the span current at submission is the job's parent, on whichever worker it runs) and
    /// runs only with a place reserved and no lock held.
    fn job<J, Fut, T, E>(&self, submission: Submission<J, T, E>) -> JobFuture
    where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let Submission { job, tx } = submission;
        #[cfg(feature = "tracing")]
        let span = JobSpan(tracing::info_span!("pool job", pool = %self.name));
        #[cfg(not(feature = "tracing"))]
        let span = JobSpan;
        // Counted once the job exists: a subscriber that panics making its span leaves no job.
        self.counters.submitted();
        // Allocated first, then written: `Box::pin(JobTask { .. })` builds the job on the stack and
        // copies it into the allocation, reading back in 16-byte loads what it stored moments
        // before in smaller pieces, which the core cannot forward from its store buffer.
        let place = Box::<JobTask<J, Fut, T, E>>::new_uninit();
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

    /// Queues a job in the place granted to it in line.
    pub(crate) fn fill<J, Fut, T, E>(
        &self,
        place: Place<'_, JobFuture>,
        submission: Submission<J, T, E>,
    ) where
        J: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let job = self.job(submission);
        // The queue is closed only by an abort while a slot is reserved (invariant 2). A job refused
        // then never starts: counted first, then dropped, so that its handle resolves after the
        // count; and its place is freed last, since `finished` takes the report once every place is
        // home: freed before the count, the report could miss the job.
        if let Err((refused, place)) = place.push_or_keep(job) {
            self.counters.never_started();
            drop(refused);
            drop(place);
        }
    }

    fn spawn_workers(self: &Arc<Self>, n: usize) {
        let threads = self.runtime.metrics().num_workers();
        let workers = (0..n).map(|_| {
            self.headcount.started();
            // Counted before the worker exists, and given to it as an argument, so that even a
            // worker dropped before its first poll counts itself out.
            self.live.add();
            let alive = Alive {
                inner: self.clone(),
                tally: Some(self.counters.enroll()),
                ended: false,
            };
            let worker: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(worker(alive, threads));
            Box::pin(CountPolls {
                worker,
                inner: self.clone(),
                threads,
            })
        });
        // Spawned before the lock is taken: no lock is held across `tokio::spawn` (see
        // bounded-sync).
        let spawned = workers
            .map(|worker| match threads {
                // One thread: a task per worker, each woken by tokio directly (invariant 8).
                1 => self.runtime.spawn(self.tasks.track(worker)),
                _ => self.runtime.spawn(self.tasks.track(Shell {
                    inner: self.clone(),
                    worker: Some(worker),
                    home: Arc::new(Home::default()),
                })),
            })
            .collect();
        self.keep_handles(spawned);
    }

    /// Takes a worker whose job waits into the host, starting the host's task if it is not running;
    /// hands the worker back when the host is full or the pool is stopping (invariant 8).
    fn adopt(self: &Arc<Self>, worker: Worker, home: &Arc<Home<Worker>>) -> Result<(), Worker> {
        if self.spread.load(Ordering::Relaxed) {
            return Err(worker);
        }
        let stopping = || self.stopping.load(Ordering::Acquire);
        match self.hosting.adopt((worker, home.clone()), PLACES, stopping) {
            Ok(Adopted::Taken) => return Ok(()),
            Ok(Adopted::StartHost) => {}
            Err((worker, _)) => return Err(worker),
        }
        let host = Host {
            inner: self.clone(),
            workers: Vec::new(),
            free: Vec::new(),
            places: Places::new(),
            ended: false,
            picker: Picker::new(SAMPLE_EVERY),
            long_polls: LongPolls::new(SAMPLE_EVERY),
        };
        let handle = self.runtime.spawn(self.tasks.track(host));
        self.keep_handles(vec![handle]);
        Ok(())
    }

    /// Keeps the handles of tasks just spawned, so that an abort finds them.
    fn keep_handles(&self, spawned: Vec<JoinHandle<()>>) {
        let mut handles = self.handles.lock();
        // An abort on another thread sets `stopping` before it takes this lock to abort the handles
        // it finds: tasks it cannot have found are aborted here, so none outlives an abort.
        if self.stopping.load(Ordering::Acquire) {
            spawned.iter().for_each(JoinHandle::abort);
        }
        // Handles of tasks that ended are dropped before the list would grow: a host is spawned
        // each time one is needed again, and the list must not grow with every one.
        if handles.len() + spawned.len() > handles.capacity() {
            handles.retain(|h| !h.is_finished());
        }
        handles.extend(spawned);
    }

    /// After close, the queue closes once no job is queued and no submitter holds a slot, so that
    /// idle workers end and no accepted job is ever refused.
    fn close(&self) {
        self.queue.refuse();
    }

    /// Drops every queued job: each counts as never started and its handle resolves as cancelled.
    fn drop_queue(&self) {
        // Counted before they are dropped, so that a resolved handle is always already in the
        // metrics, and before their places are freed, so that a report (which waits for every place)
        // taken by a `shutdown` racing this one on another thread finds them counted.
        let drained = self.queue.drain_counted(|n| {
            for _ in 0..n {
                self.counters.never_started();
            }
        });
        drop(drained);
    }

    fn abort(&self) {
        // Before any worker is aborted: a worker dropped by this abort is not taken for one dropped
        // by its runtime (invariant 5).
        self.stopping.store(true, Ordering::Release);
        // The context ends first: a submitter refused by the queue reads it as its cause.
        self.ctx.cancel();
        self.drop_queue();
        // An aborted worker is counted out by its `Alive` guard when tokio drops it, after the job it
        // was running has counted itself cancelled (invariant 4).
        for handle in self.handles.lock().iter() {
            handle.abort();
        }
    }

    /// Aborts the workers and waits until each is gone, so that every aborted job is counted.
    async fn abort_workers(&self) {
        self.stopping.store(true, Ordering::Release);
        for handle in self.handles.lock().iter() {
            handle.abort();
        }
        self.workers_exited().await;
    }

    /// Panics if the caller is one of the pool's own jobs: `what` waits for every job, the caller's
    /// too, and would never return. The pool is closed first, as the job presumably meant it to be.
    fn refuse_own_job(&self, what: &str) {
        if self.calling_job().is_some() {
            panic!(
                "`Pool::{what}` was awaited by one of the pool's own jobs: it waits for every job \
                 to end, this one too, so it would never return. The pool is now closed; from \
                 inside a job, call `close()` and let the pool's owner await `{what}`"
            );
        }
    }

    /// The job of this pool the caller runs in, if it runs in one (its box's address).
    pub(crate) fn calling_job(&self) -> Option<usize> {
        let (pool, job) = JOB_POLLED.get();
        (pool == std::ptr::from_ref(self).addr() && job != 0).then_some(job)
    }

    /// Counts a wait for room of the pool's own job at `job` in, unless with it every worker still
    /// taking jobs would run one waiting so (see `bounded_sync::own`).
    pub(crate) fn own_wait(&self, job: usize) -> Option<OwnWait<'_>> {
        // A `resize` that grows the pool sets its target before it counts the workers it starts:
        // those will take jobs too, so a wait while it does is not one for ever.
        let workers = self.headcount.alive().max(self.headcount.target());
        self.own_waits.enter(job, workers)
    }

    /// Counts a submission refused, and hands back what tells its caller so.
    pub(crate) fn refused<R>(&self, refusal: R) -> R {
        self.counters.rejected();
        refusal
    }

    /// The pool's context ended (it was aborted or finished). A closed pool whose context lives is
    /// told by the queue, which refuses under its lock.
    pub(crate) fn is_closed(&self) -> bool {
        self.ctx.is_cancelled()
    }

    /// Ends a finished pool: its context ends (which also ends the supervisor) and the report is taken.
    /// Called once no worker is left; a submitter still between taking its slot and queueing its job
    /// (a few instructions, after an abort from another thread) is waited for, so that its job is in
    /// the report too.
    async fn finished(&self) -> PoolReport {
        self.ctx.cancel();
        while !self.queue.slots_home() {
            tokio::task::yield_now().await;
        }
        let metrics = self.counters.snapshot();
        metrics.check_finished();
        PoolReport::new(metrics)
    }

    /// `tokio::time::timeout`, timed by the caller's runtime, or by the pool's own when the caller
    /// runs outside any (a thread of its own, a signal handler), where tokio would panic.
    fn timeout<F: Future>(&self, within: Duration, fut: F) -> tokio::time::Timeout<F> {
        match Handle::try_current() {
            Ok(_) => tokio::time::timeout(within, fut),
            Err(_) => {
                let _entered = self.runtime.enter();
                tokio::time::timeout(within, fut)
            }
        }
    }

    async fn workers_exited(&self) {
        loop {
            let mut exited = pin!(self.exited.notified());
            exited.as_mut().enable();
            // Every count a worker made is visible once it is seen gone (invariant 4).
            if self.live.none() {
                return;
            }
            exited.await;
        }
    }
}

/// A worker's presence. Dropped last of everything the worker owns, so that the job it was running,
/// if any, has counted itself before the worker counts as gone.
struct Alive {
    inner: Arc<Inner>,
    /// The counts of the jobs this worker takes, handed to the book when it is gone.
    tally: Option<Enrolled>,
    /// The worker returned (it retired, or the queue closed), rather than being dropped.
    ended: bool,
}

impl Drop for Alive {
    fn drop(&mut self) {
        // Dropped without returning and without the pool asking: its runtime is shutting down and
        // takes every worker with it. No job can run any more, so the pool is aborted (invariant 5).
        if !self.ended && !self.inner.stopping.load(Ordering::Acquire) {
            self.inner.abort();
        }
        if let Some(tally) = self.tally.take() {
            self.inner.counters.leave(tally);
        }
        self.inner.live.gone();
        self.inner.exited.notify_waiters();
    }
}

/// A job on its worker, from the moment the worker takes it. Dropped before the job ended (its
/// worker was aborted, or dropped by its runtime), it counts the job first, as never started or as
/// cancelled, and only then drops it, which lets its handle see `Cancelled`: so a resolved handle is
/// always already in the metrics (accounting invariants 2 and 3).
struct Held<'a> {
    /// `None` only until the worker's take puts the job there.
    job: Option<JobFuture>,
    inner: &'a Inner,
    /// The counts of the worker that took it.
    tally: &'a Tally,
    /// The worker's alias of the jobs' context, cloned for each job it runs.
    ctx: &'a Context,
    started: bool,
    ended: bool,
}

impl Held<'_> {
    /// The job is about to be polled for the first time.
    fn start(&mut self) {
        self.started = true;
        self.inner.counters.started(self.tally);
    }

    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
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
        let polled = job.as_mut().poll_job(cx, self.inner, self.tally, self.ctx);
        self.ended = polled.is_ready();
        polled
    }
}

thread_local! {
    /// The pool and the job this thread is polling, by their addresses (0 for none).
    static JOB_POLLED: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
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
        match (self.started, self.ended) {
            (_, true) => {}
            (true, false) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "bounded_pool", pool = %self.inner.name, "a pool job was aborted while running");
                self.inner.counters.ended(self.tally, Ended::Cancelled);
            }
            (false, false) => self.inner.counters.never_started_by(self.tally),
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
    struct JobTask<J, Fut, T, E> {
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
struct JobSpan(tracing::Span);

#[cfg(not(feature = "tracing"))]
struct JobSpan;

impl JobSpan {
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

/// A worker, counted in the pool's `busy` while it is polled on a runtime with threads to spare
/// (queue invariant 7).
struct CountPolls<F: ?Sized> {
    worker: Pin<Box<F>>,
    inner: Arc<Inner>,
    /// The worker threads of its runtime: with one, nothing is handed on and nothing is counted.
    threads: usize,
}

impl<F: Future<Output = ()> + ?Sized> Future for CountPolls<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = &mut *self;
        if this.threads == 1 {
            return this.worker.as_mut().poll(cx);
        }
        let _polled = this.inner.busy.enter();
        this.worker.as_mut().poll(cx)
    }
}

/// A worker, boxed so that it can move between the tasks that poll it (invariant 8).
type Worker = Pin<Box<CountPolls<dyn Future<Output = ()> + Send>>>;

/// Where a worker asks to be polled next, told through `ASK` to the task that polls it (invariant 8).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    Stay,
    /// Its job waits: it joins the pool's host.
    Join,
    /// It parked on the queue, or stepped aside for a worker it woke: it goes on in a task of its own.
    Leave,
}

thread_local! {
    static ASK: Cell<Ask> = const { Cell::new(Ask::Stay) };
}

/// Steps aside for the worker just woken, so that an idle thread runs one of the two (queue
/// invariant 7), in a task of its own (invariant 8).
async fn step_aside_from_host() {
    ASK.set(Ask::Leave);
    step_aside().await;
}

/// A worker on its way into the host or in it, with the home its shell waits at (invariant 8).
type Lent = (Worker, Arc<Home<Worker>>);

/// A worker on a task of its own, on a runtime with threads to spare (invariant 8). While its
/// worker is in the host, the shell waits at its `Home` for it to come back.
struct Shell {
    inner: Arc<Inner>,
    worker: Option<Worker>,
    home: Arc<Home<Worker>>,
}

impl Drop for Shell {
    fn drop(&mut self) {
        // A worker lent to the host is dropped there, or by the host's send-back, once it finds the
        // shell gone; one sent back and not yet taken is dropped here, outside the lock.
        drop(self.home.close());
    }
}

impl Future for Shell {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = &mut *self;
        if this.worker.is_none() {
            match std::task::ready!(this.home.poll_back(cx)) {
                Some(worker) => this.worker = Some(worker),
                None => return std::task::Poll::Ready(()),
            }
        }
        let worker = this
            .worker
            .as_mut()
            .expect("a shell polls its worker while it has it");
        // Polled at once when it comes back: it waited on the waker of the host.
        ASK.set(Ask::Stay);
        if worker.as_mut().poll(cx).is_ready() {
            this.worker = None;
            return std::task::Poll::Ready(());
        }
        if ASK.replace(Ask::Stay) == Ask::Join
            && let Some(worker) = this.worker.take()
        {
            // Waits for it before it goes: the host may send it back before this poll returns.
            this.home.lend(cx.waker());
            if let Err(worker) = this.inner.adopt(worker, &this.home) {
                this.worker = Some(worker);
            }
        }
        std::task::Poll::Pending
    }
}

/// The workers of a pool whose jobs wait, polled by one tokio task, each through a waker of its own
/// (invariant 8).
struct Host {
    inner: Arc<Inner>,
    workers: Vec<Option<(Worker, Arc<Home<Worker>>)>>,
    free: Vec<usize>,
    places: Places,
    /// It returned, having found nothing to hold, and gave the intake up.
    ended: bool,
    /// Picks the polls it times, and weighs the long ones (invariant 8).
    picker: Picker,
    long_polls: LongPolls,
}

impl Future for Host {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = &mut *self;
        let arrivals = this.inner.hosting.arrivals(cx.waker());
        let mut woken = this.places.take(cx.waker());
        for worker in arrivals {
            let place = match this.free.pop() {
                Some(place) => place,
                None => {
                    this.workers.push(None);
                    this.workers.len() - 1
                }
            };
            this.workers[place] = Some(worker);
            // Polled at once: it waited on the waker of the task it came from.
            woken |= 1 << place;
        }
        while woken != 0 {
            let place = woken.trailing_zeros() as usize;
            woken &= woken - 1;
            let Some((worker, _)) = this.workers[place].as_mut() else {
                // Woken by a waker an earlier worker of the place kept.
                continue;
            };
            ASK.set(Ask::Stay);
            let waker = this.places.waker(place);
            let timed = this.picker.pick().then(Stamp::now);
            let ready = worker
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
                .is_ready();
            if let Some(start) = timed
                && this.long_polls.count(start, start.elapsed().1)
            {
                this.inner.spread.store(true, Ordering::Relaxed);
            }
            let leave =
                ASK.replace(Ask::Stay) == Ask::Leave || this.inner.spread.load(Ordering::Relaxed);
            if !ready && !leave {
                continue;
            }
            let (worker, home) = this.workers[place]
                .take()
                .expect("the place was polled just now");
            this.free.push(place);
            this.inner.hosting.left();
            // Dropped outside every lock: a worker's drop counts its job and may abort the pool.
            let unclaimed = match ready {
                true => {
                    drop(worker);
                    home.close()
                }
                false => home.send_back(worker),
            };
            drop(unclaimed);
        }
        if !this.inner.hosting.end_if_empty() {
            return std::task::Poll::Pending;
        }
        this.ended = true;
        std::task::Poll::Ready(())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.ended {
            // It ended with nothing to hold: a host started since owns the intake.
            return;
        }
        let inbox = (self.inner.hosting).abandon(self.workers.iter().flatten().count());
        // Dropped outside the lock: a worker's drop counts its job and may abort the pool. Each
        // shell then ends.
        let held = self.workers.iter_mut().filter_map(Option::take);
        for (worker, home) in inbox.into_iter().chain(held) {
            drop(worker);
            drop(home.close());
        }
    }
}

/// The most jobs a worker takes from the queue in one go (invariant 6).
const MAX_RUN: usize = 16;

/// Takes a worker makes without waiting before it yields to its runtime (invariant 7): as many as
/// tokio's coop budget lets a task receive from its channels in one poll.
const TAKES_BEFORE_YIELD: u32 = 128;

/// `threads`: the worker threads of the runtime the worker runs on.
async fn worker(mut alive: Alive, threads: usize) {
    // A clone, so that `alive` can be marked as it returns while the seat still borrows the pool.
    let inner = &alive.inner.clone();
    let tally: &Tally = alive
        .tally
        .as_deref()
        .expect("a worker is enrolled until it is gone");
    // Dropped before `alive`, whether the worker ends or is aborted: it leaves the queue first.
    let mut seat = Sitting(&inner.queue, inner.queue.seat());
    // Each job gets a clone of this: an alias of its own keeps the workers, on every thread, from
    // moving one reference count between them.
    let ctx = inner.jobs_ctx.alias();
    let mut last = LastJob::Unknown;
    let mut clock = PollClock::default();
    // Dropped before `seat` and `alive`, and after any job running: what it still holds is counted
    // and its places freed (invariant 6).
    let mut hands = Hands {
        inner,
        tally,
        jobs: VecDeque::with_capacity(MAX_RUN),
        done: 0,
    };
    // The last job finished at its first poll (on a runtime with threads to spare, within
    // `LONG_POLL`): the next ones are taken in a run (invariant 6).
    let mut quick = false;
    // Takes since the worker last waited or yielded (invariant 7).
    let mut takes = 0;
    loop {
        // A worker whose queue never empties still hands its thread back to the runtime now and
        // then (invariant 7), freeing the places it holds first.
        if takes == TAKES_BEFORE_YIELD {
            inner.queue.release(std::mem::take(&mut hands.done));
            clock.waited();
            takes = 0;
            tokio::task::yield_now().await;
        }
        takes += 1;
        if quick {
            // The retirement check, as a worker's take makes it; a worker that does not park needs
            // no lock for it (invariant 3).
            if inner.headcount.retire_one() {
                alive.ended = true;
                return;
            }
            let done = std::mem::take(&mut hands.done);
            match (inner.queue).release_and_try_take_many(
                done,
                &mut seat.1,
                MAX_RUN,
                1,
                &mut hands.jobs,
            ) {
                Some(true) => {
                    // Whatever it left behind, it woke a worker for (queue invariant 4).
                    seat.1.handed_on = false;
                    let timed = (threads > 1).then_some(&mut clock);
                    let ended = hands.run(&ctx, timed).await;
                    quick = ended == RunEnd::Quick;
                    seat.1.eager = ended == RunEnd::Waited;
                    last = match ended {
                        RunEnd::Quick => LastJob::Quick,
                        RunEnd::Waited => LastJob::Unknown,
                        RunEnd::Long => {
                            // The worker woken for the jobs given back sits in this thread's
                            // next-task slot, which no other thread takes from: stepping aside lets
                            // the idle thread take one of the two (queue invariant 7).
                            step_aside_from_host().await;
                            LastJob::Long
                        }
                    };
                    if ended != RunEnd::Quick {
                        clock.waited();
                        takes = 0;
                    }
                    continue;
                }
                Some(false) => {
                    inner.headcount.ended();
                    alive.ended = true;
                    return;
                }
                // Nothing queued: the worker waits for the next job below.
                None => {}
            }
        }
        // Made before the take, which puts the job straight into it: the job is polled from the
        // place it was taken into, never moved.
        let mut running = Running {
            job: Held {
                job: None,
                inner,
                tally,
                ctx: &ctx,
                started: false,
                ended: false,
            },
            owed: None,
            waited: false,
            saturated: false,
            clock: None,
            first_poll: LastJob::Unknown,
        };
        // The retirement check runs under the queue's lock, before the worker parks (invariant 3).
        let took = std::future::poll_fn(|cx| {
            let took = (inner.queue).poll_take(
                &mut seat.1,
                cx,
                &mut running.job.job,
                || inner.headcount.retire_one(),
                |searching| inner.busy.hand_on_now(threads, last, searching),
            );
            if took.is_pending() {
                ASK.set(Ask::Leave);
                clock.waited();
                takes = 0;
            }
            took
        })
        .await;
        match took {
            Took::Job(owed) => {
                running.owed = owed.then_some(&inner.queue);
                running.saturated = seat.1.saturated;
            }
            Took::Stop => {
                alive.ended = true;
                return;
            }
            Took::Closed => {
                // Closed and empty: the pool is draining or stopped.
                inner.headcount.ended();
                alive.ended = true;
                return;
            }
        }
        if std::mem::take(&mut seat.1.handed_on) {
            // The worker it woke sits in this thread's next-task slot, which no other thread takes
            // from: stepping aside puts this worker in the thread's queue instead, where an idle
            // thread takes it (queue invariant 7).
            step_aside_from_host().await;
            clock.waited();
            takes = 0;
        }
        running.job.start();
        // Timed only with threads to hand on to, and after a job that did not wait: after one that
        // did, the worker hands the jobs behind this one on as it takes the next anyway (queue
        // invariant 4).
        running.clock = (threads > 1 && !seat.1.eager).then_some(&mut clock);
        (&mut running).await;
        let (waited, first_poll) = (running.waited, running.first_poll);
        // The job ended: dropping it now frees what it held before the worker looks for the next.
        drop(running);
        seat.1.eager = waited;
        last = first_poll;
        quick = !waited && (threads == 1 || first_poll == LastJob::Quick);
        if waited {
            clock.waited();
            takes = 0;
        }
    }
}

/// How a run of jobs ended (invariant 6).
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunEnd {
    /// Every job finished at its first poll (within `LONG_POLL` where timed): the next take is a run.
    Quick,
    /// A job waited, or the pool stopped.
    Waited,
    /// A job finished at its first poll but held its thread `LONG_POLL` or more: the jobs behind it
    /// went back to the queue.
    Long,
}

/// Jobs a worker took in one go and has not started, and the places of those it started since
/// (invariant 6). Dropped with its worker, it counts the jobs it still holds as never started, then
/// drops them and frees every place it holds.
struct Hands<'a> {
    inner: &'a Inner,
    tally: &'a Tally,
    jobs: VecDeque<JobFuture>,
    /// Places of jobs started from this run, freed with the next take, or when a job waits.
    done: usize,
}

impl<'a> Hands<'a> {
    /// Runs the jobs in hand one after another while each finishes at its first poll, and, with a
    /// `clock` (a runtime with threads to spare), within `LONG_POLL`. The first job that waits ends
    /// the run before it waits, the first that holds its thread longer ends it as it finishes: the
    /// jobs behind it go back to the front of the queue, where another worker, woken for them, takes
    /// them.
    async fn run(&mut self, ctx: &'a Context, mut clock: Option<&mut PollClock>) -> RunEnd {
        let inner = self.inner;
        let tally = self.tally;
        loop {
            // A job of the run may have aborted the pool (or dropped it): the jobs still in hand
            // never start, as the queue's would not (the worker's drop counts them).
            if inner.stopping.load(Ordering::Acquire) {
                return RunEnd::Waited;
            }
            let Some(job) = self.jobs.pop_front() else {
                return RunEnd::Quick;
            };
            self.done += 1;
            // A job that finishes at its first poll is timed from its start to its end.
            let start = clock.as_deref_mut().map(PollClock::start);
            let mut job = Held {
                job: Some(job),
                inner,
                tally,
                ctx,
                started: false,
                ended: false,
            };
            job.start();
            let mut running = InRun {
                job,
                hands: self,
                waited: false,
            };
            (&mut running).await;
            if running.waited {
                return RunEnd::Waited;
            }
            drop(running);
            if let (Some(clock), Some(start)) = (clock.as_deref_mut(), start)
                && clock.end(start, true) == LastJob::Long
            {
                self.give_back();
                return RunEnd::Long;
            }
        }
    }

    /// Frees the places of the jobs started, and gives the jobs not started back to the queue (they
    /// keep theirs), which wakes a worker for them. After an abort drained the queue they stay in
    /// hand and are dropped here, never started.
    fn give_back(&mut self) {
        let queue = &self.inner.queue;
        queue.release(std::mem::take(&mut self.done));
        if !queue.give_back(&mut self.jobs) {
            self.forfeit();
        }
    }

    /// Counts the jobs in hand as never started, drops them, and frees every place the worker holds.
    fn forfeit(&mut self) {
        // Counted before they are dropped: a resolved handle is always already in the metrics.
        for _ in 0..self.jobs.len() {
            self.inner.counters.never_started_by(self.tally);
        }
        let held = self.done + self.jobs.len();
        self.done = 0;
        self.jobs.clear();
        self.inner.queue.release(held);
    }
}

impl Drop for Hands<'_> {
    fn drop(&mut self) {
        self.forfeit();
    }
}

thread_local! {
    /// The run of jobs whose job this thread is polling, if any: the address of its pool's `Inner`
    /// and the places the run holds for the jobs it started (invariant 6); `(0, 0)` otherwise.
    static RUN: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Takes back from `RUN` the places the run still holds when a job's poll ends, however it ends (a
/// tracing subscriber's panic unwinds through it), so that the worker never frees a place twice.
struct RunPlaces<'a>(&'a mut usize);

impl Drop for RunPlaces<'_> {
    fn drop(&mut self) {
        *self.0 = RUN.replace((0, 0)).1;
    }
}

/// A job of a run on its worker (invariant 6). The first time it waits, the run ends: the places
/// of the jobs started are freed and the jobs in hand behind it go back to the queue.
struct InRun<'a, 'h> {
    job: Held<'a>,
    hands: &'h mut Hands<'a>,
    /// The job returned `Pending` at least once.
    waited: bool,
}

impl Future for InRun<'_, '_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = &mut *self;
        if this.waited {
            return this.job.poll(cx);
        }
        // While it runs, the job's own pool can find the places the run holds (invariant 6).
        RUN.set((std::ptr::from_ref(this.hands.inner).addr(), this.hands.done));
        let places = RunPlaces(&mut this.hands.done);
        let polled = this.job.poll(cx);
        drop(places);
        if polled.is_pending() {
            this.waited = true;
            // Jobs of the run go back to the queue behind it: a backlog (invariant 8).
            if !this.hands.jobs.is_empty() {
                ASK.set(Ask::Join);
            }
            this.hands.give_back();
        }
        polled
    }
}

/// A job on its worker. If the worker owes the jobs queued behind it a worker, the first time the
/// job waits it wakes one for them (queue invariant 4); a job that finishes at once lets its worker
/// come straight back for the next.
struct Running<'a> {
    job: Held<'a>,
    owed: Option<&'a Queue<JobFuture>>,
    /// The job returned `Pending` at least once.
    waited: bool,
    /// Its take freed a place a submitter was waiting for (`Seat::saturated`): if it waits, its
    /// worker joins the host (invariant 8).
    saturated: bool,
    /// Times the first poll, if it is to be timed.
    clock: Option<&'a mut PollClock>,
    /// What the job's first poll showed (queue invariant 7).
    first_poll: LastJob,
}

impl Future for Running<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = &mut *self;
        let polled = match this.waited {
            true => this.job.poll(cx),
            false => match this.clock.take() {
                None => this.job.poll(cx),
                Some(clock) => {
                    let start = clock.start();
                    let polled = this.job.poll(cx);
                    this.first_poll = clock.end(start, polled.is_ready());
                    polled
                }
            },
        };
        if polled.is_pending() && !self.waited && self.saturated {
            ASK.set(Ask::Join);
        }
        if polled.is_pending() {
            self.waited = true;
            if let Some(queue) = self.owed.take() {
                queue.pass_on();
            }
        }
        polled
    }
}

/// A worker's seat at the queue, given up when the worker ends or is dropped.
struct Sitting<'a>(&'a Queue<JobFuture>, Seat);

impl Drop for Sitting<'_> {
    fn drop(&mut self) {
        self.0.leave(&self.1);
    }
}
