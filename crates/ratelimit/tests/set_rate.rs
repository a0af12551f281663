//! `set_rate` reaches waiters already queued and never frees a burst the new quota forbids.

use std::time::Duration;

use bounded_ratelimit::{Limiter, Quota};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn queued_waiters_follow_a_new_rate() {
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    limiter.acquire().await;
    let start = Instant::now();
    let mut waiters = Vec::new();
    for _ in 0..10 {
        let limiter = limiter.clone();
        waiters.push(tokio::spawn(async move {
            limiter.acquire().await;
            start.elapsed()
        }));
        tokio::task::yield_now().await;
    }
    assert_eq!(limiter.metrics().waiting, 10);
    // At 1/s they would end at 10 s; at 10/s the one unit in use costs 100 ms, then one per 100 ms.
    limiter.set_rate(Quota::per_second(10).burst(1)).unwrap();
    for (k, waiter) in waiters.into_iter().enumerate() {
        assert_eq!(waiter.await.unwrap(), (k as u32 + 1) * 100 * MS);
    }
}

#[tokio::test(start_paused = true)]
async fn a_slower_quota_starts_empty_after_a_spent_burst() {
    let limiter = Limiter::new(Quota::per_second(100).burst(100)).unwrap();
    limiter.acquire_n(100).await.unwrap();
    limiter.set_rate(Quota::per_second(10).burst(10)).unwrap();
    let start = Instant::now();
    assert_eq!(
        limiter.try_acquire().unwrap_err().wait(),
        100 * MS,
        "no burst of 10 after 100 were used"
    );
    let mut grants = Vec::new();
    while start.elapsed() < Duration::from_secs(1) {
        limiter.acquire().await;
        grants.push(start.elapsed());
    }
    assert_eq!(grants.len(), 10, "{grants:?}");
    assert_eq!(grants[0], 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_bigger_quota_frees_only_what_was_not_used() {
    let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    limiter.acquire().await;
    limiter.set_rate(Quota::per_second(100).burst(100)).unwrap();
    assert_eq!(
        limiter.try_acquire_n(99),
        Ok(()),
        "the one unit in use stays in use"
    );
    assert!(limiter.try_acquire().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_bad_quota_is_refused_and_the_old_one_stays() {
    let limiter = Limiter::new(Quota::per_second(5)).unwrap();
    let err = limiter.set_rate(Quota::per_second(5).burst(0)).unwrap_err();
    assert!(err.to_string().contains("burst of 0"), "{err}");
    assert_eq!(limiter.quota(), Quota::per_second(5));
}
