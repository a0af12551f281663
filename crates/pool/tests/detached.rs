//! `submit_detached` and `try_submit_detached`: jobs whose result nobody awaits. They run, count and
//! report as every job does, their failures reach the error hook once each, and they are refused and
//! handed back exactly as `submit` and `try_submit` would be.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::live;
use bounded_pool::{JobFailure, Pool, SubmitError, TrySubmitError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_jobs_run_once_each_and_count_in_the_report() {
    let pool = Pool::builder().workers(4).queue(8).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..1_000 {
        let ran = ran.clone();
        pool.submit_detached(move |_ctx| async move {
            tokio::task::yield_now().await;
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    }
    let report = pool.shutdown().await;
    assert_eq!(ran.load(Ordering::SeqCst), 1_000);
    assert_eq!((report.submitted, report.completed), (1_000, 1_000));
    live::assert_none_alive().await;
}

#[tokio::test]
async fn a_detached_jobs_error_and_panic_reach_the_hook_once_each() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let pool = Pool::builder()
        .workers(2)
        .queue(8)
        .error_hook(move |failure| log.lock().unwrap().push(failure))
        .build()
        .unwrap();
    pool.submit_detached(|_ctx| async { Err::<(), _>("e1") })
        .await
        .unwrap();
    pool.try_submit_detached(|_ctx| async {
        panic!("p1");
        #[allow(unreachable_code)]
        Ok::<(), String>(())
    })
    .unwrap();
    pool.submit_detached(|_ctx| async { Ok::<u32, String>(7) })
        .await
        .unwrap();
    let report = pool.shutdown().await;
    assert_eq!(
        (report.completed, report.failed, report.panicked),
        (1, 1, 1)
    );
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|f| f.to_string());
    assert_eq!(
        seen,
        [
            JobFailure::Failed("e1".into()),
            JobFailure::Panicked("p1".into())
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_detached_submission_is_refused_and_handed_back_like_any_other() {
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    let park = |ctx: bounded_cancel::Context| async move {
        ctx.cancelled().await;
        Ok::<_, String>(())
    };
    pool.try_submit_detached(park).unwrap();
    tokio::task::yield_now().await; // the worker takes it and parks in it
    pool.try_submit_detached(park).unwrap(); // queued
    assert!(matches!(
        pool.try_submit_detached(park),
        Err(TrySubmitError::Full(_))
    ));
    // A wait for room given up runs nothing.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), pool.submit_detached(park)).await;
    assert!(gave_up.is_err(), "the queue stays full");
    pool.close();
    assert!(matches!(
        pool.submit_detached(park).await,
        Err(SubmitError::Closed(_))
    ));
    assert!(matches!(
        pool.try_submit_detached(park),
        Err(TrySubmitError::Closed(_))
    ));
    let report = pool.shutdown_timeout(Duration::from_millis(10)).await;
    assert_eq!(report.submitted, 2, "only the first two were accepted");
    let ended = report.completed + report.failed + report.cancelled + report.never_started;
    assert_eq!(ended, 2, "{report:?}");
    live::assert_none_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_pool_counts_its_detached_jobs_queued_and_running() {
    let pool = Pool::builder().workers(1).queue(4).build().unwrap();
    for _ in 0..5 {
        pool.submit_detached(|_ctx| async {
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    }
    // One is running (or about to be), the rest queued.
    tokio::time::sleep(Duration::from_millis(20)).await;
    pool.abort();
    let report = pool.shutdown().await;
    assert_eq!(report.submitted, 5);
    assert_eq!(report.cancelled + report.never_started, 5, "{report:?}");
    assert_eq!(
        report.cancelled, 1,
        "the running one was aborted: {report:?}"
    );
    live::assert_none_alive().await;
}
