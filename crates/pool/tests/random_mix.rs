//! Whatever mix of entry points, resizes and ways of stopping a pool sees, from several submitters at
//! once, every accepted job is in exactly one count of the report (a graceful shutdown runs each one
//! to its end), and every failure and panic reaches exactly one place: the handle that awaited it,
//! or the error hook; also when its workers, sharing one task, spread again while it runs.

#[path = "../../group/tests/support/cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "../../group/tests/support/paused.rs"]
mod paused;
#[path = "support/two_threads.rs"]
mod two_threads;
#[path = "../../group/tests/support/wait.rs"]
mod wait;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_pool::{JobError, Pool, PoolReport, SubmitError, TrySubmitError};
use paused::paused_runtime;
use proptest::prelude::*;
use two_threads::two_thread_runtime;
use wait::wait;

/// What a job does.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Quick,
    Yields(u8),
    /// Sleeps this many tens of microseconds on the paused clock; yields that often on two threads.
    Waits(u8),
    /// Waits as `Waits` does, but gives up with an error when the pool's context ends.
    Watches(u8),
    /// Waits once, then computes for 250 µs without awaiting, this many times: on two threads, jobs
    /// whose slow polls make the pool's workers spread again while it runs and stops.
    Computes(u8),
    Fails,
    Panics,
}

/// What a submitter does with its handle, if it gets one.
#[derive(Debug, Clone, Copy)]
enum Keep {
    Await,
    Detach,
    Drop,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Submit(Kind, Keep),
    SubmitDetached(Kind),
    TrySubmit(Kind),
    TrySubmitDetached(Kind),
    /// `submit_with` on a caller's context that may be cancelled while it waits.
    SubmitWith(Kind),
    Resize(usize),
    Yield,
}

/// How the pool is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Shutdown,
    /// With this grace, in tens of microseconds.
    ShutdownTimeout(u8),
    AbortThenShutdown,
    CloseThenNoGrace,
    /// The parent context the pool was built under is cancelled, then `shutdown` takes the report.
    CancelParentThenShutdown,
    /// Once the submitters are done, the pool is dropped with its jobs queued and running: no report.
    Drop,
}

fn kind() -> impl Strategy<Value = Kind> + Clone {
    prop_oneof![
        3 => Just(Kind::Quick),
        2 => (1u8..4).prop_map(Kind::Yields),
        2 => (1u8..20).prop_map(Kind::Waits),
        1 => (1u8..20).prop_map(Kind::Watches),
        1 => (1u8..4).prop_map(Kind::Computes),
        1 => Just(Kind::Fails),
        1 => Just(Kind::Panics),
    ]
}

/// Mostly jobs that wait and then compute: enough of them, in a saturated pool on two threads, that
/// its workers share a task and then spread again while it runs, resizes and stops.
fn computing_kind() -> impl Strategy<Value = Kind> + Clone {
    prop_oneof![
        8 => (1u8..4).prop_map(Kind::Computes),
        2 => (1u8..4).prop_map(Kind::Yields),
        1 => Just(Kind::Quick),
        1 => (1u8..20).prop_map(Kind::Watches),
        1 => Just(Kind::Fails),
        1 => Just(Kind::Panics),
    ]
}

fn step(kind: impl Strategy<Value = Kind> + Clone) -> impl Strategy<Value = Step> {
    let keep = prop_oneof![Just(Keep::Await), Just(Keep::Detach), Just(Keep::Drop)];
    prop_oneof![
        4 => (kind.clone(), keep).prop_map(|(k, h)| Step::Submit(k, h)),
        2 => kind.clone().prop_map(Step::SubmitDetached),
        2 => kind.clone().prop_map(Step::TrySubmit),
        1 => kind.clone().prop_map(Step::TrySubmitDetached),
        2 => kind.prop_map(Step::SubmitWith),
        1 => (1usize..=6).prop_map(Step::Resize),
        1 => Just(Step::Yield),
    ]
}

fn stop() -> impl Strategy<Value = Stop> {
    prop_oneof![
        Just(Stop::Shutdown),
        (0u8..50).prop_map(Stop::ShutdownTimeout),
        Just(Stop::AbortThenShutdown),
        Just(Stop::CloseThenNoGrace),
        Just(Stop::CancelParentThenShutdown),
        Just(Stop::Drop),
    ]
}

/// What the jobs, the hook and the handles saw.
#[derive(Default)]
struct Seen {
    accepted: AtomicU64,
    returned_ok: AtomicU64,
    returned_err: AtomicU64,
    /// Jobs that returned their error of their own accord (`Kind::Fails`).
    failed: AtomicU64,
    panicked: AtomicU64,
    to_hook: AtomicU64,
    claimed: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

async fn run_job(kind: Kind, paused: bool, ctx: Context, seen: Arc<Seen>) -> Result<(), String> {
    match kind {
        Kind::Quick => {}
        Kind::Yields(n) => {
            for _ in 0..n {
                tokio::task::yield_now().await;
            }
        }
        Kind::Waits(n) => wait(paused, n).await,
        Kind::Watches(n) => {
            if ctx.run(wait(paused, n)).await.is_err() {
                count(&seen.returned_err);
                return Err("the pool stopped".into());
            }
        }
        Kind::Computes(n) => {
            for _ in 0..n {
                wait(paused, 1).await;
                if !paused {
                    cpu::burn(Duration::from_micros(250));
                }
            }
        }
        Kind::Fails => {
            count(&seen.returned_err);
            count(&seen.failed);
            return Err("bad input".into());
        }
        Kind::Panics => {
            count(&seen.panicked);
            panic!("a job panicked on purpose");
        }
    }
    count(&seen.returned_ok);
    Ok(())
}

async fn submitter(
    pool: Arc<Pool>,
    caller: Context,
    steps: Vec<Step>,
    paused: bool,
    seen: Arc<Seen>,
) -> Vec<bounded_pool::JobHandle<(), String>> {
    let mut kept = Vec::new();
    for step in steps {
        let job = |kind| {
            let seen = seen.clone();
            move |ctx| run_job(kind, paused, ctx, seen)
        };
        let accepted = match step {
            Step::Submit(kind, keep) => match pool.submit(job(kind)).await {
                Ok(handle) => {
                    match keep {
                        Keep::Await => kept.push(handle),
                        Keep::Detach => handle.detach(),
                        Keep::Drop => drop(handle),
                    }
                    true
                }
                Err(SubmitError::Closed(_)) => false,
                Err(other) => panic!("submit: {other}"),
            },
            Step::SubmitDetached(kind) => match pool.submit_detached(job(kind)).await {
                Ok(()) => true,
                Err(SubmitError::Closed(_)) => false,
                Err(other) => panic!("submit_detached: {other}"),
            },
            Step::TrySubmit(kind) => match pool.try_submit(job(kind)) {
                Ok(handle) => {
                    kept.push(handle);
                    true
                }
                Err(TrySubmitError::Full(_) | TrySubmitError::Closed(_)) => false,
                Err(other) => panic!("try_submit: {other}"),
            },
            Step::TrySubmitDetached(kind) => match pool.try_submit_detached(job(kind)) {
                Ok(()) => true,
                Err(TrySubmitError::Full(_) | TrySubmitError::Closed(_)) => false,
                Err(other) => panic!("try_submit_detached: {other}"),
            },
            Step::SubmitWith(kind) => match pool.submit_with(&caller, job(kind)).await {
                Ok(handle) => {
                    kept.push(handle);
                    true
                }
                Err(SubmitError::Closed(_) | SubmitError::Cancelled { .. }) => false,
                Err(other) => panic!("submit_with: {other}"),
            },
            Step::Resize(workers) => {
                // Refused once the pool is closed; either answer is fine here.
                let _ = pool.resize(workers);
                false
            }
            Step::Yield => {
                tokio::task::yield_now().await;
                false
            }
        };
        if accepted {
            count(&seen.accepted);
        }
    }
    kept
}

/// One random case.
struct Case {
    workers: usize,
    queue: usize,
    /// One list of steps per submitter.
    plans: Vec<Vec<Step>>,
    /// The wait before the stop, as `wait` counts.
    stop_after: u8,
    /// Real time added to that wait on two threads, for the jobs to run a while before the stop;
    /// nothing measures it.
    settle: Duration,
    cancel_caller: bool,
    stop: Stop,
    paused: bool,
}

async fn run_case(case: Case) -> (Option<PoolReport>, Arc<Seen>) {
    let Case {
        workers,
        queue,
        plans,
        stop_after,
        settle,
        cancel_caller,
        stop,
        paused,
    } = case;
    let seen = Arc::new(Seen::default());
    let hook_seen = seen.clone();
    let parent = Context::new();
    let pool = Pool::builder()
        .context(&parent)
        .workers(workers)
        .queue(queue)
        .error_hook(move |_failure| count(&hook_seen.to_hook))
        .build()
        .unwrap();
    let pool = Arc::new(pool);
    let caller = Context::new();
    let submitters: Vec<_> = plans
        .into_iter()
        .map(|steps| {
            let task = submitter(pool.clone(), caller.clone(), steps, paused, seen.clone());
            tokio::spawn(task)
        })
        .collect();
    // On one thread, between polls, no job is counted as started before it was accepted, or as ended
    // before it started: the queued, the running and the ended add up to the accepted.
    let observer = paused.then(|| {
        let pool = pool.clone();
        tokio::spawn(async move {
            loop {
                let m = pool.metrics();
                assert_eq!(m.submitted, m.queued + m.running + m.ended(), "{m:?}");
                tokio::time::sleep(Duration::from_micros(10)).await;
            }
        })
    });
    wait(paused, stop_after).await;
    if !settle.is_zero() {
        tokio::time::sleep(settle).await;
    }
    if cancel_caller {
        caller.cancel();
    }
    let mut handles = Vec::new();
    let report = match stop {
        Stop::Shutdown => pool.shutdown().await,
        Stop::ShutdownTimeout(grace) => {
            let grace = Duration::from_micros(10 * u64::from(grace));
            pool.shutdown_timeout(grace).await
        }
        Stop::AbortThenShutdown => {
            pool.abort();
            pool.shutdown().await
        }
        Stop::CloseThenNoGrace => {
            pool.close();
            pool.shutdown_timeout(Duration::ZERO).await
        }
        Stop::CancelParentThenShutdown => {
            parent.cancel();
            pool.shutdown().await
        }
        Stop::Drop => {
            for submitter in submitters {
                handles.extend(submitter.await.expect("a submitter"));
            }
            if let Some(observer) = observer {
                observer.abort();
                let _ = observer.await;
            }
            // Jobs that ignore the pool's context and never end by themselves: only the drop's
            // abort ends them (refused when the queue is full or the pool closed, which is fine).
            for _ in 0..2 {
                let _ = pool.try_submit_detached(move |_ctx| async move {
                    loop {
                        match paused {
                            true => tokio::time::sleep(Duration::from_secs(3600)).await,
                            false => tokio::task::yield_now().await,
                        }
                    }
                    #[allow(unreachable_code)]
                    Ok::<(), String>(())
                });
            }
            tokio::task::yield_now().await;
            let pool = Arc::into_inner(pool).expect("no submitter holds the pool any more");
            drop(pool);
            // Every handle resolves, and no task is left, without anyone awaiting a shutdown.
            for handle in handles {
                if let Err(JobError::Failed(_) | JobError::Panicked(_)) = handle.await {
                    count(&seen.claimed);
                }
            }
            live::assert_none_alive().await;
            return (None, seen);
        }
    };
    for submitter in submitters {
        handles.extend(submitter.await.expect("a submitter"));
    }
    // Every handle resolves once its pool has stopped.
    for handle in handles {
        match handle.await {
            Ok(()) => {}
            Err(JobError::Failed(_) | JobError::Panicked(_)) => count(&seen.claimed),
            Err(JobError::Cancelled) => {}
            Err(other) => panic!("a new kind of job error: {other}"),
        }
    }
    if let Some(observer) = observer {
        observer.abort();
        if let Err(failed) = observer.await
            && failed.is_panic()
        {
            std::panic::resume_unwind(failed.into_panic());
        }
    }
    let metrics = pool.metrics();
    assert_eq!((metrics.running, metrics.queued), (0, 0), "{metrics:?}");
    drop(pool);
    live::assert_none_alive().await;
    (Some(report), seen)
}

/// Runs one case on the paused clock or on two threads, and checks its counts against what the jobs,
/// the hook and the handles saw.
fn check(case: Case) -> Result<(), TestCaseError> {
    bounded_testkit::quiet_planned_panics();
    let (paused, stop) = (case.paused, case.stop);
    let case = run_case(case);
    let (report, seen) = match paused {
        true => paused_runtime().block_on(case),
        // On a worker thread, so that the submitters it spawns start while it yields.
        false => two_thread_runtime().block_on(async { tokio::spawn(case).await.unwrap() }),
    };
    let reached = read(&seen.to_hook) + read(&seen.claimed);
    let Some(report) = report else {
        // Dropped: on one thread every job that failed or panicked did so before the drop, and
        // each failure reached its handle or the hook; on two, one ending as the pool is
        // dropped may be taken for cancelled instead.
        let failures = read(&seen.failed) + read(&seen.panicked);
        match paused {
            true => prop_assert_eq!(reached, failures),
            false => prop_assert!(reached <= failures, "{} > {}", reached, failures),
        }
        return Ok(());
    };
    let counted = report.completed
        + report.failed
        + report.panicked
        + report.cancelled
        + report.never_started;
    prop_assert_eq!(report.submitted, read(&seen.accepted), "{}", report);
    prop_assert_eq!(
        counted,
        report.submitted,
        "a job is missing from {}",
        report
    );
    prop_assert_eq!(report.completed, read(&seen.returned_ok), "{}", report);
    prop_assert_eq!(report.panicked, read(&seen.panicked), "{}", report);
    // An error returned after the pool's stop is counted as cancelled, not failed.
    prop_assert!(report.failed <= read(&seen.returned_err), "{}", report);
    if let Stop::Shutdown = stop {
        // A graceful shutdown runs every accepted job to its end.
        prop_assert_eq!(report.cancelled + report.never_started, 0, "{}", report);
    }
    prop_assert_eq!(reached, report.failed + report.panicked, "{}", report);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_accepted_job_and_every_failure_is_accounted_for_once(
        workers in 1usize..=6,
        queue in 1usize..=8,
        plans in proptest::collection::vec(proptest::collection::vec(step(kind()), 0..80), 1..=3),
        stop_after in 1u8..80,
        cancel_caller in any::<bool>(),
        stop in stop(),
        paused in any::<bool>(),
    ) {
        let settle = Duration::ZERO;
        check(Case { workers, queue, plans, stop_after, settle, cancel_caller, stop, paused })?;
    }
}

proptest! {
    // Each case computes for tens of milliseconds.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Workers that spread again, mid-run, lose nothing either: the jobs of a saturated pool on two
    /// threads wait and then compute, so that its workers move into one shared task and then, once
    /// the slow polls fill its time, back to tasks of their own, before, while or after it resizes
    /// and stops.
    #[test]
    fn nothing_is_lost_when_workers_spread_again_as_the_pool_runs_and_stops(
        workers in 2usize..=8,
        queue in 1usize..=4,
        plans in proptest::collection::vec(proptest::collection::vec(step(computing_kind()), 40..120), 2..=3),
        stop_after in 1u8..80,
        settle_ms in 0u64..40,
        cancel_caller in any::<bool>(),
        stop in stop(),
    ) {
        let settle = Duration::from_millis(settle_ms);
        let paused = false;
        check(Case { workers, queue, plans, stop_after, settle, cancel_caller, stop, paused })?;
    }
}
