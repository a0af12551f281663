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

#[tokio::test(start_paused = true)]
async fn sizes_beyond_the_documented_maximum_are_invalid_pipelines() {
    use bounded_pipeline::{MAX_BUFFER, MAX_WORKERS};
    let ok = |_ctx: Context, i: u32| async move { Ok::<_, String>(i) };
    let outputs = [
        Pipeline::new(&Context::new())
            .source(0..10u32)
            .map(1 << 62, ok)
            .output(),
        Pipeline::new(&Context::new())
            .source(0..10u32)
            .map(MAX_WORKERS + 1, ok)
            .output(),
        Pipeline::new(&Context::new())
            .source(0..10u32)
            .map_ordered(1 << 62, ok)
            .output(),
        Pipeline::new(&Context::new())
            .source(0..10u32)
            .filter_map(
                usize::MAX,
                |_ctx, i| async move { Ok::<_, String>(Some(i)) },
            )
            .output(),
        Pipeline::new(&Context::new())
            .source(0..10u32)
            .buffer(1 << 62)
            .output(),
        Pipeline::new(&Context::new())
            .source(0..10u32)
            .buffer(usize::MAX)
            .output(),
        Pipeline::new(&Context::new())
            .source(0..10u32)
            .map(2, ok)
            .buffer(MAX_BUFFER + 1)
            .output(),
    ];
    for output in outputs {
        let err = output.try_collect().await.unwrap_err();
        assert!(matches!(&err, PipelineError::Invalid(_)), "{err:?}");
        assert!(
            err.to_string().contains("at most") || err.to_string().contains("the most"),
            "{err}"
        );
    }
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn the_largest_sizes_allowed_work_and_cost_what_they_hold() {
    let items = Pipeline::new(&Context::new())
        .source(0..100u32)
        .buffer(bounded_pipeline::MAX_BUFFER)
        .map(4, |_ctx, i| async move { Ok::<_, String>(i) })
        .buffer(bounded_pipeline::MAX_BUFFER)
        .output()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(items.len(), 100);
}
