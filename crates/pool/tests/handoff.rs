//! How queued jobs reach workers: a job that waits hands the jobs queued behind it to another worker
//! before it waits, so jobs that wait on each other all run at once. (That jobs which finish at once
//! wake no other worker is checked on the queue itself, in `crates/sync/src/queue.rs`.)

#[path = "support/after_quick_jobs.rs"]
mod after_quick_jobs;
#[path = "support/two_threads.rs"]
mod two_threads;
use after_quick_jobs::pool_after_quick_jobs;
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
    if let Err(most) = two_at_once_in_three_rounds(quick_then_cpu_bound).await {
        panic!(
            "16 jobs of 2 ms each never ran on both threads at once (most at once, by round: {most:?})"
        );
    }
}

/// Runs `round` up to three times, until two of its jobs ran at once; the most at once of each
/// round if none did.
async fn two_at_once_in_three_rounds<F, Fut>(round: F) -> Result<(), Vec<usize>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut most = Vec::new();
    for _ in 0..3 {
        let spread = round().await;
        most.push(spread);
        if spread == 2 {
            return Ok(());
        }
    }
    Err(most)
}

/// 2,000 quick jobs, then 16 jobs of 2 ms each queued at once: how many ran at once, at most.
async fn quick_then_cpu_bound() -> usize {
    let pool = pool_after_quick_jobs(4, 32).await;
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

/// On a multi-thread runtime too, a worker whose jobs finish at once, quickly, takes the jobs queued
/// behind them as a run; a job of the run that holds its thread ends the run as it finishes, and the
/// jobs taken with it go back to the queue, where a worker on the other thread takes them. Without
/// that, the 12 jobs of 2 ms taken in one run behind quick ones all run on one worker, one after
/// another. Up to three rounds, as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_bound_jobs_taken_in_a_run_still_spread() {
    if let Err(most) = two_at_once_in_three_rounds(cpu_bound_behind_quick_ones).await {
        panic!(
            "12 jobs of 2 ms taken in a run never ran two at once (most at once, by round: {most:?})"
        );
    }
}

/// 2,000 quick jobs, then 4 quick jobs and 12 jobs of 2 ms each queued at once: the worker woken for
/// them runs a quick one or two on their own, then takes all that is left as one run (at most 16).
/// How many of the 12 ran at once, at most.
async fn cpu_bound_behind_quick_ones() -> usize {
    let pool = pool_after_quick_jobs(4, 32).await;
    let gauge = Gauge::default();
    // Queued at once: the woken worker waits in this thread's next-task slot until the caller awaits.
    let mut handles = Vec::new();
    for n in 0..16 {
        let gauge = gauge.clone();
        let job = pool.try_submit(move |_ctx| async move {
            if n >= 4 {
                let _running = gauge.enter();
                burn(Duration::from_millis(2));
            }
            Ok::<_, String>(())
        });
        handles.push(job.unwrap_or_else(|_| panic!("room for 16")));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    pool.shutdown().await;
    gauge.max()
}
