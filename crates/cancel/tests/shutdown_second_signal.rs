//! A second SIGTERM during the drain cuts it short: what is left is aborted at once.
//!
//! This file holds one test on purpose: the signals go to the whole process, so nothing else may run here.
#![cfg(feature = "signal")]

use std::time::Duration;

use bounded_cancel::{Shutdown, TaskOutcome, live};
use tokio::time::Instant;

fn sigterm() {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[cfg(unix)]
#[tokio::test]
async fn a_second_signal_during_the_drain_aborts_at_once() {
    let mut shutdown = Shutdown::new();
    shutdown.on_signals().expect("install signal handlers");
    shutdown.spawn("stubborn", |ctx| async move {
        ctx.cancelled().await;
        tokio::time::sleep(Duration::from_secs(3600)).await; // drains far past any grace
        Ok::<_, String>(())
    });
    sigterm();
    tokio::time::timeout(Duration::from_secs(10), shutdown.context().cancelled())
        .await
        .expect("the first SIGTERM did not trigger the shutdown");

    let start = Instant::now();
    let wait = tokio::spawn(shutdown.wait(Duration::from_secs(3600)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!wait.is_finished(), "the drain goes on after one signal");
    sigterm();
    let report = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("a second SIGTERM did not cut the drain short")
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(report.tasks()[0].outcome(), TaskOutcome::Aborted),
        "{report}"
    );
    live::assert_none_alive().await;
}
