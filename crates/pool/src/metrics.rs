use bounded_sync::atomic::{AtomicU64, Ordering};
use std::fmt;

/// A snapshot of a pool's counters, from [`Pool::metrics`](crate::Pool::metrics).
///
/// Every accepted job is, at any moment, in exactly one of `queued`, `running`, `completed`, `failed`,
/// `panicked`, `cancelled`, `never_started`; the seven add up to `submitted` once the pool is idle (each
/// counter is read on its own, so a snapshot taken mid-flight can be one transition apart). A counter
/// moves before the job's handle resolves, so a resolved handle is always already counted.
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
    /// Dropped from the queue by an abort, a cancelled pool context, or the end of a shutdown's grace.
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
    // Moved by workers. `queued` and `running` are not counted: they are what `submitted` and
    // `started` hold beyond the counts of jobs that left (see `snapshot`), so a job costs three
    // counter moves, on lines that submitters and workers do not share.
    started: Padded,
    completed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    never_started: AtomicU64,
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
            started: Padded::default(),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            never_started: AtomicU64::new(0),
        }
    }

    // Every move is a release and every read in `snapshot` an acquire, read in the reverse order of a
    // job's moves (ended, then started, then submitted): a snapshot that sees a job end also sees it
    // start and be submitted, so the derived counts never go below zero.

    pub(crate) fn submitted(&self) {
        export!(self.submitted());
        self.submitted.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn rejected(&self) {
        export!(self.rejected());
        self.rejected.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn started(&self) {
        export!(self.started());
        self.started.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn never_started(&self) {
        export!(self.never_started());
        self.never_started.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn ended(&self, how: Ended) {
        export!(self.ended(how));
        let counter = match how {
            Ended::Completed => &self.completed,
            Ended::Failed => &self.failed,
            Ended::Panicked => &self.panicked,
            Ended::Cancelled => &self.cancelled,
        };
        counter.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn cancelled(&self) {
        export!(self.ended(Ended::Cancelled));
        self.cancelled.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn snapshot(&self) -> Metrics {
        let load = |counter: &AtomicU64| counter.load(Ordering::Acquire);
        let completed = load(&self.completed);
        let failed = load(&self.failed);
        let panicked = load(&self.panicked);
        let cancelled = load(&self.cancelled);
        let never_started = load(&self.never_started);
        let started = load(&self.started);
        let submitted = load(&self.submitted);
        let ran = completed + failed + panicked + cancelled;
        Metrics {
            submitted,
            queued: submitted.saturating_sub(started + never_started),
            running: started.saturating_sub(ran),
            completed,
            failed,
            panicked,
            cancelled,
            never_started,
            rejected: load(&self.rejected),
        }
    }
}
