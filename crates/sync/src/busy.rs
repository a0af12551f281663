//! How many tasks of one kind are being polled right now, and how long a job's first poll held its
//! thread.
//!
//! On a multi-thread runtime, [`Busy`] is how many worker threads a pool's workers or a group's
//! runners keep busy. A worker that takes a job and leaves others queued asks
//! [`Busy::hand_on_now`] whether to wake another worker for them at once, instead of when its job
//! first waits: yes when a thread is free and the job may compute without awaiting, so that such a
//! job (one that burns CPU) does not hold back the jobs behind it while a thread sits idle; no when
//! its last job finished at once and quickly, since then the next likely will too, and waking another
//! thread for jobs that each take a few hundred nanoseconds costs more than running them one after
//! another.

use std::time::{Duration, Instant};

use crate::atomic::{AtomicUsize, Ordering};

/// A first poll that holds its thread at least this long counts as computing ([`LastJob::Long`]):
/// long enough that handing the jobs behind it to another thread costs little beside it.
pub const LONG_POLL: Duration = Duration::from_micros(10);

/// What a worker's last job showed at its first poll, which is what the worker expects of the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LastJob {
    /// No job yet, or its first poll was not timed (one thread, or the job before it waited).
    #[default]
    Unknown,
    /// Its first poll took less than [`LONG_POLL`].
    Quick,
    /// Its first poll held the thread for [`LONG_POLL`] or more.
    Long,
}

impl LastJob {
    /// What a timed poll showed: `Long` when [`LONG_POLL`] had passed.
    fn after(long: bool) -> Self {
        match long {
            true => LastJob::Long,
            false => LastJob::Quick,
        }
    }
}

/// Times the first polls of a worker's jobs. While jobs follow each other without the worker
/// waiting, the end of one is the start of the next, so the clock is read once per job. The clock is
/// the CPU's counter once it is calibrated ([`crate::clock::counter_if_ready`], which never makes a
/// runtime thread wait for that), `std::time::Instant` until then; a poll is timed from start to end
/// on one of the two.
#[derive(Debug, Default)]
pub struct PollClock {
    /// When the last timed poll ended, if the job ended with it and the worker has not waited since.
    last_end: Option<Stamp>,
}

/// When a first poll began: a reading of the counter, or of the system clock.
#[derive(Clone, Copy, Debug)]
pub struct Stamp(Reading);

#[derive(Clone, Copy, Debug)]
enum Reading {
    Counter(&'static quanta::Clock, u64),
    System(Instant),
}

impl Stamp {
    /// Now: the CPU's counter once it is calibrated, the system clock until then.
    pub fn now() -> Self {
        match crate::clock::counter_if_ready() {
            Some(counter) => Stamp(Reading::Counter(counter, counter.raw())),
            None => Stamp(Reading::System(Instant::now())),
        }
    }

    /// What the time since `self` shows: [`LastJob::Long`] once [`LONG_POLL`] has passed.
    pub fn since(self) -> LastJob {
        // In the loom models every poll holds its thread long, so that they take the paths such a
        // poll takes.
        #[cfg(bounded_loom)]
        return LastJob::Long;
        #[cfg(not(bounded_loom))]
        LastJob::after(self.later(LONG_POLL).1)
    }

    /// Now, on the same clock as `self`, and the time since `self`.
    pub fn elapsed(self) -> (Self, Duration) {
        match self.0 {
            Reading::Counter(counter, start) => {
                let now = counter.raw();
                let nanos = counter.delta_as_nanos(start, now);
                (
                    Stamp(Reading::Counter(counter, now)),
                    Duration::from_nanos(nanos),
                )
            }
            Reading::System(start) => {
                let now = Instant::now();
                (Stamp(Reading::System(now)), now.duration_since(start))
            }
        }
    }

    /// Now, on the same clock as `self`, and whether `at_least` has passed since `self`.
    fn later(self, at_least: Duration) -> (Self, bool) {
        let (now, spent) = self.elapsed();
        (now, spent >= at_least)
    }
}

impl PollClock {
    /// The worker waited (it parked or yielded): the next start is read afresh.
    pub fn waited(&mut self) {
        self.last_end = None;
    }

    /// A first poll begins.
    pub fn start(&mut self) -> Stamp {
        self.last_end.take().unwrap_or_else(Stamp::now)
    }

    /// The first poll that began at `start` ended, with its job (`finished`) or not.
    pub fn end(&mut self, start: Stamp, finished: bool) -> LastJob {
        let (now, long) = start.later(LONG_POLL);
        if finished {
            self.last_end = Some(now);
        }
        LastJob::after(long)
    }
}

/// A count of the polls in progress. Each poll holds a [`Polled`] guard for as long as it runs.
///
/// The count sits on a cache line of its own (two, with the adjacent-line prefetch): every poll
/// moves it, and nothing else should move with it.
///
/// # Examples
///
/// ```
/// use bounded_sync::busy::Busy;
///
/// let busy = Busy::default();
/// {
///     let _polled = busy.enter();
///     assert_eq!(busy.now(), 1);
/// }
/// assert_eq!(busy.now(), 0);
/// ```
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Busy {
    polled: AtomicUsize,
}

/// One poll in progress, counted in its [`Busy`] until dropped (also when the poll unwinds).
#[derive(Debug)]
#[must_use = "the poll is counted only while the guard lives"]
pub struct Polled<'a>(&'a Busy);

impl Busy {
    /// Counts a poll until the guard is dropped.
    pub fn enter(&self) -> Polled<'_> {
        // SeqCst, as `now`: of two workers entering at once on two threads, each sees the other.
        self.polled.fetch_add(1, Ordering::SeqCst);
        Polled(self)
    }

    /// The polls in progress, including the caller's own if it holds a guard.
    #[inline]
    pub fn now(&self) -> usize {
        self.polled.load(Ordering::SeqCst)
    }

    /// Whether a worker of a runtime with `threads` threads, holding a guard, that takes a job and
    /// leaves others queued wakes another worker for them at once. Only while a thread is free (fewer
    /// polls in progress than threads), and only when the job may compute: its last job's first poll
    /// was long, or the worker was just woken (`searching`) with no quick job just before.
    #[inline]
    pub fn hand_on_now(&self, threads: usize, last: LastJob, searching: bool) -> bool {
        let may_compute = match last {
            LastJob::Long => true,
            LastJob::Unknown => searching,
            LastJob::Quick => false,
        };
        threads > 1 && may_compute && self.now() < threads
    }
}

/// Yields once by waking itself, which puts the task at the back of its thread's queue, where an idle
/// thread (which tokio then wakes) can take it. A worker that has just woken another for the jobs
/// behind its own steps aside before it runs a job that may compute: the one it woke sits in this
/// thread's next-task slot, which no other thread takes from, and would otherwise wait there until the
/// job ends. (`tokio::task::yield_now` hands its wake-up to the runtime, which makes it only once the
/// thread has run out of other work: the task would stay where it is.)
pub fn step_aside() -> impl Future<Output = ()> {
    let mut stepped = false;
    std::future::poll_fn(move |cx| {
        if std::mem::replace(&mut stepped, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
}

impl Drop for Polled<'_> {
    fn drop(&mut self) {
        self.0.polled.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use super::{Busy, LONG_POLL, LastJob, PollClock, Reading, Stamp};

    #[test]
    fn counts_each_poll_while_its_guard_lives() {
        let busy = Busy::default();
        let first = busy.enter();
        let second = busy.enter();
        assert_eq!(busy.now(), 2);
        drop(first);
        assert_eq!(busy.now(), 1);
        drop(second);
        assert_eq!(busy.now(), 0);
    }

    #[test]
    fn hands_on_only_with_a_thread_free_and_a_job_that_may_compute() {
        let busy = Busy::default();
        let _me = busy.enter();
        // A thread is free (one poll of two threads).
        assert!(busy.hand_on_now(2, LastJob::Long, false));
        assert!(busy.hand_on_now(2, LastJob::Unknown, true));
        assert!(!busy.hand_on_now(2, LastJob::Unknown, false));
        assert!(!busy.hand_on_now(2, LastJob::Quick, true));
        // One thread, or every thread busy: never.
        assert!(!busy.hand_on_now(1, LastJob::Long, true));
        let _other = busy.enter();
        assert!(!busy.hand_on_now(2, LastJob::Long, true));
    }

    #[test]
    fn a_first_poll_that_holds_its_thread_counts_as_long() {
        let mut clock = PollClock::default();
        let start = clock.start();
        std::thread::sleep(LONG_POLL * 2);
        assert_eq!(clock.end(start, true), LastJob::Long);
        // The next job starts where the last one ended: a sleep in between, with no wait reported,
        // counts against it.
        let next = clock.start();
        std::thread::sleep(LONG_POLL * 2);
        assert_eq!(clock.end(next, false), LastJob::Long);
        // A job that did not end with its poll, or a wait, leaves the next start to a fresh read:
        // the sleep before it does not count.
        let last = clock.start();
        assert_eq!(clock.end(last, true), LastJob::Quick);
        std::thread::sleep(LONG_POLL * 2);
        clock.waited();
        let fresh = clock.start();
        assert_eq!(clock.end(fresh, true), LastJob::Quick);
    }

    #[test]
    fn once_the_counter_is_calibrated_polls_are_timed_on_it() {
        while crate::clock::counter_if_ready().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut clock = PollClock::default();
        let start = clock.start();
        assert!(matches!(start.0, Reading::Counter(..)), "{start:?}");
        assert_eq!(clock.end(start, true), LastJob::Quick);
        let next = clock.start();
        std::thread::sleep(LONG_POLL * 2);
        assert_eq!(clock.end(next, true), LastJob::Long);
    }

    #[test]
    fn a_poll_started_on_the_system_clock_ends_on_it() {
        let start = Stamp(Reading::System(std::time::Instant::now()));
        std::thread::sleep(LONG_POLL * 2);
        let (end, long) = start.later(LONG_POLL);
        assert!(long);
        assert!(matches!(end.0, Reading::System(_)));
    }

    #[test]
    fn elapsed_measures_on_the_clock_it_started_on_and_restarts_there() {
        while crate::clock::counter_if_ready().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let gap = std::time::Duration::from_millis(20);
        for start in [
            Stamp::now(),
            Stamp(Reading::System(std::time::Instant::now())),
        ] {
            std::thread::sleep(gap);
            let (now, spent) = start.elapsed();
            // Within the counter's calibration of the sleep, which is never shorter than asked.
            assert!(spent >= gap * 99 / 100, "{spent:?} of a sleep of {gap:?}");
            assert_eq!(
                std::mem::discriminant(&now.0),
                std::mem::discriminant(&start.0)
            );
            // The time since the new reading starts afresh.
            assert!(now.elapsed().1 < spent);
        }
    }

    #[test]
    fn a_poll_that_unwinds_is_no_longer_counted() {
        let busy = Busy::default();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _polled = busy.enter();
            panic!("a job panicked past its worker");
        }));
        assert!(unwound.is_err());
        assert_eq!(busy.now(), 0);
    }
}
