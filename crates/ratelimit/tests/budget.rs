//! Tokio's coop budget: a wait granted (or refused) at its first poll spends the caller's budget, as
//! acquiring a tokio `Semaphore` does, so a loop of grants yields every so often instead of keeping
//! its thread; a wait that yields for the budget has taken nothing.

use std::future::Future;
use std::task::Poll;

use bounded_ratelimit::{KeyedLimiter, Limiter, Quota};
use bounded_testkit::Ticker;

const BURST: u32 = 10_000;

/// Runs `round` (1,000 waits that are each granted at once), first as it is and then unconstrained,
/// and returns how often another task on the thread ran during each.
async fn ticks_during<F: Future<Output = ()>>(round: impl Fn() -> F) -> (usize, usize) {
    let ticker = Ticker::start();
    tokio::task::yield_now().await;
    let before = ticker.ticks();
    round().await;
    let constrained = ticker.ticks() - before;
    let before = ticker.ticks();
    tokio::task::unconstrained(round()).await;
    let unconstrained = ticker.ticks() - before;
    (constrained, unconstrained)
}

/// About one yield per 128 grants, the budget tokio gives a task per poll; none unconstrained.
fn assert_yields((constrained, unconstrained): (usize, usize)) {
    assert!(
        (4..=20).contains(&constrained),
        "the other task ran {constrained} times during 1,000 grants"
    );
    assert_eq!(unconstrained, 0, "unconstrained, the loop still yielded");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_loop_of_grants_yields_every_so_often() {
    let limiter = Limiter::new(Quota::per_second(BURST)).unwrap();
    assert_yields(
        ticks_during(|| async {
            for _ in 0..1_000 {
                limiter.acquire().await;
            }
        })
        .await,
    );
    let ctx = bounded_cancel::Context::new();
    assert_yields(
        ticks_during(|| async {
            for _ in 0..1_000 {
                limiter.acquire_with(&ctx).await.unwrap();
            }
        })
        .await,
    );
    assert_eq!(limiter.tokens(), BURST - 4_000);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_loop_of_keyed_grants_yields_every_so_often() {
    let limiter = KeyedLimiter::new(Quota::per_second(BURST), 16).unwrap();
    assert_yields(
        ticks_during(|| async {
            for _ in 0..1_000 {
                limiter.acquire(&"tenant").await;
            }
        })
        .await,
    );
    assert_eq!(limiter.metrics().granted, 2_000);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_loop_over_reservations_granted_at_once_yields_every_so_often() {
    let limiter = Limiter::new(Quota::per_second(BURST)).unwrap();
    assert_yields(
        ticks_during(|| async {
            for _ in 0..1_000 {
                limiter.reserve().ready().await.unwrap();
            }
        })
        .await,
    );
}

/// Polls waits made by `wait` until one finds the budget spent; returns how many were granted
/// before it. That one is dropped there.
async fn grants_until_out_of_budget<F: Future>(wait: impl Fn() -> F) -> u32 {
    let mut granted = 0;
    loop {
        let mut next = std::pin::pin!(wait());
        let polled = std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await;
        if polled.is_pending() {
            return granted;
        }
        granted += 1;
        assert!(granted <= 1_000, "the budget never ran out");
    }
}

/// A wait that yields because the budget ran out has taken nothing: what is left is exactly the
/// burst less the units granted, as `try_acquire_n` of all of it shows.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_wait_dropped_while_it_yields_for_the_budget_takes_nothing() {
    let limiter = Limiter::new(Quota::per_second(BURST)).unwrap();
    let granted = grants_until_out_of_budget(|| limiter.acquire()).await;
    assert!(granted > 0);
    assert_eq!(limiter.tokens(), BURST - granted);
    tokio::task::yield_now().await;
    let granted_n = grants_until_out_of_budget(|| limiter.acquire_n(2)).await;
    assert_eq!(limiter.tokens(), BURST - granted - 2 * granted_n);

    let keyed = KeyedLimiter::new(Quota::per_second(BURST), 16).unwrap();
    tokio::task::yield_now().await;
    let granted = grants_until_out_of_budget(|| keyed.acquire(&"tenant")).await;
    assert!(granted > 0);
    keyed.try_acquire_n(&"tenant", BURST - granted).unwrap();
    assert!(keyed.try_acquire(&"tenant").is_err());
}
