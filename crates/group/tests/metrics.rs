//! With the `metrics` feature, a group's tasks alive are a gauge, read back through metrics-util's
//! debugging recorder. One test only: the gauge is described once per process, to the recorder of
//! the first group that registers it.
#![cfg(feature = "metrics")]

use std::time::Duration;

use bounded_group::Group;
use bounded_testkit::{Readings, V};
use metrics_util::debugging::DebuggingRecorder;

#[tokio::test(start_paused = true)]
async fn the_gauge_counts_the_tasks_alive_and_returns_to_zero() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let group = metrics::with_local_recorder(&recorder, || Group::<String>::new().named("fetch"));
    for _ in 0..4 {
        group
            .spawn(|_ctx| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(())
            })
            .await
            .unwrap();
    }
    group.spawn(|_ctx| async { Ok(()) }).await.unwrap(); // ends at its first poll
    tokio::task::yield_now().await;
    let m = Readings::take(&snapshotter);
    assert_eq!(
        m.undescribed(),
        Vec::<String>::new(),
        "every metric says what it is"
    );
    assert_eq!(
        m.get("bounded_group_tasks_alive", &[("group", "fetch")]),
        V::Gauge(4.0)
    );
    group.wait().await.unwrap();
    let m = Readings::take(&snapshotter);
    // The gauge is set to the tasks alive now: the four have ended.
    assert_eq!(
        m.get("bounded_group_tasks_alive", &[("group", "fetch")]),
        V::Gauge(0.0)
    );
}
