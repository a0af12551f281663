use bounded_sync::atomic::{AtomicU64, Ordering};
use bounded_sync::{Arc, Mutex};
use slab::Slab;
use std::fmt;

/// A snapshot of a pool's counters, from [`Pool::metrics`](crate::Pool::metrics).
///
/// Every accepted job is, at any moment, in exactly one of `queued`, `running`, `completed`, `failed`,
/// `panicked`, `cancelled`, `never_started`. A snapshot taken while jobs move reads the counters one
/// after another, in an order that keeps it within what the pool can hold: `queued` is never more
/// than the queue's bound and `running` never more than the workers, no job is counted twice, and a
/// job that moved during the read may be missing, so the seven add up to `submitted` or a little
/// less; once the pool is idle they add up to it exactly. A counter moves before the job's handle
/// resolves, so a resolved handle is always already counted.
///
/// # Examples
///
/// ```
/// use bounded_pool::Pool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder().workers(2).queue(4).build().unwrap();
/// pool.submit(|_ctx| async { Ok::<_, String>(()) }).await.unwrap().await.unwrap();
/// let m = pool.metrics();
/// assert_eq!((m.submitted, m.completed), (1, 1));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Jobs accepted into the queue.
    pub submitted: u64,
    /// Accepted and waiting for a worker.
    pub queued: u64,
    /// Taken by a worker and not yet ended.
    pub running: u64,
    /// Returned `Ok`.
    pub completed: u64,
    /// Returned `Err`.
    pub failed: u64,
    /// Panicked.
    pub panicked: u64,
    /// Aborted while running.
    pub cancelled: u64,
    /// Dropped before its first poll, from the queue or by a worker that had taken it, by an abort,
    /// a cancelled pool context, or the end of a shutdown's grace.
    pub never_started: u64,
    /// Submissions refused: pool closed, queue full for `try_submit`, or caller cancelled while waiting.
    pub rejected: u64,
}

impl Metrics {
    /// Jobs that have ended one way or another.
    pub fn ended(&self) -> u64 {
        self.completed + self.failed + self.panicked + self.cancelled + self.never_started
    }
}

impl Metrics {
    /// The pool's accounting identity (see `Pool::start`), once no job is queued or running: every
    /// accepted job ended in exactly one way. Checked in debug builds whenever a report is taken.
    pub(crate) fn check_finished(&self) {
        debug_assert_eq!(
            (self.queued, self.running, self.ended()),
            (0, 0, self.submitted),
            "a finished pool lost count of a job: {self}"
        );
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "submitted {}: completed {}, failed {}, panicked {}, cancelled {}, never started {}, \
             queued {}, running {} (rejected {})",
            self.submitted,
            self.completed,
            self.failed,
            self.panicked,
            self.cancelled,
            self.never_started,
            self.queued,
            self.running,
            self.rejected
        )
    }
}

pub(crate) struct Counters {
    #[cfg(feature = "metrics")]
    pub(crate) exported: crate::export::Exported,
    // Moved by submitters.
    submitted: Padded,
    rejected: Padded,
    /// Jobs dropped unrun by whoever drops them other than a worker: an abort's drain, a push refused.
    never_started: AtomicU64,
    /// Every worker's own counts, and what the workers gone left.
    book: Mutex<Book>,
}

/// A counter on a cache line of its own, so that a submitter's and a worker's moves do not contend.
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

impl std::ops::Deref for Padded {
    type Target = AtomicU64;

    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// The counts of one worker's jobs, moved only by that worker: each move is a load and a store,
/// not a read-modify-write, and no other thread writes the line. (A read-modify-write costs as
/// much as a few dozen plain instructions, and a line that the workers on two threads all move
/// crosses between them at every job.) `queued` and `running` are not counted: they are what
/// `submitted` and `taken` hold beyond the counts of jobs that left (see `snapshot`).
///
/// Not `bounded_sync::tally::Tally`, whose slots are per thread: finding the thread's slot costs
/// each add a thread-local read and a check of the slots, about 90 instructions per job more than a
/// worker writing through the reference it holds, and 2–5 % on quick jobs on current_thread (see
/// *Tried and not kept* in `docs/benchmarks.md`).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Tally {
    /// Jobs this worker took out of the queue's count, each before its place in the queue is
    /// free again: taken from the queue to run, started from the run of jobs in its hands, or
    /// dropped unrun from its hands.
    taken: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    never_started: AtomicU64,
}

impl Tally {
    /// Counts one more. Only the tally's worker calls it, so nothing moves the counter in between.
    fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// Reads `taken`, then the ended counts, then `taken` again. The worker moves `taken` first, so
    /// every job the ended counts hold is in the second `taken`, and the first, less what ended,
    /// is never more than the worker was running when it was read (see [`Counters::snapshot`]).
    fn read(&self) -> Read {
        let load = |counter: &AtomicU64| counter.load(Ordering::Acquire);
        let first_taken = load(&self.taken);
        let mut sums = Sums {
            completed: load(&self.completed),
            failed: load(&self.failed),
            panicked: load(&self.panicked),
            cancelled: load(&self.cancelled),
            never_started: load(&self.never_started),
            taken: 0,
        };
        sums.taken = load(&self.taken);
        // The jobs this worker dropped unrun were taken too, and are not running.
        let left =
            sums.completed + sums.failed + sums.panicked + sums.cancelled + sums.never_started;
        Read {
            sums,
            running: first_taken.saturating_sub(left),
        }
    }
}

/// What one read of a worker's tally found.
struct Read {
    sums: Sums,
    /// The jobs the worker took by the first read of `taken` and had not ended by the read of the
    /// ended counts, or fewer: never more than it was running at one moment of the read.
    running: u64,
}

/// A worker's place in the book: its tally, kept there until the worker is gone.
pub(crate) struct Enrolled {
    key: usize,
    tally: Arc<Tally>,
}

impl std::ops::Deref for Enrolled {
    type Target = Tally;

    fn deref(&self) -> &Tally {
        &self.tally
    }
}

#[derive(Default)]
struct Book {
    /// The tallies of the workers that still exist.
    live: Slab<Arc<Tally>>,
    /// The sums of the tallies of workers gone.
    gone: Sums,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    taken: u64,
    completed: u64,
    failed: u64,
    panicked: u64,
    cancelled: u64,
    never_started: u64,
}

impl std::ops::AddAssign for Sums {
    fn add_assign(&mut self, other: Sums) {
        self.taken += other.taken;
        self.completed += other.completed;
        self.failed += other.failed;
        self.panicked += other.panicked;
        self.cancelled += other.cancelled;
        self.never_started += other.never_started;
    }
}

/// How a job that ran ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ended {
    Completed,
    Failed,
    Panicked,
    /// Returned an error after the pool had cancelled its context: the error is noise of the stop.
    Cancelled,
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new("pool")
    }
}

/// Runs `$call` on the exported handles when the `metrics` feature is on.
macro_rules! export {
    ($self:ident . $call:ident ( $($arg:expr),* )) => {
        #[cfg(feature = "metrics")]
        $self.exported.$call($($arg),*);
    };
}

impl Counters {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &str) -> Self {
        Counters {
            #[cfg(feature = "metrics")]
            exported: crate::export::Exported::new(name),
            submitted: Padded::default(),
            rejected: Padded::default(),
            never_started: AtomicU64::new(0),
            book: Mutex::default(),
        }
    }

    /// A tally for a new worker, read by every snapshot until [`leave`](Counters::leave).
    pub(crate) fn enroll(&self) -> Enrolled {
        let tally = Arc::new(Tally::default());
        let key = self.book.lock().live.insert(tally.clone());
        Enrolled { key, tally }
    }

    /// The worker is gone: its counts move to the sums of workers gone, under the same lock as every
    /// snapshot's reading, so that a snapshot counts them once.
    pub(crate) fn leave(&self, enrolled: Enrolled) {
        let mut book = self.book.lock();
        let tally = book.live.remove(enrolled.key);
        book.gone += tally.read().sums;
    }

    // Every move is a release and every read in `snapshot` an acquire. A job's moves come in the
    // order submitted, taken, ended; how `snapshot` reads them is told there.

    pub(crate) fn submitted(&self) {
        export!(self.submitted());
        self.submitted.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn rejected(&self) {
        export!(self.rejected());
        self.rejected.fetch_add(1, Ordering::Release);
    }

    /// The worker took a job out of the queue's count, to run it. Called before the job's place is
    /// free again (see `snapshot`), for a take that frees it under the queue's lock: so it calls
    /// no recorder, and the worker calls [`exported_taken`](Counters::exported_taken) once the
    /// lock is released.
    pub(crate) fn taken(&self, tally: &Tally) {
        Tally::bump(&tally.taken);
    }

    /// Tells the `metrics` recorder, if any, of a job [`taken`](Counters::taken).
    pub(crate) fn exported_taken(&self) {
        export!(self.taken());
    }

    /// A job dropped unrun by an abort's drain or a refused push.
    pub(crate) fn never_started(&self) {
        export!(self.never_started());
        self.never_started.fetch_add(1, Ordering::Release);
    }

    /// A job in a worker's hands, not yet taken out of the queue's count, that the worker dropped
    /// unrun (it was aborted, or its runtime dropped it): it leaves the queue's count and is never
    /// started, before its place is free again.
    pub(crate) fn never_started_in_hand(&self, tally: &Tally) {
        export!(self.never_started());
        Tally::bump(&tally.taken);
        Tally::bump(&tally.never_started);
    }

    /// A job the worker took to run and dropped before its first poll (the worker was aborted, or
    /// its runtime dropped it): it never started.
    pub(crate) fn never_started_after_take(&self, tally: &Tally) {
        export!(self.never_started_after_take());
        Tally::bump(&tally.never_started);
    }

    pub(crate) fn ended(&self, tally: &Tally, how: Ended) {
        export!(self.ended(how));
        let counter = match how {
            Ended::Completed => &tally.completed,
            Ended::Failed => &tally.failed,
            Ended::Panicked => &tally.panicked,
            Ended::Cancelled => &tally.cancelled,
        };
        Tally::bump(counter);
    }

    /// The counts as one read of them finds them, while jobs may move.
    ///
    /// `queued` and `running` are each read so that neither is ever more than the pool held at one
    /// moment of the read: `submitted` is read before the counts of jobs that left the queue's
    /// count (those only grow, so the difference can only come out smaller), and each worker's
    /// `taken` before its ended counts. A job that moved while the snapshot was read may be in
    /// neither, but none is in two of `queued`, `running` and the ended counts, since each
    /// worker's ended jobs are all in its second read of `taken`, which is what leaves `queued`.
    /// So `queued` never exceeds the queue's bound, `running` never exceeds the workers, and the
    /// seven add up to `submitted` or less (read again last, so that it holds every ended job);
    /// once the pool is idle they add up to it exactly.
    ///
    /// Why `queued` stays within the bound: a job holds a place of the queue from before
    /// `submitted` counts it until after it leaves the queue's count (`taken`, or a shared
    /// `never_started`), and a submitter gets a place freed by a worker or a drain only after that
    /// count, under the queue's lock: so a read of `submitted` that sees a job also sees the counts
    /// that made room for it.
    pub(crate) fn snapshot(&self) -> Metrics {
        let load = |counter: &AtomicU64| counter.load(Ordering::Acquire);
        let submitted_first = load(&self.submitted);
        let (mut sums, running) = {
            let book = self.book.lock();
            let mut sums = book.gone;
            let mut running = 0;
            for (_, tally) in book.live.iter() {
                let read = tally.read();
                sums += read.sums;
                running += read.running;
            }
            (sums, running)
        };
        let shared_never_started = load(&self.never_started);
        sums.never_started += shared_never_started;
        let Sums {
            taken,
            completed,
            failed,
            panicked,
            cancelled,
            never_started,
        } = sums;
        Metrics {
            submitted: load(&self.submitted),
            // The workers' own never-started jobs are in `taken` too; only the others leave here.
            queued: submitted_first.saturating_sub(taken + shared_never_started),
            running,
            completed,
            failed,
            panicked,
            cancelled,
            never_started,
            rejected: load(&self.rejected),
        }
    }
}
