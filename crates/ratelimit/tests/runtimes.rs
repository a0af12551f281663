//! A limiter shared by two runtimes keeps granting when the runtime its driver runs on shuts down.

use std::time::Duration;

use bounded_ratelimit::{AcquireError, KeyedLimiter, Limiter, Quota};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn a_waiter_on_another_runtime_goes_on_when_the_drivers_runtime_shuts_down() {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    let first = runtime();
    // Empty the bucket, then queue a waiter on the first runtime: it starts the driver there.
    first.block_on(limiter.acquire());
    let queued = limiter.clone();
    first.spawn(async move { queued.acquire().await });
    first.block_on(async {
        while limiter.metrics().waiting < 1 {
            tokio::task::yield_now().await;
        }
    });
    // A waiter on a second runtime queues behind it; the first runtime is no longer driven.
    let second = runtime();
    let behind = limiter.clone();
    let mut wait = Box::pin(async move { behind.acquire().await });
    second.block_on(async {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(wait.as_mut(), &mut cx).is_pending());
    });
    assert_eq!(limiter.metrics().waiting, 2);
    // The first runtime shuts down, dropping its waiter and the driver.
    drop(first);
    let granted =
        second.block_on(async { tokio::time::timeout(Duration::from_secs(10), wait).await });
    assert!(
        granted.is_ok(),
        "the waiter on the second runtime was never granted"
    );
}

/// The head of the queue leaves after the driver's runtime has gone: the waiter behind it, parked on a
/// runtime of its own, is woken to start a new driver. (Real time, 100 ms: the paused clock cannot span
/// runtimes on two threads.)
#[test]
fn the_waiter_behind_a_departed_head_starts_a_new_driver() {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    let driver_home = runtime();
    driver_home.block_on(limiter.acquire());
    // The head queues on the first runtime (starting the driver there) and is then left unpolled.
    let head_limiter = limiter.clone();
    let mut head = Box::pin(async move { head_limiter.acquire().await });
    driver_home.block_on(async {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(head.as_mut(), &mut cx).is_pending());
    });
    let behind = limiter.clone();
    let waiter = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), behind.acquire())
                .await
                .is_ok()
        })
    });
    while limiter.metrics().waiting < 2 {
        std::thread::yield_now();
    }
    // The driver's runtime goes first, then the head leaves the queue.
    drop(driver_home);
    drop(head);
    assert!(
        waiter.join().unwrap(),
        "the waiter behind the head was never woken"
    );
}

fn running_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Built inside a runtime whose clock runs, a limiter reads the CPU's counter instead of tokio's clock
/// and still sleeps on tokio's timer: waits, deadlines, reservations and `retry_after` keep to real
/// time. (Real time, about 250 ms. The checks of a single wait use a unit every 100 ms, so that a
/// thread held up for a few milliseconds on a loaded machine cannot change what they see.)
#[test]
fn a_limiter_on_a_running_clock_paces_waiters_in_real_time() {
    running_runtime().block_on(async {
        let limiter = Limiter::new(Quota::per_second(200).burst(1)).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..31 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        // 31 units at 5 ms each after the first: 150 ms, plus at most a timer tick per wait.
        assert!(
            elapsed >= Duration::from_millis(145) && elapsed < Duration::from_millis(600),
            "31 units at 200 a second took {elapsed:?}"
        );

        let slow = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
        assert_eq!(slow.try_acquire(), Ok(()));
        let wait = slow.try_acquire().unwrap_err().wait();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "the next unit is 100 ms away, not {wait:?}"
        );
        // A deadline shorter than the wait is refused up front, with the wait it would have had.
        let ctx = bounded_cancel::Context::new().with_timeout(Duration::from_millis(1));
        match slow.acquire_with(&ctx).await {
            Err(AcquireError::DeadlineTooSoon { wait, .. }) => assert!(
                wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
                "{wait:?}"
            ),
            other => panic!("expected DeadlineTooSoon, got {other:?}"),
        }
        // A reservation's delay and its wait keep to the same real time.
        let mut reservation = slow.reserve();
        let delay = reservation.delay();
        assert!(
            delay > Duration::from_millis(50) && delay <= Duration::from_millis(100),
            "{delay:?}"
        );
        let reserved = std::time::Instant::now();
        reservation.ready().await.unwrap();
        let waited = reserved.elapsed();
        assert!(
            waited >= delay - Duration::from_millis(1)
                && waited < delay + Duration::from_millis(300),
            "a reservation {delay:?} away was ready after {waited:?}"
        );
    });
}

/// The same for a keyed limiter: each key's units come at the quota's pace in real time, and a
/// deadline shorter than the wait is refused up front.
#[test]
fn a_keyed_limiter_on_a_running_clock_paces_each_key_in_real_time() {
    running_runtime().block_on(async {
        let limiter = KeyedLimiter::new(Quota::per_second(200).burst(1), 16).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..11 {
            limiter.acquire(&1).await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(45) && elapsed < Duration::from_millis(400),
            "11 units of one key at 200 a second took {elapsed:?}"
        );
        // Another key has its own bucket: its first unit is there at once.
        assert_eq!(limiter.try_acquire(&2), Ok(()));

        let slow = KeyedLimiter::new(Quota::per_second(10).burst(1), 16).unwrap();
        assert_eq!(slow.try_acquire(&1), Ok(()));
        let ctx = bounded_cancel::Context::new().with_timeout(Duration::from_millis(1));
        match slow.acquire_with(&ctx, &1).await {
            Err(AcquireError::DeadlineTooSoon { wait, .. }) => assert!(
                wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
                "{wait:?}"
            ),
            other => panic!("expected DeadlineTooSoon, got {other:?}"),
        }
    });
}

/// A reservation nobody polls, queued while its driver's runtime shuts down: `try_acquire` (here on
/// no runtime at all) decides it in its turn and is served after it, instead of being told "retry
/// after 0 ns" for ever. (Real time, 300 ms.)
#[test]
fn try_acquire_moves_on_a_queue_whose_driver_went_with_its_runtime() {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    let home = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let kept = home.block_on(async {
        limiter.try_acquire().unwrap();
        let queued = limiter.reserve(); // in line for 100 ms from now; the driver starts here
        tokio::task::yield_now().await;
        queued
    });
    drop(home);
    assert_eq!(limiter.metrics().waiting, 1);
    std::thread::sleep(Duration::from_millis(150));
    // The reservation's turn has come: it is granted, then the unit after it is 100 ms later.
    assert!(
        limiter.try_acquire().is_err(),
        "the reservation's unit came first"
    );
    assert_eq!(limiter.metrics().waiting, 0, "the reservation was decided");
    drop(kept);
    std::thread::sleep(Duration::from_millis(150));
    assert!(limiter.try_acquire().is_ok(), "served in its turn");
}
