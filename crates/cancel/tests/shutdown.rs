//! Shutdown: the four outcomes, a drain that never outlasts its grace, and no task left behind.

use std::time::Duration;

use bounded_cancel::{Context, Shutdown, TaskOutcome, live};
use tokio::time::{Instant, sleep};

const TICK: Duration = Duration::from_millis(1);

async fn pending_forever() -> Result<(), String> {
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn reports_each_of_the_four_outcomes_by_name() {
    let mut shutdown = Shutdown::new();
    shutdown.spawn("drains", |ctx| async move {
        ctx.cancelled().await;
        sleep(Duration::from_millis(100)).await;
        Ok::<_, String>(())
    });
    shutdown.spawn("fails", |ctx| async move {
        ctx.cancelled().await;
        Err(std::io::Error::other("flush to disk failed"))
    });
    shutdown.spawn("panics", |ctx| async move {
        ctx.cancelled().await;
        panic!("poisoned state in {}", "panics");
        #[allow(unreachable_code)]
        Ok::<_, String>(())
    });
    shutdown.spawn("ignores the context", |_ctx| pending_forever());
    shutdown.trigger();
    let report = shutdown.wait(Duration::from_secs(1)).await;

    assert_eq!(report.get("drains"), Some(&TaskOutcome::Completed));
    assert_eq!(
        report.get("fails"),
        Some(&TaskOutcome::Failed("flush to disk failed".into()))
    );
    assert_eq!(
        report.get("panics"),
        Some(&TaskOutcome::Panicked("poisoned state in panics".into()))
    );
    assert_eq!(
        report.get("ignores the context"),
        Some(&TaskOutcome::Aborted)
    );
    let names: Vec<&str> = report.tasks().iter().map(|t| t.name()).collect();
    assert_eq!(names, ["drains", "fails", "panics", "ignores the context"]);
    assert!(!report.is_clean());
    assert!(
        report
            .to_string()
            .contains("fails: failed: flush to disk failed\n")
    );
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn never_waits_past_grace_after_the_trigger() {
    let mut shutdown = Shutdown::new();
    shutdown.spawn("stuck", |_ctx| pending_forever());
    shutdown.spawn("slow", |ctx| async move {
        ctx.cancelled().await;
        sleep(Duration::from_secs(60)).await;
        Ok::<_, String>(())
    });
    let trigger = shutdown.context().clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(5)).await;
        trigger.cancel();
    });
    let start = Instant::now();
    let report = shutdown.wait(Duration::from_secs(2)).await;
    let waited = Instant::now() - start;
    assert!(
        waited >= Duration::from_secs(7),
        "returned before the grace ran out: {waited:?}"
    );
    assert!(
        waited <= Duration::from_secs(7) + TICK,
        "waited past the grace: {waited:?}"
    );
    assert_eq!(report.get("stuck"), Some(&TaskOutcome::Aborted));
    assert_eq!(report.get("slow"), Some(&TaskOutcome::Aborted));
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn returns_as_soon_as_every_task_has_drained() {
    let mut shutdown = Shutdown::new();
    for i in 0..3u64 {
        shutdown.spawn(format!("worker {i}"), move |ctx| async move {
            ctx.cancelled().await;
            sleep(Duration::from_millis(10 * (i + 1))).await;
            Ok::<_, String>(())
        });
    }
    shutdown.trigger();
    let start = Instant::now();
    let report = shutdown.wait(Duration::from_secs(30)).await;
    assert_eq!(Instant::now() - start, Duration::from_millis(30));
    assert!(report.is_clean(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn returns_without_a_trigger_once_every_task_ended_by_itself() {
    let mut shutdown = Shutdown::new();
    shutdown.spawn("batch", |_ctx| async {
        sleep(Duration::from_secs(3)).await;
        Ok::<_, String>(())
    });
    let start = Instant::now();
    let report = shutdown.wait(Duration::from_secs(1)).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(3));
    assert!(report.is_clean());
}

#[tokio::test(start_paused = true)]
async fn tasks_see_the_trigger_through_their_context() {
    let mut shutdown = Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    shutdown.spawn("observer", |ctx| async move {
        let cause = ctx.cancelled().await;
        tx.send(cause.to_string()).unwrap();
        Ok::<_, String>(())
    });
    tokio::task::yield_now().await;
    assert!(shutdown.trigger());
    assert!(!shutdown.trigger());
    assert_eq!(rx.await.unwrap(), "context cancelled");
    assert!(shutdown.wait(Duration::from_secs(1)).await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_parent_context_triggers_it() {
    let app = Context::new();
    let mut shutdown = Shutdown::with_context(&app);
    shutdown.spawn("listener", |ctx| async move {
        ctx.cancelled().await;
        Ok::<_, String>(())
    });
    app.cancel();
    assert!(shutdown.is_triggered());
    assert!(shutdown.wait(Duration::from_secs(1)).await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn dropping_it_aborts_every_task() {
    let mut shutdown = Shutdown::new();
    let ctx = shutdown.context().clone();
    shutdown.spawn("a", |_ctx| pending_forever());
    shutdown.spawn("b", |_ctx| pending_forever());
    assert_eq!(live::names(), ["a", "b"]);
    drop(shutdown);
    assert!(ctx.is_cancelled());
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_wait_midway_aborts_every_task() {
    let mut shutdown = Shutdown::new();
    shutdown.spawn("stuck", |_ctx| pending_forever());
    shutdown.trigger();
    let waited = tokio::time::timeout(
        Duration::from_secs(1),
        shutdown.wait(Duration::from_secs(60)),
    )
    .await;
    assert!(waited.is_err());
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_grace_too_long_for_an_instant_drains_without_a_limit() {
    let mut shutdown = Shutdown::new();
    shutdown.spawn("slow", |ctx| async move {
        ctx.cancelled().await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, String>(())
    });
    shutdown.trigger();
    let report = shutdown.wait(Duration::MAX).await;
    assert!(report.is_clean(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn under_trigger_on_failure_a_panicking_task_starts_the_shutdown_and_is_reported() {
    use bounded_cancel::TaskFailed;
    let mut shutdown = Shutdown::new().trigger_on_failure();
    shutdown.spawn("server", |ctx| async move {
        ctx.cancelled().await;
        Ok::<_, String>(())
    });
    shutdown.spawn("fine", |_ctx| async { Ok::<_, String>(()) });
    sleep(Duration::from_secs(1)).await;
    assert!(
        !shutdown.is_triggered(),
        "a task that ends with Ok triggers nothing"
    );
    shutdown.spawn("watchdog", |_ctx| async {
        sleep(Duration::from_secs(1)).await;
        panic!("watchdog lost its heartbeat");
        #[allow(unreachable_code)]
        Ok::<_, String>(())
    });
    let cause = shutdown.context().cancelled().await;
    let failed = cause.error().unwrap().downcast_ref::<TaskFailed>().unwrap();
    assert_eq!(failed.task(), "watchdog");
    assert!(failed.message().contains("watchdog lost its heartbeat"));
    let report = shutdown.wait(Duration::from_secs(1)).await;
    let outcomes: Vec<String> = report
        .tasks()
        .iter()
        .map(|t| format!("{}", t.outcome()))
        .collect();
    assert!(outcomes[2].contains("panicked"), "{report}");
    assert!(
        !outcomes[0].contains("aborted"),
        "the server drained: {report}"
    );
}

/// An error whose `Display` panics: its task failed, so the shutdown starts all the same, and the
/// report names the panic.
#[tokio::test(start_paused = true)]
async fn under_trigger_on_failure_an_error_whose_display_panics_still_starts_the_shutdown() {
    use bounded_cancel::TaskFailed;
    struct Unprintable;
    impl std::fmt::Display for Unprintable {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("no text for this error")
        }
    }
    let mut shutdown = Shutdown::new().trigger_on_failure();
    shutdown.spawn("server", |ctx| async move {
        ctx.cancelled().await;
        Ok::<_, String>(())
    });
    shutdown.spawn("exporter", |_ctx| async {
        sleep(Duration::from_secs(1)).await;
        Err(Unprintable)
    });
    let cause = tokio::time::timeout(Duration::from_secs(5), shutdown.context().cancelled())
        .await
        .expect("the failure started the shutdown");
    let failed = cause.error().unwrap().downcast_ref::<TaskFailed>().unwrap();
    assert_eq!(failed.task(), "exporter");
    assert!(
        failed
            .message()
            .contains("Display panicked: no text for this error"),
        "{}",
        failed.message()
    );
    let report = shutdown.wait(Duration::from_secs(1)).await;
    assert!(
        format!("{}", report.tasks()[1].outcome()).contains("no text for this error"),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn without_the_policy_a_failing_task_starts_nothing() {
    let mut shutdown = Shutdown::new();
    shutdown.spawn("failing", |_ctx| async { Err("gone") });
    sleep(Duration::from_secs(1)).await;
    assert!(!shutdown.is_triggered());
    let report = shutdown.wait(Duration::from_secs(1)).await;
    assert!(!report.is_clean());
}

#[test]
fn tasks_dropped_by_their_runtimes_shutdown_are_reported_lost_not_aborted() {
    let current_thread = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let (first, second) = (current_thread(), current_thread());
    let mut shutdown = Shutdown::new();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    first.block_on(async {
        shutdown.spawn("waits for the trigger", |ctx| async move {
            ctx.cancelled().await;
            Ok::<_, String>(())
        });
        let ran = done.clone();
        shutdown.spawn("done", move |_ctx| async move {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, String>(())
        });
        // On one thread, the task that set the flag returned in the same poll.
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    });
    drop(first); // drops the task still waiting
    let report = second.block_on(shutdown.wait(Duration::from_secs(1)));
    assert_eq!(
        report.get("waits for the trigger"),
        Some(&TaskOutcome::Lost)
    );
    assert_eq!(report.get("done"), Some(&TaskOutcome::Completed));
    assert!(!report.is_clean());
    assert!(
        report.to_string().contains(
            "waits for the trigger: dropped before it finished: the runtime it ran on shut down"
        ),
        "{report}"
    );
}

/// Outside any runtime, `spawn` panics before it calls the task's closure, as `tokio::spawn` panics
/// there, with a message that says what to do; the shutdown is left as it was.
#[test]
fn spawn_outside_any_runtime_panics_before_the_task_is_made() {
    let mut shutdown = Shutdown::new();
    let called = std::sync::atomic::AtomicBool::new(false);
    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shutdown.spawn("poller", |_ctx| {
            called.store(true, std::sync::atomic::Ordering::Relaxed);
            async { Ok::<(), String>(()) }
        });
    }));
    let message = bounded_cancel::panic_message(&*spawned.unwrap_err()).to_owned();
    assert!(
        message.starts_with("a shutdown task was spawned outside a tokio runtime"),
        "{message}"
    );
    assert!(!called.load(std::sync::atomic::Ordering::Relaxed));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        shutdown.spawn("worker", |_ctx| async { Ok::<(), String>(()) });
        shutdown.trigger();
        let report = shutdown.wait(Duration::from_secs(1)).await;
        let names: Vec<&str> = report.tasks().iter().map(|t| t.name()).collect();
        assert_eq!(names, ["worker"], "{report}");
        assert!(report.is_clean(), "{report}");
    });
}

/// A task whose future keeps 512 KiB across an await, a quarter of a worker thread's stack, is
/// spawned from a task on a worker and runs, on both runtimes: `spawn` boxes such a future before it
/// wraps it, as `tokio::spawn` boxes one before it makes the task, where moving it through the
/// wrappers would overflow the spawner's stack in a debug build. (Making the future takes the
/// spawner's stack, as with `tokio::spawn`, which overflows a worker's with 1 MiB in a debug build.)
#[test]
fn a_task_with_a_large_future_is_spawned_and_runs() {
    bounded_testkit::on_worker_stacks(|| async {
        let mut shutdown = Shutdown::new();
        let large = bounded_testkit::future_of_size::<{ 512 << 10 }, (), String>;
        shutdown.spawn("large", move |_ctx| large(()));
        let report = shutdown.wait(Duration::from_secs(5)).await;
        assert_eq!(report.get("large"), Some(&TaskOutcome::Completed));
    });
}
