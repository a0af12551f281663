//! An alias is the context it was made from in everything but where its clones are counted.

use std::sync::Arc;
use std::time::Duration;

use bounded_cancel::{Cause, Context, live};
use tokio::time::sleep;

fn same_error(a: Option<Cause>, b: Option<Cause>) -> bool {
    match (a, b) {
        (Some(Cause::Error(a)), Some(Cause::Error(b))) => Arc::ptr_eq(&a, &b),
        _ => false,
    }
}

#[test]
fn cancelling_an_alias_cancels_the_context_and_everything_under_it() {
    let root = Context::new();
    let ctx = root.child();
    let sibling = root.child();
    let child = ctx.child();
    let token = ctx.token();
    let alias = ctx.alias();
    assert!(
        alias
            .clone()
            .cancel_with(std::io::Error::other("quota spent"))
    );
    assert!(ctx.is_cancelled(), "the context the alias stands for");
    assert!(child.is_cancelled(), "a child made before the alias");
    assert!(token.is_cancelled(), "a token taken before the alias");
    assert!(same_error(ctx.cause(), alias.cause()), "one cause, shared");
    assert!(same_error(ctx.cause(), child.cause()));
    assert!(!root.is_cancelled(), "never upwards");
    assert!(!sibling.is_cancelled());
    // The first cause won on the context itself, whichever handle is asked.
    assert!(!ctx.cancel());
    assert!(!alias.cancel());
}

#[test]
fn an_alias_ends_with_the_context_and_reports_its_cause() {
    let root = Context::new();
    let alias = root.alias();
    let token = alias.token();
    let under_alias = alias.child();
    let alias_of_alias = alias.alias();
    assert!(!alias.is_cancelled());
    root.cancel_with(std::io::Error::other("shutting down"));
    for ctx in [&alias, &under_alias, &alias_of_alias] {
        assert!(ctx.is_cancelled());
        assert!(same_error(root.cause(), ctx.cause()));
    }
    assert!(token.is_cancelled());
}

#[test]
fn a_child_of_an_alias_is_a_child_of_the_context() {
    let ctx = Context::new();
    let child = ctx.alias().child();
    assert!(child.cancel());
    assert!(
        !ctx.is_cancelled(),
        "a child never cancels upwards, through an alias either"
    );
    let other = ctx.alias().child();
    ctx.alias().alias().cancel();
    assert!(
        ctx.is_cancelled(),
        "an alias of an alias stands for the context"
    );
    assert!(matches!(other.cause(), Some(Cause::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn an_alias_waits_on_the_context_itself() {
    let ctx = Context::new();
    let alias = ctx.alias();
    let waiter = tokio::spawn(async move { alias.cancelled().await });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    ctx.cancel();
    assert!(matches!(waiter.await.unwrap(), Cause::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn an_alias_keeps_the_deadline_and_passing_it_ends_the_context() {
    let ctx = Context::new().with_timeout(Duration::from_secs(2));
    let alias = ctx.alias();
    assert_eq!(alias.deadline(), ctx.deadline());
    assert_eq!(alias.remaining(), Some(Duration::from_secs(2)));
    let waiter = tokio::spawn({
        let alias = ctx.alias();
        async move { (alias.cancelled().await, tokio::time::Instant::now()) }
    });
    let start = tokio::time::Instant::now();
    sleep(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished(), "not a tick before the deadline");
    let (cause, at) = waiter.await.unwrap();
    assert!(matches!(cause, Cause::DeadlineExceeded));
    assert_eq!(
        at - start,
        Duration::from_secs(2),
        "a wait through an alias ends at the deadline"
    );
    assert!(matches!(alias.cause(), Some(Cause::DeadlineExceeded)));
    assert!(matches!(ctx.cause(), Some(Cause::DeadlineExceeded)));
    // A cancel through the alias after the deadline changes nothing.
    assert!(!alias.cancel());
}

#[tokio::test(start_paused = true)]
async fn a_token_taken_through_an_alias_fires_at_the_deadline_after_the_alias_is_gone() {
    let ctx = Context::new().with_timeout(Duration::from_secs(3));
    let alias = ctx.alias();
    let token = alias.token();
    assert_eq!(live::names(), ["context deadline timer"]);
    // The timer belongs to the context that owns the deadline, not to the alias.
    drop(alias);
    sleep(Duration::from_secs(3)).await;
    tokio::task::yield_now().await;
    assert!(token.is_cancelled());
    assert!(matches!(ctx.cause(), Some(Cause::DeadlineExceeded)));
    live::settle(Duration::from_millis(10)).await.unwrap();
}

#[test]
fn dropping_every_alias_leaves_the_context_as_it_was() {
    let ctx = Context::new();
    for _ in 0..3 {
        let alias = ctx.alias();
        drop(alias.clone());
        drop(alias);
    }
    assert!(!ctx.is_cancelled());
    assert!(!ctx.token().is_cancelled());
    assert!(ctx.cancel());
}

#[test]
fn aliases_on_many_threads_agree_on_one_cause() {
    for _ in 0..200 {
        let ctx = Context::new();
        let threads: Vec<_> = (0..4)
            .map(|n| {
                let alias = ctx.alias();
                std::thread::spawn(move || {
                    let mine = alias.clone();
                    let won = match n % 2 {
                        0 => mine.cancel(),
                        _ => mine.cancel_with(std::io::Error::other(format!("thread {n}"))),
                    };
                    (won, mine.cause().unwrap().to_string())
                })
            })
            .collect();
        let seen: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(seen.iter().filter(|(won, _)| *won).count(), 1, "{seen:?}");
        let cause = ctx.cause().unwrap().to_string();
        assert!(seen.iter().all(|(_, c)| *c == cause), "{seen:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_look_through_an_alias_past_the_deadline_ends_the_context_itself() {
    let ctx = Context::new().with_timeout(Duration::from_secs(2));
    let child = ctx.child();
    let alias = ctx.alias();
    sleep(Duration::from_secs(2)).await;
    // Nobody has looked yet; the alias looks first, and the cause lands on the context it stands for.
    assert!(alias.is_cancelled());
    assert!(ctx.token().is_cancelled(), "the context's own token fired");
    assert!(child.token().is_cancelled());
    assert!(matches!(ctx.cause(), Some(Cause::DeadlineExceeded)));
}
