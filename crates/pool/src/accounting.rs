//! How a pool knows every accepted job's fate: the counters, and the count of workers still alive.
//!
//! # Invariants
//!
//! Every accepted job (`submitted`) is in exactly one place at every moment:
//!
//! ```text
//! submitted == queued + running + completed + failed + panicked + cancelled + never_started
//! ```
//!
//! `queued` and `running` are not counters of their own: with `taken` the jobs the workers took out
//! of the queue's count, they are `submitted - taken - never_started` (the `never_started` of the
//! shared counters only: a worker's own are in its `taken`) and `taken - (completed + failed +
//! panicked + cancelled + never_started)` (the workers' own), so the identity holds once each job
//! makes the moves below (see `metrics.rs`). Submitters move `submitted` (and an abort's drain or a
//! refused push moves `never_started`) on counters shared by all; every move a worker makes goes to
//! its own tally, which only that worker writes, and which is added to the sums of workers gone,
//! under the lock that snapshots read the tallies under, when its `Alive` guard is dropped.
//!
//! 1. A job is counted `submitted` (so, queued) in `queue_job`, before any worker can take it.
//! 2. It leaves `queued` exactly once, before its place in the queue is free again: a worker takes
//!    it to run (`taken`, counted under the queue's lock by a take that frees its place, or just
//!    before its first poll for a job started from the run in the worker's hands, whose place is
//!    freed with the next take), or it is dropped unrun by whoever drops it, before the drop: the
//!    queue's drain or a push the queue refused after an abort (the shared `never_started`), or a
//!    worker dropped with jobs still in its hands (`taken` and its own `never_started`).
//! 3. It leaves `running` exactly once: the job counts how it ended as it ends (`poll_job`), or the
//!    `Held` guard of the worker that took it, dropped with that worker, counts it `cancelled` if it
//!    was polled and `never_started` if it was not (the worker task was aborted, or its runtime
//!    dropped it).
//! 4. A worker's `Alive` guard is dropped after everything the worker owned, its job included: it
//!    hands its tally to the sums of workers gone, then counts the worker gone with a release store
//!    that [`Live::none`] reads with acquire: once no worker is alive, every count any worker made is
//!    in those sums and visible to the reader (invariants 2 and 3 for every job a worker held).
//! 5. A report is taken only when no worker is alive and every queue slot is back (a submitter between
//!    its slot and the queue holds one), so with 1–4 no job is queued or running, and the identity
//!    reduces to `submitted == ended()`. `Metrics::check_finished` asserts it in debug builds. A
//!    push the queue refuses hands the job back with its slot still held (`Place::push_or_keep`):
//!    the submitter counts the job `never_started` and only then frees the slot; an abort's drain
//!    counts what it takes under the queue's lock, before their slots come back
//!    (`Queue::drain_counted`). So a report that waits for the slots finds the counts, even when
//!    another thread's abort or refused push is under way (loom models in `bounded_sync::queue`
//!    check both orders).

use bounded_sync::atomic::{AtomicUsize, Ordering};

/// Worker futures that still exist: counted up before each is spawned, down by its `Alive` guard.
#[derive(Debug, Default)]
pub(crate) struct Live {
    count: AtomicUsize,
}

impl Live {
    pub(crate) fn add(&self) {
        // Relaxed: nothing is published by starting a worker; `none` only needs the decrements.
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker is gone (invariant 4).
    pub(crate) fn gone(&self) {
        // Release: the counts this worker made happen before a reader that sees it gone.
        self.count.fetch_sub(1, Ordering::Release);
    }

    /// No worker is alive: every count a worker made is visible (invariant 4).
    pub(crate) fn none(&self) -> bool {
        // Acquire: pairs with `gone`'s release.
        self.count.load(Ordering::Acquire) == 0
    }
}

/// How many workers the pool should run (`target`) and how many have not yet retired (`alive`).
///
/// A worker retires only by a compare-exchange that leaves `alive` at or above `target`, so a shrink
/// never retires more workers than asked, however many look at once. Relaxed throughout: these counts
/// publish no data, and the compare-exchange alone makes each retirement exclusive.
#[derive(Debug)]
pub(crate) struct Headcount {
    alive: AtomicUsize,
    target: AtomicUsize,
}

impl Headcount {
    pub(crate) fn new(target: usize) -> Self {
        Headcount {
            alive: AtomicUsize::new(0),
            target: AtomicUsize::new(target),
        }
    }

    /// A worker starts.
    pub(crate) fn started(&self) {
        self.alive.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker ends for a reason other than retiring (the queue closed).
    pub(crate) fn ended(&self) {
        self.alive.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn target(&self) -> usize {
        self.target.load(Ordering::Relaxed)
    }

    /// Workers started and not retired: the ones that may still take a job.
    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }

    /// Sets the target; returns the one before.
    pub(crate) fn set_target(&self, n: usize) -> usize {
        self.target.swap(n, Ordering::Relaxed)
    }

    /// Claims one retirement if more workers are alive than the target.
    pub(crate) fn retire_one(&self) -> bool {
        let mut alive = self.alive.load(Ordering::Relaxed);
        loop {
            if alive <= self.target.load(Ordering::Relaxed) {
                return false;
            }
            match self.alive.compare_exchange(
                alive,
                alive - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => alive = now,
            }
        }
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::{Headcount, Live};
    use crate::metrics::{Counters, Ended};
    use bounded_sync::Arc;

    /// Three jobs: one completes and one is aborted while running, on two worker threads, each with
    /// its own tally, and one is dropped from the queue by the thread that stops the pool. Whoever
    /// sees every worker gone reads a report in which every job is in exactly one count, and a
    /// snapshot taken while the workers run counts no job twice and no more running than the
    /// workers.
    #[test]
    fn a_report_taken_once_no_worker_is_alive_counts_every_job() {
        loom::model(|| {
            let counters = Arc::new(Counters::default());
            let live = Arc::new(Live::default());
            for _ in 0..3 {
                counters.submitted();
            }
            let worker = |how: Ended| {
                let (counters, live) = (counters.clone(), live.clone());
                live.add();
                let tally = counters.enroll();
                loom::thread::spawn(move || {
                    counters.taken(&tally);
                    counters.ended(&tally, how);
                    counters.leave(tally);
                    live.gone();
                })
            };
            let done = worker(Ended::Completed);
            let aborted = worker(Ended::Cancelled);
            // The stopping thread drops the queue, then waits for the workers (the pool waits on a
            // notification; spinning here lets loom explore every point at which it looks).
            counters.never_started();
            let m = counters.snapshot();
            assert!(m.queued + m.running + m.ended() <= m.submitted, "{m}");
            assert!(m.running <= 2, "two workers: {m}");
            while !live.none() {
                loom::thread::yield_now();
            }
            let m = counters.snapshot();
            // Stated here as well as in `check_finished`, which is a debug assertion (models run in release).
            assert_eq!((m.queued, m.running, m.ended()), (0, 0, m.submitted), "{m}");
            assert_eq!((m.completed, m.cancelled, m.never_started), (1, 1, 1));
            done.join().unwrap();
            aborted.join().unwrap();
        });
    }

    /// Three idle workers look for a retirement at once after a shrink from 3 to 1: exactly two retire.
    #[test]
    fn a_shrink_retires_exactly_the_workers_asked_for() {
        loom::model(|| {
            let headcount = Arc::new(Headcount::new(3));
            for _ in 0..3 {
                headcount.started();
            }
            assert_eq!(headcount.set_target(1), 3);
            let workers: Vec<_> = (0..3)
                .map(|_| {
                    let headcount = headcount.clone();
                    loom::thread::spawn(move || headcount.retire_one())
                })
                .collect();
            let retired = workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .filter(|r| *r)
                .count();
            assert_eq!(retired, 2);
            assert!(!headcount.retire_one(), "one worker stays");
        });
    }
}
