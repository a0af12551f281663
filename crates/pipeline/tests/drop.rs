//! Dropping the output (or an unfinished pipeline) cancels every stage; nothing is left running.

#[path = "support/counting.rs"]
mod counting;

use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_pipeline::Pipeline;
use counting::Pulled;
use futures_util::StreamExt;

#[tokio::test(start_paused = true)]
async fn dropping_the_output_partway_cancels_every_stage() {
    let pulled = Pulled::default();
    let mut out = Pipeline::new(&Context::new())
        .source(pulled.source(u64::MAX))
        .map(4, |_ctx, i| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, String>(i)
        })
        .map_ordered(3, |_ctx, i| async move { Ok(i * 2) })
        .filter_map(2, |_ctx, i| async move { Ok(Some(i)) })
        .output();
    for _ in 0..10 {
        out.next().await.unwrap().unwrap();
    }
    let ctx = out.context().clone();
    drop(out);
    assert!(ctx.is_cancelled());
    live::assert_none_alive().await;
    let after = pulled.count();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pulled.count(), after, "nothing pulled after the drop");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_pipeline_before_its_output_stops_what_was_started() {
    let pulled = Pulled::default();
    let stage = Pipeline::new(&Context::new())
        .source(pulled.source(u64::MAX))
        .map(2, |_ctx, i| async move { Ok::<_, String>(i) })
        .map(2, |_ctx, i| async move { Ok(i) });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(pulled.count() > 0, "the first stages were already running");
    drop(stage);
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_output_mid_flat_map_stops_every_stage() {
    use futures_util::StreamExt;
    let mut out = bounded_pipeline::Pipeline::new(&bounded_cancel::Context::new())
        .source(0..u64::MAX)
        .flat_map(3, |_ctx, n| async move {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Ok::<_, String>(n * 100..n * 100 + 50)
        })
        .output();
    for _ in 0..500 {
        out.next().await.unwrap().unwrap();
    }
    drop(out);
    bounded_cancel::live::assert_none_alive().await;
}
