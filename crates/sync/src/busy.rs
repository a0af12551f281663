//! How many tasks of one kind are being polled right now.
//!
//! On a multi-thread runtime this is how many worker threads a pool's workers or a group's runners
//! keep busy. A worker that takes a job and leaves others queued reads it to decide whether another
//! thread is free to run them: if one is, it hands them on at once instead of when its job first
//! waits, so that a job that never waits (one that burns CPU) does not hold back the jobs behind it
//! while a thread sits idle.

use crate::atomic::{AtomicUsize, Ordering};

/// A count of the polls in progress. Each poll holds a [`Polled`] guard for as long as it runs.
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
    pub fn now(&self) -> usize {
        self.polled.load(Ordering::SeqCst)
    }
}

impl Drop for Polled<'_> {
    fn drop(&mut self) {
        self.0.polled.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use super::Busy;

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
