//! Waiting on a context: `cancelled()` and `run()`, and what a dropped wait leaves behind.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use bounded_cancel::{Cause, Context};
use tokio::time::{Instant, sleep};

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn run_returns_the_output_when_the_future_wins() {
    let ctx = Context::new().with_timeout(Duration::from_secs(1));
    let out = ctx
        .run(async {
            sleep(Duration::from_millis(999)).await;
            "done"
        })
        .await;
    assert_eq!(out.unwrap(), "done");
}

#[tokio::test(start_paused = true)]
async fn run_returns_the_cause_and_drops_the_future_when_it_loses() {
    let ctx = Context::new().with_timeout(Duration::from_secs(1));
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = SetOnDrop(dropped.clone());
    let start = Instant::now();
    let out = ctx
        .run(async move {
            let _guard = guard;
            sleep(Duration::from_secs(10)).await;
            "never"
        })
        .await;
    assert!(matches!(out, Err(Cause::DeadlineExceeded)));
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the losing future must be dropped"
    );
}

#[tokio::test]
async fn run_on_an_ended_context_never_polls_the_future() {
    let ctx = Context::new();
    ctx.cancel();
    let polled = AtomicBool::new(false);
    let out = ctx
        .run(async {
            polled.store(true, Ordering::SeqCst);
        })
        .await;
    assert!(matches!(out, Err(Cause::Cancelled)));
    assert!(!polled.load(Ordering::SeqCst));
}

#[tokio::test]
async fn run_reports_an_error_cause() {
    let ctx = Context::new();
    let runner = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.run(std::future::pending::<()>()).await })
    };
    tokio::task::yield_now().await;
    ctx.cancel_with(std::io::Error::other("bad gateway"));
    let cause = runner.await.unwrap().unwrap_err();
    assert_eq!(cause.to_string(), "context cancelled by error: bad gateway");
}

#[test]
fn cancelled_dropped_mid_wait_leaves_no_waiter_behind() {
    let ctx = Context::new();
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = TaskContext::from_waker(&waker);
    {
        let mut wait = pin!(ctx.cancelled());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
    }
    // The dropped waiter must be gone: cancelling now wakes nobody.
    ctx.cancel();
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);

    // Control: a waiter still registered is woken by the same cancel.
    let ctx = Context::new();
    let mut wait = pin!(ctx.cancelled());
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    ctx.cancel();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(matches!(wait.poll(&mut cx), Poll::Ready(Cause::Cancelled)));
}

#[tokio::test]
async fn cancelled_resolves_at_once_on_an_ended_context() {
    let ctx = Context::new();
    ctx.cancel_with(std::fmt::Error);
    assert!(matches!(ctx.cancelled().await, Cause::Error(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_wakes_every_waiter_across_threads() {
    let ctx = Context::new();
    let woken = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let ctx = ctx.child();
        let woken = woken.clone();
        tasks.push(tokio::spawn(async move {
            ctx.cancelled().await;
            woken.fetch_add(1, Ordering::SeqCst);
        }));
    }
    ctx.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(woken.load(Ordering::SeqCst), 500);
}

#[test]
fn a_wait_polled_again_by_another_task_wakes_that_task() {
    let ctx = Context::new();
    let first = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let second = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let (first_waker, second_waker) = (Waker::from(first.clone()), Waker::from(second.clone()));
    let mut wait = pin!(ctx.cancelled());
    for _ in 0..3 {
        assert!(
            wait.as_mut()
                .poll(&mut TaskContext::from_waker(&first_waker))
                .is_pending()
        );
    }
    // Moved to another task (as a `select!` loop handing the wait on does): the end wakes that one.
    assert!(
        wait.as_mut()
            .poll(&mut TaskContext::from_waker(&second_waker))
            .is_pending()
    );
    ctx.cancel();
    assert_eq!(
        first.0.load(Ordering::SeqCst),
        0,
        "the old task is not woken"
    );
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        wait.poll(&mut TaskContext::from_waker(&second_waker)),
        Poll::Ready(Cause::Cancelled)
    ));
}

#[test]
fn a_wait_polled_many_times_by_its_task_is_woken_once_by_the_end() {
    let ctx = Context::new();
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = TaskContext::from_waker(&waker);
    let mut run = pin!(ctx.run(std::future::pending::<()>()));
    for _ in 0..100 {
        assert!(run.as_mut().poll(&mut cx).is_pending());
    }
    ctx.cancel_with(std::fmt::Error);
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        run.poll(&mut cx),
        Poll::Ready(Err(Cause::Error(_)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_runs_on_one_context_all_end_when_it_ends_from_another_thread() {
    // Each task's future wakes itself on every poll, so its `run` is polled over and over by the
    // same task while another thread ends the context.
    for round in 0..100 {
        let ctx = Context::new();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    ctx.run(async {
                        loop {
                            tokio::task::yield_now().await;
                        }
                    })
                    .await
                })
            })
            .collect();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(200));
            ctx.cancel();
        });
        for task in tasks {
            let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
            let ended = ended.unwrap_or_else(|_| panic!("round {round}: a run never ended"));
            assert!(matches!(ended.unwrap(), Err(Cause::Cancelled)));
        }
        canceller.join().unwrap();
    }
}
