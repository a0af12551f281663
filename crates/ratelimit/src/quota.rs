use std::fmt;
use std::time::Duration;

/// How much a limiter lets through: `count` units per `per`, with up to `burst` at once.
///
/// A quota is checked when a limiter is built from it ([`Limiter::new`](crate::Limiter::new),
/// [`Limiter::set_rate`](crate::Limiter::set_rate)): a rate, period or burst of zero is a
/// [`QuotaError`](crate::QuotaError) there, not a panic here.
///
/// Without [`burst`](Quota::burst), the burst equals `count`: `Quota::per_second(50)` lets 50 calls
/// through at once after a quiet second, as governor's `Quota::per_second` does. Set it when the
/// downstream cannot take that: `Quota::per_second(50).burst(1)` spaces every call 20 ms apart.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::Quota;
/// use std::time::Duration;
///
/// let quota = Quota::per_second(50).burst(10);
/// assert_eq!(quota.interval(), Duration::from_millis(20));
/// assert_eq!(quota.burst_size(), 10);
/// assert_eq!(quota.to_string(), "50 per 1s, burst 10");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    count: u32,
    per: Duration,
    burst: Option<u32>,
    unlimited: bool,
    blocked: bool,
}

impl Quota {
    /// `count` units per `per`, burst `count`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// # use std::time::Duration;
    /// assert_eq!(Quota::new(3, Duration::from_secs(1)).interval(), Duration::from_nanos(333_333_334));
    /// ```
    pub const fn new(count: u32, per: Duration) -> Self {
        Quota {
            count,
            per,
            burst: None,
            unlimited: false,
            blocked: false,
        }
    }

    /// `count` units per second, burst `count`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// assert_eq!(Quota::per_second(50).burst_size(), 50);
    /// ```
    pub const fn per_second(count: u32) -> Self {
        Quota::new(count, Duration::from_secs(1))
    }

    /// One unit every `interval` (x/time/rate's `Every`), with a burst of 1 unless
    /// [`burst`](Quota::burst) says otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// # use std::time::Duration;
    /// let quota = Quota::every(Duration::from_millis(250));
    /// assert_eq!((quota.interval(), quota.burst_size()), (Duration::from_millis(250), 1));
    /// ```
    pub const fn every(interval: Duration) -> Self {
        Quota::new(1, interval)
    }

    /// No limit at all (x/time/rate's `Inf`): every request is granted at once. For a limiter that
    /// must sometimes be lifted, as in `limiter.set_rate(Quota::unlimited())`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::unlimited()).unwrap();
    /// for _ in 0..1_000_000 {
    ///     limiter.try_acquire().unwrap();
    /// }
    /// assert_eq!(Quota::unlimited().to_string(), "unlimited");
    /// # }
    /// ```
    pub const fn unlimited() -> Self {
        Quota {
            count: u32::MAX,
            per: Duration::from_secs(1),
            burst: Some(u32::MAX),
            unlimited: true,
            blocked: false,
        }
    }

    /// A kill switch (x/time/rate's limit of 0): no unit is granted until the quota changes.
    /// `try_acquire` is refused (with a wait of decades), a wait with a deadline fails at once with
    /// `DeadlineTooSoon`, and a wait without one waits for `set_rate` to lift the block. Every unit in
    /// use is forgotten when the block is lifted.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(100)).unwrap();
    /// limiter.set_rate(Quota::blocked()).unwrap(); // the downstream is down: stop everything
    /// assert!(limiter.try_acquire().is_err());
    /// limiter.set_rate(Quota::per_second(100)).unwrap();
    /// assert!(limiter.try_acquire().is_ok());
    /// assert_eq!(Quota::blocked().to_string(), "blocked");
    /// # }
    /// ```
    pub const fn blocked() -> Self {
        Quota {
            count: 1,
            per: Duration::from_secs(1),
            burst: Some(1),
            unlimited: false,
            blocked: true,
        }
    }

    /// Whether this is [`Quota::blocked`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// assert!(Quota::blocked().is_blocked() && !Quota::per_second(5).is_blocked());
    /// ```
    pub const fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// Whether this is [`Quota::unlimited`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// assert!(Quota::unlimited().is_unlimited() && !Quota::per_second(5).is_unlimited());
    /// ```
    pub const fn is_unlimited(&self) -> bool {
        self.unlimited
    }

    /// `count` units per minute, burst `count`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// # use std::time::Duration;
    /// assert_eq!(Quota::per_minute(60).interval(), Duration::from_secs(1));
    /// ```
    pub const fn per_minute(count: u32) -> Self {
        Quota::new(count, Duration::from_secs(60))
    }

    /// The same rate with at most `burst` units at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// assert_eq!(Quota::per_second(100).burst(10).burst_size(), 10);
    /// ```
    ///
    /// A quota is `Copy`: a call whose result is not used changes nothing, and the compiler says so.
    ///
    /// ```compile_fail
    /// #![deny(unused_must_use)]
    /// # use bounded_ratelimit::Quota;
    /// let quota = Quota::per_second(100);
    /// quota.burst(10); // error: unused return value; `quota` keeps the burst it had
    /// ```
    #[must_use = "this returns a new quota; `Quota` is `Copy`, and the one it is called on is unchanged"]
    pub const fn burst(self, burst: u32) -> Self {
        Quota {
            burst: Some(burst),
            ..self
        }
    }

    /// The units one period holds: the `count` of `Quota::new(count, per)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// assert_eq!(Quota::per_minute(30).count(), 30);
    /// ```
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The period the count is spread over: the `per` of `Quota::new(count, per)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// # use std::time::Duration;
    /// assert_eq!(Quota::per_minute(30).period(), Duration::from_secs(60));
    /// ```
    pub const fn period(&self) -> Duration {
        self.per
    }

    /// The most units granted at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// assert_eq!(Quota::per_minute(30).burst_size(), 30);
    /// ```
    pub const fn burst_size(&self) -> u32 {
        match self.burst {
            Some(burst) => burst,
            None => self.count,
        }
    }

    /// The time one unit costs: `per / count`, rounded up to whole nanoseconds, as a limiter counts
    /// it, so that it never grants faster than the quota (zero for a zero quota, which limiters
    /// refuse).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::Quota;
    /// # use std::time::Duration;
    /// assert_eq!(Quota::per_second(4).interval(), Duration::from_millis(250));
    /// assert_eq!(Quota::per_second(3).interval(), Duration::from_nanos(333_333_334));
    /// ```
    pub fn interval(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let nanos = self.per.as_nanos().div_ceil(u128::from(self.count));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    pub(crate) fn parts(&self) -> (u32, Duration, u32) {
        (self.count, self.per, self.burst_size())
    }
}

impl From<governor::Quota> for Quota {
    /// The same quota as governor's: one unit per replenish interval, the same burst.
    fn from(quota: governor::Quota) -> Self {
        Quota::new(1, quota.replenish_interval()).burst(quota.burst_size().get())
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unlimited {
            return f.write_str("unlimited");
        }
        if self.blocked {
            return f.write_str("blocked");
        }
        write!(
            f,
            "{} per {:?}, burst {}",
            self.count,
            self.per,
            self.burst_size()
        )
    }
}
