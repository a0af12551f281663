//! Keys are independent, memory stays within the bound, and only keys whose bucket refilled are forgotten.

use std::time::Duration;

use bounded_cancel::Context;
use bounded_ratelimit::{AcquireError, KeyedLimiter, Quota};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn keys_are_independent() {
    let limiter = KeyedLimiter::new(Quota::per_second(10).burst(2), 100).unwrap();
    assert_eq!(limiter.try_acquire_n(&"a", 2), Ok(()));
    assert!(limiter.try_acquire(&"a").is_err());
    assert_eq!(
        limiter.try_acquire_n(&"b", 2),
        Ok(()),
        "b has its own bucket"
    );
    assert_eq!(limiter.try_acquire(&"a").unwrap_err().wait(), 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_million_distinct_keys_over_time_never_hold_more_than_the_bound() {
    let limiter = KeyedLimiter::new(Quota::per_second(1), 10_000).unwrap();
    let mut most = 0;
    for key in 0..1_000_000u64 {
        // 10,000 new keys a second: each key's bucket has refilled before the table is full again.
        if key % 10_000 == 0 {
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        limiter.try_acquire(&key).unwrap();
        most = most.max(limiter.metrics().keys);
    }
    let m = limiter.metrics();
    assert!(
        most <= 10_000 && m.keys <= 10_000,
        "{most} / {} keys remembered",
        m.keys
    );
    assert_eq!(m.granted, 1_000_000);
    assert_eq!(
        m.evicted + m.keys as u64,
        1_000_000,
        "every key not remembered was counted as evicted"
    );
}

#[tokio::test(start_paused = true)]
async fn keys_whose_bucket_refilled_are_forgotten_first() {
    let limiter = KeyedLimiter::new(Quota::per_second(10), 10).unwrap();
    for key in 0..10 {
        limiter.try_acquire(&key).unwrap();
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    limiter.try_acquire(&10).unwrap();
    let m = limiter.metrics();
    // All ten had refilled; forgetting them changed nothing.
    assert_eq!((m.keys, m.evicted), (1, 10));
}

#[tokio::test(start_paused = true)]
async fn callers_of_one_key_wait_in_turn_and_a_dropped_wait_gives_its_unit_back() {
    let limiter = KeyedLimiter::new(Quota::per_second(10).burst(1), 100).unwrap();
    let start = Instant::now();
    limiter.acquire(&"k").await;
    limiter.acquire(&"k").await;
    assert_eq!(start.elapsed(), 100 * MS);
    {
        // Reserved for 200 ms, then dropped at 150 ms.
        let wait = limiter.acquire(&"k");
        assert!(tokio::time::timeout(50 * MS, wait).await.is_err());
    }
    limiter.acquire(&"k").await;
    assert_eq!(
        start.elapsed(),
        200 * MS,
        "the dropped reservation was given back"
    );
}

#[tokio::test(start_paused = true)]
async fn keyed_acquire_with_fails_at_once_on_a_deadline_too_soon() {
    let limiter = KeyedLimiter::new(Quota::per_second(1).burst(1), 100).unwrap();
    limiter.acquire(&1).await;
    let ctx = Context::new().with_timeout(500 * MS);
    let start = Instant::now();
    match limiter.acquire_with(&ctx, &1).await {
        Err(AcquireError::DeadlineTooSoon { wait, remaining }) => {
            assert_eq!((wait, remaining), (1000 * MS, 500 * MS))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    limiter
        .acquire_with(&ctx, &2)
        .await
        .expect("another key is free");
    let ctx = Context::new();
    let cancel = ctx.clone();
    let (result, ()) = tokio::join!(limiter.acquire_with(&ctx, &1), async move {
        tokio::time::sleep(300 * MS).await;
        cancel.cancel();
    });
    assert!(matches!(result, Err(AcquireError::Cancelled(_))));
    assert_eq!(
        limiter.try_acquire(&1).unwrap_err().wait(),
        700 * MS,
        "the cancelled wait gave its unit back"
    );
}

#[tokio::test(start_paused = true)]
async fn acquire_n_takes_units_together_in_turn_and_refuses_more_than_the_burst() {
    let limiter = KeyedLimiter::new(Quota::per_second(10).burst(4), 100).unwrap();
    let start = Instant::now();
    limiter.acquire_n(&"k", 4).await.unwrap();
    limiter.acquire_n(&"k", 2).await.unwrap();
    assert_eq!(start.elapsed(), 200 * MS, "two units at 100 ms each");
    assert_eq!(
        limiter.acquire_n(&"k", 5).await.unwrap_err().burst,
        4,
        "never: more than the burst"
    );
    let ctx = Context::new().with_timeout(50 * MS);
    assert!(matches!(
        limiter.acquire_n_with(&ctx, &"k", 3).await,
        Err(AcquireError::DeadlineTooSoon { .. })
    ));
    assert_eq!(start.elapsed(), 200 * MS, "refused at once");
    limiter
        .acquire_n_with(&Context::new(), &"other", 4)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn set_rate_changes_every_key_and_keeps_the_units_in_use() {
    let limiter = KeyedLimiter::new(Quota::per_second(1).burst(1), 100).unwrap();
    limiter.try_acquire(&"a").unwrap();
    limiter.try_acquire(&"b").unwrap();
    assert!(limiter.try_acquire(&"a").is_err());
    limiter.set_rate(Quota::per_second(10).burst(10)).unwrap();
    assert_eq!(limiter.quota(), Quota::per_second(10).burst(10));
    // Each key's one unit in use stays in use, now worth 100 ms.
    limiter.try_acquire_n(&"a", 9).unwrap();
    assert!(limiter.try_acquire(&"a").is_err());
    let start = Instant::now();
    limiter.acquire(&"a").await;
    assert_eq!(start.elapsed(), 100 * MS);
    assert!(limiter.set_rate(Quota::per_second(0)).is_err());
    assert_eq!(
        limiter.quota(),
        Quota::per_second(10).burst(10),
        "a refused quota changes nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_acquire_n_gives_its_units_back() {
    let limiter = KeyedLimiter::new(Quota::per_second(10).burst(4), 100).unwrap();
    limiter.acquire_n(&"k", 4).await.unwrap();
    let start = Instant::now();
    {
        // Reserved for 300 ms (three units at 100 ms each), dropped at 50 ms.
        let wait = limiter.acquire_n(&"k", 3);
        assert!(tokio::time::timeout(50 * MS, wait).await.is_err());
    }
    limiter.acquire_n(&"k", 1).await.unwrap();
    assert_eq!(
        start.elapsed(),
        100 * MS,
        "the dropped wait's three units were given back"
    );
    assert_eq!(limiter.metrics().granted, 5);
}

#[test]
fn waits_made_outside_a_runtime_run_on_the_one_that_polls_them() {
    let limiter = KeyedLimiter::new(Quota::per_second(10).burst(1), 100).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let ctx = Context::new();
    // Each future is made here, on a thread with no runtime, and only polled inside `block_on`.
    let start = runtime.block_on(async { Instant::now() });
    runtime.block_on(limiter.acquire(&"a"));
    runtime.block_on(limiter.acquire_n(&"a", 1)).unwrap();
    runtime.block_on(limiter.acquire_with(&ctx, &"a")).unwrap();
    runtime
        .block_on(limiter.acquire_n_with(&ctx, &"a", 1))
        .unwrap();
    let took = runtime.block_on(async move { start.elapsed() });
    assert_eq!(took, 300 * MS, "one unit at once, then one each 100 ms");
}
