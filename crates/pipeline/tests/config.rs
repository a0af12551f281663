//! A stage built with a zero is a clear error from the output, not a panic.

use bounded_cancel::{Context, live};
use bounded_pipeline::{Pipeline, PipelineError};

#[tokio::test(start_paused = true)]
async fn zero_workers_is_an_invalid_pipeline() {
    let err = Pipeline::new(&Context::new())
        .source(0..10u32)
        .map(0, |_ctx, i| async move { Ok::<_, String>(i) })
        .output()
        .try_collect()
        .await
        .unwrap_err();
    match &err {
        PipelineError::Invalid(problem) => assert!(problem.contains("0 workers"), "{problem}"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("give it at least 1"), "{err}");
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_buffer_of_zero_is_an_invalid_pipeline() {
    let err = Pipeline::<String>::new(&Context::new())
        .source(0..10u32)
        .buffer(0)
        .output()
        .try_collect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PipelineError::Invalid(p) if p.contains("buffer of 0")),
        "{err:?}"
    );
}
