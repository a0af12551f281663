//! With the `tracing` feature, a job's span is a child of the span current at submission, on whichever
//! worker runs it, and failures, panics and aborts are events naming the pool.
#![cfg(feature = "tracing")]

use std::time::Duration;

use bounded_pool::Pool;
use bounded_testkit::Captured;
use tracing::Instrument;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_job_runs_in_a_child_of_the_submitters_span() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let pool = Pool::builder()
        .name("mailer")
        .workers(2)
        .queue(4)
        .build()
        .unwrap();
    let submitted = pool
        .submit(|_ctx| async {
            tokio::task::yield_now().await;
            tracing::info!("sending");
            Ok::<_, String>(())
        })
        .instrument(tracing::info_span!("request"))
        .await;
    submitted.unwrap().await.unwrap();
    let job = captured
        .spans()
        .into_iter()
        .find(|s| s.name == "pool job")
        .expect("a job span");
    assert_eq!(job.parent.as_deref(), Some("request"));
    // The crate's name, as its events': a filter such as `bounded_pool=debug` takes both.
    assert_eq!(job.target, "bounded_pool");
    assert_eq!(job.fields, "pool=mailer");
    let sending = captured
        .events()
        .into_iter()
        .find(|e| e.fields == "message=sending")
        .unwrap();
    assert_eq!(sending.scope, ["pool job", "request"]);
    pool.shutdown().await;
}

/// Emits `dropped` when dropped.
struct Noisy;

impl Drop for Noisy {
    fn drop(&mut self) {
        tracing::info!("dropped");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_closure_its_future_and_the_drop_of_an_aborted_job_all_run_in_its_span() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let pool = Pool::builder().name("mailer").workers(1).build().unwrap();
    pool.submit_detached(|_ctx| {
        tracing::info!("building");
        let noisy = Noisy;
        async move {
            tracing::info!("waiting");
            let _noisy = noisy;
            std::future::pending::<Result<(), String>>().await
        }
    })
    .instrument(tracing::info_span!("request"))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    pool.abort();
    pool.shutdown().await;
    for message in ["building", "waiting", "dropped"] {
        let event = captured
            .events()
            .into_iter()
            .find(|e| e.fields == format!("message={message}"))
            .unwrap_or_else(|| panic!("no event {message}"));
        assert_eq!(event.scope, ["pool job", "request"], "{message}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn failures_panics_and_aborts_are_events_naming_the_pool() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let pool = Pool::builder()
        .name("mailer")
        .workers(3)
        .queue(4)
        .build()
        .unwrap();
    let fails = pool
        .submit(|_ctx| async { Err::<(), _>("smtp down".to_owned()) })
        .await
        .unwrap();
    let panics = pool
        .submit(|_ctx| async { panic!("bad address") as Result<(), String> })
        .await
        .unwrap();
    let hangs = pool
        .submit(|_ctx| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    assert!(fails.await.is_err() && panics.await.is_err());
    pool.abort();
    assert!(hangs.await.is_err());
    pool.shutdown().await;
    let events = captured.events();
    let find = |text: &str| {
        events
            .iter()
            .find(|e| e.fields.contains(text))
            .unwrap_or_else(|| panic!("no event with {text}: {events:?}"))
    };
    let failed = find("a pool job failed");
    assert_eq!(failed.level, "WARN");
    assert!(failed.fields.contains("pool=mailer") && failed.fields.contains("error=smtp down"));
    let panicked = find("a pool job panicked");
    assert_eq!(panicked.level, "ERROR");
    assert!(panicked.fields.contains("panic=bad address"));
    assert_eq!(find("aborted while running").level, "WARN");
}

/// A subscriber that panics as a job's span is made: user code the pool calls between reserving a
/// job's slot and queueing the job.
struct PanicsOnJobSpan;

impl tracing::Subscriber for PanicsOnJobSpan {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        assert_ne!(span.metadata().name(), "pool job", "the subscriber fails");
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// The panic reaches the submitter, and the slot the job had taken is free again: the next job takes
/// it, and the shutdown ends with that job done (a slot kept would leave the queue full forever, and
/// the shutdown waiting for it).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_panic_between_a_jobs_slot_and_its_queueing_gives_the_slot_back() {
    use futures_util::FutureExt;
    use std::panic::AssertUnwindSafe;
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    for detached in [false, true] {
        let job = |_ctx| async { Ok::<_, String>(()) };
        let submitted = {
            let _default = tracing::subscriber::set_default(PanicsOnJobSpan);
            match detached {
                false => AssertUnwindSafe(async { drop(pool.submit(job).await) })
                    .catch_unwind()
                    .await
                    .is_err(),
                true => std::panic::catch_unwind(AssertUnwindSafe(|| {
                    drop(pool.try_submit_detached(job))
                }))
                .is_err(),
            }
        };
        assert!(submitted, "the subscriber's panic reaches the submitter");
        pool.try_submit_detached(|_ctx| async { Ok::<_, String>(()) })
            .expect("the slot is free again");
        tokio::task::yield_now().await;
    }
    let report = tokio::time::timeout(Duration::from_secs(5), pool.shutdown())
        .await
        .expect("the shutdown ends");
    assert_eq!(report.completed, 2);
}

/// A subscriber that panics the third time a job's span is entered.
struct PanicsOnThirdEnter(std::sync::atomic::AtomicUsize);

impl tracing::Subscriber for PanicsOnThirdEnter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {
        let entered = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        assert_ne!(entered, 3, "the subscriber fails");
    }

    fn exit(&self, _: &tracing::span::Id) {}
}

/// On one thread, the first job finishes at once and its worker takes the next seven as a run; the
/// subscriber's panic as the run's first job is entered (the first job's span was entered for its
/// poll and for its drop) takes the worker down with the jobs in its hands. The pool, left without that worker, aborts itself: every job is counted once, the places
/// the run held come back (a shutdown waits for them), and every handle resolves.
// On the real clock: a shutdown that waits for a place never freed would spin without letting a
// paused clock reach the timeout.
#[tokio::test(flavor = "current_thread")]
async fn a_subscriber_that_panics_in_a_run_leaves_every_job_counted_and_every_place_back() {
    let _default = tracing::subscriber::set_default(PanicsOnThirdEnter(Default::default()));
    let pool = Pool::builder().workers(1).queue(8).build().unwrap();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            pool.try_submit(|_ctx| async { Ok::<_, String>(()) })
                .expect("room for every job")
        })
        .collect();
    let mut ok = 0;
    for handle in handles {
        ok += u64::from(handle.await.is_ok());
    }
    let report = tokio::time::timeout(Duration::from_secs(5), pool.shutdown())
        .await
        .expect("the shutdown ends: every place came back");
    assert_eq!(ok, 1);
    assert_eq!(
        (
            report.submitted,
            report.completed,
            report.cancelled,
            report.never_started
        ),
        (8, 1, 1, 6),
        "{report:?}"
    );
}

/// An error whose `Display` panics, formatted into the failure's event on the worker: the panic is
/// caught there (and told as an event of its own), the handle still returns the error, and the
/// worker lives on.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_error_whose_display_panics_in_the_failure_event_takes_no_worker() {
    #[derive(Debug)]
    struct Unprintable;
    impl std::fmt::Display for Unprintable {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("no text for this error")
        }
    }
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let pool = Pool::builder().name("exports").workers(1).build().unwrap();
    let failed = pool
        .submit(|_ctx| async { Err::<(), _>(Unprintable) })
        .await
        .unwrap()
        .await;
    assert!(matches!(
        failed,
        Err(bounded_pool::JobError::Failed(Unprintable))
    ));
    let ok = pool
        .submit(|_ctx| async { Ok::<_, Unprintable>(7) })
        .await
        .unwrap();
    assert_eq!(ok.await.unwrap(), 7, "the worker lives on");
    assert!(
        captured
            .events()
            .iter()
            .any(|e| e.fields.contains("no text for this error")),
        "{:?}",
        captured.events()
    );
    let report = pool.shutdown().await;
    assert_eq!((report.failed, report.completed), (1, 1));
}
