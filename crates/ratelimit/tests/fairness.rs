//! Waiters are granted in arrival order, each woken once, at the configured rate.

#[path = "support/polls.rs"]
mod polls;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_ratelimit::{Limiter, Quota};
use polls::CountPolls;
use tokio::time::Instant;

const CALLERS: usize = 200;

#[tokio::test(start_paused = true)]
async fn two_hundred_callers_are_granted_in_arrival_order_each_woken_once_at_50_per_second() {
    let limiter = Limiter::new(Quota::per_second(50).burst(1)).unwrap();
    limiter.acquire().await; // empty the bucket, so every caller below waits
    let start = Instant::now();
    let end = start + Duration::from_secs(10);
    let order = Arc::new(Mutex::new(Vec::new()));
    let polls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));

    let mut callers = tokio::task::JoinSet::new();
    for id in 0..CALLERS {
        let (caller, order, polls, calls) =
            (limiter.clone(), order.clone(), polls.clone(), calls.clone());
        callers.spawn(async move {
            loop {
                calls.fetch_add(1, Ordering::Relaxed);
                CountPolls::new(caller.acquire(), polls.clone()).await;
                if Instant::now() > end {
                    return;
                }
                order.lock().unwrap().push((id, start.elapsed()));
            }
        });
        // Let this caller queue before the next one starts, so arrival order is known.
        while limiter.metrics().waiting < id + 1 {
            tokio::task::yield_now().await;
        }
    }
    callers.join_all().await;

    let order = order.lock().unwrap().clone();
    // FIFO: the queue cycles through the callers in the order they first arrived.
    for (k, (id, _)) in order.iter().enumerate() {
        assert_eq!(*id, k % CALLERS, "grant {k} went to caller {id}");
    }
    // 50/s over 10 s: one grant every 20 ms, the first at 20 ms (the bucket was emptied at 0).
    let granted = order.len();
    assert!((495..=505).contains(&granted), "{granted} grants in 10 s");
    assert_eq!(order[0].1, Duration::from_millis(20));
    assert_eq!(
        order[granted - 1].1,
        Duration::from_millis(20 * granted as u64)
    );

    // Each acquire is polled once to queue and once more when granted: one wake-up per grant.
    let (polls, calls) = (polls.load(Ordering::Relaxed), calls.load(Ordering::Relaxed));
    let wakeups = polls - calls;
    let grants = calls; // every call was granted (the last round ran past the 10 s mark)
    assert!(
        wakeups as f64 / grants as f64 <= 1.0,
        "{wakeups} wake-ups for {grants} grants"
    );
    bounded_cancel::live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn try_acquire_does_not_jump_the_queue() {
    let limiter = Limiter::new(Quota::per_second(10).burst(2)).unwrap();
    limiter.acquire_n(2).await.unwrap();
    let start = Instant::now();
    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire_n(2).await.map(|()| start.elapsed()) }
    });
    tokio::task::yield_now().await;
    assert_eq!(limiter.metrics().waiting, 1);
    // At 100 ms one unit is free, which would fit a try for 1, but a waiter for 2 is ahead of it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let retry = limiter.try_acquire().unwrap_err();
    assert_eq!(
        retry.wait(),
        Duration::from_millis(200),
        "behind the queued 2 units"
    );
    assert_eq!(waiter.await.unwrap(), Ok(Duration::from_millis(200)));
    assert!(limiter.try_acquire().is_err(), "the waiter took both units");
}
