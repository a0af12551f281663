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

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

pub(crate) struct Exported {
    granted: Counter,
    rejected: Counter,
    waiting: Gauge,
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
        self.get().waiting.increment(1.0);
    }

    /// A queued caller left the queue, granted after `waited` or not at all.
    pub(crate) fn left(&self, waited: Option<Duration>) {
        let exported = self.get();
        exported.waiting.decrement(1.0);
        if let Some(waited) = waited {
            exported.wait.record(waited.as_secs_f64());
        }
    }
}

impl Exported {
    fn new(limiter: &str) -> Self {
        let limiter = limiter.to_owned();
        Exported {
            granted: counter!("bounded_ratelimit_granted_total", "limiter" => limiter.clone()),
            rejected: counter!("bounded_ratelimit_rejected_total", "limiter" => limiter.clone()),
            waiting: gauge!("bounded_ratelimit_waiting", "limiter" => limiter.clone()),
            wait: histogram!("bounded_ratelimit_wait_seconds", "limiter" => limiter),
        }
    }
}
