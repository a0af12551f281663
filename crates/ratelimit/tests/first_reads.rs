//! A limiter first used on a running runtime, in a process whose CPU counter is not calibrated yet:
//! it reads tokio's clock until the calibration (on a thread of its own) is done, then goes on on the
//! counter. This file holds one test, so that its process has calibrated nothing before it starts.

use std::time::Duration;

use bounded_ratelimit::{Limiter, Quota};
use tokio::time::Instant;

const RATE: u64 = 1_000;
const BURST: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_stay_within_the_quota_from_the_first_call_through_the_switch_to_the_counter() {
    if cfg!(bounded_loom) {
        return; // no counter under loom
    }
    // Before the limiter, so that the limiter's own time line is never ahead of this one.
    let start = Instant::now();
    let limiter = Limiter::new(Quota::per_second(RATE as u32).burst(BURST as u32)).unwrap();
    let mut granted = 0u64;
    // When the counter was first seen calibrated, and what had been granted by then.
    let mut calibrated: Option<(Duration, u64)> = None;
    for call in 1u64.. {
        if limiter.try_acquire().is_ok() {
            granted += 1;
            let elapsed = start.elapsed().as_nanos() as u64;
            // The burst, plus one unit for each millisecond gone (rounded up).
            let allowed = BURST + elapsed.div_ceil(1_000_000_000 / RATE);
            assert!(
                granted <= allowed,
                "{granted} granted {elapsed} ns in, at most {allowed} allowed"
            );
        }
        let elapsed = start.elapsed();
        match calibrated {
            None if bounded_sync::clock::counter_if_ready().is_some() => {
                calibrated = Some((elapsed, granted));
            }
            // 50 ms of calls on the counter after the switch.
            Some((at, _)) if elapsed >= at + Duration::from_millis(50) => break,
            _ => {}
        }
        // quanta gives up calibrating after 200 ms.
        assert!(
            elapsed < Duration::from_secs(10),
            "the counter was not calibrated within 10 s"
        );
        if call % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let (_, granted_before) = calibrated.expect("the loop ends once calibrated");
    assert!(
        granted > granted_before,
        "nothing was granted in 50 ms on the counter"
    );
}
