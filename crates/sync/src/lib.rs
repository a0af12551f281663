//! The synchronisation primitives of the `bounded` crates, in one place.
//!
//! Every hand-written concurrent mechanism in `bounded` (the pool's accounting, the pipeline's link,
//! the group's task slab, the rate limiter's queue and driver hand-over, the context's cause) takes its
//! locks and atomics from here. Built normally, these are `std`'s. Built with `--cfg bounded_loom`, they
//! are [loom](https://docs.rs/loom)'s, so the crates' loom models explore every interleaving of the
//! real code. (The cfg has its own name because tokio reserves `loom` for its own models.)
//!
//! Beside them, [`queue::Queue`] is the one bounded queue under the pool and the pipeline's stages
//! (places reserved before an item exists, items moved in batches, producers waiting in line, consumers
//! parked); [`line::Line`] is the one first-come, first-served line of tasks waiting for a slot (that
//! queue's producers, a limited group), kept under its owner's lock; [`busy::Busy`] counts the
//! workers being polled, which is how many threads they keep busy; [`places::Places`] gives up to
//! 64 futures polled by one owner a waker each, so that the owner polls only those that were woken;
//! [`tally::Tally`] keeps counters that many threads add to without a locked instruction;
//! [`own::OwnWaits`] tells when the tasks of a group, or the jobs of a pool, all wait to add to it;
//! [`runtime::current`] is how each crate finds the tokio runtime it starts its tasks on, with one
//! message for a call made where there is none, and [`runtime::BoxIfLarge`] says when a task's
//! future is boxed on its own before a crate wraps it, as `tokio::spawn` boxes one; and, with the
//! `metrics` feature, `gauge::SharedGauge` is the one kind of gauge the crates export, summed over
//! every instance under a name and set, so that every exporter reads it.
//!
//! # One rule for locks
//!
//! A critical section only reads and writes the data the lock guards: it never awaits, never calls
//! user code, and never calls `tokio::spawn` or wakes a waker (either may run or schedule other work,
//! and a spawn can wake another runtime worker that then blocks on this lock). Wakers are collected
//! under the lock and woken after it is released; tasks are spawned after it is released.
//!
//! Because nothing that can panic runs under a lock, a poisoned lock still guards consistent data:
//! [`Mutex::lock`] ignores poisoning rather than spreading one panic to every later caller.
//!
//! # Examples
//!
//! ```
//! use bounded_sync::Mutex;
//!
//! let count = Mutex::new(0);
//! *count.lock() += 1;
//! assert_eq!(*count.lock(), 1);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

use std::fmt;

pub mod busy;
pub mod clock;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod gauge;
pub mod line;
pub mod own;
pub mod places;
pub mod queue;
pub mod runtime;
pub mod slots;
pub mod slow;
pub mod tally;

#[cfg(not(bounded_loom))]
pub use std::sync::{Arc, MutexGuard, atomic};

#[cfg(bounded_loom)]
pub use loom::sync::{Arc, MutexGuard, atomic};

/// A mutual-exclusion lock that does not poison: see the [crate docs](crate) for the one rule on what
/// runs under it.
pub struct Mutex<T> {
    #[cfg(not(bounded_loom))]
    inner: std::sync::Mutex<T>,
    #[cfg(bounded_loom)]
    inner: loom::sync::Mutex<T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = bounded_sync::Mutex::new(vec![1]);
    /// assert_eq!(m.lock().len(), 1);
    /// ```
    pub fn new(value: T) -> Self {
        Mutex {
            #[cfg(not(bounded_loom))]
            inner: std::sync::Mutex::new(value),
            #[cfg(bounded_loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Locks the mutex, waiting for it if another thread holds it. A lock poisoned by a panic
    /// elsewhere is taken anyway: no code that can panic runs under these locks.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = bounded_sync::Mutex::new(1);
    /// *m.lock() += 1;
    /// assert_eq!(*m.lock(), 2);
    /// ```
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value, through a unique reference: no locking needed.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut m = bounded_sync::Mutex::new(1);
    /// *m.get_mut() = 5;
    /// assert_eq!(*m.lock(), 5);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Locks a process-wide `static` mutex, ignoring poisoning as [`Mutex::lock`] does. Statics keep
/// `std`'s mutex (loom cannot make a `static`); the rule on what runs under the lock is the same.
///
/// # Examples
///
/// ```
/// static NAMES: std::sync::Mutex<Vec<&str>> = std::sync::Mutex::new(Vec::new());
/// bounded_sync::lock_static(&NAMES).push("worker");
/// assert_eq!(bounded_sync::lock_static(&NAMES).len(), 1);
/// ```
pub fn lock_static<T>(mutex: &'static std::sync::Mutex<T>) -> std::sync::MutexGuard<'static, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex").finish_non_exhaustive()
    }
}
