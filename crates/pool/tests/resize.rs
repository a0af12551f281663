//! resize under load: after a shrink settles no more than the new number run; no job is lost.

#[path = "../../group/tests/support/gauge.rs"]
mod gauge;

use std::time::Duration;

use bounded_pool::{Pool, ResizeError};
use gauge::Gauge;
use tokio::time::sleep;

#[tokio::test(start_paused = true)]
async fn resize_up_and_down_under_load_loses_nothing() {
    let pool = Pool::builder().workers(2).queue(64).build().unwrap();
    let gauge = Gauge::default();
    let mut handles = Vec::new();
    let submit_batch = |pool: &Pool, gauge: &Gauge, n: usize| {
        let mut out = Vec::new();
        for _ in 0..n {
            let gauge = gauge.clone();
            out.push(
                pool.try_submit(move |_ctx| async move {
                    let _running = gauge.enter();
                    sleep(Duration::from_millis(100)).await;
                    Ok::<_, String>(())
                })
                .unwrap(),
            );
        }
        out
    };
    handles.extend(submit_batch(&pool, &gauge, 40));
    sleep(Duration::from_millis(50)).await;
    assert_eq!(gauge.now(), 2);

    pool.resize(8).unwrap();
    sleep(Duration::from_millis(10)).await;
    assert_eq!(gauge.now(), 8, "growing starts workers at once");

    pool.resize(3).unwrap();
    // Busy workers retire as their job ends: within one job length the pool has settled.
    sleep(Duration::from_millis(100)).await;
    let settled = Gauge::default();
    handles.extend(submit_batch(&pool, &settled, 20));
    sleep(Duration::from_millis(1)).await;
    assert!(
        gauge.now() + settled.now() <= 3,
        "after the shrink settles, at most 3 run"
    );
    for handle in handles {
        handle.await.unwrap();
    }
    assert!(settled.max() <= 3);
    let report = pool.shutdown().await;
    assert_eq!((report.submitted, report.completed), (60, 60));
}

#[tokio::test]
async fn resize_refuses_zero_and_a_closed_pool() {
    let pool = Pool::builder().workers(2).build().unwrap();
    assert_eq!(pool.resize(0), Err(ResizeError::ZeroWorkers));
    assert_eq!(pool.workers(), 2, "a refused resize changes nothing");
    assert!(
        ResizeError::ZeroWorkers
            .to_string()
            .contains("close or shutdown")
    );
    pool.close();
    assert_eq!(pool.resize(4), Err(ResizeError::Closed));
    assert_eq!(pool.workers(), 2, "a refused resize changes nothing");
}

/// A shrink whose workers are all busy has retired none of them yet; a grow right after it starts
/// workers for the places the shrink took away, and those find more workers alive than wanted and
/// retire before they take a job. An autoscaler that flaps between sizes never runs more jobs at
/// once than the size it last set.
#[tokio::test(start_paused = true)]
async fn flapping_between_sizes_never_runs_more_jobs_than_the_size_last_set() {
    let pool = Pool::builder().workers(4).queue(64).build().unwrap();
    let gauge = Gauge::default();
    let mut handles = Vec::new();
    for _ in 0..40 {
        let gauge = gauge.clone();
        handles.push(
            pool.try_submit(move |_ctx| async move {
                let _running = gauge.enter();
                sleep(Duration::from_millis(100)).await;
                Ok::<_, String>(())
            })
            .unwrap(),
        );
    }
    sleep(Duration::from_millis(1)).await;
    assert_eq!(gauge.now(), 4);
    for _ in 0..5 {
        pool.resize(1).unwrap();
        pool.resize(4).unwrap();
        sleep(Duration::from_millis(1)).await;
        assert_eq!(gauge.now(), 4, "the busy workers still count");
    }
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(gauge.max(), 4, "never more jobs at once than workers");
    assert_eq!(pool.workers(), 4);
    let report = pool.shutdown().await;
    assert_eq!((report.submitted, report.completed), (40, 40));
}
