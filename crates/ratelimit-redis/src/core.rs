//! What a fleet limiter does with one call: ask Redis for an instant, sleep until it locally, and give
//! the grant back if the caller leaves first. Shared by [`RedisLimiter`](crate::RedisLimiter) (one
//! bucket) and [`RedisKeyedLimiter`](crate::RedisKeyedLimiter) (a bucket per key).
//!
//! # Invariants
//!
//! 1. A reservation the script may have made is always accounted for: the reply is read by the caller,
//!    or, when the caller leaves (drop, context, timeout) while the call is in flight, by a background
//!    task that gives the grant back ([`InFlight`]). A reply read by the caller is held by a [`Hold`]
//!    until the caller returns with it; a `Hold` dropped first gives it back.
//! 2. Background give-backs end by themselves: each waits at most twice the call timeout for Redis.
//!    They run on the runtime the limiter was built on, where its connection was made, so a wait
//!    dropped on another runtime (or on none, or while its runtime shuts down) is still given back.
//!    A give-back that cannot reach Redis or run leaves the grant taken, which under-grants and never
//!    over-grants.
//! 3. Under [`OnUnavailable::Refuse`] nothing is granted that Redis did not grant.

use std::future::Future;
use std::pin::Pin;
#[cfg(feature = "tracing")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bounded_cancel::{Cause, Context, live};
use bounded_ratelimit::{
    InsufficientCapacity, KeyedLimiter, Limiter, Quota, QuotaError, RetryAfter,
};
use redis::RedisResult;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::script::{self, Cost, Grant, Reply};
use crate::{
    AcquireError, ConfigError, Connection, OnUnavailable, RedisMetrics, TryAcquireError,
    Unavailable,
};

/// The wait reported while a [`Quota::blocked`] stands: about 73 years, as the local limiter says.
pub(crate) const BLOCKED_WAIT: Duration = Duration::from_nanos(u64::MAX / 8);

/// Keys a keyed limiter's local fallback remembers.
pub(crate) const LOCAL_FALLBACK_KEYS: usize = 10_000;

/// The fastest quota a fleet limiter takes, in units a second. A bucket in Redis counts whole
/// microseconds and rounds a unit's cost up to them, so that the fleet never exceeds its quota; above
/// this rate the rounding would cut the rate by up to half (900,000 a second would get 500,000), so a
/// faster quota is refused with [`ConfigError::TooFast`] instead.
pub const MAX_RATE: u32 = 500_000;

/// The quota in force, as the scripts need it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub(crate) quota: Quota,
    mode: Mode,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Unlimited,
    Blocked,
    Limited(Cost),
}

impl Params {
    /// Checks a quota by the local limiter's rules, then against the script's microsecond clock.
    pub(crate) fn new(quota: Quota) -> Result<Self, ConfigError> {
        match Limiter::new(quota) {
            Ok(_) => {}
            // Faster than a unit a nanosecond: faster than `MAX_RATE` too, and refused as such.
            Err(QuotaError::TooFast { .. }) => return Err(ConfigError::TooFast { quota }),
            Err(err) => return Err(err.into()),
        }
        let mode = if quota.is_unlimited() {
            Mode::Unlimited
        } else if quota.is_blocked() {
            Mode::Blocked
        } else {
            // Faster than `MAX_RATE` (a unit every 2 µs), rounding a unit's cost up to whole
            // microseconds would cut the rate by up to half: refused, rather than granting far
            // less than asked without a word.
            let (count, per_ns) = (u128::from(quota.count()), quota.period().as_nanos());
            if per_ns * u128::from(MAX_RATE) < count * 1_000_000_000 {
                return Err(ConfigError::TooFast { quota });
            }
            // Rounded up: a unit never costs less in Redis than the quota says, so the fleet never
            // exceeds it (3 a second cost 333,334 µs each; 499,999 a second, 2.000004 µs, cost 3).
            let t_us = per_ns.div_ceil(count * 1_000);
            Mode::Limited(Cost {
                t_us: t_us as u64,
                burst: quota.burst_size(),
            })
        };
        Ok(Params { quota, mode })
    }
}

/// What to do when Redis cannot be asked, with the local limiter built for it.
#[derive(Debug)]
pub(crate) enum Fallback {
    Refuse,
    Allow,
    One(Limiter),
    Keyed(KeyedLimiter<String>),
}

impl Fallback {
    pub(crate) fn new(policy: OnUnavailable, keyed: bool) -> Result<Self, ConfigError> {
        Ok(match policy {
            OnUnavailable::Refuse => Fallback::Refuse,
            OnUnavailable::Allow => Fallback::Allow,
            OnUnavailable::Local(quota) if keyed => Fallback::Keyed(
                KeyedLimiter::new(quota, LOCAL_FALLBACK_KEYS).map_err(ConfigError::LocalQuota)?,
            ),
            OnUnavailable::Local(quota) => {
                Fallback::One(Limiter::new(quota).map_err(ConfigError::LocalQuota)?)
            }
        })
    }

    /// The policy in a word, for the event that says Redis is unavailable.
    #[cfg(feature = "tracing")]
    fn word(&self) -> &'static str {
        match self {
            Fallback::Refuse => "refuse",
            Fallback::Allow => "allow",
            Fallback::One(_) | Fallback::Keyed(_) => "local",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    granted: AtomicU64,
    rejected: AtomicU64,
    waiting: AtomicUsize,
    abandoned: AtomicU64,
    wait_micros: AtomicU64,
    unavailable: AtomicU64,
}

/// One fleet limiter's connection, quota, policy and counters.
#[derive(Debug)]
pub(crate) struct Core {
    conn: Connection,
    timeout: Duration,
    fallback: Fallback,
    params: watch::Sender<Params>,
    counters: Counters,
    /// Where give-backs run: the runtime current when the limiter was built, if any.
    runtime: Option<Handle>,
    /// The key, or a keyed limiter's prefix: the `limiter` label of its metrics and the `limiter`
    /// field of its events.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    name: String,
    /// Whether the last call to Redis failed: an event marks each change, not each call.
    #[cfg(feature = "tracing")]
    down: AtomicBool,
    #[cfg(feature = "metrics")]
    export: crate::export::Export,
}

/// How a call to Redis ended, short of a reply.
enum CallError {
    Cancelled(Cause),
    Unavailable(Unavailable),
}

/// Counts a caller as waiting while it lives.
struct Waiting<'a>(&'a Core);

impl<'a> Waiting<'a> {
    fn new(core: &'a Core) -> Self {
        core.counters.waiting.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        core.export.waiting.add(1);
        Waiting(core)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.counters.waiting.fetch_sub(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.0.export.waiting.add(-1);
    }
}

impl Core {
    pub(crate) fn new(
        conn: Connection,
        params: Params,
        timeout: Duration,
        fallback: Fallback,
        name: String,
    ) -> Self {
        Core {
            conn,
            timeout,
            fallback,
            params: watch::Sender::new(params),
            counters: Counters::default(),
            runtime: Handle::try_current().ok(),
            #[cfg(feature = "metrics")]
            export: crate::export::Export::new(&name),
            name,
            #[cfg(feature = "tracing")]
            down: AtomicBool::new(false),
        }
    }

    pub(crate) fn quota(&self) -> Quota {
        self.params.borrow().quota
    }

    pub(crate) fn set_rate(&self, quota: Quota) -> Result<(), ConfigError> {
        let params = Params::new(quota)?;
        self.params.send_replace(params);
        Ok(())
    }

    pub(crate) fn metrics(&self) -> RedisMetrics {
        let c = &self.counters;
        RedisMetrics {
            granted: c.granted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            waiting: c.waiting.load(Ordering::Relaxed),
            abandoned: c.abandoned.load(Ordering::Relaxed),
            total_wait: Duration::from_micros(c.wait_micros.load(Ordering::Relaxed)),
            unavailable: c.unavailable.load(Ordering::Relaxed),
        }
    }

    fn count(&self, counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    fn reject<E>(&self, err: E) -> Result<(), E> {
        self.count(&self.counters.rejected, 1);
        #[cfg(feature = "metrics")]
        self.export.rejected.increment(1);
        Err(err)
    }

    /// A call found Redis unavailable: counted, and (with `tracing`) a warning when the previous call
    /// had found it up.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn unavailable(&self, err: &Unavailable) {
        self.count(&self.counters.unavailable, 1);
        #[cfg(feature = "metrics")]
        self.export.unavailable.increment(1);
        #[cfg(feature = "tracing")]
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "bounded_ratelimit_redis",
                limiter = %self.name,
                error = %err.cause(),
                policy = self.fallback.word(),
                "Redis is unavailable: the fleet limiter's policy decides each call until Redis answers"
            );
        }
    }

    /// A call had Redis's answer: (with `tracing`) an event when the previous call had found it down.
    fn answered(&self) {
        #[cfg(feature = "tracing")]
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(
                target: "bounded_ratelimit_redis",
                limiter = %self.name,
                "Redis answers again: the shared bucket decides each call"
            );
        }
    }

    fn abandon(&self, cause: Cause) -> Result<(), AcquireError> {
        self.count(&self.counters.abandoned, 1);
        Err(AcquireError::Cancelled(cause))
    }

    fn grant(&self, n: u32, waited: Duration) {
        self.count(&self.counters.granted, u64::from(n));
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.count(&self.counters.wait_micros, micros);
        #[cfg(feature = "metrics")]
        {
            self.export.granted.increment(u64::from(n));
            if !waited.is_zero() {
                self.export.wait.record(waited.as_secs_f64());
            }
        }
    }

    /// Waits for `n` units of the bucket `key` unless `ctx` ends first (`None`: a wait with no context,
    /// which needs none made for it).
    pub(crate) async fn acquire(
        &self,
        key: &str,
        n: u32,
        ctx: Option<&Context>,
    ) -> Result<(), AcquireError> {
        if let Some(cause) = ctx.and_then(Context::cause) {
            return self.abandon(cause);
        }
        if n == 0 {
            return Ok(());
        }
        let _waiting = Waiting::new(self);
        let mut params = self.params.subscribe();
        loop {
            let cost = match params.borrow_and_update().mode {
                Mode::Unlimited => {
                    self.grant(n, Duration::ZERO);
                    return Ok(());
                }
                Mode::Blocked => None,
                Mode::Limited(cost) => Some(cost),
            };
            let Some(cost) = cost else {
                // Blocked: a deadline cannot be met; without one, wait for the block to be lifted.
                if let Some(remaining) = ctx.and_then(Context::remaining) {
                    return self.reject(AcquireError::DeadlineTooSoon {
                        wait: BLOCKED_WAIT,
                        remaining,
                    });
                }
                tokio::select! {
                    _ = params.changed() => continue,
                    cause = ended(ctx) => return self.abandon(cause),
                }
            };
            if n > cost.burst {
                return self.reject(AcquireError::InsufficientCapacity(InsufficientCapacity {
                    requested: n,
                    burst: cost.burst,
                }));
            }
            return self.reserve_and_wait(key, cost, n, ctx).await;
        }
    }

    async fn reserve_and_wait(
        &self,
        key: &str,
        cost: Cost,
        n: u32,
        ctx: Option<&Context>,
    ) -> Result<(), AcquireError> {
        let remaining = ctx.and_then(Context::remaining);
        // The script refuses a wait longer than `max_wait`; a wait that ends at the deadline itself is
        // too late, hence one microsecond less.
        let max_wait = remaining.map(|r| r.saturating_sub(Duration::from_micros(1)));
        let reply = match self.call(key, cost, n, max_wait, ctx).await {
            Ok(reply) => {
                self.answered();
                reply
            }
            Err(CallError::Cancelled(cause)) => return self.abandon(cause),
            Err(CallError::Unavailable(err)) => {
                return self.acquire_unavailable(key, n, ctx, err).await;
            }
        };
        if !reply.granted {
            return self.reject(AcquireError::DeadlineTooSoon {
                wait: reply.wait,
                remaining: remaining.unwrap_or(Duration::MAX),
            });
        }
        let hold = Hold::new(self, key, cost, n, reply);
        if !reply.wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(reply.wait) => {}
                // Dropping `hold` gives the grant back.
                cause = ended(ctx) => return self.abandon(cause),
            }
        }
        hold.keep();
        self.grant(n, reply.wait);
        Ok(())
    }

    /// Takes `n` units of the bucket `key` if they are free now, behind every reservation made.
    pub(crate) async fn try_acquire(&self, key: &str, n: u32) -> Result<(), TryAcquireError> {
        if n == 0 {
            return Ok(());
        }
        let mode = self.params.borrow().mode;
        let cost = match mode {
            Mode::Unlimited => {
                self.grant(n, Duration::ZERO);
                return Ok(());
            }
            Mode::Blocked => {
                return self.reject(TryAcquireError::RetryAfter(RetryAfter::new(BLOCKED_WAIT)));
            }
            Mode::Limited(cost) => cost,
        };
        if n > cost.burst {
            return self.reject(TryAcquireError::InsufficientCapacity(
                InsufficientCapacity {
                    requested: n,
                    burst: cost.burst,
                },
            ));
        }
        let reply = self.call(key, cost, n, Some(Duration::ZERO), None).await;
        if reply.is_ok() {
            self.answered();
        }
        match reply {
            Ok(reply) if reply.granted => {
                self.grant(n, Duration::ZERO);
                Ok(())
            }
            Ok(reply) => self.reject(TryAcquireError::RetryAfter(RetryAfter::new(reply.wait))),
            Err(CallError::Unavailable(err)) => self.try_unavailable(key, n, err),
            Err(CallError::Cancelled(_)) => {
                unreachable!("a call without a context is never cancelled")
            }
        }
    }

    /// Runs `RESERVE` within the call timeout, unless `ctx` ends first.
    async fn call(
        &self,
        key: &str,
        cost: Cost,
        n: u32,
        max_wait: Option<Duration>,
        ctx: Option<&Context>,
    ) -> Result<Reply, CallError> {
        let mut flight = InFlight {
            fut: Some(Box::pin(script::reserve(
                self.conn.clone(),
                key.to_owned(),
                cost,
                n,
                max_wait,
            ))),
            conn: self.conn.clone(),
            grant: Grant {
                key: key.to_owned(),
                tat: 0,
                n,
                t_us: cost.t_us,
            },
            limit: self.give_back_limit(),
            runtime: self.runtime.clone(),
        };
        enum Ended {
            Replied(RedisResult<Reply>),
            TimedOut,
            Cancelled(Cause),
        }
        let ended = {
            let fut = flight.fut.as_mut().expect("armed above");
            tokio::select! {
                cause = ended(ctx) => Ended::Cancelled(cause),
                reply = tokio::time::timeout(self.timeout, fut) => match reply {
                    Ok(reply) => Ended::Replied(reply),
                    Err(_) => Ended::TimedOut,
                },
            }
        };
        // A call still in flight is finished in the background, which gives back what it granted.
        match ended {
            Ended::Replied(reply) => {
                flight.fut = None;
                reply.map_err(|err| CallError::Unavailable(Unavailable::redis(err)))
            }
            Ended::TimedOut => Err(CallError::Unavailable(Unavailable::timed_out(self.timeout))),
            Ended::Cancelled(cause) => Err(CallError::Cancelled(cause)),
        }
    }

    fn give_back_limit(&self) -> Duration {
        self.timeout.saturating_mul(2)
    }

    async fn acquire_unavailable(
        &self,
        key: &str,
        n: u32,
        ctx: Option<&Context>,
        err: Unavailable,
    ) -> Result<(), AcquireError> {
        self.unavailable(&err);
        let start = tokio::time::Instant::now();
        let local = match &self.fallback {
            Fallback::Refuse => return self.reject(AcquireError::Unavailable(err)),
            Fallback::Allow => Ok(()),
            Fallback::One(limiter) => match ctx {
                Some(ctx) => limiter.acquire_n_with(ctx, n).await,
                None => limiter.acquire_n(n).await.map_err(Into::into),
            },
            Fallback::Keyed(limiter) => {
                let key = key.to_owned();
                match ctx {
                    Some(ctx) => limiter.acquire_n_with(ctx, &key, n).await,
                    None => limiter.acquire_n(&key, n).await.map_err(Into::into),
                }
            }
        };
        match local {
            Ok(()) => {
                self.grant(n, start.elapsed());
                Ok(())
            }
            Err(err) if err.cause().is_some() => {
                self.count(&self.counters.abandoned, 1);
                Err(err.into())
            }
            Err(err) => self.reject(err.into()),
        }
    }

    fn try_unavailable(&self, key: &str, n: u32, err: Unavailable) -> Result<(), TryAcquireError> {
        self.unavailable(&err);
        let local = match &self.fallback {
            Fallback::Refuse => return self.reject(TryAcquireError::Unavailable(err)),
            Fallback::Allow => Ok(()),
            Fallback::One(limiter) => limiter.try_acquire_n(n),
            Fallback::Keyed(limiter) => limiter.try_acquire_n(&key.to_owned(), n),
        };
        match local {
            Ok(()) => {
                self.grant(n, Duration::ZERO);
                Ok(())
            }
            Err(err) => self.reject(err.into()),
        }
    }
}

/// Ends when `ctx` does; never without one.
async fn ended(ctx: Option<&Context>) -> Cause {
    match ctx {
        Some(ctx) => ctx.cancelled().await,
        None => std::future::pending().await,
    }
}

type ReserveFuture = Pin<Box<dyn Future<Output = RedisResult<Reply>> + Send>>;

/// Runs a give-back on the limiter's runtime, else on the current one; with neither, the grant stays
/// taken (invariant 2).
fn give_back_on<F>(runtime: &Option<Handle>, give_back: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = match runtime {
        Some(runtime) => runtime.clone(),
        None => match Handle::try_current() {
            Ok(runtime) => runtime,
            Err(_) => return,
        },
    };
    // Entered, so that the task is counted among the live tasks of the runtime it runs on.
    let _entered = runtime.enter();
    runtime.spawn(live::tracked("fleet limiter give-back", give_back));
}

/// A `RESERVE` call whose reply nobody may have read yet (invariant 1).
struct InFlight {
    fut: Option<ReserveFuture>,
    conn: Connection,
    grant: Grant,
    limit: Duration,
    runtime: Option<Handle>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(fut) = self.fut.take() else { return };
        let (conn, mut grant, limit) = (self.conn.clone(), self.grant.clone(), self.limit);
        give_back_on(&self.runtime, async move {
            if let Ok(Ok(reply)) = tokio::time::timeout(limit, fut).await
                && reply.granted
            {
                grant.tat = reply.tat;
                let _ = tokio::time::timeout(limit, script::give_back(conn, &grant)).await;
            }
        });
    }
}

/// A grant read by its caller and not yet used: dropped, it is given back (invariant 1).
struct Hold {
    armed: bool,
    conn: Connection,
    grant: Grant,
    limit: Duration,
    runtime: Option<Handle>,
}

impl Hold {
    fn new(core: &Core, key: &str, cost: Cost, n: u32, reply: Reply) -> Self {
        Hold {
            armed: true,
            conn: core.conn.clone(),
            grant: Grant {
                key: key.to_owned(),
                tat: reply.tat,
                n,
                t_us: cost.t_us,
            },
            limit: core.give_back_limit(),
            runtime: core.runtime.clone(),
        }
    }

    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (conn, grant, limit) = (self.conn.clone(), self.grant.clone(), self.limit);
        give_back_on(&self.runtime, async move {
            let _ = tokio::time::timeout(limit, script::give_back(conn, &grant)).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bounded_ratelimit::Quota;

    use super::{Cost, MAX_RATE, Mode, Params};
    use crate::ConfigError;

    fn cost(quota: Quota) -> Result<Cost, ConfigError> {
        match Params::new(quota)?.mode {
            Mode::Limited(cost) => Ok(cost),
            _ => panic!("{quota} is limited"),
        }
    }

    #[test]
    fn a_units_cost_is_rounded_up_to_whole_microseconds_and_too_fast_quotas_are_refused() {
        let t_us = |quota| cost(quota).map(|c| c.t_us);
        assert_eq!(t_us(Quota::per_second(200_000)), Ok(5), "exact");
        assert_eq!(t_us(Quota::per_second(400_000)), Ok(3), "2.5 µs rounded up");
        assert_eq!(t_us(Quota::per_second(7)), Ok(142_858), "142,857.14 µs");
        assert_eq!(t_us(Quota::per_second(MAX_RATE)), Ok(2));
        // 2.000004 µs: 2 would grant 500,000 a second, over the quota.
        assert_eq!(t_us(Quota::per_second(MAX_RATE - 1)), Ok(3));
        assert_eq!(t_us(Quota::new(3, Duration::from_nanos(6_000))), Ok(2));
        for quota in [
            Quota::per_second(MAX_RATE + 1),
            Quota::per_second(1_000_000),
            Quota::new(3, Duration::from_nanos(5_999)),
        ] {
            assert_eq!(t_us(quota), Err(ConfigError::TooFast { quota }), "{quota}");
        }
        assert_eq!(cost(Quota::per_second(50).burst(5)).map(|c| c.burst), Ok(5));
    }
}
