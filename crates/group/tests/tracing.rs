//! With the `tracing` feature, a task's span is a child of the span current at `spawn`, wherever the
//! task runs, and failures and panics are events.
#![cfg(feature = "tracing")]

use bounded_group::Group;
use bounded_testkit::Captured;
use tracing::Instrument;

#[tokio::test(flavor = "current_thread")]
async fn a_task_runs_in_a_child_of_the_spawners_span_after_its_first_await_too() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let group = Group::<String>::new();
    async {
        group
            .spawn(|_ctx| async {
                tracing::info!("before");
                tokio::task::yield_now().await; // from here on the task runs on a runner
                tracing::info!("after");
                Ok(())
            })
            .await
            .unwrap();
    }
    .instrument(tracing::info_span!("request"))
    .await;
    group.wait().await.unwrap();

    let task = captured
        .spans()
        .into_iter()
        .find(|s| s.name == "group task")
        .expect("a task span");
    assert_eq!(task.parent.as_deref(), Some("request"));
    // The crate's name, as its events': a filter such as `bounded_group=debug` takes both.
    assert_eq!(task.target, "bounded_group");
    let scopes: Vec<_> = captured
        .events()
        .into_iter()
        .map(|e| (e.fields, e.scope))
        .collect();
    let in_task = vec!["group task".to_owned(), "request".to_owned()];
    assert_eq!(
        scopes,
        [
            ("message=before".to_owned(), in_task.clone()),
            ("message=after".to_owned(), in_task)
        ]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn failures_and_panics_are_events_in_the_tasks_span() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let group = Group::<String>::new().collect_errors();
    group
        .spawn(|_ctx| async { Err("no stock".to_owned()) })
        .await
        .unwrap();
    group
        .spawn(|_ctx| async { panic!("bad order") })
        .await
        .unwrap();
    let _ = group.wait_and_recover().await;
    let events = captured.events();
    let failed = events
        .iter()
        .find(|e| e.level == "WARN")
        .expect("a warning");
    assert!(failed.fields.contains("a group task failed"), "{failed:?}");
    assert_eq!(failed.scope, ["group task"]);
    let panicked = events
        .iter()
        .find(|e| e.level == "ERROR")
        .expect("an error event");
    assert!(panicked.fields.contains("panic=bad order"), "{panicked:?}");
    assert_eq!(panicked.scope, ["group task"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_named_tasks_span_and_events_carry_its_name() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let group = Group::<String>::new();
    group
        .spawn_named("thumbnails", |_ctx| async { panic!("oom") })
        .await
        .unwrap();
    let _ = group.wait_and_recover().await;
    let span = captured
        .spans()
        .into_iter()
        .find(|s| s.name == "group task")
        .unwrap();
    assert_eq!(span.fields, "task=thumbnails");
    assert_eq!(span.target, "bounded_group");
    let panicked = captured
        .events()
        .into_iter()
        .find(|e| e.level == "ERROR")
        .unwrap();
    assert!(panicked.fields.contains("task=thumbnails"), "{panicked:?}");
}
