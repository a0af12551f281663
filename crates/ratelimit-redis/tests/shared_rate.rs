//! Several limiters on one key, each with its own connection as separate replicas would have: the
//! rate and burst hold for all of them together, and grants follow the order of the calls.
//!
//! These tests run on real time, because the bucket lives on Redis's clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::RedisLimiter;
use bounded_testkit::redis_server::RedisServer;
use tokio::time::Instant;

/// Grants seen by the callers can bunch by the time a woken task takes to run; this much is allowed.
const WAKE_JITTER: Duration = Duration::from_millis(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiters_sharing_a_key_stay_within_rate_times_window_plus_burst() {
    let server = RedisServer::start();
    let quota = Quota::per_second(100).burst(5);
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(RedisLimiter::new(server.connect().await, "partner", quota).unwrap());
    }
    let grants = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let run_for = Duration::from_millis(1500);
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..12 {
        let limiter = replicas[caller % 3].clone();
        let grants = grants.clone();
        callers.spawn(async move {
            while start.elapsed() < run_for {
                limiter.acquire().await.expect("Redis is up");
                grants.lock().unwrap().push(start.elapsed());
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    let mut grants = grants.lock().unwrap().clone();
    grants.sort();
    let total = grants.len() as f64;
    let last = grants.last().unwrap().as_secs_f64();
    // 5 at once, then 100 a second: everything granted by `last`.
    assert!(
        total <= 5.0 + 100.0 * last + 1.0,
        "{total} grants in {last:.3} s exceeds 100/s + burst 5"
    );
    assert!(
        total >= 0.9 * (5.0 + 100.0 * last),
        "{total} grants in {last:.3} s: the shared limit starved its callers"
    );
    for window in [
        Duration::from_millis(50),
        Duration::from_millis(200),
        Duration::from_secs(1),
    ] {
        let allowed = 5 + (100.0 * (window + WAKE_JITTER).as_secs_f64()).ceil() as usize;
        for (i, at) in grants.iter().enumerate() {
            let within = grants[i..]
                .iter()
                .take_while(|t| **t < *at + window)
                .count();
            assert!(
                within <= allowed,
                "{within} grants in the {window:?} from {at:?}; at most {allowed} may pass"
            );
        }
    }
    // Every replica saw its share: 12 callers, 4 on each.
    for limiter in &replicas {
        assert!(
            limiter.metrics().granted as f64 >= total / 3.0 * 0.8,
            "{:?}",
            limiter.metrics()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_follow_the_order_of_the_calls_across_limiters() {
    let server = RedisServer::start();
    let quota = Quota::per_second(20).burst(1);
    let a = RedisLimiter::new(server.connect().await, "fifo", quota).unwrap();
    let b = RedisLimiter::new(server.connect().await, "fifo", quota).unwrap();
    a.acquire().await.unwrap(); // the bucket is empty: each next grant is 50 ms after the last
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..8 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        let order = order.clone();
        waiters.push(tokio::spawn(async move {
            limiter.acquire().await.unwrap();
            order.lock().unwrap().push(i);
        }));
        // Long enough for the call to reach Redis before the next one starts.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_waiter_sleeps_once_until_its_instant() {
    let server = RedisServer::start();
    let limiter = RedisLimiter::new(
        server.connect().await,
        "spacing",
        Quota::per_second(10).burst(1),
    )
    .unwrap();
    let start = Instant::now();
    let mut waits = Vec::new();
    for _ in 0..5 {
        let limiter = limiter.clone();
        waits.push(tokio::spawn(async move {
            limiter.acquire().await.unwrap();
            start.elapsed()
        }));
    }
    let mut done = Vec::new();
    for wait in waits {
        done.push(wait.await.unwrap());
    }
    done.sort();
    // One at once, then one every 100 ms: 0, 100, 200, 300, 400 ms.
    for (i, at) in done.iter().enumerate() {
        let due = Duration::from_millis(100 * i as u64);
        assert!(
            *at >= due.saturating_sub(Duration::from_millis(2)),
            "grant {i} at {at:?}, due {due:?}"
        );
        assert!(
            *at < due + Duration::from_millis(80),
            "grant {i} at {at:?}, due {due:?}"
        );
    }
    let m = limiter.metrics();
    assert_eq!((m.granted, m.rejected, m.waiting), (5, 0, 0));
    assert!(m.total_wait >= Duration::from_millis(990), "{m:?}");
}
