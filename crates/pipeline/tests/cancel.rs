//! Cancelling the pipeline's context ends the output with the cause.

use std::time::Duration;

use bounded_cancel::{Cause, Context, live};
use bounded_pipeline::{Pipeline, PipelineError};
use futures_util::StreamExt;

#[tokio::test(start_paused = true)]
async fn cancelling_the_parent_ends_the_output_with_the_cause() {
    let parent = Context::new();
    let mut out = Pipeline::new(&parent)
        .source(0..u64::MAX)
        .map(2, move |ctx, i| async move {
            if i >= 20 {
                // Items past the 20th wait for the pipeline's context, handed to every stage function.
                ctx.cancelled().await;
            }
            Ok::<_, String>(i)
        })
        .output();
    for _ in 0..20 {
        out.next().await.unwrap().unwrap();
    }
    parent.cancel_with(std::io::Error::other("service shutting down"));
    let mut last = None;
    while let Some(item) = out.next().await {
        last = Some(item);
    }
    match last {
        Some(Err(PipelineError::Cancelled(Cause::Error(e)))) => {
            assert_eq!(e.to_string(), "service shutting down")
        }
        other => panic!("{other:?}"),
    }
    drop(out);
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_deadline_on_the_parent_ends_the_output_with_deadline_exceeded() {
    let parent = Context::new().with_timeout(Duration::from_millis(250));
    let result = Pipeline::new(&parent)
        .source(0..u64::MAX)
        .map(2, |_ctx, i| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, String>(i)
        })
        .output()
        .try_collect()
        .await;
    match result {
        Err(PipelineError::Cancelled(cause)) => assert!(cause.is_deadline_exceeded()),
        other => panic!("{other:?}"),
    }
    live::assert_none_alive().await;
}

#[test]
fn an_outside_end_wins_over_errors_it_produced_on_a_multi_thread_runtime() {
    for round in 0..300 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let shutdown = bounded_cancel::Shutdown::new();
            let parent = if round % 2 == 0 {
                Context::new()
            } else {
                shutdown.context().clone()
            };
            let mut out = Pipeline::new(&parent)
                .source(0..u64::MAX)
                .map(4, |ctx, i| async move {
                    if i >= 8 {
                        // Stage functions answer their context ending with an error of their own.
                        ctx.cancelled().await;
                        return Err("context cancelled".to_owned());
                    }
                    Ok(i)
                })
                .map(2, |ctx, i| async move {
                    if ctx.is_cancelled() {
                        return Err("context cancelled".to_owned());
                    }
                    Ok(i)
                })
                .output();
            for _ in 0..4 {
                out.next().await.unwrap().unwrap();
            }
            if round % 2 == 0 {
                parent.cancel();
            } else {
                shutdown.trigger();
            }
            let mut last = None;
            while let Some(item) = out.next().await {
                last = Some(item);
            }
            assert!(
                matches!(last, Some(Err(PipelineError::Cancelled(Cause::Cancelled)))),
                "round {round}: {last:?}"
            );
        });
    }
}

#[tokio::test(start_paused = true)]
async fn a_stage_function_that_cancels_its_context_ends_the_whole_pipeline() {
    let parent = Context::new();
    let run = Pipeline::new(&parent)
        .source(0..u64::MAX)
        .map(4, |ctx, i| async move {
            match i {
                // Every worker of the stage clones its context from an alias of its own: a cancel
                // through one of them must reach the others and the stages after.
                40 => {
                    ctx.cancel_with(std::io::Error::other("quota spent"));
                }
                41.. => {
                    ctx.cancelled().await;
                }
                _ => {}
            }
            Ok::<_, String>(i)
        })
        .map(2, |ctx, i| async move {
            if i >= 41 {
                ctx.cancelled().await;
            }
            Ok(i)
        })
        .output()
        .try_collect();
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("every worker saw the cancel");
    match result {
        Err(PipelineError::Cancelled(Cause::Error(e))) => assert_eq!(e.to_string(), "quota spent"),
        other => panic!("{other:?}"),
    }
    assert!(
        !parent.is_cancelled(),
        "the pipeline's context is a child of the parent"
    );
    live::assert_none_alive().await;
}

/// The stages of a 10-item pipeline, one of each kind, with room for every item in each link, run
/// to the end at once.
fn drained(parent: &Context) -> bounded_pipeline::Output<u64, String> {
    Pipeline::new(parent)
        .source(0..10u64)
        .map(3, |_ctx, i| async move { Ok::<_, String>(i * 2) })
        .map_ordered(2, |_ctx, i| async move { Ok::<_, String>(i) })
        .flat_map(2, |_ctx, i| async move { Ok::<_, String>(Some(i)) })
        .filter_map(2, |_ctx, i| async move { Ok::<_, String>(Some(i + 1)) })
        .output()
}

#[tokio::test(start_paused = true)]
async fn a_context_that_ends_after_every_stage_drained_stops_nothing_and_is_no_error() {
    let parent = Context::new();
    let out = drained(&parent);
    // Every stage runs to its end: the ten items wait in the last link, nothing is left to stop.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(out.metrics().last().unwrap().items_out, 10);
    parent.cancel();
    let mut got = out.try_collect().await.expect("nothing was stopped");
    got.sort_unstable();
    assert_eq!(got, (0..10).map(|i| i * 2 + 1).collect::<Vec<_>>());
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_passes_while_the_drained_output_is_read_is_no_error() {
    let parent = Context::new().with_timeout(Duration::from_millis(100));
    let mut out = drained(&parent);
    let mut got = Vec::new();
    // A slow reader: the deadline passes after the stages have run to their end, while it reads.
    while let Some(item) = out.next().await {
        got.push(item.expect("every item was through before the deadline"));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(parent.cause().unwrap().is_deadline_exceeded());
    assert_eq!(got.len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_context_that_ends_after_the_last_item_was_read_ends_the_output_cleanly() {
    let parent = Context::new();
    let mut out = Pipeline::new(&parent)
        .source(0..100u64)
        .map(4, |_ctx, i| async move { Ok::<_, String>(i) })
        .output();
    for _ in 0..100 {
        out.next().await.unwrap().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    parent.cancel();
    assert!(
        out.next().await.is_none(),
        "every item came out and every stage ended"
    );
}
