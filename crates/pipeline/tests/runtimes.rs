//! A pipeline whose runtime shuts down mid-stream: its stage tasks are gone with it, so the output
//! must end with an error, never as if every item had come through.

use std::time::Duration;

use bounded_cancel::Context;
use bounded_pipeline::{Pipeline, PipelineError};
use futures_util::StreamExt;

#[test]
fn a_pipeline_whose_runtime_shut_down_ends_with_an_error() {
    for round in 0..20 {
        let first = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut output = first.block_on(async {
            let output = Pipeline::<String>::new(&Context::new())
                .source(0..1_000u32)
                .map(2, |_ctx, n| async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Ok(n)
                })
                .map_ordered(2, |_ctx, n| async move { Ok(n * 2) })
                .output();
            tokio::time::sleep(Duration::from_millis(5)).await;
            output
        });
        drop(first);
        let (items, end) = second.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                let mut items = 0;
                while let Some(next) = output.next().await {
                    match next {
                        Ok(_) => items += 1,
                        Err(err) => return (items, Some(err)),
                    }
                }
                (items, None)
            })
            .await
            .expect("the output ends instead of hanging")
        });
        assert!(
            items < 1_000,
            "round {round}: the runtime shut down mid-stream"
        );
        let err = end.unwrap_or_else(|| {
            panic!("round {round}: the output ended cleanly after {items} of 1000 items")
        });
        assert!(matches!(err, PipelineError::Lost { .. }), "{err}");
        assert!(
            err.to_string().contains("runtime it ran on shut down"),
            "{err}"
        );
    }
}

/// Built outside any runtime, a pipeline cannot start its tasks: its source panics, as
/// `tokio::spawn` does there, with a message that names the pipeline and says what to do.
#[test]
fn a_pipeline_built_outside_any_runtime_panics_with_a_message_that_says_so() {
    let ctx = Context::new();
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Pipeline::<String>::new(&ctx)
            .source(0..3)
            .map(2, |_ctx, n| async move { Ok(n * 2) })
            .output()
    }));
    let message = bounded_cancel::panic_message(&*built.unwrap_err()).to_owned();
    assert!(
        message.starts_with("a pipeline was built outside a tokio runtime"),
        "{message}"
    );
    assert!(message.contains("Runtime::block_on"), "{message}");
    // The same pipeline, built inside one after `Runtime::enter`, runs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let output = {
        let _entered = runtime.enter();
        Pipeline::<String>::new(&ctx)
            .source(0..3)
            .map(2, |_ctx, n| async move { Ok(n * 2) })
            .output()
    };
    let mut items = runtime.block_on(output.try_collect()).unwrap();
    items.sort_unstable();
    assert_eq!(items, [0, 2, 4]);
}
