use std::fmt;
use std::sync::Arc;

use bounded_cancel::Context;
use bounded_ratelimit::Quota;

use crate::core::Core;
use crate::{Acquire, Builder, ConfigError, Connection, RedisMetrics, TryAcquire};

/// One rate limit shared by every process that names the same key in the same Redis.
///
/// Clones share the connection, quota and counters. See the [crate docs](crate) for how grants are
/// ordered, what a deadline does and what happens when Redis is down.
///
/// # Examples
///
/// ```no_run
/// use bounded_ratelimit::Quota;
/// use bounded_ratelimit_redis::RedisLimiter;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = redis::Client::open("redis://127.0.0.1/")?.get_connection_manager().await?;
/// // Every replica builds the same limiter: together they send the partner 50 calls a second.
/// let partner = RedisLimiter::new(conn, "partner-api", Quota::per_second(50).burst(5))?;
/// partner.acquire().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisLimiter {
    key: Arc<str>,
    core: Arc<Core>,
}

impl RedisLimiter {
    /// A limiter over the bucket at `key`, with the default timeout and policy (refuse while Redis is
    /// unavailable).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a quota that cannot work (the local `Limiter`'s rules, and at most
    /// [`MAX_RATE`](crate::MAX_RATE), 500,000 units a second: the bucket counts microseconds), or an
    /// empty key.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::{Quota, QuotaError};
    /// # use bounded_ratelimit_redis::{ConfigError, RedisLimiter};
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let err = RedisLimiter::new(conn, "api", Quota::per_second(0)).unwrap_err();
    /// assert_eq!(err, ConfigError::Quota(QuotaError::ZeroRate));
    /// # }
    /// ```
    pub fn new(
        conn: impl Into<Connection>,
        key: impl Into<String>,
        quota: Quota,
    ) -> Result<Self, ConfigError> {
        Self::builder(conn, key, quota).build()
    }

    /// A [`Builder`] to set the call timeout and the policy while Redis is unavailable.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::{OnUnavailable, RedisLimiter};
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let limiter = RedisLimiter::builder(conn, "api", Quota::per_second(10))
    ///     .on_unavailable(OnUnavailable::Local(Quota::per_second(2)))
    ///     .build()
    ///     .unwrap();
    /// # }
    /// ```
    pub fn builder(
        conn: impl Into<Connection>,
        key: impl Into<String>,
        quota: Quota,
    ) -> Builder<Self> {
        Builder::new(conn.into(), key.into(), quota)
    }

    pub(crate) fn from_parts(key: String, core: Arc<Core>) -> Self {
        RedisLimiter {
            key: key.into(),
            core,
        }
    }

    /// Waits for one unit: one round trip to Redis, which reserves this caller's instant behind every
    /// reservation already made by any replica, then one local sleep until that instant.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Unavailable`](crate::AcquireError::Unavailable) when Redis cannot be asked and
    /// the policy is to refuse.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future gives back its reservation unless a later one depends on it.
    ///
    /// # Fairness
    ///
    /// Grants follow the order in which Redis ran the callers' scripts, across every replica.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # async fn run(limiter: RedisLimiter) {
    /// limiter.acquire().await.expect("Redis answered");
    /// # }
    /// ```
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_n(1)
    }

    /// Waits for `n` units granted together (`n = 0` is granted at once, without asking Redis).
    ///
    /// # Errors
    ///
    /// `InsufficientCapacity` at once when `n` exceeds the burst; `Unavailable` as for
    /// [`acquire`](RedisLimiter::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](RedisLimiter::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # async fn run(limiter: RedisLimiter) {
    /// limiter.acquire_n(3).await.unwrap();
    /// # }
    /// ```
    pub fn acquire_n(&self, n: u32) -> Acquire<'_> {
        Acquire::new(self.core.acquire(&self.key, n, None))
    }

    /// Waits for one unit unless `ctx` ends first. A grant that would come at or after `ctx`'s deadline
    /// is refused by the script at once ([`AcquireError::DeadlineTooSoon`](crate::AcquireError::DeadlineTooSoon)),
    /// and takes nothing.
    ///
    /// # Errors
    ///
    /// The context's cause, a deadline too soon, or `Unavailable`. Asking Redis is bounded by the
    /// context too: a slow Redis never holds a caller past its context.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](RedisLimiter::acquire); a context that ends also gives the reservation back.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_cancel::Context;
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # use std::time::Duration;
    /// # async fn run(limiter: RedisLimiter) {
    /// let request = Context::new().with_timeout(Duration::from_millis(300));
    /// match limiter.acquire_with(&request).await {
    ///     Ok(()) => { /* call the partner */ }
    ///     Err(err) if err.is_deadline() => { /* answer 429 at once */ }
    ///     Err(err) => panic!("{err}"),
    /// }
    /// # }
    /// ```
    pub fn acquire_with<'a>(&'a self, ctx: &'a Context) -> Acquire<'a> {
        self.acquire_n_with(ctx, 1)
    }

    /// [`acquire_n`](RedisLimiter::acquire_n) unless `ctx` ends first, as
    /// [`acquire_with`](RedisLimiter::acquire_with).
    ///
    /// # Errors
    ///
    /// As [`acquire_with`](RedisLimiter::acquire_with), and `InsufficientCapacity` above the burst.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire_with`](RedisLimiter::acquire_with).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_cancel::Context;
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # async fn run(limiter: RedisLimiter) {
    /// limiter.acquire_n_with(&Context::new(), 2).await.unwrap();
    /// # }
    /// ```
    pub fn acquire_n_with<'a>(&'a self, ctx: &'a Context, n: u32) -> Acquire<'a> {
        Acquire::new(self.core.acquire(&self.key, n, Some(ctx)))
    }

    /// Takes one unit if it is free now, behind every reservation already made; one round trip, no
    /// wait for units.
    ///
    /// # Errors
    ///
    /// `RetryAfter` with the wait, or `Unavailable`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while Redis answers gives back what the answer granted.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # async fn run(limiter: RedisLimiter) {
    /// if let Err(err) = limiter.try_acquire().await {
    ///     println!("429, Retry-After: {:?}", err.retry_after());
    /// }
    /// # }
    /// ```
    pub fn try_acquire(&self) -> TryAcquire<'_> {
        self.try_acquire_n(1)
    }

    /// Takes `n` units together if they are free now.
    ///
    /// # Errors
    ///
    /// `RetryAfter`, `InsufficientCapacity` above the burst, or `Unavailable`.
    ///
    /// # Cancel safety
    ///
    /// As [`try_acquire`](RedisLimiter::try_acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # async fn run(limiter: RedisLimiter) {
    /// let _ = limiter.try_acquire_n(4).await;
    /// # }
    /// ```
    pub fn try_acquire_n(&self, n: u32) -> TryAcquire<'_> {
        TryAcquire::new(self.core.try_acquire(&self.key, n))
    }

    /// Changes the quota this replica asks for, from its next call on.
    ///
    /// The bucket in Redis keeps the time it owes, not its count of units: each call is judged by its
    /// caller's quota against the shared instant, so to change the fleet's rate, change it on every
    /// replica (during the change the fleet's rate lies between the old and the new). Reservations
    /// already made keep their instants. [`Quota::blocked`] makes this replica's calls wait (or fail
    /// on a deadline) until the block is lifted; [`Quota::unlimited`] grants without asking Redis.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a quota that cannot work; the quota in force is unchanged.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # async fn run(limiter: RedisLimiter) {
    /// limiter.set_rate(Quota::per_second(100)).unwrap();
    /// assert!(limiter.set_rate(Quota::per_second(0)).is_err());
    /// # }
    /// ```
    pub fn set_rate(&self, quota: Quota) -> Result<(), ConfigError> {
        self.core.set_rate(quota)
    }

    /// The quota in force on this replica.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let limiter = RedisLimiter::new(conn, "api", Quota::per_second(10)).unwrap();
    /// assert_eq!(limiter.quota(), Quota::per_second(10));
    /// # }
    /// ```
    pub fn quota(&self) -> Quota {
        self.core.quota()
    }

    /// The Redis key of the bucket.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let limiter = RedisLimiter::new(conn, "api", Quota::per_second(10)).unwrap();
    /// assert_eq!(limiter.key(), "api");
    /// # }
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// A snapshot of this replica's counters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # async fn run(limiter: RedisLimiter) {
    /// limiter.acquire().await.unwrap();
    /// assert_eq!(limiter.metrics().granted, 1);
    /// # }
    /// ```
    pub fn metrics(&self) -> RedisMetrics {
        self.core.metrics()
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("key", &self.key)
            .field("quota", &self.quota())
            .field("metrics", &self.metrics())
            .finish()
    }
}
