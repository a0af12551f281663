//! Helpers shared by the criterion benches in `benches/`.

use tokio::runtime::{Builder, Runtime};

/// The two runtimes every case runs on: multi-thread with 2 workers, and current_thread, with their names.
///
/// # Panics
///
/// Panics if the operating system refuses to start a runtime's threads.
pub fn runtimes() -> [(&'static str, Runtime); 2] {
    let multi = Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("multi-thread runtime");
    let current = Builder::new_current_thread()
        .build()
        .expect("current_thread runtime");
    [("multi_thread", multi), ("current_thread", current)]
}

/// [`runtimes`] with tokio's time driver enabled, for benches that sleep or wait on timers.
///
/// # Panics
///
/// Panics if the operating system refuses to start a runtime's threads.
pub fn timed_runtimes() -> [(&'static str, Runtime); 2] {
    let multi = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("multi-thread runtime");
    let current = Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("current_thread runtime");
    [("multi_thread", multi), ("current_thread", current)]
}
