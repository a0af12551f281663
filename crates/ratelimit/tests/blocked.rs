//! A blocked quota is a kill switch: nothing is granted until the quota changes.

use std::time::Duration;

use bounded_cancel::Context;
use bounded_ratelimit::{AcquireError, KeyedLimiter, Limiter, Quota};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn a_blocked_limiter_grants_nothing_until_the_block_is_lifted() {
    let limiter = Limiter::new(Quota::blocked()).unwrap();
    assert!(limiter.try_acquire().unwrap_err().wait() > Duration::from_secs(3600 * 24 * 365));
    assert_eq!(limiter.tokens(), 0);
    let deadline = Context::new().with_timeout(Duration::from_secs(3600));
    assert!(matches!(
        limiter.acquire_with(&deadline).await,
        Err(AcquireError::DeadlineTooSoon { .. })
    ));
    let start = Instant::now();
    let waiter = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            limiter.acquire().await;
            start.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!waiter.is_finished(), "nothing granted while blocked");
    limiter.set_rate(Quota::per_second(10)).unwrap();
    assert_eq!(
        waiter.await.unwrap(),
        Duration::from_secs(60),
        "lifting the block frees it at once"
    );
    assert_eq!(limiter.tokens(), 9, "nothing carried over from the block");
}

#[tokio::test(start_paused = true)]
async fn blocking_a_running_limiter_stops_it_and_keeps_the_queue_in_order() {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    limiter.acquire().await;
    limiter.set_rate(Quota::blocked()).unwrap();
    assert_eq!(limiter.quota(), Quota::blocked());
    let start = Instant::now();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await;
                start.elapsed()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    limiter.set_rate(Quota::per_second(10).burst(1)).unwrap();
    let mut at = Vec::new();
    for waiter in waiters {
        at.push(waiter.await.unwrap());
    }
    assert_eq!(at, [10_000 * MS, 10_100 * MS, 10_200 * MS]);
}

#[tokio::test(start_paused = true)]
async fn a_blocked_keyed_limiter_refuses_new_and_known_keys() {
    let limiter = KeyedLimiter::new(Quota::per_second(5), 100).unwrap();
    limiter.try_acquire(&"known").unwrap();
    limiter.set_rate(Quota::blocked()).unwrap();
    assert!(limiter.try_acquire(&"known").is_err());
    assert!(limiter.try_acquire(&"new").is_err());
    limiter.set_rate(Quota::per_second(5)).unwrap();
    assert!(limiter.try_acquire(&"known").is_ok());
    assert!(limiter.try_acquire(&"new").is_ok());
}
