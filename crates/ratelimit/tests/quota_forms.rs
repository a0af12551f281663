//! The quota's other forms (one unit every interval, unlimited), the bucket's level, and the burst
//! changed apart from the rate.

use std::time::Duration;

use bounded_ratelimit::{Limiter, Quota, QuotaError};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn every_spaces_units_by_the_interval() {
    let limiter = Limiter::new(Quota::every(250 * MS)).unwrap();
    let start = Instant::now();
    for _ in 0..5 {
        limiter.acquire().await;
    }
    assert_eq!(
        start.elapsed(),
        1_000 * MS,
        "one at once, then one every 250 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unlimited_limiter_grants_at_once_and_releases_a_queue_when_lifted() {
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    limiter.acquire().await;
    let start = Instant::now();
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await;
                start.elapsed()
            })
        })
        .collect();
    tokio::time::sleep(10 * MS).await;
    assert_eq!(limiter.metrics().waiting, 50);
    limiter.set_rate(Quota::unlimited()).unwrap();
    for waiter in waiters {
        assert!(
            waiter.await.unwrap() <= 11 * MS,
            "lifting the limit frees the queue at once"
        );
    }
    for _ in 0..10_000 {
        limiter.try_acquire_n(1_000).unwrap();
    }
    // And back: a limit set after unlimited starts with no units in use.
    limiter.set_rate(Quota::per_second(2).burst(2)).unwrap();
    assert_eq!(limiter.tokens(), 2);
}

#[tokio::test(start_paused = true)]
async fn tokens_is_the_level_and_zero_while_anyone_waits() {
    let limiter = Limiter::new(Quota::per_second(10).burst(5)).unwrap();
    assert_eq!(limiter.tokens(), 5);
    limiter.try_acquire_n(5).unwrap();
    assert_eq!(limiter.tokens(), 0);
    tokio::time::advance(250 * MS).await;
    assert_eq!(limiter.tokens(), 2, "a unit every 100 ms");
    assert_eq!(limiter.tokens(), limiter.tokens());
    limiter.try_acquire_n(2).unwrap();
    let waiter = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire_n(3).await })
    };
    tokio::task::yield_now().await;
    tokio::time::advance(150 * MS).await;
    assert_eq!(limiter.tokens(), 0, "the queued caller comes first");
    waiter.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn set_burst_keeps_the_rate_and_the_units_in_use() {
    let limiter = Limiter::new(Quota::per_second(10).burst(10)).unwrap();
    limiter.try_acquire_n(4).unwrap();
    limiter.set_burst(20).unwrap();
    assert_eq!(limiter.quota(), Quota::per_second(10).burst(20));
    assert_eq!(limiter.tokens(), 16, "the 4 units in use stay in use");
    assert_eq!(limiter.set_burst(0), Err(QuotaError::ZeroBurst));
    assert_eq!(
        limiter.quota().burst_size(),
        20,
        "a refused burst leaves the quota as it was"
    );
}
