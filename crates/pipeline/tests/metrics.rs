//! Each stage's counters and busy gauge on the `metrics` facade, read back through metrics-util's
//! debugging recorder after a known workload.
#![cfg(feature = "metrics")]

use std::time::Duration;

use bounded_cancel::Context;
use bounded_pipeline::Pipeline;
use bounded_testkit::{Readings, V};
use metrics_util::debugging::DebuggingRecorder;

#[tokio::test(start_paused = true)]
async fn each_stage_counts_what_it_took_passed_on_and_failed() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let output = metrics::with_local_recorder(&recorder, || {
        Pipeline::new(&Context::new())
            .skip_errors(|_index, _err: String| {})
            .source(0..10u32)
            .named("ids")
            .map(2, |_ctx, n| async move {
                if n % 5 == 0 {
                    Err(format!("{n} is bad"))
                } else {
                    Ok(n * 2)
                }
            })
            .named("double")
            .output()
    });
    let items = output.try_collect().await.unwrap();
    assert_eq!(items.len(), 8);
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.undescribed(),
        Vec::<String>::new(),
        "every metric says what it is"
    );
    let stage = |name| [("stage", name)];
    assert_eq!(
        m.get("bounded_pipeline_items_out_total", &stage("ids")),
        V::Counter(10)
    );
    assert_eq!(
        m.get("bounded_pipeline_items_in_total", &stage("double")),
        V::Counter(10)
    );
    assert_eq!(
        m.get("bounded_pipeline_items_out_total", &stage("double")),
        V::Counter(8)
    );
    assert_eq!(
        m.get("bounded_pipeline_errors_total", &stage("double")),
        V::Counter(2)
    );
    assert_eq!(
        m.get("bounded_pipeline_busy_workers", &stage("double")),
        V::Gauge(0.0)
    );
}

#[tokio::test(start_paused = true)]
async fn the_busy_gauge_shows_the_workers_in_a_call() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let output = metrics::with_local_recorder(&recorder, || {
        Pipeline::<String>::new(&Context::new())
            .source(0..10u32)
            .map(3, |_ctx, n| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(n)
            })
            .named("slow")
            .output()
    });
    let collecting = tokio::spawn(output.try_collect());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.get("bounded_pipeline_busy_workers", &[("stage", "slow")]),
        V::Gauge(3.0)
    );
    assert_eq!(collecting.await.unwrap().unwrap().len(), 10);
}
