use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bounded_ratelimit::Quota;

use crate::core::{Core, Fallback, Params};
use crate::{ConfigError, Connection, OnUnavailable, RedisKeyedLimiter, RedisLimiter};

/// How long a call waits for Redis unless [`Builder::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// Settings of a fleet limiter, from [`RedisLimiter::builder`] or [`RedisKeyedLimiter::builder`].
///
/// # Examples
///
/// ```no_run
/// use bounded_ratelimit::Quota;
/// use bounded_ratelimit_redis::{OnUnavailable, RedisLimiter};
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = redis::Client::open("redis://127.0.0.1/")?.get_connection_manager().await?;
/// let partner = RedisLimiter::builder(conn, "partner-api", Quota::per_second(50))
///     .timeout(Duration::from_millis(50))
///     .on_unavailable(OnUnavailable::share_of(Quota::per_second(50), 12)?)
///     .build()?;
/// partner.acquire().await?;
/// # Ok(())
/// # }
/// ```
pub struct Builder<L> {
    conn: Connection,
    key: String,
    quota: Quota,
    timeout: Duration,
    policy: OnUnavailable,
    kind: PhantomData<fn() -> L>,
}

impl<L> Builder<L> {
    pub(crate) fn new(conn: Connection, key: String, quota: Quota) -> Self {
        Builder {
            conn,
            key,
            quota,
            timeout: DEFAULT_TIMEOUT,
            policy: OnUnavailable::default(),
            kind: PhantomData,
        }
    }

    /// The longest a call waits for each answer from Redis (default [`DEFAULT_TIMEOUT`], 200 ms).
    /// A call that hears nothing by then is decided by the [`OnUnavailable`] policy; a caller's
    /// context that ends sooner ends the call sooner.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::RedisLimiter;
    /// # use std::time::Duration;
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let limiter = RedisLimiter::builder(conn, "search", Quota::per_second(10))
    ///     .timeout(Duration::from_millis(20))
    ///     .build()
    ///     .unwrap();
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What the limiter does while Redis cannot be asked (default: refuse).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::{OnUnavailable, RedisLimiter};
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let limiter = RedisLimiter::builder(conn, "thumbnails", Quota::per_second(10))
    ///     .on_unavailable(OnUnavailable::Allow) // best effort: never block on Redis
    ///     .build()
    ///     .unwrap();
    /// # }
    /// ```
    pub fn on_unavailable(mut self, policy: OnUnavailable) -> Self {
        self.policy = policy;
        self
    }

    fn core(self, keyed: bool) -> Result<(String, Core), ConfigError> {
        if self.key.is_empty() {
            return Err(ConfigError::EmptyKey);
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        let params = Params::new(self.quota)?;
        let fallback = Fallback::new(self.policy, keyed)?;
        let core = Core::new(self.conn, params, self.timeout, fallback, self.key.clone());
        Ok((self.key, core))
    }
}

impl Builder<RedisLimiter> {
    /// The limiter. Build it on the runtime its connection was made on: the grants of waits dropped
    /// before their instant are given back by tasks on this runtime.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a quota (or local fallback quota) that cannot work, an empty key, or a zero
    /// timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::{ConfigError, RedisLimiter};
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let err = RedisLimiter::builder(conn, "", Quota::per_second(10)).build().unwrap_err();
    /// assert_eq!(err, ConfigError::EmptyKey);
    /// # }
    /// ```
    pub fn build(self) -> Result<RedisLimiter, ConfigError> {
        let (key, core) = self.core(false)?;
        Ok(RedisLimiter::from_parts(key, Arc::new(core)))
    }
}

impl Builder<RedisKeyedLimiter> {
    /// The keyed limiter. As for a [`RedisLimiter`], build it on the runtime its connection was made on.
    ///
    /// # Errors
    ///
    /// As for a [`RedisLimiter`]: a [`ConfigError`] for a quota, key or timeout that cannot work.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use bounded_ratelimit::Quota;
    /// # use bounded_ratelimit_redis::RedisKeyedLimiter;
    /// # async fn run(conn: redis::aio::ConnectionManager) {
    /// let per_tenant = RedisKeyedLimiter::builder(conn, "tenant", Quota::per_second(5)).build().unwrap();
    /// # }
    /// ```
    pub fn build(self) -> Result<RedisKeyedLimiter, ConfigError> {
        let (prefix, core) = self.core(true)?;
        Ok(RedisKeyedLimiter::from_parts(prefix, Arc::new(core)))
    }
}

impl<L> fmt::Debug for Builder<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("key", &self.key)
            .field("quota", &self.quota)
            .field("timeout", &self.timeout)
            .field("on_unavailable", &self.policy)
            .finish_non_exhaustive()
    }
}
