use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bounded_cancel::Cause;
use bounded_ratelimit::{InsufficientCapacity, Quota, QuotaError, RetryAfter};

/// Redis did not answer a limiter's call, and the limiter's [`OnUnavailable`](crate::OnUnavailable)
/// policy is to refuse.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit_redis::Unavailable;
/// use std::time::Duration;
///
/// let err = Unavailable::timed_out(Duration::from_millis(200));
/// assert!(err.to_string().contains("did not answer within 200ms"));
/// ```
#[derive(Clone, Debug)]
pub struct Unavailable {
    kind: UnavailableKind,
}

#[derive(Clone, Debug)]
enum UnavailableKind {
    TimedOut(Duration),
    Redis(Arc<redis::RedisError>),
}

impl Unavailable {
    /// Redis gave no answer within the limiter's call timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit_redis::Unavailable;
    /// # use std::time::Duration;
    /// assert_eq!(Unavailable::timed_out(Duration::from_secs(1)).timeout(), Some(Duration::from_secs(1)));
    /// ```
    pub fn timed_out(timeout: Duration) -> Self {
        Unavailable {
            kind: UnavailableKind::TimedOut(timeout),
        }
    }

    pub(crate) fn redis(err: redis::RedisError) -> Self {
        Unavailable {
            kind: UnavailableKind::Redis(Arc::new(err)),
        }
    }

    /// The call timeout that passed, when Redis was too slow rather than failing.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit_redis::Unavailable;
    /// # use std::time::Duration;
    /// assert!(Unavailable::timed_out(Duration::from_secs(1)).redis_error().is_none());
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        match &self.kind {
            UnavailableKind::TimedOut(timeout) => Some(*timeout),
            UnavailableKind::Redis(_) => None,
        }
    }

    /// What went wrong, without what the limiter did about it: for an event that names the policy.
    #[cfg(feature = "tracing")]
    pub(crate) fn cause(&self) -> String {
        match &self.kind {
            UnavailableKind::TimedOut(timeout) => format!("no answer within {timeout:?}"),
            UnavailableKind::Redis(err) => format!("{err}{}", cluster_hint(err)),
        }
    }

    /// The error the Redis client reported (a refused connection, a lost one, an error reply).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit_redis::Unavailable;
    /// # use std::time::Duration;
    /// assert!(Unavailable::timed_out(Duration::from_secs(1)).redis_error().is_none());
    /// ```
    pub fn redis_error(&self) -> Option<&redis::RedisError> {
        match &self.kind {
            UnavailableKind::Redis(err) => Some(err),
            UnavailableKind::TimedOut(_) => None,
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            UnavailableKind::TimedOut(timeout) => write!(
                f,
                "the fleet rate limiter's Redis did not answer within {timeout:?}; nothing was granted \
                 (the limiter refuses while Redis is unavailable: see OnUnavailable to fail open or to \
                 fall back to a local share of the quota)"
            ),
            UnavailableKind::Redis(err) => write!(
                f,
                "the fleet rate limiter could not reach Redis: {err}{}; nothing was granted (the \
                 limiter refuses while Redis is unavailable: see OnUnavailable to fail open or to fall \
                 back to a local share of the quota)",
                cluster_hint(err)
            ),
        }
    }
}

/// What to do when a single-server connection reached one node of a Redis Cluster, which sends the
/// call to another node: the configuration is wrong, and no outage will end it.
fn cluster_hint(err: &redis::RedisError) -> &'static str {
    if err.redirect_node().is_some() {
        " (this Redis is a cluster node that does not hold the bucket's key: connect to the \
         cluster with redis-rs's `ClusterConnection`, which the `cluster` feature accepts)"
    } else {
        ""
    }
}

impl Error for Unavailable {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            // Redis's message is in this one already, and a redis-rs error that wraps another
            // (an I/O error, a parse error) prints it as its own message: the chain goes on below
            // both.
            UnavailableKind::Redis(err) => err.source().and_then(Error::source),
            UnavailableKind::TimedOut(_) => None,
        }
    }
}

/// Why an `acquire` of a [`RedisLimiter`](crate::RedisLimiter) granted nothing.
///
/// The first three mean what they mean for `bounded_ratelimit::Limiter`; in every case nothing was
/// consumed.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Cause;
/// use bounded_ratelimit_redis::AcquireError;
/// use std::time::Duration;
///
/// let err = AcquireError::DeadlineTooSoon { wait: Duration::from_secs(1), remaining: Duration::ZERO };
/// assert!(err.is_deadline());
/// assert!(!AcquireError::Cancelled(Cause::Cancelled).is_deadline());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AcquireError {
    /// The caller's context ended first.
    Cancelled(Cause),
    /// The grant would come at or after the context's deadline: refused at once (by the script, which
    /// took nothing), instead of sleeping until the deadline first.
    DeadlineTooSoon {
        /// How long the wait would have been.
        wait: Duration,
        /// How long was left before the deadline.
        remaining: Duration,
    },
    /// More units than the burst were asked for.
    InsufficientCapacity(InsufficientCapacity),
    /// Redis could not be asked, and the policy is to refuse.
    Unavailable(Unavailable),
}

impl AcquireError {
    /// The context's cause, when the context ended the wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Cause;
    /// # use bounded_ratelimit_redis::AcquireError;
    /// assert!(AcquireError::Cancelled(Cause::Cancelled).cause().is_some());
    /// ```
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            AcquireError::Cancelled(cause) => Some(cause),
            _ => None,
        }
    }

    /// Whether a deadline ended this wait, whichever way it did.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Cause;
    /// # use bounded_ratelimit_redis::AcquireError;
    /// assert!(AcquireError::Cancelled(Cause::DeadlineExceeded).is_deadline());
    /// ```
    pub fn is_deadline(&self) -> bool {
        match self {
            AcquireError::DeadlineTooSoon { .. } => true,
            AcquireError::Cancelled(cause) => cause.is_deadline_exceeded(),
            _ => false,
        }
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::Cancelled(cause) => {
                write!(f, "fleet rate limit wait ended before a grant: {cause}")
            }
            AcquireError::DeadlineTooSoon { wait, remaining } => write!(
                f,
                "the fleet rate limit would make this call wait {wait:?}, longer than the {remaining:?} \
                 left before its deadline; failed at once instead of sleeping (nothing was consumed)"
            ),
            AcquireError::InsufficientCapacity(err) => err.fmt(f),
            AcquireError::Unavailable(err) => err.fmt(f),
        }
    }
}

impl Error for AcquireError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            // Each is in the message already: the chain goes on below it.
            AcquireError::Cancelled(cause) => cause.source(),
            AcquireError::InsufficientCapacity(err) => err.source(),
            AcquireError::Unavailable(err) => err.source(),
            AcquireError::DeadlineTooSoon { .. } => None,
        }
    }
}

impl From<bounded_ratelimit::AcquireError> for AcquireError {
    fn from(err: bounded_ratelimit::AcquireError) -> Self {
        match err {
            bounded_ratelimit::AcquireError::Cancelled(cause) => AcquireError::Cancelled(cause),
            bounded_ratelimit::AcquireError::DeadlineTooSoon { wait, remaining } => {
                AcquireError::DeadlineTooSoon { wait, remaining }
            }
            bounded_ratelimit::AcquireError::InsufficientCapacity(err) => {
                AcquireError::InsufficientCapacity(err)
            }
            // The local limiter's errors are the first three; a future one is a refusal all the same.
            other => AcquireError::Cancelled(Cause::Error(Arc::new(other))),
        }
    }
}

/// Why a `try_acquire` took nothing: not yet, never, or Redis could not be asked.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::RetryAfter;
/// use bounded_ratelimit_redis::TryAcquireError;
/// use std::time::Duration;
///
/// let err = TryAcquireError::RetryAfter(RetryAfter::new(Duration::from_millis(20)));
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(20)));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Not yet: the units would be granted after this wait, behind every reservation already made.
    RetryAfter(RetryAfter),
    /// Never: more units than the burst.
    InsufficientCapacity(InsufficientCapacity),
    /// Redis could not be asked, and the policy is to refuse.
    Unavailable(Unavailable),
}

impl TryAcquireError {
    /// How long to wait before the same request could succeed; `None` when it never can, or when Redis
    /// could not be asked.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::InsufficientCapacity;
    /// # use bounded_ratelimit_redis::TryAcquireError;
    /// let never = TryAcquireError::InsufficientCapacity(InsufficientCapacity { requested: 3, burst: 2 });
    /// assert_eq!(never.retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TryAcquireError::RetryAfter(retry) => Some(retry.wait()),
            _ => None,
        }
    }
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::RetryAfter(err) => err.fmt(f),
            TryAcquireError::InsufficientCapacity(err) => err.fmt(f),
            TryAcquireError::Unavailable(err) => err.fmt(f),
        }
    }
}

impl Error for TryAcquireError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            // Each is this one's message: the chain goes on below it.
            TryAcquireError::RetryAfter(err) => err.source(),
            TryAcquireError::InsufficientCapacity(err) => err.source(),
            TryAcquireError::Unavailable(err) => err.source(),
        }
    }
}

impl From<bounded_ratelimit::TryAcquireError> for TryAcquireError {
    fn from(err: bounded_ratelimit::TryAcquireError) -> Self {
        match err {
            bounded_ratelimit::TryAcquireError::InsufficientCapacity(err) => {
                TryAcquireError::InsufficientCapacity(err)
            }
            other => TryAcquireError::RetryAfter(RetryAfter::new(
                other.retry_after().unwrap_or(Duration::MAX),
            )),
        }
    }
}

/// A fleet limiter that cannot be built as asked.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::QuotaError;
/// use bounded_ratelimit_redis::ConfigError;
///
/// let err = ConfigError::Quota(QuotaError::ZeroRate);
/// assert!(err.to_string().contains("rate of 0"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The quota cannot work, as for a local `Limiter`.
    Quota(QuotaError),
    /// The quota is faster than [`MAX_RATE`](crate::MAX_RATE) units a second: a bucket in Redis
    /// counts whole microseconds, and a unit's cost rounded up to them would cut such a rate by up
    /// to half (900,000 a second would get 500,000).
    TooFast {
        /// The quota refused.
        quota: Quota,
    },
    /// The local quota of an [`OnUnavailable::Local`](crate::OnUnavailable::Local) policy cannot work.
    LocalQuota(QuotaError),
    /// A call timeout of zero would refuse every call.
    ZeroTimeout,
    /// An empty key name would share a bucket with every other unnamed limiter.
    EmptyKey,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Quota(err) => err.fmt(f),
            ConfigError::TooFast { quota } => write!(
                f,
                "the quota {quota} is faster than 500,000 units a second, finer than a fleet \
                 limiter's bucket in Redis can keep (it counts whole microseconds); lower the rate, \
                 or split the limit over several keys"
            ),
            ConfigError::LocalQuota(err) => write!(f, "the local fallback quota: {err}"),
            ConfigError::ZeroTimeout => f.write_str(
                "a Redis call timeout of 0 would fail every call; give the longest a call may wait for \
                 Redis (for example 200 ms)",
            ),
            ConfigError::EmptyKey => f.write_str(
                "the Redis key of a fleet limiter is empty; name the limit (for example \"partner-api\")",
            ),
        }
    }
}

impl Error for ConfigError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            // In the message already: the chain goes on below it.
            ConfigError::Quota(err) | ConfigError::LocalQuota(err) => err.source(),
            _ => None,
        }
    }
}

impl From<QuotaError> for ConfigError {
    fn from(err: QuotaError) -> Self {
        ConfigError::Quota(err)
    }
}
