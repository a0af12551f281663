//! A wait that means the same on both runtimes a random case runs on.

use std::time::Duration;

/// Sleeps `n` tens of microseconds on the paused clock; on a runtime with threads (real time), yields
/// `n` times instead, so that no test sleeps in real time.
pub(crate) async fn wait(paused: bool, n: u8) {
    if paused {
        tokio::time::sleep(Duration::from_micros(10 * u64::from(n))).await;
    } else {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    }
}
