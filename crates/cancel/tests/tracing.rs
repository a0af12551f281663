//! With the `tracing` feature, a `Shutdown` task runs in a span parented by the span current at
//! `spawn`, and tasks that fail, panic or outlive the grace period are events naming them.
#![cfg(feature = "tracing")]

use std::time::Duration;

use bounded_cancel::Shutdown;
use bounded_testkit::Captured;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn tasks_run_in_children_of_the_spawners_span_and_their_ends_are_events() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let mut shutdown = Shutdown::new();
    tracing::info_span!("service").in_scope(|| {
        shutdown.spawn("poller", |ctx| async move {
            tokio::task::yield_now().await;
            tracing::info!("polling");
            ctx.cancelled().await;
            Ok::<_, String>(())
        });
        shutdown.spawn("indexer", |_ctx| async { Err("disk full") });
        shutdown.spawn("cache", |_ctx| async {
            panic!("poisoned") as Result<(), String>
        });
        shutdown.spawn("stubborn", |_ctx| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, String>(())
        });
    });
    tokio::task::yield_now().await;
    shutdown.trigger();
    let report = shutdown.wait(Duration::from_secs(1)).await;
    assert!(!report.is_clean());

    let spans = captured.spans();
    let tasks: Vec<_> = spans.iter().filter(|s| s.name == "shutdown task").collect();
    assert_eq!(tasks.len(), 4);
    assert!(
        tasks.iter().all(|t| t.parent.as_deref() == Some("service")),
        "{tasks:?}"
    );
    // The crate's name, as its events': `bounded_cancel=debug` takes both.
    assert!(
        tasks.iter().all(|t| t.target == "bounded_cancel"),
        "{tasks:?}"
    );
    let events = captured.events();
    let polling = events
        .iter()
        .find(|e| e.fields == "message=polling")
        .unwrap();
    assert_eq!(polling.scope, ["shutdown task", "service"]);
    let with = |text: &str| {
        events
            .iter()
            .find(|e| e.fields.contains(text))
            .unwrap_or_else(|| panic!("no event with {text}: {events:?}"))
    };
    assert_eq!(with("task=indexer").level, "WARN");
    assert!(with("task=indexer").fields.contains("error=disk full"));
    assert_eq!(with("task=cache").level, "ERROR");
    assert!(
        with("task=stubborn")
            .fields
            .contains("outlived the grace period")
    );
    assert!(
        !events.iter().any(|e| e.fields.contains("task=poller")),
        "a clean end is no event"
    );
}
