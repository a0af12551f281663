//! Many jobs with random errors, panics, caller cancellations and a shutdown partway: the accounting is
//! exact, every handle agrees with the metrics, and nothing is left alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_pool::{JobError, Pool, SubmitError};

/// A small deterministic generator, so a failure can be replayed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_accounting_is_exact_under_errors_panics_cancellations_and_shutdown() {
    stress(100_000).await;
}

/// On one thread, where workers whose jobs finish at once take them in runs.
#[tokio::test(flavor = "current_thread")]
async fn stress_accounting_is_exact_on_one_thread_where_jobs_run_in_runs() {
    stress(50_000).await;
}

async fn stress(jobs: u64) {
    // Thousands of jobs panic on purpose; keep their reports out of the log, and every other panic in it.
    bounded_testkit::quiet_planned_panics();
    let pool = Arc::new(
        Pool::builder()
            .workers(8)
            .queue(16)
            .error_hook(|_| {})
            .build()
            .unwrap(),
    );
    let (ok, failed, panicked, cancelled) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut refused = 0u64;
    let mut collectors = Vec::new();
    for i in 0..jobs {
        let roll = next(&mut seed) % 100;
        let job = move |ctx: Context| async move {
            match roll {
                0..=9 => Err(format!("job {i} failed")),
                10..=12 => panic!("job {i} panicked on purpose"),
                13..=15 => {
                    // A slower job that stops early if the shutdown cancels it.
                    let _ = ctx.run(tokio::time::sleep(Duration::from_millis(1))).await;
                    Ok(())
                }
                16..=20 => {
                    tokio::task::yield_now().await;
                    Ok(())
                }
                _ => Ok(()),
            }
        };
        let caller = Context::new();
        if roll.is_multiple_of(7) {
            caller.cancel(); // some callers give up before submitting
        }
        if i == jobs / 2 {
            let pool = pool.clone();
            tokio::spawn(async move { pool.shutdown_timeout(Duration::from_millis(20)).await });
        }
        let handle = match pool.submit_with(&caller, job).await {
            Ok(handle) => handle,
            Err(SubmitError::Cancelled { .. } | SubmitError::Closed(_)) => {
                refused += 1;
                continue;
            }
            Err(other) => panic!("unexpected {other}"),
        };
        // Every resolved handle must already be counted in the metrics.
        let (pool, ok, failed, panicked, cancelled) = (
            pool.clone(),
            ok.clone(),
            failed.clone(),
            panicked.clone(),
            cancelled.clone(),
        );
        collectors.push(tokio::spawn(async move {
            // Count this handle first, then read the metrics: every handle counted so far resolved after
            // its job was counted, so the metrics can only be ahead. (Reading them first would race with
            // other collectors counting in between.)
            let category = match handle.await {
                Ok(()) => 0,
                Err(JobError::Failed(_)) => 1,
                Err(JobError::Panicked(_)) => 2,
                Err(JobError::Cancelled) => 3,
                Err(other) => panic!("unexpected {other}"),
            };
            let mine = [&ok, &failed, &panicked, &cancelled][category];
            let seen = mine.fetch_add(1, Ordering::SeqCst) + 1;
            let m = pool.metrics();
            let theirs = [
                m.completed,
                m.failed,
                m.panicked,
                m.cancelled + m.never_started,
            ][category];
            assert!(
                theirs >= seen,
                "a handle resolved before the metrics counted it"
            );
        }));
    }
    for c in collectors {
        c.await.unwrap();
    }
    let report = pool.shutdown().await;
    let m = pool.metrics();
    assert_eq!(report.submitted + m.rejected, jobs);
    assert_eq!(m.rejected, refused);
    assert_eq!(report.completed, ok.load(Ordering::SeqCst));
    assert_eq!(report.failed, failed.load(Ordering::SeqCst));
    assert_eq!(report.panicked, panicked.load(Ordering::SeqCst));
    assert_eq!(
        report.cancelled + report.never_started,
        cancelled.load(Ordering::SeqCst)
    );
    assert_eq!(
        report.completed
            + report.failed
            + report.panicked
            + report.cancelled
            + report.never_started,
        report.submitted
    );
    assert!(report.submitted >= jobs / 3, "the first half was accepted");
    drop(pool);
    live::assert_none_alive().await;
}

/// A snapshot never shows more jobs queued than the queue holds, nor more running than there are
/// workers, nor more ended than submitted, however the counts move while it is read: a thread
/// reads `metrics()` in a tight loop while two submitters keep a small queue full of quick jobs
/// and jobs that await once, on two threads and on one.
#[test]
fn a_snapshot_never_shows_more_queued_or_running_than_the_pool_can_hold() {
    let mut two_threads = tokio::runtime::Builder::new_multi_thread();
    two_threads.worker_threads(2).enable_all();
    snapshots_within_bounds(two_threads.build().unwrap());
    snapshots_within_bounds(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
}

fn snapshots_within_bounds(runtime: tokio::runtime::Runtime) {
    const WORKERS: u64 = 2;
    const QUEUE: u64 = 4;
    const JOBS: u64 = 100_000;
    let pool = Arc::new(runtime.block_on(async {
        Pool::builder()
            .workers(WORKERS as usize)
            .queue(QUEUE as usize)
            .build()
            .unwrap()
    }));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pool, done) = (pool.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut samples, mut most_queued, mut most_running) = (0u64, 0, 0);
            while !done.load(Ordering::Acquire) {
                let m = pool.metrics();
                assert!(
                    m.queued <= QUEUE,
                    "{QUEUE} places, {} queued: {m:?}",
                    m.queued
                );
                assert!(
                    m.running <= WORKERS,
                    "{WORKERS} workers, {} running: {m:?}",
                    m.running
                );
                assert!(m.ended() <= m.submitted, "more ended than submitted: {m:?}");
                most_queued = most_queued.max(m.queued);
                most_running = most_running.max(m.running);
                samples += 1;
            }
            (samples, most_queued, most_running)
        })
    };
    runtime.block_on(async {
        let submitters: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for i in 0..JOBS / 2 {
                        pool.submit_detached(move |_ctx| async move {
                            if i % 2 == 0 {
                                tokio::task::yield_now().await;
                            }
                            Ok::<_, String>(())
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for s in submitters {
            s.await.unwrap();
        }
    });
    done.store(true, Ordering::Release);
    let (samples, most_queued, most_running) = sampler.join().unwrap();
    let report = runtime.block_on(pool.shutdown());
    assert_eq!(report.completed, JOBS, "{report}");
    drop(pool);
    runtime.block_on(live::assert_none_alive());
    // The sampler saw the pool busy: the bounds above were checked against a full queue.
    assert!(samples > 1_000, "only {samples} snapshots");
    assert_eq!(most_queued, QUEUE, "the queue never filled");
    assert!(most_running >= 1, "no job seen running");
}
