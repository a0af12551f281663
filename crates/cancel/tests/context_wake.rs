//! How the end of a context reaches the waits and the tokens below it: every level of a tree, nodes
//! made or waited on while it ends, tokens that outlive their context.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use bounded_cancel::{Cause, Context};

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    (counter, waker)
}

#[test]
fn an_end_wakes_a_wait_at_every_level_of_a_deep_tree() {
    const DEPTH: usize = 2_000;
    let root = Context::new();
    let mut chain = vec![root.clone()];
    for level in 1..DEPTH {
        // Every third level is an alias, which stands for its parent and is woken with it.
        let next = if level % 3 == 0 {
            chain[level - 1].alias()
        } else {
            chain[level - 1].child()
        };
        chain.push(next);
    }
    let (counter, waker) = counting();
    let mut cx = TaskContext::from_waker(&waker);
    let mut waits: Vec<_> = chain.iter().map(|ctx| Box::pin(ctx.cancelled())).collect();
    for wait in &mut waits {
        assert!(wait.as_mut().poll(&mut cx).is_pending());
    }
    root.cancel_with(std::fmt::Error);
    assert_eq!(counter.0.load(Ordering::SeqCst), DEPTH, "one wake per wait");
    for wait in &mut waits {
        assert!(matches!(
            wait.as_mut().poll(&mut cx),
            Poll::Ready(Cause::Error(_))
        ));
    }
    drop(waits);
    // Dropped from the leaf up, each level after the one below it.
    while chain.pop().is_some() {}
}

#[test]
fn a_chain_of_many_contexts_ends_and_drops_on_a_small_stack() {
    // 100,000 nested contexts, on a thread with 256 KiB of stack: both the end's walk down the chain
    // and the drop up it go one level after another, not nested.
    let ran = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let root = Context::new();
            let mut leaf = root.clone();
            for _ in 0..100_000 {
                leaf = leaf.child();
            }
            let (counter, waker) = counting();
            let mut wait = Box::pin(leaf.cancelled());
            assert!(
                wait.as_mut()
                    .poll(&mut TaskContext::from_waker(&waker))
                    .is_pending()
            );
            root.cancel();
            assert_eq!(counter.0.load(Ordering::SeqCst), 1);
            drop(wait);
            drop(root);
            drop(leaf);
        })
        .unwrap()
        .join();
    assert!(ran.is_ok());
}

#[test]
fn a_child_that_ended_first_is_not_woken_again_by_its_parent() {
    let parent = Context::new();
    let child = parent.child();
    let (counter, waker) = counting();
    let mut cx = TaskContext::from_waker(&waker);
    let mut wait = pin!(child.cancelled());
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    let grandchild = child.child();
    let mut grandchild_wait = Box::pin(grandchild.cancelled());
    assert!(grandchild_wait.as_mut().poll(&mut cx).is_pending());
    assert!(child.cancel_with(std::io::Error::other("child first")));
    assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    assert!(parent.cancel());
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        2,
        "each woken once, by the child's end"
    );
    match wait.poll(&mut cx) {
        Poll::Ready(cause) => {
            assert_eq!(cause.to_string(), "context cancelled by error: child first")
        }
        Poll::Pending => panic!("the child ended"),
    }
    assert!(grandchild_wait.as_mut().poll(&mut cx).is_ready());
}

#[test]
fn a_token_fires_after_its_context_and_the_contexts_between_are_gone() {
    let root = Context::new();
    let token = root.child().alias().child().token();
    let sibling = root.child();
    let sibling_token = sibling.token();
    drop(sibling);
    assert!(!token.is_cancelled() && !sibling_token.is_cancelled());
    root.cancel();
    assert!(
        token.is_cancelled(),
        "a token outlives the context it came from"
    );
    assert!(sibling_token.is_cancelled());

    // A token taken from a context that ended on its own fires at once, and its parent's later
    // end changes nothing.
    let root = Context::new();
    let child = root.child();
    child.cancel();
    assert!(child.token().is_cancelled());
    assert!(!root.token().is_cancelled());
}

#[test]
fn an_end_wakes_the_children_still_alive_and_nothing_of_those_dropped() {
    let root = Context::new();
    let (counter, waker) = counting();
    let mut cx = TaskContext::from_waker(&waker);
    for _ in 0..10_000 {
        let child = root.with_timeout(Duration::from_secs(60));
        let _alias = child.alias();
        let _token = child.token();
    }
    let kept = root.child();
    let mut wait = Box::pin(kept.cancelled());
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    root.cancel();
    // Only the child still alive is woken; the 10,000 dropped ones left nothing behind to walk.
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(wait.as_mut().poll(&mut cx).is_ready());
}

/// Polls `fut` once with a waker that counts.
fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let (_, waker) = counting();
    fut.poll(&mut TaskContext::from_waker(&waker))
}

#[test]
fn waits_and_children_begun_while_the_context_ends_all_end() {
    // One thread ends the root while others make children, aliases and tokens under it and start
    // waits on them. Every wait ends and every token fires, whichever side came first.
    for round in 0..300 {
        let root = Context::new();
        let middle = root.child();
        let start = Arc::new(std::sync::Barrier::new(3));
        let makers: Vec<_> = (0..2)
            .map(|side| {
                let (middle, start) = (middle.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let mut made = Vec::new();
                    for i in 0..40 {
                        let ctx = match (side + i) % 3 {
                            0 => middle.child(),
                            1 => middle.alias(),
                            _ => middle.child().child(),
                        };
                        let token = ctx.token();
                        let mut wait = owned_wait(ctx);
                        // A wait that found the end already is done; the others are left pending.
                        let pending = poll_once(wait.as_mut()).is_pending().then_some(wait);
                        made.push((token, pending));
                    }
                    made
                })
            })
            .collect();
        start.wait();
        root.cancel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for maker in makers {
            for (token, wait) in maker.join().unwrap() {
                assert!(token.is_cancelled(), "round {round}: a token never fired");
                let Some(wait) = wait else { continue };
                let ended = runtime
                    .block_on(async { tokio::time::timeout(Duration::from_secs(5), wait).await });
                assert!(ended.is_ok(), "round {round}: a wait never ended");
            }
        }
    }
}

/// A wait that owns its context, so that it can leave the thread that made it.
fn owned_wait(ctx: Context) -> Pin<Box<dyn Future<Output = Cause> + Send>> {
    Box::pin(async move { ctx.cancelled().await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_start_waiting_as_the_context_ends_all_wake() {
    for round in 0..200 {
        let root = Context::new();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let ctx = if i % 2 == 0 {
                    root.child()
                } else {
                    root.clone()
                };
                tokio::spawn(async move { ctx.cancelled().await })
            })
            .collect();
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        root.cancel();
        for task in tasks {
            let cause = tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .unwrap_or_else(|_| panic!("round {round}: a waiter was never woken"))
                .unwrap();
            assert!(matches!(cause, Cause::Cancelled));
        }
    }
}

#[test]
fn waits_on_two_runtimes_end_together_from_a_third_thread() {
    let ctx = Context::new();
    let start = Arc::new(std::sync::Barrier::new(3));
    let runtimes: Vec<_> = (0..2)
        .map(|i| {
            let (ctx, start) = (ctx.clone(), start.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    // One runtime waits on the context, the other on a child and an alias of it.
                    let waits: Vec<_> = match i {
                        0 => (0..50).map(|_| owned_wait(ctx.clone())).collect(),
                        _ => (0..50)
                            .map(|n| owned_wait(if n % 2 == 0 { ctx.child() } else { ctx.alias() }))
                            .collect(),
                    };
                    let tasks: Vec<_> = waits.into_iter().map(tokio::spawn).collect();
                    tokio::task::yield_now().await;
                    start.wait();
                    let mut causes = Vec::new();
                    for task in tasks {
                        let cause = tokio::time::timeout(Duration::from_secs(5), task)
                            .await
                            .expect("a wait on this runtime never ended")
                            .unwrap();
                        causes.push(cause.to_string());
                    }
                    causes
                })
            })
        })
        .collect();
    start.wait();
    ctx.cancel_with(std::io::Error::other("stop"));
    for runtime in runtimes {
        let causes = runtime.join().unwrap();
        assert_eq!(causes.len(), 50);
        assert!(
            causes
                .iter()
                .all(|c| c == "context cancelled by error: stop"),
            "{causes:?}"
        );
    }
}
