//! The pool's counters, gauges and histograms on the `metrics` facade, read back through
//! metrics-util's debugging recorder after a known workload.
#![cfg(feature = "metrics")]

use std::time::Duration;

use bounded_pool::Pool;
use bounded_testkit::{Readings, V};
use metrics_util::debugging::DebuggingRecorder;

#[tokio::test(start_paused = true)]
async fn a_known_workload_reads_back_through_the_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let pool = metrics::with_local_recorder(&recorder, || {
        Pool::builder()
            .name("orders")
            .workers(1)
            .queue(2)
            .error_hook(|_| {})
            .build()
            .unwrap()
    });
    let slow = pool
        .submit(|_ctx| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let fails = pool
        .submit(|_ctx| async { Err::<(), _>("no stock".to_owned()) })
        .await
        .unwrap();
    let panics = pool
        .submit(|_ctx| async { panic!("bad order") as Result<(), String> })
        .await
        .unwrap();
    assert!(
        pool.try_submit(|_ctx| async { Ok::<_, String>(()) })
            .is_err(),
        "the queue of 2 is full"
    );
    slow.await.unwrap();
    assert!(fails.await.is_err() && panics.await.is_err());
    pool.shutdown().await;

    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.undescribed(),
        Vec::<String>::new(),
        "every metric says what it is"
    );
    let orders = [("pool", "orders")];
    assert_eq!(
        m.get("bounded_pool_submitted_total", &orders),
        V::Counter(3)
    );
    assert_eq!(m.get("bounded_pool_rejected_total", &orders), V::Counter(1));
    for (outcome, n) in [
        ("completed", 1),
        ("failed", 1),
        ("panicked", 1),
        ("cancelled", 0),
        ("never_started", 0),
    ] {
        let labels = [("pool", "orders"), ("outcome", outcome)];
        assert_eq!(
            m.get("bounded_pool_jobs_total", &labels),
            V::Counter(n),
            "{outcome}"
        );
    }
    assert_eq!(m.get("bounded_pool_queue_depth", &orders), V::Gauge(0.0));
    assert_eq!(m.get("bounded_pool_busy_workers", &orders), V::Gauge(0.0));
    // One worker: the slow job waited for nothing and ran 100 ms; the other two waited for it.
    assert_eq!(
        m.get("bounded_pool_queue_wait_seconds", &orders),
        V::Histogram(vec![0.0, 0.1, 0.1])
    );
    assert_eq!(
        m.get("bounded_pool_run_seconds", &orders),
        V::Histogram(vec![0.1, 0.0, 0.0])
    );
}

#[tokio::test(start_paused = true)]
async fn the_gauges_show_the_queue_and_the_busy_workers_while_jobs_wait() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let pool = metrics::with_local_recorder(&recorder, || {
        Pool::builder()
            .name("slow")
            .workers(2)
            .queue(8)
            .build()
            .unwrap()
    });
    for _ in 0..5 {
        let handle = pool
            .submit(|_ctx| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, String>(())
            })
            .await
            .unwrap();
        drop(handle); // detached
    }
    tokio::task::yield_now().await;
    let m = Readings::take(&snapshotter);
    let slow = [("pool", "slow")];
    assert_eq!(m.get("bounded_pool_busy_workers", &slow), V::Gauge(2.0));
    assert_eq!(m.get("bounded_pool_queue_depth", &slow), V::Gauge(3.0));
    assert_eq!(m.get("bounded_pool_submitted_total", &slow), V::Counter(5));
    pool.abort();
}

#[tokio::test(start_paused = true)]
async fn an_abort_counts_the_queue_as_never_started_and_the_running_as_cancelled() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let pool = metrics::with_local_recorder(&recorder, || {
        Pool::builder()
            .name("batch")
            .workers(1)
            .queue(4)
            .build()
            .unwrap()
    });
    for _ in 0..3 {
        let handle = pool
            .submit(|_ctx| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, String>(())
            })
            .await
            .unwrap();
        drop(handle);
    }
    tokio::task::yield_now().await;
    pool.abort();
    pool.shutdown().await;
    let m = Readings::take(&snapshotter);
    let batch = |outcome| [("pool", "batch"), ("outcome", outcome)];
    assert_eq!(
        m.get("bounded_pool_jobs_total", &batch("never_started")),
        V::Counter(2)
    );
    assert_eq!(
        m.get("bounded_pool_jobs_total", &batch("cancelled")),
        V::Counter(1)
    );
    assert_eq!(
        m.get("bounded_pool_queue_depth", &[("pool", "batch")]),
        V::Gauge(0.0)
    );
    assert_eq!(
        m.get("bounded_pool_busy_workers", &[("pool", "batch")]),
        V::Gauge(0.0)
    );
}
