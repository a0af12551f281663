//! Reservations: units taken now in their turn, a delay that says when, kept when dropped, and given
//! back when cancelled without ever letting the limiter grant over its quota.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_ratelimit::{Limiter, Quota};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

async fn spent(rate: u32) -> Limiter {
    let limiter = Limiter::new(Quota::per_second(rate).burst(1)).unwrap();
    limiter.acquire().await;
    limiter
}

/// A task waiting in the limiter's queue for one unit, queued by the time this returns.
async fn queued_waiter(limiter: &Limiter) -> tokio::task::JoinHandle<()> {
    let waiter = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire().await })
    };
    tokio::task::yield_now().await;
    waiter
}

#[tokio::test(start_paused = true)]
async fn a_reservation_takes_its_turn_behind_the_waiters_and_says_when() {
    let limiter = spent(10).await;
    let waiter = queued_waiter(&limiter).await;
    let mut reservation = limiter.reserve();
    assert_eq!(reservation.delay(), 200 * MS, "behind the waiter's 100 ms");
    let start = Instant::now();
    reservation.ready().await.unwrap();
    assert_eq!(start.elapsed(), 200 * MS);
    assert_eq!(reservation.delay(), Duration::ZERO);
    waiter.await.unwrap();
    assert_eq!(limiter.metrics().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_reservation_is_kept_and_its_unit_used_in_turn() {
    let limiter = spent(10).await;
    drop(limiter.reserve()); // keeps 100 ms
    let start = Instant::now();
    limiter.acquire().await;
    assert_eq!(
        start.elapsed(),
        200 * MS,
        "the dropped reservation kept its unit"
    );
    assert_eq!(limiter.metrics().granted, 3);
    assert_eq!(
        limiter.metrics().waiting,
        0,
        "and it is forgotten once granted"
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_in_line_moves_everyone_behind_up() {
    let limiter = spent(10).await;
    let first = limiter.reserve(); // 100 ms
    let second = limiter.reserve(); // 200 ms
    assert_eq!(second.delay(), 200 * MS);
    first.cancel();
    assert_eq!(second.delay(), 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn cancelling_never_returns_time_a_later_grant_was_built_on() {
    let limiter = spent(10).await;
    let grants = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut early = limiter.reserve(); // 100 ms
    let behind = {
        let (limiter, grants) = (limiter.clone(), grants.clone());
        tokio::spawn(async move {
            limiter.acquire().await; // 200 ms
            grants.lock().unwrap().push(start.elapsed());
        })
    };
    tokio::task::yield_now().await;
    early.ready().await.unwrap();
    tokio::time::sleep(150 * MS).await; // the one behind was granted at 200 ms
    early.cancel(); // too late: its time lies under the later grant
    limiter.acquire().await;
    grants.lock().unwrap().push(start.elapsed());
    behind.await.unwrap();
    assert_eq!(*grants.lock().unwrap(), [200 * MS, 300 * MS]);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_latest_grant_gives_it_back() {
    let limiter = Limiter::new(Quota::per_second(1).burst(2)).unwrap();
    let both = limiter.reserve_n(2).unwrap();
    assert!(limiter.try_acquire().is_err());
    both.cancel();
    assert_eq!(limiter.tokens(), 2);
    assert_eq!(limiter.metrics().granted, 0);
    assert!(limiter.reserve_n(3).is_err(), "never more than the burst");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_ready_wait_leaves_the_reservation_as_it_was() {
    let limiter = spent(10).await;
    let mut reservation = limiter.reserve();
    assert!(
        tokio::time::timeout(50 * MS, reservation.ready())
            .await
            .is_err()
    );
    assert_eq!(
        reservation.delay(),
        50 * MS,
        "still in line, at its instant"
    );
    let start = Instant::now();
    reservation.ready().await.unwrap();
    assert_eq!(start.elapsed(), 50 * MS);
    assert_eq!(limiter.metrics().granted, 2);
}

#[tokio::test(start_paused = true)]
async fn a_reservation_of_zero_units_is_granted_at_once_and_takes_nothing() {
    // Behind a waiter, on a spent bucket: still nothing to wait for.
    let limiter = spent(10).await;
    let waiter = queued_waiter(&limiter).await;
    let mut nothing = limiter.reserve_n(0).expect("0 units fit any burst");
    assert_eq!(nothing.delay(), Duration::ZERO);
    nothing.ready().await.unwrap();
    nothing.cancel();
    let start = Instant::now();
    waiter.await.unwrap();
    assert_eq!(
        start.elapsed(),
        100 * MS,
        "the waiter's turn is where it was"
    );
    assert_eq!(limiter.metrics().granted, 2);
}

#[test]
fn outside_a_runtime_a_waiting_reservation_panics_clearly_and_leaves_the_limiter_as_it_was() {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    // Granted at once: no runtime needed.
    assert!(limiter.reserve().delay().is_zero());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| limiter.reserve()))
        .expect_err("a reservation that must wait needs a runtime");
    let message = bounded_cancel::panic_message(&*panicked);
    assert!(
        message.contains("Limiter::reserve outside a tokio runtime"),
        "{message}"
    );
    // Nothing was queued: once the unit's 100 ms have passed, it is free again.
    assert_eq!(limiter.metrics().waiting, 0);
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert!(limiter.try_acquire().is_ok());
}
