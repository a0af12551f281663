use std::fmt;
use std::sync::Arc;

use bounded_cancel::Context;
use bounded_ratelimit::Quota;

use crate::core::Core;
use crate::{Acquire, Builder, ConfigError, Connection, RedisMetrics, TryAcquire};

/// A fleet limit per key (a tenant, a user, an API token): one bucket in Redis for each, at
/// `"{prefix}:{key}"`, each expiring by itself once it is full again, so idle keys cost Redis nothing
/// and the set of keys needs no bound.
///
/// Every method means what it means on [`RedisLimiter`](crate::RedisLimiter), for the key given.
/// With [`OnUnavailable::Local`](crate::OnUnavailable::Local), the local fallback is a
/// `bounded_ratelimit::KeyedLimiter` that remembers at most 10,000 keys.
///
/// # Examples
///
/// ```no_run
/// use bounded_ratelimit::Quota;
/// use bounded_ratelimit_redis::RedisKeyedLimiter;
///
/// # async fn run(conn: redis::aio::ConnectionManager) -> Result<(), Box<dyn std::error::Error>> {
/// let per_tenant = RedisKeyedLimiter::new(conn, "tenant", Quota::per_second(20))?;
/// per_tenant.acquire("acme").await?; // the bucket "tenant:acme", shared by every replica
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisKeyedLimiter {
    prefix: Arc<str>,
    core: Arc<Core>,
}

impl RedisKeyedLimiter {
    /// A keyed limiter whose buckets live at `"{prefix}:{key}"`, with the default timeout and policy.
    ///
    /// # Errors
    ///
    /// [`ConfigError`], as [`RedisLimiter::new`](crate::RedisLimiter::new).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::{ConfigError, RedisKeyedLimiter};
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// assert_eq!(
    ///     RedisKeyedLimiter::new(conn, "", Quota::per_second(5)).unwrap_err(),
    ///     ConfigError::EmptyKey
    /// );
    /// # }
    /// ```
    pub fn new(
        conn: impl Into<Connection>,
        prefix: impl Into<String>,
        quota: Quota,
    ) -> Result<Self, ConfigError> {
        Self::builder(conn, prefix, quota).build()
    }

    /// A [`Builder`] to set the call timeout and the policy while Redis is unavailable.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::{OnUnavailable, RedisKeyedLimiter};
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let limiter = RedisKeyedLimiter::builder(conn, "user", Quota::per_minute(60))
    ///     .on_unavailable(OnUnavailable::Allow)
    ///     .build()
    ///     .unwrap();
    /// # }
    /// ```
    pub fn builder(
        conn: impl Into<Connection>,
        prefix: impl Into<String>,
        quota: Quota,
    ) -> Builder<Self> {
        Builder::new(conn.into(), prefix.into(), quota)
    }

    pub(crate) fn from_parts(prefix: String, core: Arc<Core>) -> Self {
        RedisKeyedLimiter {
            prefix: prefix.into(),
            core,
        }
    }

    /// The Redis key of `key`'s bucket.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let limiter = RedisKeyedLimiter::new(conn, "tenant", Quota::per_second(5)).unwrap();
    /// assert_eq!(limiter.bucket("acme"), "tenant:acme");
    /// # }
    /// ```
    pub fn bucket(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    /// Waits for one unit of `key`'s bucket.
    ///
    /// # Errors
    ///
    /// As [`RedisLimiter::acquire`](crate::RedisLimiter::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisLimiter::acquire`](crate::RedisLimiter::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(limiter: RedisKeyedLimiter) {
    /// limiter.acquire("acme").await.unwrap();
    /// # }
    /// ```
    pub fn acquire<'a>(&'a self, key: &str) -> Acquire<'a> {
        self.acquire_n(key, 1)
    }

    /// Waits for `n` units of `key`'s bucket.
    ///
    /// # Errors
    ///
    /// As [`RedisLimiter::acquire_n`](crate::RedisLimiter::acquire_n).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisLimiter::acquire`](crate::RedisLimiter::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(limiter: RedisKeyedLimiter) {
    /// limiter.acquire_n("acme", 2).await.unwrap();
    /// # }
    /// ```
    pub fn acquire_n<'a>(&'a self, key: &str, n: u32) -> Acquire<'a> {
        let bucket = self.bucket(key);
        Acquire::new(async move { self.core.acquire(&bucket, n, None).await })
    }

    /// Waits for one unit of `key`'s bucket unless `ctx` ends first.
    ///
    /// # Errors
    ///
    /// As [`RedisLimiter::acquire_with`](crate::RedisLimiter::acquire_with).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisLimiter::acquire_with`](crate::RedisLimiter::acquire_with).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_cancel::Context;
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(limiter: RedisKeyedLimiter) {
    /// limiter.acquire_with(&Context::new(), "acme").await.unwrap();
    /// # }
    /// ```
    pub fn acquire_with<'a>(&'a self, ctx: &'a Context, key: &str) -> Acquire<'a> {
        self.acquire_n_with(ctx, key, 1)
    }

    /// Waits for `n` units of `key`'s bucket unless `ctx` ends first.
    ///
    /// # Errors
    ///
    /// As [`RedisLimiter::acquire_n_with`](crate::RedisLimiter::acquire_n_with).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisLimiter::acquire_with`](crate::RedisLimiter::acquire_with).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_cancel::Context;
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(limiter: RedisKeyedLimiter) {
    /// limiter.acquire_n_with(&Context::new(), "acme", 3).await.unwrap();
    /// # }
    /// ```
    pub fn acquire_n_with<'a>(&'a self, ctx: &'a Context, key: &str, n: u32) -> Acquire<'a> {
        let bucket = self.bucket(key);
        Acquire::new(async move { self.core.acquire(&bucket, n, Some(ctx)).await })
    }

    /// Takes one unit of `key`'s bucket if it is free now.
    ///
    /// # Errors
    ///
    /// As [`RedisLimiter::try_acquire`](crate::RedisLimiter::try_acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisLimiter::try_acquire`](crate::RedisLimiter::try_acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(limiter: RedisKeyedLimiter) {
    /// let _ = limiter.try_acquire("acme").await;
    /// # }
    /// ```
    pub fn try_acquire<'a>(&'a self, key: &str) -> TryAcquire<'a> {
        self.try_acquire_n(key, 1)
    }

    /// Takes `n` units of `key`'s bucket if they are free now.
    ///
    /// # Errors
    ///
    /// As [`RedisLimiter::try_acquire_n`](crate::RedisLimiter::try_acquire_n).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisLimiter::try_acquire`](crate::RedisLimiter::try_acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(limiter: RedisKeyedLimiter) {
    /// let _ = limiter.try_acquire_n("acme", 2).await;
    /// # }
    /// ```
    pub fn try_acquire_n<'a>(&'a self, key: &str, n: u32) -> TryAcquire<'a> {
        let bucket = self.bucket(key);
        TryAcquire::new(async move { self.core.try_acquire(&bucket, n).await })
    }

    /// Changes the quota of every key, for this replica's next calls, as
    /// [`RedisLimiter::set_rate`](crate::RedisLimiter::set_rate).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a quota that cannot work; the quota in force is unchanged.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(limiter: RedisKeyedLimiter) {
    /// limiter.set_rate(Quota::per_second(50)).unwrap();
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
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let limiter = RedisKeyedLimiter::new(conn, "t", Quota::per_second(5)).unwrap();
    /// assert_eq!(limiter.quota(), Quota::per_second(5));
    /// # }
    /// ```
    pub fn quota(&self) -> Quota {
        self.core.quota()
    }

    /// A snapshot of this replica's counters, over all keys.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(limiter: RedisKeyedLimiter) {
    /// println!("{:?}", limiter.metrics());
    /// # }
    /// ```
    pub fn metrics(&self) -> RedisMetrics {
        self.core.metrics()
    }
}

impl fmt::Debug for RedisKeyedLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyedLimiter")
            .field("prefix", &self.prefix)
            .field("quota", &self.quota())
            .field("metrics", &self.metrics())
            .finish()
    }
}
