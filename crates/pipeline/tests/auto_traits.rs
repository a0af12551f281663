//! The output and builders can cross threads.

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
    send::<StageMetrics>();
    send::<TryCollect<u64, String>>();
    send::<Collect<u64, String>>();
    send::<ForEach<u64, String, fn(u64) -> std::future::Ready<()>, std::future::Ready<()>>>();
    unpin::<TryCollect<u64, String>>();
}
