//! The output and builders can cross threads, and `?` turns the pipeline's error into
//! `Box<dyn Error + Send + Sync>`.

use bounded_pipeline::{
    Collect, ForEach, Output, Pipeline, PipelineError, Stage, StageMetrics, TryCollect,
};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}

#[test]
fn output_and_builders_are_send() {
    send::<Pipeline<String>>();
    send::<Stage<u64, String>>();
    send::<Output<u64, String>>();
    sync::<Output<u64, String>>();
    unpin::<Output<u64, String>>();
    send::<PipelineError<String>>();
    sync::<PipelineError<String>>();
    send::<StageMetrics>();
    send::<TryCollect<u64, String>>();
    send::<Collect<u64, String>>();
    send::<ForEach<u64, String, fn(u64) -> std::future::Ready<()>, std::future::Ready<()>>>();
    unpin::<TryCollect<u64, String>>();
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a handler returning tower's `BoxError` (or `anyhow::Result`) writes.
async fn total(panic_at: u64) -> Result<u64, BoxError> {
    let items = Pipeline::new(&bounded_cancel::Context::new())
        .source(0..10u64)
        .map(2, move |_ctx, n| async move {
            if n == panic_at {
                panic!("item {n} is corrupt");
            }
            Ok::<_, std::io::Error>(n)
        })
        .output()
        .try_collect()
        .await?;
    Ok(items.iter().sum())
}

#[tokio::test]
async fn a_panic_in_a_stage_goes_into_a_boxed_error_with_the_question_mark() {
    let err = total(4).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline stage `map` panicked on item 4: item 4 is corrupt; every stage was stopped"
    );
    let Ok(failure) = err.downcast::<PipelineError<std::io::Error>>() else {
        panic!("a PipelineError inside")
    };
    let PipelineError::Panicked { payload, .. } = *failure else {
        panic!("Panicked")
    };
    let payload = payload.into_inner();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("item 4 is corrupt")
    );
    assert_eq!(total(u64::MAX).await.unwrap(), 45);
}
