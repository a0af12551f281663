//! Job handles: value, `Failed`, `Panicked`, `Cancelled`; dropping a handle does not cancel its job;
//! panics never kill a worker; unawaited failures reach the error hook once each.

#[path = "support/two_threads.rs"]
mod two_threads;
use two_threads::two_thread_runtime;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::live;
use bounded_pool::{JobError, JobFailure, Pool};
use tokio::time::sleep;

#[tokio::test]
async fn a_handle_resolves_to_the_value_the_error_or_the_panic() {
    let pool = Pool::builder().workers(2).queue(4).build().unwrap();
    let ok = pool
        .submit(|_ctx| async { Ok::<u32, String>(7) })
        .await
        .unwrap();
    let failed = pool
        .submit(|_ctx| async { Err::<u32, _>("no such user".to_owned()) })
        .await
        .unwrap();
    let panicked = pool
        .submit(|_ctx| async { std::panic::panic_any(41u32) as Result<u32, String> })
        .await
        .unwrap();
    assert_eq!(ok.await.unwrap(), 7);
    assert!(matches!(failed.await, Err(JobError::Failed(e)) if e == "no such user"));
    let Err(JobError::Panicked(payload)) = panicked.await else {
        panic!("expected a panic")
    };
    assert_eq!(payload.into_inner().downcast_ref::<u32>(), Some(&41));
    pool.shutdown().await;
}

#[tokio::test]
async fn a_queued_job_resolves_as_cancelled_when_the_pool_is_aborted() {
    let pool = Pool::builder().workers(1).queue(2).build().unwrap();
    let running = pool
        .submit(|_ctx| async {
            std::future::pending::<()>().await;
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    let queued = pool
        .submit(|_ctx| async { Ok::<(), String>(()) })
        .await
        .unwrap();
    tokio::task::yield_now().await;
    pool.abort();
    assert!(matches!(running.await, Err(JobError::Cancelled)));
    assert!(matches!(queued.await, Err(JobError::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_handle_does_not_cancel_its_job() {
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let handle = pool
        .submit(move |_ctx| async move {
            sleep(Duration::from_secs(1)).await;
            d.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    drop(handle);
    let report = pool.shutdown().await;
    assert_eq!(done.load(Ordering::SeqCst), 1);
    assert_eq!(report.completed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_panicking_jobs_never_kill_a_worker() {
    let pool = Pool::builder()
        .workers(2)
        .queue(2)
        .error_hook(|_| {})
        .build()
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..10 {
        handles.push(
            pool.submit(move |_ctx| async move {
                panic!("job {i} panics");
                #[allow(unreachable_code)]
                Ok::<u32, String>(0)
            })
            .await
            .unwrap(),
        );
    }
    for i in 0..10 {
        handles.push(
            pool.submit(move |_ctx| async move { Ok::<u32, String>(i) })
                .await
                .unwrap(),
        );
    }
    let mut panics = 0;
    let mut values = Vec::new();
    for handle in handles {
        match handle.await {
            Err(e @ JobError::Panicked(_)) => {
                assert!(e.panic_message().unwrap().ends_with("panics"));
                panics += 1;
            }
            Ok(v) => values.push(v),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(panics, 10);
    assert_eq!(values, (0..10).collect::<Vec<_>>());
    let report = pool.shutdown().await;
    assert_eq!(
        (report.panicked, report.completed, report.submitted),
        (10, 10, 20)
    );
    live::assert_none_alive().await;
}

#[tokio::test]
async fn unawaited_errors_and_panics_reach_the_hook_once_each() {
    let (pool, seen) = recording_pool(2, 8);
    pool.submit(|_ctx| async { Err::<(), _>("e1") })
        .await
        .unwrap()
        .detach();
    pool.submit(|_ctx| async {
        panic!("p1");
        #[allow(unreachable_code)]
        Ok::<(), String>(())
    })
    .await
    .unwrap()
    .detach();
    pool.submit(|_ctx| async { Ok::<(), String>(()) })
        .await
        .unwrap()
        .detach();
    // An awaited failure goes to its handle, not to the hook.
    let awaited = pool
        .submit(|_ctx| async { Err::<(), _>("e2") })
        .await
        .unwrap();
    assert!(matches!(awaited.await, Err(JobError::Failed("e2"))));
    pool.shutdown().await;
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

#[tokio::test]
async fn a_panicking_hook_does_not_kill_the_worker() {
    let pool = Pool::builder()
        .workers(1)
        .queue(4)
        .error_hook(|_| panic!("hook panics"))
        .build()
        .unwrap();
    pool.submit(|_ctx| async { Err::<(), _>("x") })
        .await
        .unwrap()
        .detach();
    let after = pool
        .submit(|_ctx| async { Ok::<_, String>(5) })
        .await
        .unwrap();
    assert_eq!(after.await.unwrap(), 5);
    pool.shutdown().await;
}

/// On a multi-thread runtime, handles awaited on other tasks while an abort drops the queued jobs
/// and the running one: each handle resolves `Cancelled` only once its job is in the metrics, as
/// never started or cancelled, however the wake-ups race the abort.
#[test]
fn a_handle_cancelled_by_an_abort_resolves_only_once_its_job_is_counted() {
    for _round in 0..200 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            let pool = Arc::new(Pool::builder().workers(1).queue(8).build().unwrap());
            let started = Arc::new(tokio::sync::Notify::new());
            let running = pool
                .submit({
                    let started = started.clone();
                    move |_ctx| async move {
                        started.notify_one();
                        std::future::pending::<Result<(), String>>().await
                    }
                })
                .await
                .unwrap();
            started.notified().await;
            let mut handles = vec![running];
            for _ in 0..8 {
                handles.push(
                    pool.submit(|_ctx| async { Ok::<(), String>(()) })
                        .await
                        .unwrap(),
                );
            }
            let collectors: Vec<_> = handles
                .into_iter()
                .map(|handle| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        assert!(matches!(handle.await, Err(JobError::Cancelled)));
                        let m = pool.metrics();
                        assert!(
                            m.never_started + m.cancelled >= 1,
                            "a handle resolved before its job was counted: {m}"
                        );
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            pool.abort();
            for collector in collectors {
                collector.await.unwrap();
            }
            let report = pool.shutdown().await;
            assert_eq!((report.cancelled, report.never_started), (1, 8), "{report}");
        });
    }
}

/// A closure that panics before it returns its future is a panicked job like any other: its worker
/// calls it, under the same catch as the future's polls.
#[tokio::test(start_paused = true)]
async fn a_closure_that_panics_before_returning_its_future_is_a_panicked_job() {
    let pool = Pool::builder().workers(1).queue(2).build().unwrap();
    let panicked = pool
        .submit(|_ctx| -> std::future::Ready<Result<u32, String>> { panic!("no future for you") })
        .await
        .unwrap();
    let after = pool
        .submit(|_ctx| async { Ok::<u32, String>(7) })
        .await
        .unwrap();
    match panicked.await {
        Err(e @ JobError::Panicked(_)) => assert_eq!(e.panic_message(), Some("no future for you")),
        other => panic!("{other:?}"),
    }
    assert_eq!(after.await.unwrap(), 7, "the worker lived on");
    let report = pool.shutdown().await;
    assert_eq!((report.panicked, report.completed), (1, 1));
}

/// A pool whose error hook records what it receives.
fn recording_pool(workers: usize, queue: usize) -> (Pool, Arc<Mutex<Vec<JobFailure>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let pool = Pool::builder()
        .workers(workers)
        .queue(queue)
        .error_hook(move |failure| log.lock().unwrap().push(failure))
        .build()
        .unwrap();
    (pool, seen)
}

#[tokio::test]
async fn a_failure_reaches_the_hook_when_its_handle_is_dropped_after_the_job_ended() {
    let (pool, seen) = recording_pool(1, 4);
    let failed = pool
        .submit(|_ctx| async { Err::<(), _>("ended before the drop") })
        .await
        .unwrap();
    let panicked = pool
        .submit(|_ctx| async {
            panic!("panicked before the drop");
            #[allow(unreachable_code)]
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    // Both jobs end while their handles are still held.
    while pool.metrics().failed + pool.metrics().panicked < 2 {
        tokio::task::yield_now().await;
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "held handles keep their failures"
    );
    drop(failed);
    drop(panicked);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            JobFailure::Failed("ended before the drop".into()),
            JobFailure::Panicked("panicked before the drop".into())
        ]
    );
    pool.shutdown().await;
    assert_eq!(seen.lock().unwrap().len(), 2, "each failure reported once");
}

#[tokio::test]
async fn a_handle_dropped_after_the_pool_is_gone_still_reports() {
    let (pool, seen) = recording_pool(1, 4);
    let handle = pool
        .submit(|_ctx| async { Err::<(), _>("outlived its pool") })
        .await
        .unwrap();
    pool.shutdown().await;
    assert!(seen.lock().unwrap().is_empty());
    drop(handle);
    assert_eq!(
        *seen.lock().unwrap(),
        [JobFailure::Failed("outlived its pool".into())]
    );
}

#[tokio::test]
async fn a_panicking_hook_does_not_reach_the_task_that_drops_the_handle() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let pool = Pool::builder()
        .workers(1)
        .queue(4)
        .error_hook(move |_failure| {
            counted.fetch_add(1, Ordering::SeqCst);
            panic!("the hook panics")
        })
        .build()
        .unwrap();
    let handle = pool
        .submit(|_ctx| async { Err::<(), _>("to a panicking hook") })
        .await
        .unwrap();
    pool.shutdown().await;
    // The hook runs in this drop, and its panic stays there.
    drop(handle);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn every_failure_is_returned_or_reported_exactly_once_whenever_its_handle_is_dropped() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for round in 0..20 {
        let (awaited, seen) = runtime.block_on(async {
            let (pool, seen) = recording_pool(4, 8);
            let mut dropper = Vec::new();
            let mut awaited = Vec::new();
            for i in 0..500u32 {
                let handle = pool
                    .submit(move |_ctx| async move {
                        for _ in 0..i % 3 {
                            tokio::task::yield_now().await;
                        }
                        Err::<(), _>(i)
                    })
                    .await
                    .unwrap();
                match i % 4 {
                    // Awaited by the submitter: returned, not reported.
                    0 => awaited.push(handle),
                    // Dropped at once, most often before the job ends.
                    1 => drop(handle),
                    // Dropped by another task a few turns later, before or after the job ends.
                    _ => dropper.push(tokio::spawn(async move {
                        for _ in 0..i % 5 {
                            tokio::task::yield_now().await;
                        }
                        drop(handle);
                    })),
                }
            }
            let mut returned = Vec::new();
            for handle in awaited {
                match handle.await {
                    Err(JobError::Failed(i)) => returned.push(i),
                    other => panic!("an awaited failure came back as {other:?}"),
                }
            }
            for task in dropper {
                task.await.unwrap();
            }
            pool.shutdown().await;
            let seen = seen.lock().unwrap().clone();
            (returned, seen)
        });
        let mut all: Vec<u32> = awaited;
        for failure in seen {
            match failure {
                JobFailure::Failed(text) => all.push(text.parse().unwrap()),
                other => panic!("round {round}: {other:?}"),
            }
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (0..500).collect::<Vec<_>>(),
            "round {round}: each failure once, returned or reported"
        );
    }
}
