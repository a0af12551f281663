//! A limiter never grants more than its quota, whatever is cancelled or dropped, and always delivers
//! the rate its quota names; a keyed limiter never forgets a key that still owes time.

#[path = "support/polls.rs"]
mod polls;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Waker};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_ratelimit::{AcquireError, KeyedLimiter, Limiter, Quota};
use polls::CountPolls;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// Grant times, in order, of tasks that each acquire once.
type Grants = Arc<Mutex<Vec<Duration>>>;

fn acquire_once(limiter: &Limiter, start: Instant, grants: &Grants) -> tokio::task::JoinHandle<()> {
    let (limiter, grants) = (limiter.clone(), grants.clone());
    tokio::spawn(async move {
        limiter.acquire().await;
        grants.lock().unwrap().push(start.elapsed());
    })
}

#[tokio::test(start_paused = true)]
async fn a_grant_dropped_late_gives_back_nothing_later_grants_were_built_on() {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    let start = Instant::now();
    limiter.acquire().await; // the unit of instant 0; the next is due at 100 ms
    let grants = Grants::default();

    // A queues first and is granted at 100 ms, but its owner never looks again.
    let mut unseen = Box::pin(limiter.acquire());
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(unseen.as_mut().poll(&mut cx).is_pending());
    let b = acquire_once(&limiter, start, &grants);
    tokio::task::yield_now().await;
    tokio::time::sleep(250 * MS).await;
    tokio::task::yield_now().await;
    // B was granted at 200 ms, after A's 100 ms. A is dropped at 250 ms: its time lies under B's.
    drop(unseen);
    let c = acquire_once(&limiter, start, &grants);
    b.await.unwrap();
    c.await.unwrap();
    let grants = grants.lock().unwrap().clone();
    assert_eq!(grants, [200 * MS, 300 * MS], "C came early: over the quota");
    assert_eq!(limiter.metrics().granted, 3, "A's unit was never delivered");
}

#[tokio::test(start_paused = true)]
async fn a_grant_dropped_unseen_with_nothing_after_it_is_given_back() {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    limiter.acquire().await;
    let mut unseen = Box::pin(limiter.acquire());
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(unseen.as_mut().poll(&mut cx).is_pending());
    tokio::time::sleep(150 * MS).await;
    drop(unseen);
    assert!(limiter.try_acquire().is_ok(), "no one was given A's time");
}

/// Many callers looping on `acquire` for `secs` seconds of paused time: grants, and polls per call.
async fn delivered(quota: Quota, callers: usize, secs: u64) -> (usize, usize, usize) {
    let limiter = Limiter::new(quota).unwrap();
    let end = Instant::now() + Duration::from_secs(secs);
    let (grants, polls, calls) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (limiter, grants, polls, calls) = (
            limiter.clone(),
            grants.clone(),
            polls.clone(),
            calls.clone(),
        );
        tasks.spawn(async move {
            loop {
                calls.fetch_add(1, Ordering::Relaxed);
                CountPolls::new(limiter.acquire(), polls.clone()).await;
                if Instant::now() >= end {
                    return;
                }
                grants.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tasks.join_all().await;
    let load = |n: &AtomicUsize| n.load(Ordering::Relaxed);
    (load(&grants), load(&polls), load(&calls))
}

#[tokio::test(start_paused = true)]
async fn five_thousand_a_second_with_burst_1_is_delivered() {
    let (grants, _, _) = delivered(Quota::per_second(5_000).burst(1), 50, 2).await;
    assert!(
        (9_900..=10_100).contains(&grants),
        "{grants} grants in 2 s at 5,000/s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_a_second_with_burst_1_is_delivered_with_one_wake_up_per_grant() {
    let (grants, polls, calls) = delivered(Quota::per_second(100_000).burst(1), 200, 10).await;
    assert!(
        (990_000..=1_010_000).contains(&grants),
        "{grants} grants in 10 s at 100,000/s"
    );
    // Each call is polled once to queue and once when granted, or once if granted at once.
    let wake_ups = polls - calls;
    assert!(wake_ups <= calls, "{wake_ups} wake-ups for {calls} calls");
}

#[tokio::test(start_paused = true)]
async fn cancelling_an_earlier_keyed_reservation_never_lets_two_waits_share_an_instant() {
    let limiter = KeyedLimiter::new(Quota::per_second(10).burst(1), 100).unwrap();
    let start = Instant::now();
    limiter.acquire(&"k").await; // now; the next unit of "k" is at 100 ms
    let mut first = Box::pin(limiter.acquire(&"k"));
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(first.as_mut().poll(&mut cx).is_pending(), "reserved 100 ms");
    let grants = Grants::default();
    let spawn = |grants: &Grants| {
        let (limiter, grants) = (limiter.clone(), grants.clone());
        tokio::spawn(async move {
            limiter.acquire(&"k").await;
            grants.lock().unwrap().push(start.elapsed());
        })
    };
    let second = spawn(&grants); // reserves 200 ms
    tokio::task::yield_now().await;
    tokio::time::sleep(50 * MS).await;
    drop(first);
    let third = spawn(&grants);
    second.await.unwrap();
    third.await.unwrap();
    assert_eq!(*grants.lock().unwrap(), [200 * MS, 300 * MS]);
}

#[tokio::test(start_paused = true)]
async fn rotating_a_million_keys_never_gets_a_fresh_bucket() {
    const BOUND: usize = 10_000;
    let limiter = KeyedLimiter::new(Quota::per_minute(1), BOUND).unwrap();
    let mut refused = 0;
    for key in 0..1_000_000u64 {
        match limiter.try_acquire(&key) {
            Ok(()) => assert!(
                (key as usize) < BOUND,
                "key {key} got a bucket past the bound"
            ),
            Err(retry) => {
                assert_eq!(retry.wait(), Duration::from_secs(60));
                refused += 1;
            }
        }
        if key % 1_000 == 0 {
            assert!(limiter.metrics().keys <= BOUND);
        }
    }
    assert_eq!(refused, 1_000_000 - BOUND);
    let m = limiter.metrics();
    assert_eq!((m.keys, m.evicted, m.granted), (BOUND, 0, BOUND as u64));
    // Every key that owes time still owes it: none was forgotten.
    for key in (0..BOUND as u64).step_by(97) {
        assert!(
            limiter.try_acquire(&key).is_err(),
            "key {key} was forgotten"
        );
    }
    // Once their buckets have refilled, they are forgotten for free and new keys get room.
    tokio::time::advance(Duration::from_secs(60)).await;
    limiter.try_acquire(&1_000_000).unwrap();
    assert_eq!(limiter.metrics().evicted, BOUND as u64);
}

#[tokio::test(start_paused = true)]
async fn a_new_key_waits_for_room_or_fails_at_once_on_a_deadline_too_soon() {
    let limiter = KeyedLimiter::new(Quota::per_minute(1), 2).unwrap();
    let start = Instant::now();
    limiter.acquire(&1).await;
    limiter.acquire(&2).await;
    let ctx = Context::new().with_timeout(Duration::from_secs(1));
    match limiter.acquire_with(&ctx, &3).await {
        Err(AcquireError::DeadlineTooSoon { wait, .. }) => {
            assert_eq!(wait, Duration::from_secs(60))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "refused at once");
    limiter.acquire(&3).await;
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    assert!(
        limiter.try_acquire(&1).is_ok(),
        "1 had refilled, and was forgotten"
    );
}

#[tokio::test(start_paused = true)]
async fn a_quota_whose_units_cost_a_fraction_of_a_nanosecond_more_is_never_exceeded() {
    // 3 every 4 ns: a unit costs 1.33 ns, which a limiter counting whole nanoseconds rounded down
    // would grant every 1 ns, a third over its quota.
    let limiter = Limiter::new(Quota::new(3, Duration::from_nanos(4)).burst(1)).unwrap();
    let mut granted = 0u64;
    for _ in 0..4_000 {
        if limiter.try_acquire().is_ok() {
            granted += 1;
        }
        tokio::time::advance(Duration::from_nanos(1)).await;
    }
    // 4,000 ns hold 3,000 units of the quota, and the burst of 1.
    assert!(granted <= 3_001, "{granted} granted in 4,000 ns");
    assert!(
        granted >= 1_500,
        "{granted}: rounded up by at most 1 ns a unit"
    );
}
