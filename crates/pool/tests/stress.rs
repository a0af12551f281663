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
