//! The bound a limiter's grants keep, checked over every window between two of them.

use std::time::Duration;

/// Checks every window between two grants against `burst + (window + 1 ms) / interval`: a waiter
/// on tokio's clock is granted as of the instant it conformed, up to one 1 ms tick before it is seen.
#[allow(dead_code)] // each test binary that includes this file uses one of the two checks
pub(crate) fn within_quota(
    grants: Vec<(Duration, u32)>,
    interval: Duration,
    burst: u32,
) -> Result<(), String> {
    within_quota_seen_late(grants, interval, burst, Duration::from_millis(1))
}

/// Checks every window between two grants against `burst + (window + late) / interval`, where each
/// grant was seen between 0 and `late` after the instant the limiter granted it.
pub(crate) fn within_quota_seen_late(
    mut grants: Vec<(Duration, u32)>,
    interval: Duration,
    burst: u32,
    late: Duration,
) -> Result<(), String> {
    grants.sort_unstable();
    for (i, (from, _)) in grants.iter().enumerate() {
        let mut units = 0;
        for (to, n) in &grants[i..] {
            units += u64::from(*n);
            let window = *to - *from;
            let allowed =
                u64::from(burst) + ((window + late).as_nanos() / interval.as_nanos()) as u64;
            if units > allowed {
                return Err(format!(
                    "{units} units in {window:?} from {from:?}, where {allowed} are allowed"
                ));
            }
        }
    }
    Ok(())
}
