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
