//! Every accepted job is in exactly one count of the report, whatever the order of abort, shutdown,
//! shutdown_timeout, close, a cancelled context and drop; and every entry point gives the same answer
//! to a pool that takes no more jobs.

#[path = "support/two_threads.rs"]
mod two_threads;
use two_threads::two_thread_runtime;

use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_pool::{
    BuildError, MAX_QUEUE, MAX_WORKERS, Pool, PoolReport, ResizeError, SubmitError, TrySubmitError,
};

type Job = Box<
    dyn FnOnce(
            Context,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send,
>;

/// A job that never ends by itself, and ignores its context.
fn endless() -> Job {
    Box::new(|_ctx| Box::pin(std::future::pending()))
}

fn assert_accounted(report: &PoolReport, submitted: u64) {
    assert_eq!(report.submitted, submitted, "{report}");
    let counted = report.completed
        + report.failed
        + report.panicked
        + report.cancelled
        + report.never_started;
    assert_eq!(counted, submitted, "a job is missing from {report}");
}

/// Two workers stuck in endless jobs, two more jobs queued behind them.
async fn stuck_pool() -> Pool {
    let pool = Pool::builder().workers(2).queue(2).build().unwrap();
    for _ in 0..4 {
        pool.submit(endless()).await.unwrap().detach();
    }
    // Let both workers take a job.
    while pool.metrics().running < 2 {
        tokio::task::yield_now().await;
    }
    pool
}

#[tokio::test(start_paused = true)]
async fn abort_then_shutdown_counts_the_running_jobs_as_cancelled() {
    let pool = stuck_pool().await;
    pool.abort();
    let report = pool.shutdown().await;
    assert_accounted(&report, 4);
    assert_eq!((report.cancelled, report.never_started), (2, 2), "{report}");
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn abort_then_shutdown_timeout_counts_every_job() {
    let pool = stuck_pool().await;
    pool.abort();
    let report = pool.shutdown_timeout(Duration::from_secs(1)).await;
    assert_eq!((report.cancelled, report.never_started), (2, 2), "{report}");
}

#[tokio::test(start_paused = true)]
async fn close_then_abort_then_shutdown_counts_every_job() {
    let pool = stuck_pool().await;
    pool.close();
    pool.abort();
    let report = pool.shutdown().await;
    assert_eq!((report.cancelled, report.never_started), (2, 2), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_context_then_shutdown_counts_every_job() {
    let pool = stuck_pool().await;
    pool.context().cancel();
    let report = pool.shutdown().await;
    assert_eq!((report.cancelled, report.never_started), (2, 2), "{report}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_timeout_then_shutdown_reports_the_same() {
    let pool = stuck_pool().await;
    let first = pool.shutdown_timeout(Duration::from_secs(1)).await;
    assert_eq!((first.cancelled, first.never_started), (2, 2), "{first}");
    assert_eq!(pool.shutdown().await, first);
}

#[test]
fn every_order_of_stopping_accounts_for_every_job_on_a_multi_thread_runtime() {
    for round in 0..200 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            let pool = std::sync::Arc::new(Pool::builder().workers(2).queue(4).build().unwrap());
            let mut submitted = 0;
            for i in 0..6 {
                let job: Job = if i % 2 == 0 {
                    endless()
                } else {
                    Box::new(|_ctx| Box::pin(async { Ok(()) }))
                };
                if pool.try_submit(job).map(|h| h.detach()).is_ok() {
                    submitted += 1;
                }
            }
            // Stop from another task while this one reports, in an order that changes each round.
            let stopper = {
                let pool = pool.clone();
                tokio::spawn(async move {
                    match round % 3 {
                        0 => pool.abort(),
                        1 => {
                            pool.context().cancel();
                        }
                        _ => {
                            pool.close();
                            pool.abort();
                        }
                    }
                })
            };
            let report = pool.shutdown_timeout(Duration::from_millis(1)).await;
            stopper.await.unwrap();
            assert_accounted(&report, submitted);
            assert_accounted(&pool.shutdown().await, submitted);
        });
    }
}

#[tokio::test(start_paused = true)]
async fn every_entry_point_says_closed_after_shutdown() {
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    pool.shutdown().await;
    let request = Context::new();
    assert!(matches!(
        pool.submit(endless()).await,
        Err(SubmitError::Closed(_))
    ));
    assert!(matches!(
        pool.submit_with(&request, endless()).await,
        Err(SubmitError::Closed(_))
    ));
    assert!(matches!(
        pool.try_submit(endless()),
        Err(TrySubmitError::Closed(_))
    ));
    assert_eq!(pool.resize(2), Err(ResizeError::Closed));
}

#[tokio::test(start_paused = true)]
async fn every_entry_point_says_closed_after_abort_or_a_cancelled_context() {
    for stop in [Pool::abort as fn(&Pool), |p: &Pool| {
        p.context().cancel();
    }] {
        let pool = Pool::builder().workers(1).queue(1).build().unwrap();
        stop(&pool);
        assert!(matches!(
            pool.submit(endless()).await,
            Err(SubmitError::Closed(_))
        ));
        assert!(matches!(
            pool.submit_with(&Context::new(), endless()).await,
            Err(SubmitError::Closed(_))
        ));
        assert!(matches!(
            pool.try_submit(endless()),
            Err(TrySubmitError::Closed(_))
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn a_submitter_waiting_for_room_is_told_closed_when_the_pool_stops() {
    let pool = std::sync::Arc::new(Pool::builder().workers(1).queue(1).build().unwrap());
    pool.submit(endless()).await.unwrap().detach();
    tokio::task::yield_now().await;
    pool.submit(endless()).await.unwrap().detach();
    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.submit_with(&Context::new(), endless()).await.map(drop) })
    };
    tokio::task::yield_now().await;
    pool.abort();
    assert!(matches!(
        waiting.await.unwrap(),
        Err(SubmitError::Closed(_))
    ));
}

#[tokio::test]
async fn sizes_beyond_the_documented_maximum_are_errors() {
    assert_eq!(
        Pool::builder().queue(usize::MAX).build().unwrap_err(),
        BuildError::QueueTooLong
    );
    assert_eq!(
        Pool::builder().queue(MAX_QUEUE + 1).build().unwrap_err(),
        BuildError::QueueTooLong
    );
    assert_eq!(
        Pool::builder().workers(usize::MAX).build().unwrap_err(),
        BuildError::TooManyWorkers
    );
    assert_eq!(
        Pool::builder()
            .workers(MAX_WORKERS + 1)
            .build()
            .unwrap_err(),
        BuildError::TooManyWorkers
    );
    let err = Pool::builder().workers(usize::MAX).build().unwrap_err();
    assert!(err.to_string().contains(&MAX_WORKERS.to_string()), "{err}");
    let pool = Pool::builder().workers(1).build().unwrap();
    assert_eq!(pool.resize(usize::MAX), Err(ResizeError::TooManyWorkers));
    assert_eq!(pool.workers(), 1);
}

#[tokio::test]
async fn a_huge_queue_costs_what_it_holds() {
    // A bound of 2^40 would need terabytes if the queue were allocated up front.
    let pool = Pool::builder().workers(1).queue(1 << 40).build().unwrap();
    let handle = pool
        .submit(|_ctx| async { Ok::<_, String>(7) })
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap(), 7);
    let pool = Pool::builder().workers(2).queue(MAX_QUEUE).build().unwrap();
    assert_eq!(pool.shutdown().await.submitted, 0);
}

/// A job that counts its first poll in `polled`, then waits for its context and answers its end
/// with an error, as well-behaved jobs do.
fn answers_its_context(polled: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Job {
    let polled = polled.clone();
    Box::new(|ctx: Context| {
        Box::pin(async move {
            polled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ctx.cancelled().await;
            Err("context cancelled".to_owned())
        })
    })
}

#[test]
fn the_stop_wins_over_errors_the_stop_produced_on_a_multi_thread_runtime() {
    for round in 0..200 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            let hooked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let app = Context::new();
            let pool = Pool::builder()
                .workers(2)
                .queue(2)
                .context(&app)
                .error_hook({
                    let hooked = hooked.clone();
                    move |_| {
                        hooked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
                .build()
                .unwrap();
            let polled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut handles = Vec::new();
            for _ in 0..2 {
                handles.push(pool.submit(answers_its_context(&polled)).await.unwrap());
            }
            // Polled, not only taken (`running` counts a job from its worker's take): a job
            // stopped before its first poll never started, and is counted so.
            while polled.load(std::sync::atomic::Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
            let report = if round % 2 == 0 {
                app.cancel();
                pool.shutdown().await
            } else {
                pool.shutdown_timeout(Duration::from_millis(1)).await
            };
            assert_eq!((report.cancelled, report.failed), (2, 0), "{report}");
            for handle in handles {
                assert!(matches!(
                    handle.await,
                    Err(bounded_pool::JobError::Cancelled)
                ));
            }
            assert_eq!(hooked.load(std::sync::atomic::Ordering::Relaxed), 0);
        });
    }
}
