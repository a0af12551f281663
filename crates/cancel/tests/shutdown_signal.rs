//! A real SIGTERM sent to this test process triggers `on_signals`.
//!
//! This file holds one test on purpose: the signal goes to the whole process, so nothing else may run here.
#![cfg(feature = "signal")]

use std::time::Duration;

use bounded_cancel::{Shutdown, SignalReceived, live};

#[cfg(unix)]
#[tokio::test]
async fn sigterm_triggers_on_signals() {
    let mut shutdown = Shutdown::new();
    shutdown.on_signals().expect("install signal handlers");
    shutdown.spawn("server", |ctx| async move {
        ctx.cancelled().await;
        Ok::<_, String>(())
    });
    assert!(!shutdown.is_triggered());

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());

    let cause = tokio::time::timeout(Duration::from_secs(10), shutdown.context().cancelled())
        .await
        .expect("SIGTERM did not trigger the shutdown within 10 s");
    let signal = cause
        .error()
        .and_then(|e| e.downcast_ref::<SignalReceived>())
        .copied();
    assert_eq!(signal, Some(SignalReceived::new("SIGTERM")));

    let report = shutdown.wait(Duration::from_secs(1)).await;
    assert!(report.is_clean(), "{report}");
    live::assert_none_alive().await;
}
