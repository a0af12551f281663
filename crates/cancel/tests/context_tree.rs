//! Context trees: cancellation flows down, never up, and the first cause wins.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use bounded_cancel::{Cause, Context};

#[derive(Debug)]
struct Tagged(u32);

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tagged error {}", self.0)
    }
}

impl Error for Tagged {}

fn error_arc(cause: Option<Cause>) -> Arc<dyn Error + Send + Sync> {
    match cause {
        Some(Cause::Error(err)) => err,
        other => panic!("expected an error cause, got {other:?}"),
    }
}

#[test]
fn parent_cancel_reaches_every_descendant() {
    let root = Context::new();
    let a = root.child();
    let b = root.child();
    let a1 = a.child();
    let a1x = a1.child();
    let b1 = b.child();
    root.cancel();
    for ctx in [&a, &b, &a1, &a1x, &b1] {
        assert!(ctx.is_cancelled());
        assert!(matches!(ctx.cause(), Some(Cause::Cancelled)));
        assert!(ctx.token().is_cancelled());
    }
}

#[test]
fn child_cancel_never_reaches_parent_or_siblings() {
    let root = Context::new();
    let a = root.child();
    let sibling = root.child();
    let grandchild = a.child();
    a.cancel();
    assert!(grandchild.is_cancelled());
    assert!(!root.is_cancelled());
    assert!(!sibling.is_cancelled());
    assert!(root.cause().is_none());
}

#[test]
fn first_cause_wins_on_one_context() {
    let ctx = Context::new();
    assert!(ctx.cancel_with(Tagged(1)));
    assert!(!ctx.cancel_with(Tagged(2)));
    assert!(!ctx.cancel());
    let err = error_arc(ctx.cause());
    assert_eq!(err.downcast_ref::<Tagged>().unwrap().0, 1);
}

#[test]
fn child_sees_parent_cause_and_keeps_it() {
    let parent = Context::new();
    let child = parent.child();
    parent.cancel_with(Tagged(7));
    // The child ended through its parent; its own cancel must not replace the parent's cause.
    assert!(!child.cancel_with(Tagged(8)));
    let err = error_arc(child.cause());
    assert_eq!(err.downcast_ref::<Tagged>().unwrap().0, 7);
}

#[test]
fn child_cause_is_kept_when_parent_cancels_later() {
    let parent = Context::new();
    let child = parent.child();
    child.cancel_with(Tagged(3));
    parent.cancel();
    assert_eq!(
        error_arc(child.cause()).downcast_ref::<Tagged>().unwrap().0,
        3
    );
    assert!(matches!(parent.cause(), Some(Cause::Cancelled)));
}

#[test]
fn cancel_with_returns_the_identical_error() {
    let root = Context::new();
    let child = root.child();
    let original: Arc<dyn Error + Send + Sync> = Arc::new(Tagged(42));
    root.cancel_with_arc(original.clone());
    assert!(Arc::ptr_eq(&original, &error_arc(root.cause())));
    assert!(Arc::ptr_eq(&original, &error_arc(child.cause())));

    // Passed by value, the error is stored once: every cause hands out the same allocation.
    let ctx = Context::new();
    ctx.cancel_with(Tagged(5));
    assert!(Arc::ptr_eq(
        &error_arc(ctx.cause()),
        &error_arc(ctx.cause())
    ));
    let cause = ctx.cause().unwrap();
    assert_eq!(
        cause.error().unwrap().downcast_ref::<Tagged>().unwrap().0,
        5
    );
    // Its message is the cause's; the chain below it starts at the error's own source.
    assert_eq!(
        cause.to_string(),
        "context cancelled by error: tagged error 5"
    );
    assert!(cause.source().is_none());
}

#[test]
fn children_made_after_cancel_start_cancelled() {
    let root = Context::new();
    root.cancel_with(Tagged(9));
    let late = root.child();
    assert!(late.is_cancelled());
    assert_eq!(
        error_arc(late.cause()).downcast_ref::<Tagged>().unwrap().0,
        9
    );
}

#[test]
fn token_follows_the_context_but_cannot_cancel_it() {
    let ctx = Context::new();
    let token = ctx.token();
    token.cancel();
    assert!(
        !ctx.is_cancelled(),
        "cancelling the interop token must not end the context"
    );
    let token = ctx.token();
    ctx.cancel();
    assert!(token.is_cancelled());
}

#[test]
fn clones_are_the_same_context() {
    let ctx = Context::new();
    let clone = ctx.clone();
    clone.cancel();
    assert!(ctx.is_cancelled());
}
