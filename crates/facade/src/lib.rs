//! `bounded`: the concurrency patterns production Go services rely on, for tokio, with every task owned,
//! every queue bounded, every wait cancellable, and every error and panic delivered.
//!
//! Each pattern is its own crate, re-exported here as a module behind a cargo feature of the same name
//! (the five patterns on by default). [`cancel`] is always there: every other crate builds on it. The
//! fleet-wide limiter on Redis is off by default (feature `redis`, `redis-cluster` for a Redis
//! Cluster, or `full` for everything), since it brings a Redis client.
//!
//! | module | Go | types |
//! | --- | --- | --- |
//! | [`cancel`] | `context`, signal handling | `Context`, `Cause`, `Shutdown`, `live` |
//! | `group` (feature `group`) | `errgroup` | `Group`, `ResultGroup`, `map`, `for_each` |
//! | `pool` (feature `pool`) | the bounded worker pool | `Pool`, `JobHandle`, `PoolReport` |
//! | `pipeline` (feature `pipeline`) | fan-out / fan-in stages | `Pipeline`, `Stage`, `Output`, `StageMetrics` |
//! | `ratelimit` (feature `ratelimit`) | `x/time/rate` | `Limiter`, `KeyedLimiter`, `Throttle`, `Quota` |
//! | `ratelimit_redis` (feature `redis`) | `redis_rate`, redis-cell | `RedisLimiter`, `RedisKeyedLimiter`, `OnUnavailable` |
//!
//! The whole set in one example: a request with a deadline fans out to three rate-limited backends
//! through a group, hands a follow-up job to a pool, and the day's receipts go through a pipeline; a
//! shutdown owns the service's task.
//!
//! ```
//! use bounded::prelude::*;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let mut shutdown = Shutdown::new();
//! let pool = Pool::builder().workers(2).queue(4).build().unwrap();
//! let backends = Limiter::new(Quota::per_second(100).burst(2)).unwrap(); // they allow 100 calls a second
//!
//! let request = shutdown.context().with_timeout(Duration::from_millis(200));
//! let prices = bounded::group::map_with(&request, ["a", "b", "c"], 2, move |ctx, sku| {
//!     let backends = backends.clone();
//!     async move {
//!         backends.acquire_with(&ctx).await.map_err(|e| e.to_string())?;
//!         ctx.run(tokio::time::sleep(Duration::from_millis(20))).await.map_err(|c| c.to_string())?;
//!         Ok::<_, String>(sku.len() * 100)
//!     }
//! })
//! .await
//! .unwrap();
//! let total: usize = prices.iter().sum();
//! let receipt = pool.submit_with(&request, move |_ctx| async move { Ok::<_, String>(total) }).await.unwrap();
//! assert_eq!(receipt.await.unwrap(), 300);
//!
//! let with_tax = Pipeline::new(shutdown.context())
//!     .source(vec![total; 10])
//!     .map(4, |_ctx, cents| async move { Ok::<_, String>(cents * 120 / 100) })
//!     .output()
//!     .try_collect()
//!     .await
//!     .unwrap();
//! assert_eq!(with_tax.iter().sum::<usize>(), 3_600);
//!
//! shutdown.spawn("pool", move |_ctx| async move {
//!     let report = pool.shutdown().await;
//!     if report.is_clean() { Ok(()) } else { Err(report.to_string()) }
//! });
//! shutdown.trigger();
//! assert!(shutdown.wait(Duration::from_secs(1)).await.is_clean());
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub use bounded_cancel as cancel;
#[cfg(feature = "group")]
#[cfg_attr(docsrs, doc(cfg(feature = "group")))]
pub use bounded_group as group;
#[cfg(feature = "pipeline")]
#[cfg_attr(docsrs, doc(cfg(feature = "pipeline")))]
pub use bounded_pipeline as pipeline;
#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
pub use bounded_pool as pool;
#[cfg(feature = "ratelimit")]
#[cfg_attr(docsrs, doc(cfg(feature = "ratelimit")))]
pub use bounded_ratelimit as ratelimit;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use bounded_ratelimit_redis as ratelimit_redis;

/// The types most services use, in one import: `use bounded::prelude::*;`.
pub mod prelude {
    pub use bounded_cancel::{Cause, Context, Shutdown};
    #[cfg(feature = "group")]
    pub use bounded_group::{Group, ResultGroup};
    #[cfg(feature = "pipeline")]
    pub use bounded_pipeline::{Pipeline, PipelineError};
    #[cfg(feature = "pool")]
    pub use bounded_pool::{JobError, Pool};
    #[cfg(feature = "ratelimit")]
    pub use bounded_ratelimit::{Limiter, Quota, Throttle};
}
