//! The bound a limiter's grants keep, checked over every window between two of them.

use std::time::Duration;

/// Checks every window between two grants against `burst + (window + 1 ms) / interval`.
pub(crate) fn within_quota(
    mut grants: Vec<(Duration, u32)>,
    interval: Duration,
    burst: u32,
) -> Result<(), String> {
    grants.sort_unstable();
    for (i, (from, _)) in grants.iter().enumerate() {
        let mut units = 0;
        for (to, n) in &grants[i..] {
            units += u64::from(*n);
            let window = *to - *from;
            let with_tick = window + Duration::from_millis(1);
            let allowed = u64::from(burst) + (with_tick.as_nanos() / interval.as_nanos()) as u64;
            if units > allowed {
                return Err(format!(
                    "{units} units in {window:?} from {from:?}, where {allowed} are allowed"
                ));
            }
        }
    }
    Ok(())
}
