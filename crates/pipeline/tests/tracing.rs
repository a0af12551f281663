//! With the `tracing` feature, every stage worker runs in a span parented by the span current where the
//! pipeline was built, and a failure is an event naming its stage.
#![cfg(feature = "tracing")]

use bounded_cancel::Context;
use bounded_pipeline::Pipeline;
use bounded_testkit::Captured;

#[tokio::test(flavor = "current_thread")]
async fn stage_workers_run_in_children_of_the_builders_span() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let output = tracing::info_span!("nightly import").in_scope(|| {
        Pipeline::<String>::new(&Context::new())
            .source(0..4u32)
            .named("rows")
            .map(2, |_ctx, n| async move {
                tokio::task::yield_now().await;
                tracing::info!(n, "parsed");
                Ok(n)
            })
            .named("parse")
            .output()
    });
    assert_eq!(output.try_collect().await.unwrap().len(), 4);
    let spans = captured.spans();
    let stages: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "pipeline stage")
        .collect();
    assert_eq!(
        stages.len(),
        3,
        "one source task and two workers: {spans:?}"
    );
    for stage in &stages {
        assert_eq!(stage.parent.as_deref(), Some("nightly import"), "{stage:?}");
        // The crate's name, as its events': `bounded_pipeline=debug` takes both.
        assert_eq!(stage.target, "bounded_pipeline", "{stage:?}");
    }
    assert_eq!(
        stages.iter().filter(|s| s.fields == "stage=parse").count(),
        2
    );
    let parsed: Vec<_> = captured
        .events()
        .into_iter()
        .filter(|e| e.fields.contains("parsed"))
        .collect();
    assert_eq!(parsed.len(), 4);
    for event in parsed {
        assert_eq!(event.scope, ["pipeline stage", "nightly import"]);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failure_is_an_error_event_naming_the_stage() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let output = Pipeline::new(&Context::new())
        .source(0..4u32)
        .map(1, |_ctx, n| async move {
            if n == 2 { Err("corrupt row") } else { Ok(n) }
        })
        .named("parse")
        .output();
    assert!(output.try_collect().await.is_err());
    let errors: Vec<_> = captured
        .events()
        .into_iter()
        .filter(|e| e.level == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].fields.contains("stage=parse"), "{:?}", errors[0]);
    assert!(
        errors[0].fields.contains("item 2 failed"),
        "{:?}",
        errors[0]
    );
}
