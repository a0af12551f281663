//! The CPU's counter (the TSC, read through `quanta`): a few nanoseconds a read, where the system's
//! monotonic clock behind `std::time::Instant` costs several times that, which matters to code that
//! reads the time once per job.
//!
//! `quanta` calibrates the counter against the system clock once per process, spinning until its
//! estimate settles (it caps this at 200 ms; on an idle core it ends within a millisecond, but a
//! thread that other threads keep preempting can spin to the cap). So no caller ever waits for it:
//! [`counter_if_ready`] starts the calibration on a thread of its own at its first call and answers
//! `None` until it is done, and its callers read another clock meanwhile. That thread is the only
//! one this module starts, once per process; it ends as soon as the counter is calibrated, holds
//! nothing else, and nothing waits for it or stops it.
//!
//! Built with `--cfg bounded_loom`, there is no counter: [`counter_if_ready`] always answers `None`.

use std::sync::{Once, OnceLock};
use std::time::Duration;

static COUNTER: OnceLock<quanta::Clock> = OnceLock::new();

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
            .spawn(|| COUNTER.get_or_init(quanta::Clock::new));
    });
    None
}

/// Whether this code runs inside a tokio runtime whose clock is not paused: where the counter may
/// time what tokio's clock would, without taking the choice away from a test that pauses it. A
/// paused clock moves only when its runtime idles or a test advances it, never while this function
/// spins; a running one is the system's monotonic clock, which moves while this function waits for
/// a microsecond to pass. Only a `current_thread` runtime can be paused, so the answer holds for the
/// runtime until a test pauses it later.
pub fn tokio_clock_runs() -> bool {
    if tokio::runtime::Handle::try_current().is_err() {
        return false;
    }
    let tokio_start = tokio::time::Instant::now();
    let real_start = std::time::Instant::now();
    while real_start.elapsed() < Duration::from_micros(1) {
        std::hint::spin_loop();
    }
    tokio::time::Instant::now() != tokio_start
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use tokio::runtime::Builder;

    #[test]
    fn tokio_clock_runs_only_inside_a_runtime_whose_clock_is_not_paused() {
        assert!(!super::tokio_clock_runs(), "outside any runtime");
        let running = Builder::new_current_thread().enable_time().build().unwrap();
        assert!(running.block_on(async { super::tokio_clock_runs() }));
        let multi = Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        assert!(multi.block_on(async { super::tokio_clock_runs() }));
        let paused = Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        assert!(!paused.block_on(async { super::tokio_clock_runs() }));
    }
}
