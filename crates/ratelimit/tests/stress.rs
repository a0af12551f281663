//! Many callers on a multi-thread runtime acquiring, dropping waits, cancelling and trying at once:
//! the counts stay consistent, the rate is never exceeded, and the driver ends.

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
