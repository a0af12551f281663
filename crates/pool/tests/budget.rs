//! Tokio's coop budget: a submission that finds room and a handle whose result is there already do
//! not wait, so each spends the caller's budget, as a send on a tokio channel and awaiting a finished
//! `JoinHandle` do. A loop of them yields every so often instead of keeping the thread; a submission
//! that yields for the budget has taken nothing.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use bounded_cancel::Context;
use bounded_pool::Pool;
use bounded_testkit::Ticker;

/// A job that counts itself in `started` as it runs, and finishes at once.
fn counted(
    started: &Arc<AtomicUsize>,
) -> impl FnOnce(Context) -> std::future::Ready<Result<(), String>> + Send + 'static {
    let started = started.clone();
    move |_ctx| {
        started.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

fn roomy_pool() -> Pool {
    Pool::builder().workers(4).queue(100_000).build().unwrap()
}

/// With room for every job, a loop that only submits never finds the queue full; on one thread the
/// jobs start while it still submits rather than piling up, all 10,000 unstarted, until it awaits
/// something else.
#[tokio::test(flavor = "current_thread")]
async fn a_submit_loop_yields_so_that_jobs_start_along_the_way() {
    let pool = roomy_pool();
    let started = Arc::new(AtomicUsize::new(0));
    let mut most_unstarted = 0;
    for submitted in 1..=10_000 {
        pool.submit_detached(counted(&started)).await.unwrap();
        most_unstarted = most_unstarted.max(submitted - started.load(Ordering::Relaxed));
    }
    assert!(
        most_unstarted <= 1_000,
        "{most_unstarted} jobs were waiting to start behind the submit loop"
    );
    assert_eq!(pool.shutdown().await.completed, 10_000);
    assert_eq!(started.load(Ordering::Relaxed), 10_000);
}

/// A submission that yields because the budget ran out has taken nothing: dropped then, its job
/// never runs and is counted nowhere.
#[tokio::test(flavor = "current_thread")]
async fn a_submit_dropped_while_it_yields_for_the_budget_runs_nothing() {
    let pool = roomy_pool();
    let started = Arc::new(AtomicUsize::new(0));
    let mut accepted = 0u64;
    loop {
        let mut next = std::pin::pin!(pool.submit(counted(&started)));
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx).map(Result::unwrap)))
                .await;
        match polled {
            Poll::Ready(handle) => {
                handle.detach();
                accepted += 1;
            }
            // Out of budget: this submission is dropped here, its job not queued.
            Poll::Pending => break,
        }
        assert!(accepted <= 1_000, "the budget never ran out");
    }
    assert!(accepted > 0);
    let report = pool.shutdown().await;
    assert_eq!((report.submitted, report.completed), (accepted, accepted));
    assert_eq!(started.load(Ordering::Relaxed) as u64, accepted);
}

/// Inside `tokio::task::unconstrained`, which lifts the budget, a submit loop runs through: the
/// yields come from tokio's budget, nowhere else.
#[tokio::test(flavor = "current_thread")]
async fn an_unconstrained_submit_loop_does_not_yield() {
    let pool = roomy_pool();
    let started = Arc::new(AtomicUsize::new(0));
    tokio::task::unconstrained(async {
        for _ in 0..1_000 {
            pool.submit_detached(counted(&started)).await.unwrap();
        }
    })
    .await;
    assert_eq!(started.load(Ordering::Relaxed), 0);
    assert_eq!(pool.shutdown().await.completed, 1_000);
}

/// Awaiting handles whose jobs have all finished: every result is there at once, and the loop still
/// lets the thread's other tasks run every so often (and, unconstrained, never does).
#[tokio::test(flavor = "current_thread")]
async fn a_loop_over_finished_handles_yields_every_so_often() {
    let pool = roomy_pool();
    let mut handles = Vec::new();
    for n in 0..2_000u32 {
        handles.push(
            pool.submit(move |_ctx| async move { Ok::<_, String>(n) })
                .await
                .unwrap(),
        );
    }
    // Every job ends while this task sleeps.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(pool.metrics().completed, 2_000);

    let ticker = Ticker::start();
    let unconstrained = handles.split_off(1_000);
    tokio::task::yield_now().await;
    let before = ticker.ticks();
    for (n, handle) in (0..).zip(handles) {
        assert_eq!(handle.await.unwrap(), n);
    }
    let during = ticker.ticks() - before;
    assert!(
        (4..=20).contains(&during),
        "the other task ran {during} times while 1,000 handles were read"
    );

    let before = ticker.ticks();
    tokio::task::unconstrained(async {
        for (n, handle) in (1_000..).zip(unconstrained) {
            assert_eq!(handle.await.unwrap(), n);
        }
    })
    .await;
    assert_eq!(ticker.ticks(), before);
    pool.shutdown().await;
}
