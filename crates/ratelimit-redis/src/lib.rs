//! `RedisLimiter` is Go's `redis_rate` (GCRA in Redis) with the contract of `bounded_ratelimit::Limiter`:
//! one rate limit shared by every replica of a service, fair, cancellable and deadline-aware.
//!
//! A service on twelve replicas that promised a partner 50 requests a second cannot keep the promise
//! with a per-process limiter: each replica lets 50 through. Every replica builds the same
//! `RedisLimiter` instead, over one key in one Redis:
//!
//! ```no_run
//! use bounded_cancel::Context;
//! use bounded_ratelimit::Quota;
//! use bounded_ratelimit_redis::{OnUnavailable, RedisLimiter};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = redis::Client::open("redis://127.0.0.1/")?.get_connection_manager().await?;
//! let partner = RedisLimiter::builder(conn, "partner-api", Quota::per_second(50).burst(5))
//!     // While Redis is down, each of the 12 replicas allows itself a twelfth of the quota.
//!     .on_unavailable(OnUnavailable::share_of(Quota::per_second(50).burst(5), 12)?)
//!     .build()?;
//!
//! let request = Context::new().with_timeout(Duration::from_millis(500));
//! match partner.acquire_with(&request).await {
//!     Ok(()) => { /* call the partner */ }
//!     Err(err) if err.is_deadline() => { /* answer 429 now: the grant would come too late */ }
//!     Err(err) => return Err(err.into()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! | Go | bounded-ratelimit-redis |
//! | --- | --- |
//! | `redis_rate.NewLimiter(rdb)`, `limiter.Allow(ctx, "partner", redis_rate.PerSecond(50))` | [`RedisLimiter::new(conn, "partner", Quota::per_second(50))`](RedisLimiter::new), [`try_acquire().await`](RedisLimiter::try_acquire) |
//! | `res.RetryAfter`, then sleep and ask again | [`acquire().await`](RedisLimiter::acquire): one reservation, one sleep, no retry |
//! | `AllowN(ctx, key, limit, n)` | [`try_acquire_n(n)`](RedisLimiter::try_acquire_n), [`acquire_n(n)`](RedisLimiter::acquire_n) |
//! | a key per tenant: `Allow(ctx, "tenant:"+id, limit)` | [`RedisKeyedLimiter::acquire(id)`](RedisKeyedLimiter::acquire) |
//!
//! # How a grant is made
//!
//! One Lua script per call computes GCRA on Redis's own clock (`TIME`, so the replicas' clocks do not
//! matter) and *reserves* the caller's instant: the bucket moves forward by the units asked for, and
//! the script answers with how long until the caller's turn. The caller sleeps that long, locally, once.
//! Grants therefore follow the order in which Redis ran the scripts, across every replica (FIFO), and
//! nobody polls or retries: redis-cell's `CL.THROTTLE` and hand-written "check, sleep, check again" loops
//! make refused callers herd back together and lose their order, and cannot tell whether a deadline can
//! be met. Here:
//!
//! - **Deadline.** `acquire_with(&ctx)` passes the time left before `ctx`'s deadline to the script, which
//!   refuses a grant that would come at or after it ([`AcquireError::DeadlineTooSoon`]) and takes nothing.
//! - **Cancellation.** A wait that is dropped, or whose context ends, before its instant gives its
//!   reservation back, but only when no later reservation was computed from it (the bucket still shows
//!   the instant this grant produced); otherwise it stays taken. That is the never-over-grant rule of the
//!   local `Limiter`: giving back units that a later caller's instant already assumed were spent would let
//!   two callers share an instant. A call dropped while Redis is still answering is finished in the
//!   background (a task of at most twice the call timeout), which gives back what it granted.
//!   Give-backs run on the runtime the limiter was built on, so a wait dropped outside any runtime, or
//!   on another runtime as it shuts down, is given back too.
//! - **Clock.** The bucket counts microseconds; a quota's interval is rounded up to a whole microsecond,
//!   so the fleet never exceeds the quota, and quotas faster than 500,000 units a second are refused.
//!   Waits are slept on tokio's clock after the reply arrives, so a grant is used up to one network
//!   delay after its instant, never before.
//! - **Keys.** A bucket expires in Redis when it is full again; idle limits cost nothing.
//! - **Redis Cluster.** With the `cluster` feature, a limiter also takes a cluster connection (see
//!   [`Connection`]). A bucket is one key and each script touches only that key, so every call goes
//!   to the one node holding its bucket, and a keyed limiter's buckets spread over the nodes.
//!
//! # When Redis is unavailable
//!
//! Every call to Redis has a timeout ([`Builder::timeout`], 200 ms by default) and ends early when the
//! caller's context does; the [`OnUnavailable`] policy then decides: refuse (the default), allow, or a
//! local limiter at a share of the quota. The connection (redis-rs's `ConnectionManager`, or its
//! `ClusterConnection`) reconnects by itself, and the first call after Redis is back uses the shared
//! bucket again.
//!
//! # Use this when / use that instead
//!
//! Use a `RedisLimiter` when the limit belongs to the fleet: a partner's quota, a paid API, a per-tenant
//! limit that must hold however many replicas run. Each grant costs a round trip to Redis: about 110 µs
//! through a local Unix socket on a 2-core machine, where a bare `PING` took 80 µs (the
//! `ratelimit_redis` bench in the workspace's `benches`). For a limit per process, a local
//! `bounded_ratelimit::Limiter` costs nanoseconds and needs no Redis.
//!
//! # Cargo features
//!
//! - `cluster`: buckets on a Redis Cluster, through redis-rs's async `ClusterConnection`.
//! - `metrics`: `bounded_ratelimit_granted_total`, `bounded_ratelimit_rejected_total`,
//!   `bounded_ratelimit_unavailable_total`, `bounded_ratelimit_waiting` and
//!   `bounded_ratelimit_wait_seconds` on the `metrics` facade, labelled `limiter` with the key (a keyed
//!   limiter's prefix); this process's calls, as [`RedisMetrics`] counts them.
//! - `tower`: [`tower::RedisRateLimitLayer`] and [`tower::RedisKeyedRateLimitLayer`], the fleet limit
//!   in an HTTP or gRPC service's `ServiceBuilder`.
//! - `tracing`: a `WARN` event when Redis becomes unavailable (the key, the cause, the policy now
//!   deciding) and an `INFO` event when it answers again: one for each change, not one a call. Both
//!   have the target `bounded_ratelimit_redis`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod builder;
mod conn;
mod core;
mod error;
#[cfg(feature = "metrics")]
mod export;
mod future;
mod keyed;
mod limiter;
mod metrics;
mod policy;
mod script;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use crate::core::MAX_RATE;
pub use builder::{Builder, DEFAULT_TIMEOUT};
pub use conn::Connection;
pub use error::{AcquireError, ConfigError, TryAcquireError, Unavailable};
pub use future::{Acquire, TryAcquire};
pub use keyed::RedisKeyedLimiter;
pub use limiter::RedisLimiter;
pub use metrics::RedisMetrics;
pub use policy::OnUnavailable;
