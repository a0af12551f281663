use std::error::Error;
use std::fmt;
use std::time::Duration;

use bounded_cancel::Cause;

use crate::Quota;

/// A quota or limiter setting that cannot work.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::{Limiter, Quota, QuotaError};
///
/// let err = Limiter::new(Quota::per_second(0)).unwrap_err();
/// assert_eq!(err, QuotaError::ZeroRate);
/// assert!(err.to_string().contains("rate of 0"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// The quota's count is 0: nothing could ever be granted.
    ZeroRate,
    /// The quota's period is zero.
    ZeroPeriod,
    /// The burst is 0: not even one unit fits in the bucket.
    ZeroBurst,
    /// More than one unit per nanosecond, finer than tokio's clock.
    TooFast {
        /// The quota refused.
        quota: Quota,
    },
    /// A full bucket would take more than a century to refill.
    TooSlow {
        /// The quota refused.
        quota: Quota,
    },
    /// A keyed limiter asked to remember at most 0 keys.
    ZeroKeys,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaError::ZeroRate => {
                f.write_str("a rate of 0 would never grant anything; give a count of at least 1")
            }
            QuotaError::ZeroPeriod => f.write_str("a quota over a zero period has no rate; give a period longer than 0"),
            QuotaError::ZeroBurst => f.write_str(
                "a burst of 0 would never grant anything; give a burst of at least 1 (1 spaces every unit evenly)",
            ),
            QuotaError::TooFast { quota } => write!(
                f,
                "the quota {quota} is faster than one unit per nanosecond, finer than tokio's clock; lower the rate"
            ),
            QuotaError::TooSlow { quota } => write!(
                f,
                "the quota {quota} takes more than a century to refill its bucket; raise the rate or lower the burst"
            ),
            QuotaError::ZeroKeys => {
                f.write_str("a keyed limiter that may remember 0 keys cannot limit anything; allow at least 1")
            }
        }
    }
}

impl Error for QuotaError {}

/// "Not yet": the units would conform after [`wait`](RetryAfter::wait).
///
/// Returned by the `try_` forms, which never wait. The figure is computed for the current quota and
/// the callers already queued ahead; a [`set_rate`](crate::Limiter::set_rate) changes it.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::{Limiter, Quota};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
/// limiter.try_acquire().unwrap();
/// let later = limiter.try_acquire().unwrap_err();
/// assert_eq!(later.wait(), Duration::from_millis(100));
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    pub(crate) wait: Duration,
}

impl RetryAfter {
    /// "Not yet, retry after `wait`": for limiters built on this crate's vocabulary (the Redis-backed
    /// fleet limiter answers with it too).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::RetryAfter;
    /// # use std::time::Duration;
    /// assert_eq!(RetryAfter::new(Duration::from_millis(5)).wait(), Duration::from_millis(5));
    /// ```
    pub const fn new(wait: Duration) -> Self {
        RetryAfter { wait }
    }

    /// How long from now until the units would conform.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited: retry after {:?}", self.wait)
    }
}

impl Error for RetryAfter {}

/// "Never": more units were asked for at once than the burst holds, so no wait could grant them.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::{InsufficientCapacity, Limiter, Quota};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = Limiter::new(Quota::per_second(10).burst(5)).unwrap();
/// let err = limiter.acquire_n(6).await.unwrap_err();
/// assert_eq!(err, InsufficientCapacity { requested: 6, burst: 5 });
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsufficientCapacity {
    /// The units asked for.
    pub requested: u32,
    /// The most the quota grants at once.
    pub burst: u32,
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} units can never be granted at once: the burst is {}; ask for at most {} at a time or raise the burst",
            self.requested, self.burst, self.burst
        )
    }
}

impl Error for InsufficientCapacity {}

/// Why [`acquire_with`](crate::Limiter::acquire_with) (or a [`Throttle`](crate::Throttle) call) granted nothing.
///
/// In every case no unit was consumed.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_ratelimit::{AcquireError, Limiter, Quota};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
/// limiter.acquire().await;
/// let ctx = Context::new().with_timeout(Duration::from_millis(100));
/// let start = tokio::time::Instant::now();
/// match limiter.acquire_with(&ctx).await {
///     Err(AcquireError::DeadlineTooSoon { wait, .. }) => assert_eq!(wait, Duration::from_secs(1)),
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(start.elapsed(), Duration::ZERO, "failed at once");
/// # }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AcquireError {
    /// The caller's context ended first (cancelled, failed, or its deadline passed while waiting).
    Cancelled(Cause),
    /// The wait is known to end after the context's deadline, so it failed at once instead of
    /// sleeping until the deadline first.
    DeadlineTooSoon {
        /// How long the wait would have been.
        wait: Duration,
        /// How long was left before the deadline.
        remaining: Duration,
    },
    /// More units than the burst were asked for.
    InsufficientCapacity(InsufficientCapacity),
}

impl AcquireError {
    /// The context's cause, when the context ended the wait.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            AcquireError::Cancelled(cause) => Some(cause),
            _ => None,
        }
    }

    /// Whether a deadline ended this wait, whichever way: refused at once because the grant would come
    /// too late ([`DeadlineTooSoon`](AcquireError::DeadlineTooSoon)), or the deadline passed while it
    /// waited (`Cancelled(Cause::DeadlineExceeded)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Cause;
    /// use bounded_ratelimit::AcquireError;
    /// use std::time::Duration;
    ///
    /// let too_soon = AcquireError::DeadlineTooSoon { wait: Duration::from_secs(1), remaining: Duration::ZERO };
    /// assert!(too_soon.is_deadline());
    /// assert!(AcquireError::Cancelled(Cause::DeadlineExceeded).is_deadline());
    /// assert!(!AcquireError::Cancelled(Cause::Cancelled).is_deadline());
    /// ```
    pub fn is_deadline(&self) -> bool {
        match self {
            AcquireError::DeadlineTooSoon { .. } => true,
            AcquireError::Cancelled(cause) => cause.is_deadline_exceeded(),
            AcquireError::InsufficientCapacity(_) => false,
        }
    }
}

/// Why a `try_acquire_n` took nothing: not yet ([`RetryAfter`]) or never ([`InsufficientCapacity`]).
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::{Limiter, Quota, TryAcquireError};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = Limiter::new(Quota::per_second(10))?;
/// limiter.try_acquire_n(8)?; // `?` works: one error type
/// match limiter.try_acquire_n(8) {
///     Err(TryAcquireError::RetryAfter(retry)) => assert!(retry.wait() > std::time::Duration::ZERO),
///     other => panic!("{other:?}"),
/// }
/// assert!(matches!(limiter.try_acquire_n(11), Err(TryAcquireError::InsufficientCapacity(_))));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Not yet: the units conform after this wait (and behind anyone queued).
    RetryAfter(RetryAfter),
    /// Never: more units than the burst.
    InsufficientCapacity(InsufficientCapacity),
}

impl TryAcquireError {
    /// How long to wait before the same request could succeed; `None` if it never can.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    /// limiter.try_acquire_n(1).unwrap();
    /// let wait = limiter.try_acquire_n(1).unwrap_err().retry_after();
    /// assert_eq!(wait, Some(std::time::Duration::from_millis(100)));
    /// assert_eq!(limiter.try_acquire_n(2).unwrap_err().retry_after(), None);
    /// # }
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TryAcquireError::RetryAfter(retry) => Some(retry.wait()),
            TryAcquireError::InsufficientCapacity(_) => None,
        }
    }
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::RetryAfter(err) => err.fmt(f),
            TryAcquireError::InsufficientCapacity(err) => err.fmt(f),
        }
    }
}

impl Error for TryAcquireError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            // Each is this one's message: the chain goes on below it.
            TryAcquireError::RetryAfter(err) => err.source(),
            TryAcquireError::InsufficientCapacity(err) => err.source(),
        }
    }
}

impl From<RetryAfter> for TryAcquireError {
    fn from(err: RetryAfter) -> Self {
        TryAcquireError::RetryAfter(err)
    }
}

impl From<InsufficientCapacity> for TryAcquireError {
    fn from(err: InsufficientCapacity) -> Self {
        TryAcquireError::InsufficientCapacity(err)
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::Cancelled(cause) => {
                write!(f, "rate limit wait ended before a grant: {cause}")
            }
            AcquireError::DeadlineTooSoon { wait, remaining } => write!(
                f,
                "the rate limit would make this call wait {wait:?}, longer than the {remaining:?} left before \
                 its deadline; failed at once instead of sleeping (nothing was consumed)"
            ),
            AcquireError::InsufficientCapacity(err) => err.fmt(f),
        }
    }
}

impl Error for AcquireError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            // Each is in the message already: the chain goes on below it.
            AcquireError::Cancelled(cause) => cause.source(),
            AcquireError::InsufficientCapacity(err) => err.source(),
            AcquireError::DeadlineTooSoon { .. } => None,
        }
    }
}

impl From<InsufficientCapacity> for AcquireError {
    fn from(err: InsufficientCapacity) -> Self {
        AcquireError::InsufficientCapacity(err)
    }
}

/// [`Throttle::try_call`](crate::Throttle::try_call) or [`try_call_n`](crate::Throttle::try_call_n)
/// took no unit: the call did not run, and its function is handed back.
///
/// # Examples
///
/// ```
/// # use bounded_ratelimit::{Limiter, Quota, Throttle};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let client = Throttle::new((), Limiter::new(Quota::per_second(2).burst(1)).unwrap());
/// client.try_call(|_| async {}).ok().unwrap().await;
/// let refused = client.try_call(|_| async { "later" }).err().unwrap();
/// assert!(refused.to_string().contains("did not run"));
/// let call = refused.into_inner(); // retry it, queue it, or drop it
/// # let _ = call;
/// # }
/// ```
pub struct Throttled<F> {
    pub(crate) error: TryAcquireError,
    pub(crate) f: F,
}

impl<F> Throttled<F> {
    /// How long until the units would be free; `None` when they never can be (more than the burst).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let client = Throttle::new((), Limiter::new(Quota::per_second(2).burst(1)).unwrap());
    /// client.try_call(|_| async {}).ok().unwrap().await;
    /// let refused = client.try_call(|_| async {}).err().unwrap();
    /// assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
    /// # }
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.error.retry_after()
    }

    /// Why no unit was taken: not yet, or never.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle, TryAcquireError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let client = Throttle::new((), Limiter::new(Quota::per_second(2).burst(2)).unwrap());
    /// let refused = client.try_call_n(3, |_| async {}).err().unwrap();
    /// assert!(matches!(refused.error(), TryAcquireError::InsufficientCapacity(_)));
    /// # }
    /// ```
    pub fn error(&self) -> TryAcquireError {
        self.error
    }

    /// The function, never run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let client = Throttle::new(2, Limiter::new(Quota::per_second(1).burst(1)).unwrap());
    /// client.try_call(|n| async move { *n }).ok().unwrap().await;
    /// let call = client.try_call(|n| async move { *n * 10 }).err().unwrap().into_inner();
    /// # let _ = call;
    /// # }
    /// ```
    pub fn into_inner(self) -> F {
        self.f
    }
}

impl<F> fmt::Debug for Throttled<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttled")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for Throttled<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; the call did not run", self.error)
    }
}

impl<F> Error for Throttled<F> {}
