//! The CPU's counter (the TSC, read through `quanta`): a few nanoseconds a read, where the system's
//! monotonic clock behind `std::time::Instant` costs several times that, which matters to code that
//! reads the time once per job.
//!
//! `quanta` calibrates the counter against the system clock once per process, spinning for a while
//! (it caps this at 200 ms; it usually ends within a millisecond). Two ways in:
//!
//! - [`counter_if_ready`] never waits: the first call starts the calibration on a thread of its own,
//!   and it answers `None` until that is done, so that no runtime thread ever spins for it. For
//!   timings that can fall back on `std::time::Instant` meanwhile. That thread is the only one this
//!   module starts, once per process; it ends as soon as the counter is calibrated, holds nothing
//!   else, and nothing waits for it or stops it.
//! - [`counter`] calibrates on the caller's thread if no one has yet (or waits for the calibration
//!   under way). For a time line that must keep one source from its first reading on.
//!
//! Built with `--cfg bounded_loom`, there is no counter: [`counter_if_ready`] always answers `None`.

use std::sync::{Once, OnceLock};

static COUNTER: OnceLock<quanta::Clock> = OnceLock::new();

/// The calibrated counter, calibrating it here first if need be.
pub fn counter() -> &'static quanta::Clock {
    COUNTER.get_or_init(quanta::Clock::new)
}

/// The calibrated counter, or `None` while it is not calibrated yet: the first call starts the
/// calibration on a thread of its own. (Where no thread can be started, it stays `None`.)
///
/// # Examples
///
/// ```
/// let counter = loop {
///     match bounded_sync::clock::counter_if_ready() {
///         Some(counter) => break counter,
///         None => std::thread::yield_now(),
///     }
/// };
/// let start = counter.raw();
/// assert!(counter.delta_as_nanos(start, counter.raw()) < 1_000_000_000);
/// ```
pub fn counter_if_ready() -> Option<&'static quanta::Clock> {
    if cfg!(bounded_loom) {
        return None;
    }
    if let Some(counter) = COUNTER.get() {
        return Some(counter);
    }
    static CALIBRATION: Once = Once::new();
    CALIBRATION.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("bounded counter calibration".into())
            .spawn(counter);
    });
    None
}
