//! Helpers shared by the criterion benches in `benches/`.

use tokio::runtime::{Builder, Runtime};

/// The two runtimes every case runs on: multi-thread with 2 workers, and current_thread, with their names.
///
/// # Panics
///
/// Panics if the operating system refuses to start a runtime's threads.
pub fn runtimes() -> [(&'static str, Runtime); 2] {
    build(false)
}

/// [`runtimes`] with tokio's time driver enabled, for benches that sleep or wait on timers.
///
/// # Panics
///
/// Panics if the operating system refuses to start a runtime's threads.
pub fn timed_runtimes() -> [(&'static str, Runtime); 2] {
    build(true)
}

fn build(time: bool) -> [(&'static str, Runtime); 2] {
    let mut multi = Builder::new_multi_thread();
    let mut current = Builder::new_current_thread();
    if time {
        multi.enable_time();
        current.enable_time();
    }
    let multi = multi
        .worker_threads(2)
        .build()
        .expect("multi-thread runtime");
    let current = current.build().expect("current_thread runtime");
    [("multi_thread", multi), ("current_thread", current)]
}
