//! Helpers for the workspace's own tests.

use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, Snapshotter};

/// One snapshot of a debugging recorder. The recorder hands out each value once (a snapshot resets
/// it), so a test reads everything it needs from one snapshot.
#[derive(Debug)]
pub struct Readings(Vec<(CompositeKey, V)>);

/// A value read back, in a form tests can compare and copy.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    /// A counter's count since the last snapshot.
    Counter(u64),
    /// A gauge's level.
    Gauge(f64),
    /// A histogram's values since the last snapshot, in the order recorded.
    Histogram(Vec<f64>),
}

impl Readings {
    /// Takes one snapshot.
    pub fn take(snapshotter: &Snapshotter) -> Self {
        let values = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| {
                let v = match v {
                    DebugValue::Counter(n) => V::Counter(n),
                    DebugValue::Gauge(g) => V::Gauge(g.into_inner()),
                    DebugValue::Histogram(h) => {
                        V::Histogram(h.into_iter().map(|x| x.into_inner()).collect())
                    }
                };
                (k, v)
            });
        Readings(values.collect())
    }

    /// The value of the metric named `name` whose labels include `labels`.
    ///
    /// # Panics
    ///
    /// When there is no such metric.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> V {
        self.0
            .iter()
            .find(|(key, _)| {
                let key = key.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("no metric {name} {labels:?}"))
    }
}
