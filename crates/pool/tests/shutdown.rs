//! close, shutdown, shutdown_timeout, abort, a cancelled pool context, and drop.

use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_pool::{JobError, Pool, SubmitError};
use tokio::time::{Instant, sleep};

fn sleeper(
    secs: u64,
) -> impl FnOnce(
    Context,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
+ Send
+ 'static {
    move |_ctx| {
        Box::pin(async move {
            sleep(Duration::from_secs(secs)).await;
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn close_refuses_new_jobs_and_queued_ones_still_run() {
    let pool = Pool::builder().workers(1).queue(3).build().unwrap();
    let handles: Vec<_> = futures_util::future::join_all((0..3).map(|_| pool.submit(sleeper(1))))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    pool.close();
    assert!(matches!(
        pool.submit(sleeper(1)).await,
        Err(SubmitError::Closed(_))
    ));
    for handle in handles {
        handle.await.unwrap();
    }
    let report = pool.shutdown().await;
    assert_eq!((report.submitted, report.completed), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_every_accepted_job() {
    let pool = Pool::builder().workers(2).queue(6).build().unwrap();
    for _ in 0..8 {
        pool.submit(sleeper(1)).await.unwrap().detach();
    }
    let start = Instant::now();
    let report = pool.shutdown().await;
    assert_eq!(report.completed, 8);
    assert_eq!(
        Instant::now() - start,
        Duration::from_secs(4),
        "8 jobs of 1 s on 2 workers"
    );
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_timeout_cancels_then_aborts_and_the_counts_add_up() {
    let pool = Pool::builder().workers(3).queue(4).build().unwrap();
    // Worker 1: finishes within the grace. Worker 2: returns when its context ends. Worker 3: ignores it.
    let quick = pool.submit(sleeper(1)).await.unwrap();
    let polite = pool
        .submit(|ctx| async move {
            ctx.cancelled().await;
            Err::<(), _>("stopped by shutdown".to_owned())
        })
        .await
        .unwrap();
    let stubborn = pool.submit(sleeper(3600)).await.unwrap();
    tokio::task::yield_now().await;
    let queued: Vec<_> = futures_util::future::join_all((0..4).map(|_| pool.submit(sleeper(1))))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let start = Instant::now();
    let report = pool.shutdown_timeout(Duration::from_millis(1500)).await;
    let took = Instant::now() - start;
    assert!(
        took >= Duration::from_millis(1500)
            && took <= Duration::from_millis(1500) + bounded_pool::CANCEL_WINDOW
    );

    assert!(quick.await.is_ok());
    // Its error answered the stop: the stop is the cause, so it is cancelled, not failed.
    assert!(matches!(polite.await, Err(JobError::Cancelled)));
    assert!(matches!(stubborn.await, Err(JobError::Cancelled)));
    // The worker freed by `quick` took one queued job at t = 1 s; it was aborted too. Three never started.
    for handle in queued {
        let _ = handle.await;
    }
    assert_eq!(report.submitted, 7);
    assert_eq!(report.completed, 1);
    assert_eq!(report.failed, 0);
    assert_eq!(report.cancelled, 3);
    assert_eq!(report.never_started, 3);
    assert_eq!(
        report.completed
            + report.failed
            + report.panicked
            + report.cancelled
            + report.never_started,
        report.submitted
    );
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_grace_of_duration_max_waits_like_shutdown_and_a_grace_of_zero_stops_at_once() {
    // No grace is too long to add to the clock: `Duration::MAX` waits for every job, as `shutdown`.
    let pool = Pool::builder().workers(1).queue(2).build().unwrap();
    let running = pool.submit(sleeper(3600)).await.unwrap();
    tokio::task::yield_now().await;
    let queued = pool.submit(sleeper(3600)).await.unwrap();
    let start = Instant::now();
    let report = pool.shutdown_timeout(Duration::MAX).await;
    assert_eq!(start.elapsed(), Duration::from_secs(7200));
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.submitted, report.completed), (2, 2));
    assert!(running.await.is_ok() && queued.await.is_ok());

    // A grace of zero gives the running job only the cancel window, and starts nothing queued.
    let pool = Pool::builder().workers(1).queue(2).build().unwrap();
    let running = pool.submit(sleeper(3600)).await.unwrap();
    tokio::task::yield_now().await;
    let queued = pool.submit(sleeper(3600)).await.unwrap();
    let start = Instant::now();
    let report = pool.shutdown_timeout(Duration::ZERO).await;
    assert_eq!(start.elapsed(), bounded_pool::CANCEL_WINDOW);
    assert_eq!((report.cancelled, report.never_started), (1, 1), "{report}");
    assert!(matches!(running.await, Err(JobError::Cancelled)));
    assert!(matches!(queued.await, Err(JobError::Cancelled)));
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_pools_context_stops_everything_and_accounts_for_it() {
    let app = Context::new();
    let pool = Pool::builder()
        .workers(1)
        .queue(2)
        .context(&app)
        .build()
        .unwrap();
    let running = pool.submit(sleeper(3600)).await.unwrap();
    tokio::task::yield_now().await;
    let queued = pool.submit(sleeper(1)).await.unwrap();
    app.cancel();
    assert!(matches!(running.await, Err(JobError::Cancelled)));
    assert!(matches!(queued.await, Err(JobError::Cancelled)));
    assert!(matches!(
        pool.submit(sleeper(1)).await,
        Err(SubmitError::Closed(_))
    ));
    live::assert_none_alive().await;
    let m = pool.metrics();
    assert_eq!(
        (
            m.submitted,
            m.cancelled,
            m.never_started,
            m.running,
            m.queued
        ),
        (2, 1, 1, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_pool_cancels_queued_jobs_and_leaves_nothing_alive() {
    let pool = Pool::builder().workers(2).queue(4).build().unwrap();
    let mut handles = Vec::new();
    for _ in 0..6 {
        handles.push(pool.submit(sleeper(3600)).await.unwrap());
    }
    drop(pool);
    for handle in handles {
        assert!(matches!(handle.await, Err(JobError::Cancelled)));
    }
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_a_shutdown_wait_leaves_the_pool_closed_and_draining() {
    let pool = Pool::builder().workers(1).queue(2).build().unwrap();
    let job = pool.submit(sleeper(1)).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(100), pool.shutdown()).await;
    assert!(waited.is_err(), "the job takes 1 s");
    assert!(matches!(
        pool.submit(sleeper(1)).await,
        Err(SubmitError::Closed(_))
    ));
    job.await.unwrap();
    let report = pool.shutdown().await;
    assert_eq!((report.submitted, report.completed), (1, 1));
    live::assert_none_alive().await;
}

/// Submits `jobs` jobs that sleep `nap`, with one in the middle that then awaits its own pool's
/// shutdown (or `shutdown_timeout`), and checks that it panics instead of waiting for itself for
/// ever: the pool closes, every other job ends, and the owner's shutdown reports the panic.
async fn a_job_awaiting_its_own_pools_shutdown(
    workers: usize,
    jobs: usize,
    nap: Duration,
    with_grace: bool,
) {
    let pool = std::sync::Arc::new(Pool::builder().workers(workers).queue(4).build().unwrap());
    let mut handles = Vec::new();
    let mut own = None;
    for i in 0..jobs {
        if i == jobs / 2 {
            let same = pool.clone();
            let handle = pool
                .submit(move |_ctx| async move {
                    sleep(nap).await;
                    match with_grace {
                        true => same.shutdown_timeout(Duration::from_secs(60)).await,
                        false => same.shutdown().await,
                    };
                    Ok::<_, String>(())
                })
                .await
                .unwrap();
            own = Some(handle);
            continue;
        }
        match pool
            .submit(move |_ctx| async move {
                sleep(nap).await;
                Ok::<_, String>(())
            })
            .await
        {
            Ok(handle) => handles.push(handle),
            // The job above closed the pool: later submissions are refused.
            Err(SubmitError::Closed(_)) => break,
            Err(err) => panic!("unexpected refusal: {err}"),
        }
    }
    let err = tokio::time::timeout(Duration::from_secs(10), own.unwrap())
        .await
        .expect("the job's wait for its own pool's shutdown ends")
        .unwrap_err();
    let message = err.panic_message().expect("the job panicked").to_owned();
    let what = if with_grace {
        "`Pool::shutdown_timeout`"
    } else {
        "`Pool::shutdown`"
    };
    assert!(message.starts_with(what), "{message}");
    assert!(message.contains("call `close()`"), "{message}");
    assert!(matches!(
        pool.submit(|_ctx| async { Ok::<_, String>(()) }).await,
        Err(SubmitError::Closed(_))
    ));
    let accepted = handles.len() as u64 + 1;
    for handle in handles {
        handle.await.unwrap();
    }
    let report = tokio::time::timeout(Duration::from_secs(10), pool.shutdown())
        .await
        .expect("the owner's shutdown returns");
    assert_eq!(
        (report.submitted, report.completed, report.panicked),
        (accepted, accepted - 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_awaiting_its_own_pools_shutdown_panics_instead_of_waiting_for_itself() {
    a_job_awaiting_its_own_pools_shutdown(2, 9, Duration::from_millis(10), false).await;
    a_job_awaiting_its_own_pools_shutdown(2, 9, Duration::from_millis(10), true).await;
    // A job that awaits nothing before it: it runs in a run of quick jobs.
    a_job_awaiting_its_own_pools_shutdown(1, 9, Duration::ZERO, false).await;
}

/// On a multi-thread runtime, with the pool saturated so that workers whose jobs wait move into
/// the pool's shared task: whichever task runs the job, it is one of the pool's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_awaiting_its_own_pools_shutdown_panics_on_every_task_of_the_pool() {
    for round in 0..20 {
        let with_grace = round % 2 == 1;
        a_job_awaiting_its_own_pools_shutdown(8, 200, Duration::from_millis(1), with_grace).await;
    }
}
