//! A panic in a stage reaches the consumer as a value and stops the pipeline.

use bounded_cancel::{Context, live};
use bounded_pipeline::{Pipeline, PipelineError};

/// `result` is the pipeline's failure for a panic in `stage` at item `index`, with `message`.
fn assert_panicked<T: std::fmt::Debug>(
    result: Result<T, PipelineError<String>>,
    stage: &str,
    index: u64,
    message: &str,
) {
    match result {
        Err(PipelineError::Panicked {
            stage: got_stage,
            index: got_index,
            payload,
        }) => {
            assert_eq!((got_stage.as_str(), got_index), (stage, index));
            assert_eq!(payload.message(), message);
        }
        other => panic!("{other:?}"),
    }
}

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
    assert_panicked(result, "parse", 5, "bad item 5");
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

/// A future that waits before it panics is polled again after its worker has given the rest of its
/// batch back: that later poll is caught the same way as the first.
#[tokio::test(start_paused = true)]
async fn a_panic_after_the_future_waited_is_caught_too() {
    let result = Pipeline::new(&Context::new())
        .source(0..100u64)
        .map(2, |_ctx, i| async move {
            if i == 7 {
                tokio::task::yield_now().await;
                panic!("item {i} panicked after waiting");
            }
            Ok::<_, String>(i)
        })
        .named("wait_then_panic")
        .output()
        .try_collect()
        .await;
    assert_panicked(
        result,
        "wait_then_panic",
        7,
        "item 7 panicked after waiting",
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

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_skip_handler_ends_the_pipeline_with_its_payload() {
    let (items, failure) = Pipeline::new(&Context::new())
        .skip_errors(|index, _err: String| {
            if index == 3 {
                panic!("handler gave up on {index}");
            }
        })
        .source(0..50u64)
        .map(2, |_ctx, i| async move {
            if i % 3 == 0 {
                Err(format!("bad {i}"))
            } else {
                Ok(i)
            }
        })
        .named("check")
        .output()
        .collect()
        .await;
    match failure {
        Some(PipelineError::Panicked {
            stage,
            index,
            payload,
        }) => {
            assert_eq!((stage.as_str(), index), ("check", 3));
            assert_eq!(payload.message(), "handler gave up on 3");
        }
        other => panic!(
            "the pipeline ended with {other:?} after {} items",
            items.len()
        ),
    }
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_for_each_callback_ends_the_pipeline_with_its_payload() {
    let parent = Context::new();
    let output = Pipeline::new(&parent)
        .source(0..1_000u64)
        .map(2, |_ctx, i| async move { Ok::<_, String>(i) })
        .output();
    let ctx = output.context().clone();
    let err = output
        .for_each(|i| async move {
            tokio::task::yield_now().await;
            assert!(i != 7, "consumer choked on {i}");
        })
        .await
        .unwrap_err();
    match err {
        PipelineError::Panicked {
            stage,
            index,
            payload,
        } => {
            assert_eq!((stage.as_str(), index), ("for_each", 7));
            assert_eq!(payload.message(), "consumer choked on 7");
        }
        other => panic!("{other:?}"),
    }
    assert!(ctx.is_cancelled(), "every stage was stopped");
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_building_the_for_each_future_is_caught_too() {
    let err = Pipeline::new(&Context::new())
        .source(0..10u64)
        .output()
        .for_each(|i| {
            assert!(i != 2, "refused {i}");
            async {}
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PipelineError::<String>::Panicked { index: 2, .. }),
        "{err:?}"
    );
    live::assert_none_alive().await;
}
