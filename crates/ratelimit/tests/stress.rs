//! Many callers on a multi-thread runtime acquiring, dropping waits, cancelling and trying at once:
//! the counts stay consistent, the rate is never exceeded, and the driver ends. Grants and refusals
//! decided without the limiter's lock are counted once each, and a rate change holds for them from
//! the moment it returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_ratelimit::{Limiter, Quota};
use tokio::time::Instant;

const RATE: u32 = 2_000;
const BURST: u32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_callers_that_give_up_never_push_the_rate_past_the_quota() {
    let limiter = Limiter::new(Quota::per_second(RATE).burst(BURST)).unwrap();
    let granted = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..64u64 {
        let (limiter, granted) = (limiter.clone(), granted.clone());
        callers.spawn(async move {
            for turn in 0..60u64 {
                match (caller + turn) % 5 {
                    0 => {
                        limiter.acquire().await;
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                    1 => {
                        // Gives up after a moment: counted only if granted before then.
                        if tokio::time::timeout(Duration::from_micros(300), limiter.acquire())
                            .await
                            .is_ok()
                        {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    2 => {
                        let ctx = Context::new();
                        let cancel = ctx.clone();
                        tokio::spawn(async move {
                            tokio::task::yield_now().await;
                            cancel.cancel();
                        });
                        if limiter.acquire_with(&ctx).await.is_ok() {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    3 => {
                        if limiter.try_acquire().is_ok() {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        let n = 1 + (turn % 3) as u32;
                        limiter.acquire_n(n).await.unwrap();
                        granted.fetch_add(u64::from(n), Ordering::Relaxed);
                    }
                }
            }
        });
    }
    callers.join_all().await;
    let elapsed = start.elapsed().as_secs_f64();
    let granted = granted.load(Ordering::Relaxed);
    let m = limiter.metrics();
    assert_eq!(
        m.granted, granted,
        "every unit the callers saw, and no other, is counted as granted"
    );
    assert_eq!(m.waiting, 0);
    let allowed = f64::from(RATE) * elapsed + f64::from(BURST);
    assert!(
        granted as f64 <= allowed,
        "{granted} units in {elapsed:.3} s; the quota allows {allowed:.0}"
    );
    live::assert_none_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_reservations_kept_cancelled_and_awaited_never_pass_the_quota() {
    let limiter = Limiter::new(Quota::per_second(RATE).burst(BURST)).unwrap();
    let used = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..32u64 {
        let (limiter, used) = (limiter.clone(), used.clone());
        callers.spawn(async move {
            for turn in 0..40u64 {
                let n = 1 + ((caller + turn) % 3) as u32;
                let mut reservation = limiter.reserve_n(n).unwrap();
                match (caller * 7 + turn) % 4 {
                    // Waits for its units and uses them.
                    0 | 1 => {
                        reservation.ready().await.unwrap();
                        used.fetch_add(u64::from(n), Ordering::Relaxed);
                    }
                    // Too late for it: gives the units back.
                    2 => reservation.cancel(),
                    // Kept by dropping: used in its turn.
                    _ => {
                        drop(reservation);
                        used.fetch_add(u64::from(n), Ordering::Relaxed);
                    }
                }
                tokio::task::yield_now().await;
            }
        });
    }
    callers.join_all().await;
    // Kept reservations are granted in their turn by the driver.
    while limiter.metrics().waiting > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let used = used.load(Ordering::Relaxed);
    let m = limiter.metrics();
    assert_eq!(
        m.granted, used,
        "granted counts the units used, and no cancelled one"
    );
    let allowed = f64::from(RATE) * (elapsed + 0.001) + f64::from(BURST);
    assert!(
        used as f64 <= allowed,
        "{used} units in {elapsed:.3} s; the quota allows {allowed:.0}"
    );
    live::settle(Duration::from_secs(1)).await.unwrap();
}

/// Callers that only try, on a quota they keep at its limit: most calls are decided without the
/// lock, on both threads at once, with the swap contended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_grants_and_refusals_decided_without_the_lock_are_each_counted_once() {
    const FAST_RATE: u32 = 1_000_000;
    const FAST_BURST: u32 = 100;
    for round in 0..5 {
        let limiter = Limiter::new(Quota::per_second(FAST_RATE).burst(FAST_BURST)).unwrap();
        let start = Instant::now();
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let limiter = limiter.clone();
            callers.spawn(async move {
                let (mut granted, mut refused) = (0u64, 0u64);
                for call in 0..50_000u32 {
                    match limiter.try_acquire_n(1 + call % 2) {
                        Ok(()) => granted += u64::from(1 + call % 2),
                        Err(_) => refused += 1,
                    }
                    if call.is_multiple_of(1_000) {
                        tokio::task::yield_now().await;
                    }
                }
                (granted, refused)
            });
        }
        let (granted, refused) = callers
            .join_all()
            .await
            .into_iter()
            .fold((0, 0), |(g, r), (g1, r1)| (g + g1, r + r1));
        let elapsed = start.elapsed().as_secs_f64();
        let m = limiter.metrics();
        assert_eq!(
            (m.granted, m.rejected),
            (granted, refused),
            "round {round}: the counts are not what the callers saw"
        );
        assert!(refused > 0, "round {round}: the quota was never reached");
        let allowed = f64::from(FAST_RATE) * elapsed * 1.01 + f64::from(FAST_BURST);
        assert!(
            granted as f64 <= allowed,
            "round {round}: {granted} units in {elapsed:.4} s; the quota allows {allowed:.0}"
        );
    }
}

/// Callers take as fast as they can while the rate drops to 10 a second with a burst of 1: from
/// the moment `set_rate` returns, the units in use carry over (the new bucket is empty for 100 ms),
/// so nothing more is granted but grants already decided on the old quota and not yet counted, at
/// most one per caller (and one unit, if the callers had not yet emptied the old bucket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_a_rate_change_holds_for_callers_taking_without_the_lock() {
    const CALLERS: u64 = 4;
    for round in 0..20 {
        let limiter = Limiter::new(Quota::per_second(1_000_000).burst(1_000)).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..CALLERS {
            let (limiter, stop) = (limiter.clone(), stop.clone());
            callers.spawn(async move {
                let mut calls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = limiter.try_acquire();
                    calls += 1;
                    if calls.is_multiple_of(500) {
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        limiter
            .set_rate(Quota::per_second(10).burst(1))
            .expect("a valid quota");
        let before = limiter.metrics().granted;
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.store(true, Ordering::Relaxed);
        callers.join_all().await;
        let after = limiter.metrics().granted;
        assert!(
            after - before <= CALLERS + 1,
            "round {round}: {} units granted after the rate dropped to 10 a second with an empty bucket",
            after - before
        );
    }
}

/// Eight OS threads outside any runtime, more than the runtime tests use, each trying as fast as it
/// can: the swap contended by all of them, every count once, the rate kept.
#[test]
fn stress_threads_outside_a_runtime_try_at_once_within_the_quota() {
    const THREAD_RATE: u32 = 200_000;
    const THREAD_BURST: u32 = 50;
    let limiter = Limiter::new(Quota::per_second(THREAD_RATE).burst(THREAD_BURST)).unwrap();
    let start = std::time::Instant::now();
    let (granted, refused) = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let (mut granted, mut refused) = (0u64, 0u64);
                    for _ in 0..20_000 {
                        match limiter.try_acquire() {
                            Ok(()) => granted += 1,
                            Err(_) => refused += 1,
                        }
                    }
                    (granted, refused)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold((0, 0), |(g, r), (g1, r1)| (g + g1, r + r1))
    });
    let elapsed = start.elapsed().as_secs_f64();
    let m = limiter.metrics();
    assert_eq!((m.granted, m.rejected), (granted, refused));
    assert_eq!(granted + refused, 8 * 20_000);
    let allowed = f64::from(THREAD_RATE) * elapsed * 1.01 + f64::from(THREAD_BURST);
    assert!(
        granted as f64 <= allowed,
        "{granted} units in {elapsed:.4} s; the quota allows {allowed:.0}"
    );
}
