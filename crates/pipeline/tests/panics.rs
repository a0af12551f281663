//! A panic in a stage reaches the consumer as a value and stops the pipeline.

use bounded_cancel::{Context, live, panic_message};
use bounded_pipeline::{Pipeline, PipelineError};

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_stage_is_returned_with_its_payload_and_stops_everything() {
    let result = Pipeline::new(&Context::new())
        .source(0..1_000_000u64)
        .map(3, |_ctx, i| async move {
            if i == 5 {
                panic!("bad item {i}");
            }
            tokio::task::yield_now().await;
            Ok::<_, String>(i)
        })
        .named("parse")
        .output()
        .try_collect()
        .await;
    match result {
        Err(PipelineError::Panicked {
            stage,
            index,
            payload,
        }) => {
            assert_eq!((stage.as_str(), index), ("parse", 5));
            assert_eq!(panic_message(payload.as_ref()), "bad item 5");
        }
        other => panic!("{other:?}"),
    }
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_before_the_future_is_built_is_caught_too() {
    let err = Pipeline::new(&Context::new())
        .source(0..10u32)
        .map(2, |_ctx, i| {
            assert!(i != 3, "refused {i} before any await");
            async move { Ok::<_, String>(i) }
        })
        .output()
        .try_collect()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("refused 3 before any await"),
        "{err}"
    );
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_reported_even_in_skip_mode() {
    let err = Pipeline::new(&Context::new())
        .skip_errors(|_, _: String| {})
        .source(0..10u32)
        .map(1, |_ctx, i| async move {
            assert!(i < 4, "four");
            Ok(i)
        })
        .output()
        .try_collect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, PipelineError::Panicked { index: 4, .. }),
        "{err:?}"
    );
}
