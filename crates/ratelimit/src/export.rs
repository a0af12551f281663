//! A limiter's counters on the `metrics` facade (feature `metrics`), labelled `limiter` with the name
//! given by [`Limiter::named`](crate::Limiter::named) (`"limiter"` until then). Handles are registered
//! on first use; with no recorder installed they do nothing. Recorded after the limiter's lock is
//! released, never under it.
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `bounded_ratelimit_granted_total` | counter | units granted to callers that saw the grant |
//! | `bounded_ratelimit_rejected_total` | counter | calls refused: not yet (`try_`), a deadline too soon, more than the burst |
//! | `bounded_ratelimit_waiting` | gauge | callers queued right now |
//! | `bounded_ratelimit_wait_seconds` | histogram | time queued, per granted wait |
//!
//! A [`KeyedLimiter`](crate::KeyedLimiter) (named with
//! [`KeyedLimiter::named`](crate::KeyedLimiter::named)) records the same two counters, over all its
//! keys, the gauge `bounded_ratelimit_waiting` (callers sleeping until their instant), and two of its
//! own:
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `bounded_ratelimit_keys` | gauge | keys remembered right now (at most `max_keys`; limiters sharing a name add up) |
//! | `bounded_ratelimit_evicted_total` | counter | keys forgotten because their bucket had refilled |

use std::sync::OnceLock;
use std::time::Duration;

use bounded_sync::gauge::SharedGauge;
use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    histogram,
};

use crate::keyed::KeyedChange;

pub(crate) struct Exported {
    granted: Counter,
    rejected: Counter,
    waiting: SharedGauge,
    wait: Histogram,
}

/// A limiter's handles, registered with its name the first time they are needed.
#[derive(Default)]
pub(crate) struct Export(OnceLock<Exported>);

impl Export {
    /// Names the limiter; only before anything was recorded. Returns whether the name took.
    pub(crate) fn name(&self, name: &str) -> bool {
        self.0.set(Exported::new(name)).is_ok()
    }

    fn get(&self) -> &Exported {
        self.0.get_or_init(|| Exported::new("limiter"))
    }

    pub(crate) fn granted(&self, n: u32) {
        self.get().granted.increment(u64::from(n));
    }

    pub(crate) fn rejected(&self) {
        self.get().rejected.increment(1);
    }

    pub(crate) fn queued(&self) {
        self.get().waiting.add(1);
    }

    /// A queued caller left the queue, granted after `waited` or not at all.
    pub(crate) fn left(&self, waited: Option<Duration>) {
        let exported = self.get();
        exported.waiting.add(-1);
        if let Some(waited) = waited {
            exported.wait.record(waited.as_secs_f64());
        }
    }
}

impl Exported {
    fn new(limiter: &str) -> Self {
        describe();
        let limiter = limiter.to_owned();
        Exported {
            granted: counter!("bounded_ratelimit_granted_total", "limiter" => limiter.clone()),
            rejected: counter!("bounded_ratelimit_rejected_total", "limiter" => limiter.clone()),
            waiting: SharedGauge::register("bounded_ratelimit_waiting", "limiter", limiter.clone()),
            wait: histogram!("bounded_ratelimit_wait_seconds", "limiter" => limiter),
        }
    }
}

/// A keyed limiter's handles, registered with its name the first time they are needed.
#[derive(Default)]
pub(crate) struct KeyedExport(OnceLock<KeyedExported>);

pub(crate) struct KeyedExported {
    granted: Counter,
    rejected: Counter,
    waiting: SharedGauge,
    keys: SharedGauge,
    evicted: Counter,
}

impl KeyedExport {
    /// Names the limiter; only before anything was recorded. Returns whether the name took.
    pub(crate) fn name(&self, name: &str) -> bool {
        self.0.set(KeyedExported::new(name)).is_ok()
    }

    fn get(&self) -> &KeyedExported {
        self.0.get_or_init(|| KeyedExported::new("limiter"))
    }

    /// A caller starts (`true`) or stops (`false`) sleeping until its instant.
    pub(crate) fn sleeping(&self, starts: bool) {
        let waiting = &self.get().waiting;
        if starts {
            waiting.add(1);
        } else {
            waiting.add(-1);
        }
    }

    pub(crate) fn record(&self, change: KeyedChange) {
        let exported = self.get();
        if change.granted > 0 {
            exported.granted.increment(u64::from(change.granted));
        }
        if change.rejected {
            exported.rejected.increment(1);
        }
        if change.keys != 0 {
            exported.keys.add(change.keys);
        }
        if change.evicted > 0 {
            exported.evicted.increment(change.evicted);
        }
    }
}

impl KeyedExported {
    fn new(limiter: &str) -> Self {
        describe();
        describe_keyed();
        let limiter = limiter.to_owned();
        KeyedExported {
            granted: counter!("bounded_ratelimit_granted_total", "limiter" => limiter.clone()),
            rejected: counter!("bounded_ratelimit_rejected_total", "limiter" => limiter.clone()),
            waiting: SharedGauge::register("bounded_ratelimit_waiting", "limiter", limiter.clone()),
            keys: SharedGauge::register("bounded_ratelimit_keys", "limiter", limiter.clone()),
            evicted: counter!("bounded_ratelimit_evicted_total", "limiter" => limiter),
        }
    }
}

/// What each metric means, for exporters that show it (Prometheus's `# HELP`). Said again at each
/// registration: a recorder installed after the first would not know it otherwise. The fleet
/// limiter (`bounded-ratelimit-redis`) shares these names and says the same of them.
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

fn describe_keyed() {
    describe_gauge!(
        "bounded_ratelimit_keys",
        Unit::Count,
        "Keys a keyed rate limiter remembers now"
    );
    describe_counter!(
        "bounded_ratelimit_evicted_total",
        Unit::Count,
        "Keys a keyed rate limiter forgot because their bucket had refilled"
    );
}
