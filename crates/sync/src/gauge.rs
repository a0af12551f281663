//! A gauge that every instance under one name adds to, reported with `set` (feature `metrics`).
//!
//! Two pools named `jobs` are one series, and their queue depths add up. Moving a gauge by what
//! changed (`increment`, `decrement`) would do that, but not every exporter implements those: the
//! StatsD exporter drops them, since a StatsD gauge is sent as a value. So the sum lives here, one
//! count per name and labels in the process, and each change sets the gauge to it, which every
//! exporter reads.
//!
//! Two changes made at once may set the gauge in either order; each then reads the count again, with
//! a read-modify-write (which reads the latest count, whatever order the recorder's `set` keeps), and
//! sets it once more if it moved, so the gauge always ends at the count.
//! The counts are kept for the life of the process, one per name and labels, as a recorder keeps
//! its series.
//!
//! # Examples
//!
//! ```
//! use bounded_sync::gauge::SharedGauge;
//!
//! let a = SharedGauge::register("bounded_doc_depth", "pool", "jobs");
//! let b = SharedGauge::register("bounded_doc_depth", "pool", "jobs");
//! a.add(3);
//! b.add(2);
//! b.add(-1);
//! assert_eq!(a.value(), 4);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{OnceLock, RwLock};

use crate::Arc;
use crate::atomic::{AtomicI64, Ordering};

/// The counts, by name, label and label value. (`std`'s lock: this is not a mechanism the loom
/// models explore.)
type Counts = RwLock<HashMap<(&'static str, &'static str, String), Arc<AtomicI64>>>;

fn counts() -> &'static Counts {
    static COUNTS: OnceLock<Counts> = OnceLock::new();
    COUNTS.get_or_init(Counts::default)
}

/// A gauge of the `metrics` facade, labelled with one label, whose value is the sum of what every
/// instance under the same name and label value added. See the [module docs](self).
pub struct SharedGauge {
    count: Arc<AtomicI64>,
    gauge: metrics::Gauge,
}

impl SharedGauge {
    /// The gauge `name{label="value"}` from the recorder installed now, and its count in this
    /// process.
    pub fn register(name: &'static str, label: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        let key = (name, label, value);
        let found = counts()
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
            .cloned();
        let count = found.unwrap_or_else(|| {
            let mut counts = counts()
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            counts.entry(key.clone()).or_default().clone()
        });
        let gauge = metrics::gauge!(name, label => key.2);
        SharedGauge { count, gauge }
    }

    /// Adds `delta` (negative to take away) to the count and sets the gauge to it.
    pub fn add(&self, delta: i64) {
        add_then_set(&self.count, delta, |now| self.gauge.set(now as f64));
    }

    /// The count: what every instance under this name and label value added, in this process.
    pub fn value(&self) -> i64 {
        self.count.load(Ordering::Acquire)
    }
}

/// Adds `delta` to `count` and sets the gauge to the count with `set`, again until the count read
/// after a set is the one it set. The read is a read-modify-write, which reads the latest count
/// whatever the recorder's `set` orders: an acquire load after a `set` that is only a relaxed store
/// could read a count older than another change's and leave the gauge behind (the loom model below
/// finds that interleaving).
fn add_then_set(count: &AtomicI64, delta: i64, set: impl Fn(i64)) {
    let mut now = count.fetch_add(delta, Ordering::AcqRel) + delta;
    loop {
        set(now);
        let latest = count.fetch_add(0, Ordering::AcqRel);
        if latest == now {
            return;
        }
        now = latest;
    }
}

impl fmt::Debug for SharedGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGauge")
            .field("value", &self.value())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::add_then_set;
    use crate::Arc;
    use crate::atomic::{AtomicI64, Ordering};

    /// Two changes at once, on a gauge whose `set` is `set_with`: once both are done, the gauge holds
    /// the count.
    fn two_changes_end_at_the_count(set_with: fn(&AtomicI64, i64)) {
        loom::model(move || {
            let count = Arc::new(AtomicI64::new(0));
            let gauge = Arc::new(AtomicI64::new(0));
            let other = {
                let (count, gauge) = (count.clone(), gauge.clone());
                loom::thread::spawn(move || add_then_set(&count, 2, |now| set_with(&gauge, now)))
            };
            add_then_set(&count, 1, |now| set_with(&gauge, now));
            other.join().unwrap();
            assert_eq!(
                gauge.load(Ordering::Acquire),
                3,
                "the gauge was left behind"
            );
        });
    }

    /// The weakest recorder a gauge can have: `set` is a relaxed store.
    #[test]
    fn a_gauge_set_by_relaxed_stores_ends_at_the_count() {
        two_changes_end_at_the_count(|gauge, now| gauge.store(now, Ordering::Relaxed));
    }

    /// The recorders built on the `metrics` crate's atomics: `set` is a swap.
    #[test]
    fn a_gauge_set_by_swaps_ends_at_the_count() {
        two_changes_end_at_the_count(|gauge, now| {
            gauge.swap(now, Ordering::AcqRel);
        });
    }
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use super::SharedGauge;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn instances_under_one_name_add_up_and_others_do_not() {
        let a = SharedGauge::register("bounded_test_gauge", "pool", "a");
        let a2 = SharedGauge::register("bounded_test_gauge", "pool", "a");
        let b = SharedGauge::register("bounded_test_gauge", "pool", "b");
        a.add(2);
        a2.add(5);
        b.add(1);
        a2.add(-3);
        assert_eq!((a.value(), a2.value(), b.value()), (4, 4, 1));
    }

    /// The value the recorder holds for the one gauge it has.
    fn exported(snapshotter: &metrics_util::debugging::Snapshotter) -> f64 {
        let values: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(_, _, _, value)| match value {
                metrics_util::debugging::DebugValue::Gauge(value) => Some(value.into_inner()),
                _ => None,
            })
            .collect();
        assert_eq!(values.len(), 1, "one gauge: {values:?}");
        values[0]
    }

    /// Spins until `ready`, giving the core away now and then in case the other thread shares it.
    fn wait_until(ready: impl Fn() -> bool) {
        for spin in 0u32.. {
            if ready() {
                return;
            }
            // Spinning keeps both threads on their cores, so that each round's changes race; past
            // a few microseconds the other thread is likely waiting for this one's core (tests
            // beside it, a busy machine), and every turn gives it up. (Yielding every 64 turns
            // throughout took this test 128 s under `cargo nextest` beside two busy processes,
            // against 7.5 s so; and without the second look in `add_then_set`, it found the gauge
            // behind in 22-685 rounds, against 1,185-3,376 so.)
            match spin < 4096 {
                true => std::hint::spin_loop(),
                false => std::thread::yield_now(),
            }
        }
    }

    #[test]
    fn changes_racing_on_two_threads_leave_the_exported_gauge_at_the_count() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let gauge = Arc::new(metrics::with_local_recorder(&recorder, || {
            SharedGauge::register("bounded_test_threads", "pool", "t")
        }));
        // Each round, both threads change the gauge at once, released by one store. A change whose
        // `set` lands after the other's would leave the gauge behind the count if it did not look
        // at the count again.
        const ROUNDS: usize = 100_000;
        let go = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let other = {
            let (gauge, go, done) = (gauge.clone(), go.clone(), done.clone());
            std::thread::spawn(move || {
                for round in 1..=ROUNDS {
                    wait_until(|| go.load(Ordering::Acquire) >= round);
                    gauge.add(-2);
                    done.store(round, Ordering::Release);
                }
            })
        };
        let mut behind = 0;
        for round in 1..=ROUNDS {
            go.store(round, Ordering::Release);
            gauge.add(3);
            wait_until(|| done.load(Ordering::Acquire) >= round);
            if exported(&snapshotter) != gauge.value() as f64 {
                behind += 1;
            }
        }
        other.join().unwrap();
        assert_eq!(gauge.value(), ROUNDS as i64);
        assert_eq!(
            behind, 0,
            "the gauge was left behind the count in {behind} rounds"
        );
    }
}
