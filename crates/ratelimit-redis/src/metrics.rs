use std::time::Duration;

/// A snapshot of one fleet limiter's counters (this process's calls only; other replicas keep their
/// own).
///
/// # Examples
///
/// ```
/// use bounded_ratelimit_redis::RedisMetrics;
///
/// let m = RedisMetrics::default();
/// assert_eq!((m.granted, m.unavailable), (0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisMetrics {
    /// Units granted (by Redis, or by the policy while Redis was unavailable).
    pub granted: u64,
    /// Calls refused without a grant: a `try_` that would wait, a deadline too soon, more units than
    /// the burst, Redis unavailable under `OnUnavailable::Refuse`.
    pub rejected: u64,
    /// Callers in a wait right now (asking Redis, or sleeping until their instant).
    pub waiting: usize,
    /// Waits their context ended before a grant (a wait that is dropped is given back all the same,
    /// but nothing is left to count it).
    pub abandoned: u64,
    /// Time from a reservation to its instant, summed over the waits that were granted.
    pub total_wait: Duration,
    /// Calls on which Redis could not be asked, whatever the policy then did.
    pub unavailable: u64,
}
