//! Helpers shared by the criterion benches in `benches/`.

use std::hint::black_box;

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

/// Runs one iteration's work as a task on the runtime, and waits for it.
///
/// Criterion's `to_async` drives a future from the bench thread with `block_on`, which on the
/// multi-thread runtime is not one of its workers: every wake-up of that future would cross to a
/// thread outside the runtime. A service spawns, submits and sends from its tasks, as Go does from
/// its goroutines, so every case, ours and each baseline alike, runs its driver on a worker.
///
/// # Panics
///
/// Panics if the work panics.
pub async fn on_worker<F>(work: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(out) => out,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// About 50 µs of arithmetic that the optimiser cannot remove (2,000 calls in a row took 88–95 ms on
/// the 2-core machine of `docs/benchmarks.md`): the work of an item, job or task that computes
/// without awaiting.
pub fn burn(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}
