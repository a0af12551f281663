//! A limiter's counters, gauge and histogram on the `metrics` facade, read back through metrics-util's
//! debugging recorder after a known workload.
#![cfg(feature = "metrics")]

use std::time::Duration;

use bounded_cancel::Context;
use bounded_ratelimit::{Limiter, Quota};
use bounded_testkit::{Readings, V};
use metrics_util::debugging::DebuggingRecorder;

#[tokio::test(start_paused = true)]
async fn grants_refusals_waiters_and_waits_read_back() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let limiter = metrics::with_local_recorder(&recorder, || {
        let limiter = Limiter::new(Quota::per_second(10).burst(2))
            .unwrap()
            .named("pricing");
        // Handles register on first use: use it once under the recorder.
        limiter.try_acquire().unwrap();
        limiter
    });
    let pricing = [("limiter", "pricing")];
    limiter.try_acquire().unwrap();
    assert!(limiter.try_acquire().is_err(), "the burst of 2 is spent");
    assert!(limiter.try_acquire_n(3).is_err(), "more than the burst");
    // Three waiters: granted 100, 200 and 300 ms later.
    let waiters: Vec<_> = (0..3)
        .map(|_| tokio::spawn(limiter.acquire_owned()))
        .collect();
    tokio::task::yield_now().await;
    let m = Readings::take(&snapshotter);
    assert_eq!(m.get("bounded_ratelimit_waiting", &pricing), V::Gauge(3.0));
    assert_eq!(
        m.get("bounded_ratelimit_granted_total", &pricing),
        V::Counter(2)
    );
    assert_eq!(
        m.get("bounded_ratelimit_rejected_total", &pricing),
        V::Counter(2),
        "not yet, and never"
    );
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    // A deadline too soon is a refusal; a wait whose context ends is neither a grant nor a refusal.
    let soon = Context::new().with_timeout(Duration::from_millis(10));
    assert!(limiter.acquire_with(&soon).await.is_err());
    let gone = Context::new();
    let leaving = tokio::spawn({
        let (limiter, gone) = (limiter.clone(), gone.clone());
        async move { limiter.acquire_with(&gone).await }
    });
    tokio::task::yield_now().await;
    gone.cancel();
    assert!(leaving.await.unwrap().is_err());

    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.get("bounded_ratelimit_granted_total", &pricing),
        V::Counter(3),
        "the waiters, since the last reading"
    );
    assert_eq!(
        m.get("bounded_ratelimit_rejected_total", &pricing),
        V::Counter(1),
        "the deadline since the last reading"
    );
    assert_eq!(
        m.get("bounded_ratelimit_waiting", &pricing),
        V::Gauge(0.0),
        "the gauge is set to the callers waiting now: all 3 have left"
    );
    assert_eq!(
        m.get("bounded_ratelimit_wait_seconds", &pricing),
        V::Histogram(vec![0.1, 0.2, 0.3]),
        "the cancelled wait records no wait"
    );
}

#[tokio::test(start_paused = true)]
async fn every_refusal_and_grant_counts_once_in_one_reading() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let limiter = metrics::with_local_recorder(&recorder, || {
        Limiter::new(Quota::per_second(10).burst(2))
            .unwrap()
            .named("search")
    });
    limiter.try_acquire_n(2).unwrap();
    assert!(limiter.try_acquire().is_err());
    assert!(limiter.acquire_n(5).await.is_err());
    let mut later = limiter.reserve();
    later.ready().await.unwrap();
    limiter.reserve().cancel();
    let m = Readings::take(&snapshotter);
    let search = [("limiter", "search")];
    assert_eq!(
        m.get("bounded_ratelimit_granted_total", &search),
        V::Counter(3)
    );
    assert_eq!(
        m.get("bounded_ratelimit_rejected_total", &search),
        V::Counter(2)
    );
    assert_eq!(m.get("bounded_ratelimit_waiting", &search), V::Gauge(0.0));
}

#[tokio::test(start_paused = true)]
async fn a_keyed_limiters_grants_refusals_and_keys_read_back() {
    use bounded_ratelimit::KeyedLimiter;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let limiter = metrics::with_local_recorder(&recorder, || {
        let limiter = KeyedLimiter::new(Quota::per_second(1).burst(1), 2)
            .unwrap()
            .named("per_tenant");
        // Handles register on first use: use it once under the recorder.
        limiter.try_acquire(&1).unwrap();
        limiter
    });
    let tenant = [("limiter", "per_tenant")];
    assert!(limiter.try_acquire(&1).is_err(), "the burst of 1 is spent");
    assert!(limiter.try_acquire_n(&1, 2).is_err(), "more than the burst");
    limiter.try_acquire(&2).unwrap();
    assert!(
        limiter.try_acquire(&3).is_err(),
        "both keys owe time: no room for a third"
    );
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.undescribed(),
        Vec::<String>::new(),
        "every metric says what it is"
    );
    assert_eq!(
        m.get("bounded_ratelimit_granted_total", &tenant),
        V::Counter(2)
    );
    assert_eq!(
        m.get("bounded_ratelimit_rejected_total", &tenant),
        V::Counter(3)
    );
    assert_eq!(m.get("bounded_ratelimit_keys", &tenant), V::Gauge(2.0));

    // A second later both buckets are full again: the third key takes the room they leave.
    tokio::time::advance(Duration::from_secs(1)).await;
    limiter.try_acquire(&3).unwrap();
    // A wait counts as granted when its caller has the unit, not when it is reserved; a wait dropped
    // before its instant never counts; a deadline too soon is a refusal.
    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire(&3).await }
    });
    tokio::task::yield_now().await;
    let dropped = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire(&3).await }
    });
    tokio::task::yield_now().await;
    let soon = Context::new().with_timeout(Duration::from_millis(10));
    assert!(limiter.acquire_with(&soon, &3).await.is_err());
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.get("bounded_ratelimit_granted_total", &tenant),
        V::Counter(1)
    );
    assert_eq!(
        m.get("bounded_ratelimit_rejected_total", &tenant),
        V::Counter(1)
    );
    assert_eq!(
        m.get("bounded_ratelimit_evicted_total", &tenant),
        V::Counter(2)
    );
    assert_eq!(
        m.get("bounded_ratelimit_keys", &tenant),
        V::Gauge(1.0),
        "the keys remembered now: two forgotten and one remembered since"
    );
    assert_eq!(
        m.get("bounded_ratelimit_waiting", &tenant),
        V::Gauge(2.0),
        "two callers sleep until their instants"
    );
    dropped.abort();
    waiter.await.unwrap();
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.get("bounded_ratelimit_granted_total", &tenant),
        V::Counter(1),
        "the waiter, once it had its unit"
    );
    // The snapshot agrees with what was exported.
    assert_eq!(
        m.get("bounded_ratelimit_waiting", &tenant),
        V::Gauge(0.0),
        "both have left"
    );
    let snapshot = limiter.metrics();
    assert_eq!(
        (snapshot.granted, snapshot.rejected, snapshot.evicted),
        (4, 4, 2)
    );
    assert_eq!(
        (snapshot.waiting, snapshot.abandoned),
        (0, 1),
        "the dropped wait left without a grant"
    );
}

#[tokio::test(start_paused = true)]
async fn keyed_limiters_sharing_a_name_add_up_their_keys() {
    use bounded_ratelimit::KeyedLimiter;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (a, b) = metrics::with_local_recorder(&recorder, || {
        let quota = Quota::per_second(1).burst(1);
        let a = KeyedLimiter::new(quota, 100).unwrap().named("tenants");
        let b = KeyedLimiter::new(quota, 100).unwrap().named("tenants");
        // Handles register on first use: use each once under the recorder.
        a.try_acquire(&1).unwrap();
        b.try_acquire(&10).unwrap();
        (a, b)
    });
    a.try_acquire(&2).unwrap();
    a.try_acquire(&3).unwrap();
    b.try_acquire(&11).unwrap();
    assert!(a.try_acquire(&1).is_err(), "key 1's burst is spent");
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.get("bounded_ratelimit_keys", &[("limiter", "tenants")]),
        V::Gauge(5.0),
        "three keys in one, two in the other, whichever recorded last"
    );
    assert_eq!(a.metrics().keys + b.metrics().keys, 5);
}
