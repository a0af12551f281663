//! Deadlines on the paused clock: exact firing, inheritance, no task per deadline, and answers that
//! agree on every runtime.

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
async fn a_deadline_costs_no_task_and_every_waiter_ends_at_it() {
    let start = Instant::now();
    let ctx = Context::new().with_timeout(Duration::from_secs(3));
    let mut waiters = Vec::new();
    for i in 0..1_000 {
        let child = if i % 2 == 0 {
            ctx.child()
        } else {
            ctx.with_timeout(Duration::from_secs(30))
        };
        waiters.push(tokio::spawn(async move {
            let cause = child.cancelled().await;
            (cause, Instant::now())
        }));
    }
    tokio::task::yield_now().await;
    assert!(live::names().is_empty(), "spawned {:?}", live::names());
    for waiter in waiters {
        let (cause, at) = waiter.await.unwrap();
        assert!(matches!(cause, Cause::DeadlineExceeded));
        assert_eq!(at - start, Duration::from_secs(3));
    }
    assert!(matches!(ctx.cause(), Some(Cause::DeadlineExceeded)));
}

#[tokio::test(start_paused = true)]
async fn a_token_fires_at_the_deadline_with_no_one_looking() {
    let ctx = Context::new().with_timeout(Duration::from_secs(3));
    let token = ctx.child().token();
    let again = ctx.token();
    assert_eq!(
        live::names(),
        ["context deadline timer"],
        "one timer per deadline"
    );
    sleep(Duration::from_secs(3)).await;
    tokio::task::yield_now().await;
    assert!(token.is_cancelled() && again.is_cancelled());
    live::settle(Duration::from_millis(10)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_clone_stops_its_token_timer() {
    let ctx = Context::new().with_timeout(Duration::from_secs(3600));
    let token = ctx.token();
    let clone = ctx.clone();
    drop(ctx);
    assert_eq!(live::names(), ["context deadline timer"]);
    drop(clone);
    live::settle(Duration::from_millis(10)).await.unwrap();
    assert!(!token.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_timeout_too_long_for_an_instant_means_no_deadline() {
    let parent = Context::new();
    let ctx = parent.with_timeout(Duration::MAX);
    assert_eq!(ctx.deadline(), None);
    assert_eq!(ctx.remaining(), None);
    assert!(!ctx.is_cancelled());
    // A parent's deadline still bounds it.
    let bounded = parent
        .with_timeout(Duration::from_secs(1))
        .with_timeout(Duration::MAX);
    assert!(matches!(bounded.cancelled().await, Cause::DeadlineExceeded));
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn a_passed_deadline_ends_the_context_after_its_runtime_is_gone() {
    let first = paused();
    let ctx = first.block_on(async { Context::new().with_timeout(Duration::from_secs(1)) });
    let waiting = first.block_on(async { ctx.child() });
    drop(first);

    paused().block_on(async {
        sleep(Duration::from_secs(2)).await;
        assert_eq!(ctx.remaining(), Some(Duration::ZERO));
        assert!(
            ctx.is_cancelled(),
            "remaining() is zero, so the context has ended"
        );
        assert!(matches!(ctx.cause(), Some(Cause::DeadlineExceeded)));
        let cause = tokio::time::timeout(Duration::from_secs(1), waiting.cancelled()).await;
        assert!(matches!(cause, Ok(Cause::DeadlineExceeded)));
    });
}

#[test]
fn a_token_timer_gone_with_its_runtime_starts_again_on_the_next_call() {
    let first = paused();
    let ctx = first.block_on(async { Context::new().with_timeout(Duration::from_secs(1)) });
    let early = first.block_on(async { ctx.token() });
    drop(first); // and the timer task it ran

    paused().block_on(async {
        let token = ctx.token();
        assert_eq!(
            live::names(),
            ["context deadline timer"],
            "a timer on this runtime"
        );
        tokio::time::timeout(Duration::from_secs(2), token.cancelled())
            .await
            .expect("the token fires at the deadline");
        assert!(early.is_cancelled(), "so does the one taken before");
        assert!(matches!(ctx.cause(), Some(Cause::DeadlineExceeded)));
        live::settle(Duration::from_millis(10)).await.unwrap();
    });
}

#[test]
fn callers_racing_for_the_first_token_leave_one_timer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..200 {
            let ctx = Context::new().with_timeout(Duration::from_secs(3600));
            let start = std::sync::Arc::new(tokio::sync::Barrier::new(4));
            let callers: Vec<_> = (0..4)
                .map(|_| {
                    let (ctx, start) = (ctx.clone(), start.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        ctx.token()
                    })
                })
                .collect();
            for caller in callers {
                caller.await.unwrap();
            }
            // A timer started by a caller that lost the race is aborted, and ends when next polled.
            let mut left = live::names();
            for _ in 0..1000 {
                if left.len() <= 1 {
                    break;
                }
                tokio::time::sleep(TICK).await;
                left = live::names();
            }
            assert_eq!(left, ["context deadline timer"], "one timer per deadline");
            drop(ctx);
            live::settle(Duration::from_secs(1)).await.unwrap();
        }
    });
}

#[test]
fn a_deadline_is_seen_without_any_runtime() {
    let ctx = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async { Context::new().with_timeout(Duration::ZERO) });
    assert!(ctx.is_cancelled());
    assert!(matches!(ctx.child().cause(), Some(Cause::DeadlineExceeded)));
}

#[tokio::test(start_paused = true)]
async fn the_token_timer_ends_when_the_context_is_cancelled() {
    let ctx = Context::new().with_timeout(Duration::from_secs(3600));
    let _token = ctx.token();
    assert_eq!(live::names(), ["context deadline timer"]);
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
