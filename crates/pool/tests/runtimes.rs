//! A pool belongs to the runtime it was built on. When that runtime shuts down, its workers are gone
//! with it, so the pool aborts itself and says so, instead of leaving submitters waiting for workers
//! that no longer exist. Workers added by `resize` start there too, wherever `resize` is called, and
//! `shutdown_timeout` called outside any runtime times its grace there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_pool::{JobError, Pool, SubmitError, TrySubmitError};
use bounded_testkit::block_on_this_thread;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Built on one runtime, used from another after the first shut down: a submitter already waiting
/// for room and every later submit are told `Closed`, the queued job resolves as cancelled without
/// running, and `shutdown` returns a report that counts every job.
#[test]
fn a_pool_whose_runtime_shut_down_refuses_instead_of_hanging() {
    let first = runtime();
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool =
        Arc::new(first.block_on(async { Pool::builder().workers(1).queue(1).build().unwrap() }));
    let queued_ran = Arc::new(AtomicBool::new(false));
    // The handle is awaited later, on the second runtime.
    #[allow(clippy::async_yields_async)]
    let queued = first.block_on(async {
        pool.submit(|ctx: Context| async move {
            ctx.cancelled().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap()
        .detach();
        tokio::task::yield_now().await;
        let ran = queued_ran.clone();
        pool.submit(move |_ctx| async move {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, String>(())
        })
        .await
        .unwrap()
    });
    // A submitter from the second runtime, waiting for room when the first one shuts down.
    let waiting = second.spawn({
        let pool = pool.clone();
        async move {
            pool.submit(|_ctx| async { Ok::<_, String>(()) })
                .await
                .map(|h| h.detach())
        }
    });
    // Lets it run until it waits in line (the queue's one slot holds the second job).
    second.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    assert!(!waiting.is_finished());
    drop(first);

    second.block_on(async {
        let waited = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("a waiting submitter is released")
            .unwrap();
        assert!(matches!(waited, Err(SubmitError::Closed(_))));
        assert!(matches!(
            pool.submit(|_ctx| async { Ok::<_, String>(()) }).await,
            Err(SubmitError::Closed(_))
        ));
        assert!(matches!(
            pool.try_submit(|_ctx| async { Ok::<_, String>(()) }),
            Err(TrySubmitError::Closed(_))
        ));
        assert!(matches!(queued.await, Err(JobError::<String>::Cancelled)));
        assert!(pool.context().is_cancelled());
        let report = tokio::time::timeout(Duration::from_secs(10), pool.shutdown())
            .await
            .expect("shutdown returns");
        assert_eq!(report.submitted, 2);
        assert_eq!((report.cancelled, report.never_started), (1, 1));
    });
    assert!(!queued_ran.load(Ordering::SeqCst));
}

/// Submits `jobs` jobs that each wait until all of them run at once, waits for every handle (which
/// resolves only if the pool runs `jobs` workers), then shuts the pool down: every job completed.
async fn all_at_once_then_drain(pool: &Pool, jobs: usize) {
    let started = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..jobs {
        let started = started.clone();
        let handle = pool
            .submit(move |_ctx| async move {
                started.fetch_add(1, Ordering::SeqCst);
                while started.load(Ordering::SeqCst) < jobs {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok::<_, String>(())
            })
            .await
            .unwrap();
        handles.push(handle);
    }
    for handle in handles {
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("every job runs at the same time as the others")
            .unwrap();
    }
    let report = pool.shutdown().await;
    assert_eq!((report.completed, report.cancelled), (jobs as u64, 0));
}

/// A service resizing its pool from a thread of its own (a config reload, an admin endpoint run
/// elsewhere) gets the workers on the pool's runtime, not a panic for being outside one.
#[test]
fn resize_from_outside_any_runtime_starts_the_workers_on_the_pools_runtime() {
    let rt = runtime();
    let pool =
        Arc::new(rt.block_on(async { Pool::builder().workers(1).queue(8).build().unwrap() }));
    let resizer = pool.clone();
    std::thread::spawn(move || resizer.resize(4))
        .join()
        .expect("resize does not panic outside a runtime")
        .unwrap();
    assert_eq!(pool.workers(), 4);
    rt.block_on(all_at_once_then_drain(&pool, 4));
}

/// Workers added from a task of another runtime run on the pool's own: when that other runtime
/// shuts down, the pool loses no worker and goes on.
#[test]
fn workers_added_from_another_runtime_outlive_it() {
    let rt = runtime();
    let pool =
        Arc::new(rt.block_on(async { Pool::builder().workers(1).queue(8).build().unwrap() }));
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resizer = pool.clone();
    other
        .block_on(async move { tokio::spawn(async move { resizer.resize(4) }).await })
        .unwrap()
        .unwrap();
    drop(other);
    assert!(!pool.context().is_cancelled(), "the pool did not abort");
    rt.block_on(all_at_once_then_drain(&pool, 4));
}

/// Submitters on a runtime that shuts down while they wait for room: the pool, on a runtime of its
/// own, runs every job it accepted exactly once, and none of a submitter whose wait was dropped.
#[test]
fn a_submitters_runtime_shutting_down_loses_no_accepted_job() {
    let rt = runtime();
    let pool =
        Arc::new(rt.block_on(async { Pool::builder().workers(1).queue(2).build().unwrap() }));
    let runs = Arc::new(AtomicUsize::new(0));
    let submitters = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let (pool, runs, accepted) = (pool.clone(), runs.clone(), accepted.clone());
        submitters.spawn(async move {
            loop {
                let runs = runs.clone();
                let job = move |_ctx| async move {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(())
                };
                if pool.submit(job).await.is_err() {
                    return;
                }
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // The submitters run ahead of the pool, so most of the time three of them wait for room.
    std::thread::sleep(Duration::from_millis(30));
    drop(submitters);
    rt.block_on(async {
        let report = tokio::time::timeout(Duration::from_secs(10), pool.shutdown())
            .await
            .expect("shutdown returns");
        // A submitter counts its job in the poll in which `submit` accepts it, so its runtime
        // cannot drop it in between: a job the pool counts that no submitter counted would be
        // the job of a dropped wait.
        let accepted = accepted.load(Ordering::SeqCst) as u64;
        assert!(accepted > 2, "the submitters ran ahead of the pool");
        assert_eq!(report.submitted, accepted, "{report}");
        assert_eq!(report.completed, report.submitted, "{report}");
        assert_eq!(runs.load(Ordering::SeqCst) as u64, report.completed);
    });
}

/// A service that stops its pool from a thread of its own gets the grace and the report, timed on
/// the pool's runtime, not a panic for being outside one; `shutdown` there needs no timer at all.
#[test]
fn shutdown_timeout_from_outside_any_runtime_times_the_grace_on_the_pools_runtime() {
    let rt = runtime();
    let pool =
        Arc::new(rt.block_on(async { Pool::builder().workers(1).queue(4).build().unwrap() }));
    rt.block_on(async {
        let stops = |ctx: Context| async move {
            ctx.cancelled().await;
            Err::<(), _>("stopped".to_string())
        };
        pool.submit(stops).await.unwrap().detach();
        pool.submit(stops).await.unwrap().detach();
    });
    let stopper = pool.clone();
    let started = std::time::Instant::now();
    let report = std::thread::spawn(move || {
        block_on_this_thread(stopper.shutdown_timeout(Duration::from_millis(50)))
    })
    .join()
    .expect("shutdown_timeout does not panic outside a runtime");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "it waited out the grace"
    );
    assert_eq!((report.cancelled, report.never_started), (1, 1));
    assert_eq!(report.submitted, 2);
}

/// Built outside any runtime, a pool cannot start its workers: `build` panics, as `tokio::spawn`
/// does there, with a message that names the pool and says what to do.
#[test]
fn building_a_pool_outside_any_runtime_panics_with_a_message_that_says_so() {
    let built = std::panic::catch_unwind(|| Pool::builder().workers(2).queue(2).build());
    let message = bounded_cancel::panic_message(&*built.unwrap_err()).to_owned();
    assert!(
        message.starts_with("a pool was built outside a tokio runtime"),
        "{message}"
    );
    assert!(message.contains("Runtime::block_on"), "{message}");
    // Inside one, after `Runtime::enter`, it builds and runs.
    let runtime = runtime();
    let pool = {
        let _entered = runtime.enter();
        Pool::builder().workers(2).queue(2).build().unwrap()
    };
    runtime.block_on(async {
        let answer = pool.submit(|_ctx| async { Ok::<_, String>(42) }).await;
        assert_eq!(answer.unwrap().await.unwrap(), 42);
        assert_eq!(pool.shutdown().await.completed, 1);
    });
}
