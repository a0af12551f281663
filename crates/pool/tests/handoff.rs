//! How queued jobs reach workers: a job that waits hands the jobs queued behind it to another worker
//! before it waits, so jobs that wait on each other all run at once. (That jobs which finish at once
//! wake no other worker is checked on the queue itself, in `src/queue.rs`.)

use std::sync::Arc;
use std::time::Duration;

use bounded_pool::Pool;
use tokio::sync::Barrier;

/// Lets every worker of a new pool reach the queue and park on it (current_thread).
async fn let_workers_park() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// Queues `n` jobs at once (no worker runs until the caller yields), each waiting at a barrier of
/// `n`: they can only end if all `n` run at the same time.
fn queue_meeting_jobs(pool: &Pool, n: usize) {
    let barrier = Arc::new(Barrier::new(n));
    for _ in 0..n {
        let barrier = barrier.clone();
        pool.try_submit_detached(move |_ctx| async move {
            barrier.wait().await;
            Ok::<_, String>(())
        })
        .expect("room for every job");
    }
}

#[tokio::test(start_paused = true)]
async fn queued_jobs_that_wait_all_run_at_once() {
    let pool = Pool::builder().workers(4).queue(4).build().unwrap();
    let_workers_park().await;
    // Twice: the second time every worker's last job waited, and it hands on the search as it takes
    // a job rather than when the job waits.
    for round in 0..2u64 {
        queue_meeting_jobs(&pool, 4);
        // On the paused clock, a deadlock (a job queued with its worker still parked) fires the
        // timeout at once instead of hanging.
        tokio::time::timeout(Duration::from_secs(60), async {
            while pool.metrics().completed < 4 * (round + 1) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("round {round}: the queued jobs never all ran at once"));
    }
    assert_eq!(pool.shutdown().await.completed, 8);
}

#[test]
fn queued_jobs_that_wait_all_run_at_once_on_a_multi_thread_runtime() {
    for round in 0..30 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::spawn(async move {
                let pool = Pool::builder().workers(8).queue(8).build().unwrap();
                for batch in 1..=3 {
                    queue_meeting_jobs(&pool, 8);
                    let met = tokio::time::timeout(Duration::from_secs(10), async {
                        while pool.metrics().completed < 8 * batch {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    })
                    .await;
                    assert!(
                        met.is_ok(),
                        "round {round}: the queued jobs never all ran at once"
                    );
                }
                assert_eq!(pool.shutdown().await.completed, 24);
            })
            .await
            .unwrap();
        });
    }
}
