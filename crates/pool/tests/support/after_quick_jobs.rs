//! A pool whose workers have run a stream of quick jobs and parked again, as after a burst of them.

use std::time::Duration;

use bounded_pool::Pool;

/// The quick jobs run before the pool is handed over.
pub(crate) const QUICK_JOBS: u64 = 2_000;

/// A pool of `workers` and a queue of `queue`, after `QUICK_JOBS` jobs that finish at once, with
/// every worker parked again (multi-thread runtime, real clock).
pub(crate) async fn pool_after_quick_jobs(workers: usize, queue: usize) -> Pool {
    let pool = Pool::builder()
        .workers(workers)
        .queue(queue)
        .build()
        .unwrap();
    for _ in 0..QUICK_JOBS {
        pool.submit_detached(|_ctx| async { Ok::<_, String>(()) })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    pool
}
