//! How queued jobs reach workers: a job that waits hands the jobs queued behind it to another worker
//! before it waits, so jobs that wait on each other all run at once. (That jobs which finish at once
//! wake no other worker is checked on the queue itself, in `crates/sync/src/queue.rs`.)

#[path = "support/two_threads.rs"]
mod two_threads;
use two_threads::two_thread_runtime;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bounded_pool::Pool;
use tokio::sync::Barrier;

#[path = "../../group/tests/support/cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "../../group/tests/support/gauge.rs"]
#[allow(dead_code)]
mod gauge;

use cpu::{burn, spin_until_all_started};
use gauge::Gauge;

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
        let runtime = two_thread_runtime();
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

/// Jobs that burn CPU without awaiting run on both worker threads at once: a worker busy with one
/// never holds back the jobs queued behind it. Tokio itself does not promise this (now and then it
/// leaves a task in the queue of a thread that is busy), so a few rounds may miss; a worker that kept
/// the second job behind the first misses every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_bound_jobs_run_on_both_worker_threads_at_once() {
    for workers in [2, 8] {
        let mut together = 0;
        for _ in 0..20 {
            let pool = Pool::builder().workers(workers).queue(4).build().unwrap();
            // Every worker parked, as in a pool that has been idle: the first push wakes one.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let started = Arc::new(AtomicUsize::new(0));
            let mut handles = Vec::new();
            for _ in 0..2 {
                let started = started.clone();
                let handle = pool
                    .try_submit(move |_ctx| async move {
                        Ok::<_, String>(spin_until_all_started(&started, 2))
                    })
                    .unwrap_or_else(|_| panic!("room for both jobs"));
                handles.push(handle);
            }
            let mut met = 0;
            for handle in handles {
                met += usize::from(handle.await.unwrap());
            }
            together += usize::from(met == 2);
            pool.shutdown().await;
        }
        assert!(
            together >= 15,
            "{workers} workers: two CPU-bound jobs ran at once in only {together} rounds of 20"
        );
    }
}

/// A worker that has run a long stream of jobs finishing at once runs the next ones back to back on
/// its thread; when those start computing, the ones queued behind them still spread to the other
/// thread (after the first, which shows it). Up to three rounds: another process busy on the same
/// cores can keep the second thread from being scheduled for a whole round; without the hand-on,
/// no round ever spreads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_bound_jobs_after_quick_ones_still_spread() {
    let mut most = Vec::new();
    for _ in 0..3 {
        let spread = quick_then_cpu_bound().await;
        most.push(spread);
        if spread == 2 {
            return;
        }
    }
    panic!(
        "16 jobs of 2 ms each never ran on both threads at once (most at once, by round: {most:?})"
    );
}

/// 2,000 quick jobs, then 16 jobs of 2 ms each queued at once: how many ran at once, at most.
async fn quick_then_cpu_bound() -> usize {
    let pool = Pool::builder().workers(4).queue(32).build().unwrap();
    for _ in 0..2_000 {
        pool.submit_detached(|_ctx| async { Ok::<_, String>(()) })
            .await
            .unwrap();
    }
    // Every worker parked again, each after quick jobs.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let gauge = Gauge::default();
    let jobs: Vec<_> = (0..16)
        .map(|_| {
            let gauge = gauge.clone();
            move |_ctx| async move {
                let _running = gauge.enter();
                burn(Duration::from_millis(2));
                Ok::<_, String>(())
            }
        })
        .collect();
    // Queued at once (no worker runs until the caller awaits), so no submission wakes a worker of
    // its own for them.
    let handles: Vec<_> = (jobs.into_iter())
        .map(|job| {
            pool.try_submit(job)
                .unwrap_or_else(|_| panic!("room for 16"))
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    pool.shutdown().await;
    gauge.max()
}
