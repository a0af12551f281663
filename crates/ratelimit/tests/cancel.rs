//! Dropping a wait consumes nothing; a context ends a wait with its cause; a deadline that cannot be
//! met fails at once.

use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Waker};
use std::time::Duration;

use bounded_cancel::{Cause, Context};
use bounded_ratelimit::{AcquireError, Limiter, Quota};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// A limiter at 10/s, burst 1, whose one unit was just taken: the next is due at 100 ms.
async fn empty_limiter() -> Limiter {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    limiter.acquire().await;
    limiter
}

fn waiting_task(limiter: &Limiter) -> tokio::task::JoinHandle<Duration> {
    let limiter = limiter.clone();
    let start = Instant::now();
    tokio::spawn(async move {
        limiter.acquire().await;
        start.elapsed()
    })
}

#[tokio::test(start_paused = true)]
async fn a_dropped_head_gives_its_instant_to_the_waiter_behind() {
    let limiter = empty_limiter().await;
    let head = waiting_task(&limiter);
    tokio::task::yield_now().await;
    let behind = waiting_task(&limiter);
    tokio::task::yield_now().await;
    assert_eq!(limiter.metrics().waiting, 2);

    tokio::time::sleep(50 * MS).await;
    head.abort();
    assert!(head.await.unwrap_err().is_cancelled());
    // Had the head stayed, `behind` would have waited until 200 ms; it gets the head's 100 ms.
    assert_eq!(behind.await.unwrap(), 100 * MS);
    let m = limiter.metrics();
    assert_eq!((m.granted, m.abandoned, m.waiting), (2, 1, 0));
    bounded_cancel::live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_wait_consumes_nothing_for_the_next_caller() {
    let limiter = empty_limiter().await;
    let start = Instant::now();
    {
        let mut wait = pin!(limiter.acquire());
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        tokio::time::sleep(30 * MS).await;
    }
    limiter.acquire().await;
    assert_eq!(
        start.elapsed(),
        100 * MS,
        "granted when the dropped wait would have been"
    );
}

#[tokio::test(start_paused = true)]
async fn a_grant_dropped_before_it_was_seen_is_given_back() {
    let limiter = empty_limiter().await;
    let mut wait = Box::pin(limiter.acquire());
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    // The driver grants it at 100 ms; its owner never polls it again.
    tokio::time::sleep(100 * MS).await;
    tokio::task::yield_now().await;
    assert_eq!(limiter.metrics().granted, 2, "granted, not yet seen");
    drop(wait);
    assert_eq!(limiter.metrics().granted, 1, "given back");
    assert!(
        limiter.try_acquire().is_ok(),
        "the unit is free again at 100 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_context_ends_the_wait_at_once_with_its_cause() {
    let limiter = empty_limiter().await;
    let ctx = Context::new();
    let start = Instant::now();
    let wait = tokio::spawn({
        let (limiter, ctx) = (limiter.clone(), ctx.clone());
        async move {
            limiter
                .acquire_with(&ctx)
                .await
                .map_err(|e| (e, start.elapsed()))
        }
    });
    let behind = waiting_task(&limiter);
    tokio::time::sleep(40 * MS).await;
    ctx.cancel_with(std::io::Error::other("client went away"));
    let (err, at) = wait.await.unwrap().unwrap_err();
    assert_eq!(at, 40 * MS, "ended when the context did");
    match err.cause() {
        Some(Cause::Error(e)) => assert_eq!(e.to_string(), "client went away"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        behind.await.unwrap(),
        100 * MS,
        "the waiter behind moved up"
    );
}

#[tokio::test(start_paused = true)]
async fn an_ended_context_takes_nothing_even_when_a_unit_is_free() {
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    let ctx = Context::new();
    ctx.cancel();
    assert!(matches!(
        limiter.acquire_with(&ctx).await,
        Err(AcquireError::Cancelled(Cause::Cancelled))
    ));
    assert!(limiter.try_acquire().is_ok(), "the unit was not consumed");
    // Counted as a wait its context ended, as the fleet limiter counts it.
    let m = limiter.metrics();
    assert_eq!((m.granted, m.rejected, m.abandoned), (1, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_cannot_be_met_fails_at_once_saying_how_long_the_wait_would_be() {
    let limiter = empty_limiter().await;
    let ctx = Context::new().with_timeout(50 * MS);
    let start = Instant::now();
    let err = limiter.acquire_with(&ctx).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "no sleep before failing");
    match err {
        AcquireError::DeadlineTooSoon { wait, remaining } => {
            assert_eq!((wait, remaining), (100 * MS, 50 * MS));
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("100ms") && text.contains("deadline"),
        "{text}"
    );
    let m = limiter.metrics();
    assert_eq!((m.rejected, m.waiting), (1, 0));
    // Nothing was consumed: the next unit is still due at 100 ms.
    limiter.acquire().await;
    assert_eq!(start.elapsed(), 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_behind_a_queue_counts_the_queue() {
    let limiter = empty_limiter().await;
    let _ahead = [waiting_task(&limiter), waiting_task(&limiter)];
    tokio::task::yield_now().await;
    // Two queued ahead: this one would be granted at 300 ms.
    let ctx = Context::new().with_timeout(250 * MS);
    match limiter.acquire_with(&ctx).await {
        Err(AcquireError::DeadlineTooSoon { wait, .. }) => assert_eq!(wait, 300 * MS),
        other => panic!("{other:?}"),
    }
    let ctx = Context::new().with_timeout(350 * MS);
    let start = Instant::now();
    limiter.acquire_with(&ctx).await.unwrap();
    assert_eq!(start.elapsed(), 300 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_reached_while_waiting_ends_the_wait_with_deadline_exceeded() {
    let limiter = empty_limiter().await;
    let ctx = Context::new().with_timeout(150 * MS);
    let start = Instant::now();
    let wait = limiter.acquire_with(&ctx);
    // The rate drops after the wait has queued, so its deadline passes first.
    let slow_down = async {
        tokio::task::yield_now().await;
        limiter.set_rate(Quota::per_second(1).burst(1)).unwrap();
    };
    let (result, ()) = tokio::join!(wait, slow_down);
    assert!(result.unwrap_err().cause().unwrap().is_deadline_exceeded());
    assert_eq!(start.elapsed(), 150 * MS);
    assert_eq!(limiter.metrics().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_of_duration_max_is_no_deadline() {
    let limiter = empty_limiter().await;
    let ctx = Context::new().with_timeout(Duration::MAX);
    let start = Instant::now();
    limiter.acquire_with(&ctx).await.unwrap();
    assert_eq!(start.elapsed(), 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn is_deadline_tells_a_deadline_ending_whichever_error_carried_it() {
    let limiter = empty_limiter().await;
    // Refused at once: the grant (100 ms) is after the deadline (50 ms).
    let soon = Context::new().with_timeout(50 * MS);
    let refused = limiter.acquire_with(&soon).await.unwrap_err();
    assert!(matches!(refused, AcquireError::DeadlineTooSoon { .. }));
    assert!(refused.is_deadline());
    // Queued behind a long line, then the deadline passes while waiting.
    let line: Vec<_> = (0..5).map(|_| waiting_task(&limiter)).collect();
    tokio::task::yield_now().await;
    let ctx = Context::new();
    let deadline = ctx.with_timeout(Duration::from_secs(10));
    let waiting = limiter.acquire_with(&deadline);
    let cancelled = ctx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(20 * MS).await;
        cancelled.cancel();
    });
    let err = waiting.await.unwrap_err();
    assert!(
        !err.is_deadline(),
        "a plain cancel is not a deadline: {err:?}"
    );
    for waiter in line {
        waiter.abort();
    }
    assert!(AcquireError::Cancelled(Cause::DeadlineExceeded).is_deadline());
}

#[tokio::test(start_paused = true)]
async fn an_owned_wait_can_be_spawned_and_aborting_it_consumes_nothing() {
    let limiter = empty_limiter().await;
    let start = Instant::now();
    let aborted = tokio::spawn(limiter.acquire_owned());
    let behind = tokio::spawn(limiter.acquire_n_owned(1));
    tokio::task::yield_now().await;
    assert_eq!(limiter.metrics().waiting, 2);
    tokio::time::sleep(50 * MS).await;
    aborted.abort();
    assert!(aborted.await.unwrap_err().is_cancelled());
    behind.await.unwrap().unwrap();
    assert_eq!(
        start.elapsed(),
        100 * MS,
        "the wait behind got the aborted one's instant"
    );
    assert!(
        limiter.acquire_n_owned(2).await.is_err(),
        "a burst of 1 never holds 2"
    );
}
