use std::fmt;

use crate::metrics::Metrics;

/// How every job accepted by a pool ended, from [`shutdown`](crate::Pool::shutdown) or
/// [`shutdown_timeout`](crate::Pool::shutdown_timeout).
///
/// `completed + failed + panicked + cancelled + never_started == submitted`, always.
///
/// # Examples
///
/// ```
/// use bounded_pool::Pool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder().workers(1).queue(1).build().unwrap();
/// let report = pool.shutdown().await;
/// assert!(report.is_clean());
/// assert_eq!(report.to_string(), "0 submitted: 0 completed, 0 failed, 0 panicked, 0 cancelled, 0 never started");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolReport {
    /// Jobs accepted.
    pub submitted: u64,
    /// Returned `Ok`.
    pub completed: u64,
    /// Returned `Err`.
    pub failed: u64,
    /// Panicked.
    pub panicked: u64,
    /// Aborted while running.
    pub cancelled: u64,
    /// Accepted but dropped before its first poll: from the queue, or by a worker that had taken
    /// it and was stopped before it polled it.
    pub never_started: u64,
}

impl PoolReport {
    pub(crate) fn new(m: Metrics) -> Self {
        PoolReport {
            submitted: m.submitted,
            completed: m.completed,
            failed: m.failed,
            panicked: m.panicked,
            cancelled: m.cancelled,
            never_started: m.never_started,
        }
    }

    /// Returns `true` if every accepted job completed.
    pub fn is_clean(&self) -> bool {
        self.completed == self.submitted
    }
}

impl fmt::Display for PoolReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} submitted: {} completed, {} failed, {} panicked, {} cancelled, {} never started",
            self.submitted,
            self.completed,
            self.failed,
            self.panicked,
            self.cancelled,
            self.never_started
        )
    }
}
