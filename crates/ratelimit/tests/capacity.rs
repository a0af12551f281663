//! More units than the burst is "never", a different type from "not yet".

use std::time::Duration;

use bounded_cancel::Context;
use bounded_ratelimit::{AcquireError, InsufficientCapacity, Limiter, Quota, TryAcquireError};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn acquire_n_above_the_burst_fails_at_once_with_insufficient_capacity() {
    let limiter = Limiter::new(Quota::per_second(10).burst(10)).unwrap();
    let start = Instant::now();
    let err: InsufficientCapacity = limiter.acquire_n(11).await.unwrap_err();
    assert_eq!(
        err,
        InsufficientCapacity {
            requested: 11,
            burst: 10
        }
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(err.to_string().contains("burst is 10"), "{err}");

    let never = limiter.try_acquire_n(11);
    assert!(matches!(
        never,
        Err(TryAcquireError::InsufficientCapacity(_))
    ));
    assert_eq!(never.unwrap_err().retry_after(), None);
    assert!(matches!(
        limiter.acquire_n_with(&Context::new(), 11).await,
        Err(AcquireError::InsufficientCapacity(_))
    ));
    // None of that took anything.
    assert_eq!(limiter.try_acquire_n(10), Ok(()));
    // "Not yet" is the other variant, with the wait.
    assert!(matches!(
        limiter.try_acquire_n(10),
        Err(TryAcquireError::RetryAfter(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_queued_acquire_n_fails_when_set_rate_lowers_the_burst_below_it() {
    let limiter = Limiter::new(Quota::per_second(10).burst(5)).unwrap();
    limiter.acquire_n(5).await.unwrap();
    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire_n(5).await }
    });
    tokio::task::yield_now().await;
    limiter.set_rate(Quota::per_second(10).burst(2)).unwrap();
    assert_eq!(
        waiter.await.unwrap(),
        Err(InsufficientCapacity {
            requested: 5,
            burst: 2
        })
    );
}
