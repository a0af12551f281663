use std::time::Duration;

/// A snapshot of a [`Limiter`](crate::Limiter)'s counters, from [`Limiter::metrics`](crate::Limiter::metrics).
///
/// # Examples
///
/// ```
/// # use bounded_ratelimit::{Limiter, Quota};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
/// limiter.acquire().await;
/// limiter.acquire().await; // waits 100 ms
/// let m = limiter.metrics();
/// assert_eq!(m.granted, 2);
/// assert_eq!(m.total_wait, std::time::Duration::from_millis(100));
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Units granted (a grant given back by a dropped wait is not counted).
    pub granted: u64,
    /// Calls refused without a grant: a `try_` that had to wait, a deadline that came too soon, more
    /// units than the burst.
    pub rejected: u64,
    /// Callers queued right now.
    pub waiting: usize,
    /// Waits that ended without using a grant: dropped in the queue, or ended by their context (in
    /// the queue, or before they asked: a context that had already ended when the wait began).
    pub abandoned: u64,
    /// Time spent queued, summed over the waits that were granted.
    pub total_wait: Duration,
}

/// A snapshot of a [`KeyedLimiter`](crate::KeyedLimiter)'s counters.
///
/// # Examples
///
/// ```
/// # use bounded_ratelimit::{KeyedLimiter, Quota};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = KeyedLimiter::new(Quota::per_second(1), 2).unwrap();
/// limiter.try_acquire(&0).unwrap();
/// limiter.try_acquire(&1).unwrap();
/// // Both keys owe time: a third must wait until one has refilled.
/// assert!(limiter.try_acquire(&2).is_err());
/// tokio::time::advance(std::time::Duration::from_secs(1)).await;
/// limiter.try_acquire(&2).unwrap();
/// let m = limiter.metrics();
/// assert_eq!((m.granted, m.rejected), (3, 1));
/// assert!(m.keys <= 2 && m.evicted == 2, "refilled keys are forgotten");
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedMetrics {
    /// Units granted over all keys.
    pub granted: u64,
    /// Calls refused without a grant.
    pub rejected: u64,
    /// Keys remembered right now (never more than `max_keys`).
    pub keys: usize,
    /// Keys forgotten to stay within `max_keys` (only keys whose bucket had refilled).
    pub evicted: u64,
    /// Callers sleeping right now until their instant (or until a full key table has room).
    pub waiting: usize,
    /// Waits that ended without a grant: dropped while they slept, or ended by their context (while
    /// they slept, or before they asked: a context that had already ended when the wait began).
    pub abandoned: u64,
}
