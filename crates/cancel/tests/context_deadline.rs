//! Deadlines on the paused clock: exact firing, inheritance, and one shared timer.

use std::time::Duration;

use bounded_cancel::{Cause, Context, live};
use tokio::time::{Instant, sleep};

const TICK: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn timeout_fires_at_its_instant_and_not_a_tick_before() {
    let start = Instant::now();
    let ctx = Context::new().with_timeout(Duration::from_millis(100));
    assert_eq!(ctx.deadline(), Some(start + Duration::from_millis(100)));

    sleep(Duration::from_millis(100) - TICK).await;
    tokio::task::yield_now().await;
    assert!(!ctx.is_cancelled(), "fired a tick early");

    let cause = ctx.cancelled().await;
    assert!(matches!(cause, Cause::DeadlineExceeded));
    assert_eq!(Instant::now() - start, Duration::from_millis(100));
    assert_eq!(ctx.remaining(), Some(Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn deadline_reaches_every_descendant() {
    let ctx = Context::new().with_timeout(Duration::from_secs(1));
    let child = ctx.child();
    let grandchild = child.child();
    let start = Instant::now();
    assert!(matches!(
        grandchild.cancelled().await,
        Cause::DeadlineExceeded
    ));
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    assert!(matches!(child.cause(), Some(Cause::DeadlineExceeded)));
    assert_eq!(grandchild.deadline(), ctx.deadline());
}

#[tokio::test(start_paused = true)]
async fn child_keeps_the_earlier_of_its_own_and_its_parents_deadline() {
    let start = Instant::now();
    let parent = Context::new().with_timeout(Duration::from_secs(10));

    let later = parent.with_timeout(Duration::from_secs(60));
    assert_eq!(later.deadline(), Some(start + Duration::from_secs(10)));

    let earlier = parent.with_timeout(Duration::from_secs(2));
    assert_eq!(earlier.deadline(), Some(start + Duration::from_secs(2)));

    earlier.cancelled().await;
    assert_eq!(Instant::now() - start, Duration::from_secs(2));
    assert!(!parent.is_cancelled());
    assert!(!later.is_cancelled());

    later.cancelled().await;
    assert_eq!(Instant::now() - start, Duration::from_secs(10));
    assert!(matches!(later.cause(), Some(Cause::DeadlineExceeded)));
}

#[tokio::test(start_paused = true)]
async fn cancel_before_the_deadline_keeps_cause_cancelled() {
    let ctx = Context::new().with_timeout(Duration::from_secs(1));
    sleep(Duration::from_millis(500)).await;
    ctx.cancel();
    sleep(Duration::from_secs(5)).await;
    assert!(matches!(ctx.cause(), Some(Cause::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_in_the_past_is_exceeded_at_once() {
    let ctx = Context::new().with_deadline(Instant::now() - Duration::from_secs(1));
    assert!(matches!(ctx.cause(), Some(Cause::DeadlineExceeded)));
    let zero = Context::new().with_timeout(Duration::ZERO);
    assert!(zero.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn one_timer_serves_every_waiter_and_descendant() {
    let ctx = Context::new().with_timeout(Duration::from_secs(3));
    let mut waiters = Vec::new();
    for i in 0..1_000 {
        // Children with a later deadline share the parent's timer instead of arming their own.
        let child = if i % 2 == 0 {
            ctx.child()
        } else {
            ctx.with_timeout(Duration::from_secs(30))
        };
        waiters.push(tokio::spawn(async move { child.cancelled().await }));
    }
    tokio::task::yield_now().await;
    let timers = live::names()
        .iter()
        .filter(|n| *n == "context deadline timer")
        .count();
    assert_eq!(timers, 1);
    for waiter in waiters {
        assert!(matches!(waiter.await.unwrap(), Cause::DeadlineExceeded));
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_clone_stops_its_timer() {
    let ctx = Context::new().with_timeout(Duration::from_secs(3600));
    let clone = ctx.clone();
    drop(ctx);
    assert_eq!(live::names(), ["context deadline timer"]);
    drop(clone);
    live::settle(Duration::from_millis(10)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_timer_ends_when_the_context_is_cancelled() {
    let ctx = Context::new().with_timeout(Duration::from_secs(3600));
    ctx.cancel();
    live::settle(Duration::from_millis(10)).await.unwrap();
    assert!(matches!(ctx.cause(), Some(Cause::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn no_deadline_means_no_remaining() {
    let ctx = Context::new();
    assert_eq!(ctx.remaining(), None);
    assert!(
        live::names().is_empty(),
        "a context without a deadline spawns nothing"
    );
}
