//! A worker: its loop of takes from the queue, its runs of quick jobs (invariant 6) and its yields
//! (invariant 7). The invariants cited are the pool's, in `inner.rs`.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bounded_cancel::Context;
use bounded_sync::busy::{LastJob, PollClock};
use bounded_sync::queue::{Queue, Seat, Took};

use crate::host::{ASK, Ask, Shell, step_aside_from_host};
use crate::inner::Inner;
use crate::job::{Held, JobFuture};
use crate::metrics::{Enrolled, Tally};

impl Inner {
    /// Starts `n` workers, each counted before it exists (invariant 5).
    pub(crate) fn spawn_workers(self: &Arc<Self>, n: usize) {
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
                _ => self
                    .runtime
                    .spawn(self.tasks.track(Shell::new(self.clone(), worker))),
            })
            .collect();
        self.keep_handles(spawned);
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

/// A worker, counted in the pool's `busy` while it is polled on a runtime with threads to spare
/// (queue invariant 7).
pub(crate) struct CountPolls<F: ?Sized> {
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
pub(crate) type Worker = Pin<Box<CountPolls<dyn Future<Output = ()> + Send>>>;

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
                polled: false,
                ended: false,
            },
            owed: None,
            waited: false,
            saturated: false,
            clock: None,
            first_poll: LastJob::Unknown,
        };
        // The retirement check runs under the queue's lock, before the worker parks (invariant 3).
        // A job taken leaves the queue's count there too, before its place is free again, so that
        // `metrics()` never shows more queued than the queue holds.
        let took = std::future::poll_fn(|cx| {
            let took = (inner.queue).poll_take(
                &mut seat.1,
                cx,
                &mut running.job.job,
                || inner.headcount.retire_one(),
                |searching| inner.busy.hand_on_now(threads, last, searching),
                || inner.counters.taken(tally),
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
                inner.counters.exported_taken();
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
                polled: false,
                ended: false,
            };
            job.take_from_hand();
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
            self.inner.counters.never_started_in_hand(self.tally);
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
    pub(crate) static RUN: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
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
