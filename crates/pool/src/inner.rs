//! `Inner`: what a pool's handle, its submitters, its workers and its host share, and the pool's
//! invariants, which the crate's files cite (*invariant N* here and in `worker.rs` and `host.rs`,
//! *pool invariant N* elsewhere).
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

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_cancel::live::TaskCounter;
use bounded_sync::Mutex;
use bounded_sync::busy::Busy;
use bounded_sync::own::{OwnWait, OwnWaits};
use bounded_sync::queue::{Place, Queue, Refused};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

use crate::accounting::{Headcount, Live};
use crate::failure::Hook;
use crate::host::Lent;
use crate::intake::Intake;
use crate::job::{JOB_POLLED, JobFuture, JobSpan, JobTask, Submission};
use crate::metrics::Counters;
use crate::report::PoolReport;
use crate::worker::RUN;

pub(crate) struct Inner {
    /// The pool's own context: cancelling it (or a parent) aborts the pool.
    pub(crate) ctx: Context,
    /// What jobs receive: a child of `ctx`, also cancelled alone when a shutdown's grace runs out.
    pub(crate) jobs_ctx: Context,
    pub(crate) capacity: usize,
    /// Accepted jobs, each holding a slot until a worker takes it (invariant 1).
    pub(crate) queue: Queue<JobFuture>,
    pub(crate) counters: Counters,
    pub(crate) hook: Hook,
    /// Workers wanted and workers not yet retired.
    pub(crate) headcount: Headcount,
    /// Worker futures that still exist, counted down by each worker's `Alive` guard when it is dropped.
    pub(crate) live: Live,
    handles: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) supervisor: Mutex<Option<AbortHandle>>,
    pub(crate) exited: Notify,
    /// Set before the pool aborts its own workers, so that a worker dropped without it was dropped
    /// by its runtime (invariant 5).
    pub(crate) stopping: AtomicBool,
    /// Jobs waiting in `submit` for room in their own pool's queue, each holding its worker (see
    /// `bounded_sync::own`).
    own_waits: OwnWaits,
    pub(crate) tasks: TaskCounter,
    /// Where workers whose jobs wait are polled together (invariant 8).
    pub(crate) hosting: Intake<Lent>,
    /// The host's long polls filled its time: its workers leave it, and no worker moves in again
    /// (invariant 8).
    pub(crate) spread: AtomicBool,
    /// Workers being polled right now: the threads the pool keeps busy (queue invariant 7).
    pub(crate) busy: Busy,
    /// The runtime the pool was built on, where every task of the pool runs, whoever starts it
    /// (`resize` may be called from another runtime or from none).
    pub(crate) runtime: Handle,
    /// The pool's name, for its spans and events.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) name: String,
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
    /// Builds the pool's state and starts its workers and its supervisor. How every job is
    /// accounted for: see the invariants in `accounting.rs`.
    pub(crate) fn start(
        workers: usize,
        capacity: usize,
        parent: &Context,
        hook: Hook,
        name: String,
    ) -> Arc<Self> {
        // First: outside a runtime, nothing is made.
        let runtime = bounded_sync::runtime::current("a pool was built");
        let ctx = parent.child();
        let inner = Arc::new(Inner {
            runtime,
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
        inner
    }

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
        let span = JobSpan::new(&self.name);
        // Counted once the job exists: a subscriber that panics making its span leaves no job.
        self.counters.submitted();
        JobTask::boxed(submission, span)
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

    /// Keeps the handles of tasks just spawned, so that an abort finds them.
    pub(crate) fn keep_handles(&self, spawned: Vec<JoinHandle<()>>) {
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
    pub(crate) fn close(&self) {
        self.queue.refuse();
    }

    /// Drops every queued job: each counts as never started and its handle resolves as cancelled.
    pub(crate) fn drop_queue(&self) {
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

    pub(crate) fn abort(&self) {
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
    pub(crate) async fn abort_workers(&self) {
        self.stopping.store(true, Ordering::Release);
        for handle in self.handles.lock().iter() {
            handle.abort();
        }
        self.workers_exited().await;
    }

    /// Panics if the caller is one of the pool's own jobs: `what` waits for every job, the caller's
    /// too, and would never return. The pool is closed first, as the job presumably meant it to be.
    pub(crate) fn refuse_own_job(&self, what: &str) {
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
    pub(crate) async fn finished(&self) -> PoolReport {
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
    pub(crate) fn timeout<F: Future>(&self, within: Duration, fut: F) -> tokio::time::Timeout<F> {
        match Handle::try_current() {
            Ok(_) => tokio::time::timeout(within, fut),
            Err(_) => {
                let _entered = self.runtime.enter();
                tokio::time::timeout(within, fut)
            }
        }
    }

    pub(crate) async fn workers_exited(&self) {
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
