//! A fleet limiter's counters, gauge and histogram on the `metrics` facade, labelled with its key, read
//! back through metrics-util's debugging recorder after a known workload against a real Redis.
#![cfg(feature = "metrics")]

use std::time::Duration;

use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::{OnUnavailable, RedisLimiter};
use bounded_testkit::redis_server::RedisServer;
use bounded_testkit::{Readings, V};
use metrics_util::debugging::DebuggingRecorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_refusals_waits_and_outages_read_back() {
    let mut server = RedisServer::start();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let conn = server.connect().await;
    // Handles register when the limiter is built: build it under the recorder.
    let limiter = metrics::with_local_recorder(&recorder, || {
        RedisLimiter::builder(conn, "partner", Quota::per_second(10).burst(1))
            .timeout(Duration::from_millis(300))
            .on_unavailable(OnUnavailable::Refuse)
            .build()
            .unwrap()
    });
    let partner = [("limiter", "partner")];
    limiter.try_acquire().await.unwrap();
    assert!(
        limiter.try_acquire().await.is_err(),
        "the burst of 1 is spent"
    );
    assert!(
        limiter.try_acquire_n(2).await.is_err(),
        "more than the burst"
    );
    // Two waiters, each sleeping until its instant: 100 and 200 ms from now.
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.undescribed(),
        Vec::<String>::new(),
        "every metric says what it is"
    );
    assert_eq!(m.get("bounded_ratelimit_waiting", &partner), V::Gauge(2.0));
    assert_eq!(
        m.get("bounded_ratelimit_granted_total", &partner),
        V::Counter(1)
    );
    assert_eq!(
        m.get("bounded_ratelimit_rejected_total", &partner),
        V::Counter(2),
        "not yet, and never"
    );
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.get("bounded_ratelimit_granted_total", &partner),
        V::Counter(2),
        "the waiters, since the last reading"
    );
    assert_eq!(
        m.get("bounded_ratelimit_waiting", &partner),
        V::Gauge(0.0),
        "the gauge is set to the callers waiting now: both have left"
    );
    match m.get("bounded_ratelimit_wait_seconds", &partner) {
        V::Histogram(waits) => {
            assert_eq!(waits.len(), 2, "{waits:?}");
            assert!(waits.iter().all(|w| *w > 0.0 && *w <= 0.2), "{waits:?}");
        }
        other => panic!("expected the waits, got {other:?}"),
    }

    // Redis gone: each call is counted as unavailable, and refused under `Refuse`.
    server.kill();
    assert!(limiter.try_acquire().await.is_err());
    assert!(limiter.acquire().await.is_err());
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.get("bounded_ratelimit_unavailable_total", &partner),
        V::Counter(2)
    );
    assert_eq!(
        m.get("bounded_ratelimit_rejected_total", &partner),
        V::Counter(2)
    );
    // The snapshot agrees with what was exported.
    let snapshot = limiter.metrics();
    assert_eq!(
        (snapshot.granted, snapshot.rejected, snapshot.unavailable),
        (3, 4, 2)
    );
}
