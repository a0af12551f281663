//! A fleet limiter's counters on the `metrics` facade (feature `metrics`), labelled `limiter` with
//! its key (a keyed limiter's prefix). This process's calls only: every replica records its own, and
//! an exporter that sums over replicas gives the fleet's. Registered when the limiter is built, so
//! install the exporter first.
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `bounded_ratelimit_granted_total` | counter | units granted (by Redis, or by the policy while it was unavailable) |
//! | `bounded_ratelimit_rejected_total` | counter | calls refused: not yet (`try_`), a deadline too soon, more than the burst, Redis unavailable under `Refuse` |
//! | `bounded_ratelimit_unavailable_total` | counter | calls on which Redis could not be asked, whatever the policy then did |
//! | `bounded_ratelimit_waiting` | gauge | callers in a wait right now |
//! | `bounded_ratelimit_wait_seconds` | histogram | time from a reservation to its instant, per granted wait that slept |

use bounded_sync::gauge::SharedGauge;
use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    histogram,
};

pub(crate) struct Export {
    pub(crate) granted: Counter,
    pub(crate) rejected: Counter,
    pub(crate) unavailable: Counter,
    pub(crate) waiting: SharedGauge,
    pub(crate) wait: Histogram,
}

impl Export {
    pub(crate) fn new(limiter: &str) -> Self {
        describe();
        let limiter = limiter.to_owned();
        Export {
            granted: counter!("bounded_ratelimit_granted_total", "limiter" => limiter.clone()),
            rejected: counter!("bounded_ratelimit_rejected_total", "limiter" => limiter.clone()),
            unavailable: counter!("bounded_ratelimit_unavailable_total", "limiter" => limiter.clone()),
            waiting: SharedGauge::register("bounded_ratelimit_waiting", "limiter", limiter.clone()),
            wait: histogram!("bounded_ratelimit_wait_seconds", "limiter" => limiter),
        }
    }
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export").finish_non_exhaustive()
    }
}

/// What each metric means, for exporters that show it (Prometheus's `# HELP`). Said again at each
/// registration: a recorder installed after the first would not know it otherwise. The names it
/// shares with `bounded-ratelimit`'s limiters are said the same way there.
fn describe() {
    describe_counter!(
        "bounded_ratelimit_granted_total",
        Unit::Count,
        "Units a rate limiter granted to callers"
    );
    describe_counter!(
        "bounded_ratelimit_rejected_total",
        Unit::Count,
        "Calls a rate limiter refused, granting nothing"
    );
    describe_counter!(
        "bounded_ratelimit_unavailable_total",
        Unit::Count,
        "Calls on which a fleet rate limiter could not ask Redis, whatever its policy then did"
    );
    describe_gauge!(
        "bounded_ratelimit_waiting",
        Unit::Count,
        "Callers waiting for a rate limiter's grant now"
    );
    describe_histogram!(
        "bounded_ratelimit_wait_seconds",
        Unit::Seconds,
        "Time a granted caller waited for its units"
    );
}
