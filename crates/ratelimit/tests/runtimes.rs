//! A limiter shared by two runtimes keeps granting when the runtime its driver runs on shuts down.

use std::time::Duration;

use bounded_ratelimit::{Limiter, Quota};

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

/// Built inside a runtime whose clock runs, a limiter reads the CPU's counter instead of tokio's clock
/// and still sleeps on tokio's timer: waits, deadlines and `retry_after` keep to real time. (Real time,
/// about 150 ms.)
#[test]
fn a_limiter_on_a_running_clock_paces_waiters_in_real_time() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let limiter = Limiter::new(Quota::per_second(200).burst(1)).unwrap();
        let start = std::time::Instant::now();
        limiter.acquire().await;
        let wait = limiter.try_acquire().unwrap_err().wait();
        assert!(
            wait > Duration::from_millis(3) && wait <= Duration::from_millis(5),
            "the next unit is 5 ms away, not {wait:?}"
        );
        // A deadline shorter than the next unit's wait gives up without a grant.
        let ctx = bounded_cancel::Context::new().with_timeout(Duration::from_millis(1));
        assert!(limiter.acquire_with(&ctx).await.is_err());
        for _ in 0..30 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        // 31 units at 5 ms each after the first: 150 ms, plus at most a timer tick per wait.
        assert!(
            elapsed >= Duration::from_millis(145) && elapsed < Duration::from_millis(600),
            "31 units at 200 a second took {elapsed:?}"
        );
    });
}
