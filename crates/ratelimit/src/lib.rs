//! `Limiter` is Go's `golang.org/x/time/rate.Limiter` for tokio: a GCRA token bucket whose waits are
//! FIFO-fair, wake each waiter once, can be cancelled by drop or by a [`Context`](bounded_cancel::Context),
//! and fail at once when a deadline cannot be met.
//!
//! | Go `x/time/rate` | bounded-ratelimit |
//! | --- | --- |
//! | `rate.NewLimiter(rate.Limit(50), 10)` | [`Limiter::new(Quota::per_second(50).burst(10))?`](Limiter::new) (a rate or burst of 0 is an error) |
//! | `limiter.Wait(ctx)` | [`limiter.acquire_with(&ctx).await?`](Limiter::acquire_with), or [`acquire().await`](Limiter::acquire) |
//! | `limiter.WaitN(ctx, n)` | [`acquire_n_with(&ctx, n)`](Limiter::acquire_n_with): `InsufficientCapacity` when `n` > burst |
//! | `limiter.Allow()` | [`try_acquire()`](Limiter::try_acquire): `Err(RetryAfter)` says how long |
//! | `Wait` with a deadline too close: an error saying "would exceed context deadline" | [`AcquireError::DeadlineTooSoon`] `{ wait, remaining }`, at once |
//! | `limiter.SetLimit(r)` | [`set_rate(quota)`](Limiter::set_rate): queued waiters follow it |
//! | a `map[string]*rate.Limiter` that grows forever | [`KeyedLimiter`] with a bound on remembered keys |
//!
//! The common Go rate-limited `Client` (200 concurrent callers, a downstream that allows 50 requests a
//! second) in this crate's API:
//!
//! ```
//! use bounded_cancel::Context;
//! use bounded_ratelimit::{Limiter, Quota, Throttle};
//! use std::time::Duration;
//!
//! #[derive(Clone, Debug)]
//! struct Http;
//! impl Http {
//!     async fn get(&self, url: &str) -> Result<String, String> { Ok(format!("200 {url}")) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limiter = Limiter::new(Quota::per_second(50).burst(1)).expect("a valid quota");
//! let client = Throttle::new(Http, limiter);
//!
//! let start = tokio::time::Instant::now();
//! let mut callers = tokio::task::JoinSet::new();
//! for i in 0..200 {
//!     let client = client.clone();
//!     callers.spawn(async move {
//!         let request = Context::new().with_timeout(Duration::from_secs(10));
//!         client.call(&request, |http| async move { http.get(&format!("/item/{i}")).await }).await
//!     });
//! }
//! while let Some(reply) = callers.join_next().await {
//!     assert!(reply.unwrap().expect("granted before the deadline").is_ok());
//! }
//! // 200 calls at 50 a second, the first at once: 199 intervals of 20 ms.
//! assert_eq!(start.elapsed(), Duration::from_millis(3980));
//! # }
//! ```
//!
//! # Use this when / use that instead
//!
//! Use a [`Limiter`] when a downstream allows so many calls per unit of time, whatever their
//! concurrency. To bound how many run *at once*, use a semaphore, a `bounded_group::Group` limit or a
//! `bounded_pool::Pool`; the two combine. Use governor directly for a check that never waits and needs
//! no counts, no queue and no paused clock in tests (`try_acquire` costs the same).
//!
//! # Comparison with governor and tower
//!
//! The decisions are governor's GCRA (a proptest checks ours against governor's on random arrivals),
//! with what its async wait lacks: governor's `until_ready` sleeps on its own clock and timer, which
//! tokio's paused clock does not drive; it takes no context or deadline; and every waiter wakes and
//! races for each unit. tower's `RateLimit` counts a fixed window and is not `Clone`.
//!
//! # Fairness
//!
//! Waiters are granted strictly in the order they first polled (a wait answered at once spends a
//! unit of its task's tokio budget, as a tokio `Semaphore`'s does, and a first poll that finds the
//! budget spent yields and counts from the next). One driver task per busy limiter sleeps until the
//! head of the queue conforms, grants it and every following waiter that conforms at that instant,
//! and wakes exactly those; each waiter is woken once. [`Limiter::try_acquire`] never jumps the
//! queue: while anyone waits it returns [`RetryAfter`] behind them. The driver ends when the queue
//! empties and is tracked by `bounded_cancel::live`.
//!
//! # Without the lock
//!
//! While nobody is queued, [`Limiter::try_acquire`] and the first poll of an `acquire` or a
//! `reserve` decide without the limiter's lock: one read of the clock and one compare-and-swap of
//! the GCRA's one number, as governor's `check` does. Anything else (a wait, a rate change, a
//! reservation given back) takes the lock, which closes that way until it is released, so a grant
//! without the lock never passes a queued waiter and never uses a quota that [`Limiter::set_rate`]
//! has replaced: once `set_rate` returns, every caller is held to the new quota. (After a change
//! that leaves the bucket fuller than it was at its emptiest under the old quota, calls take the
//! lock until grants empty it past that point: the price of that promise.) Grants and refusals decided
//! without the lock are counted in [`Limiter::metrics`] like the others, each thread in counters of
//! its own (4 KiB per limiter, allocated at its first such grant; past 32 threads counting at once,
//! the others share one atomic counter), so that counting adds no second atomic instruction.
//!
//! # Cancel safety
//!
//! Every wait can be dropped at any point: a waiter leaves the queue, a unit granted to it but not yet
//! seen is given back, and the waiters behind it move up at once, granted at the instants they would
//! have had if it had never queued. A context that ends does the same.
//!
//! # Clock
//!
//! The driver sleeps with `tokio::time::sleep_until` (one timer, reset for each instant), and the
//! bucket reads one of two clocks, chosen at the limiter's first read of the time and kept:
//!
//! - inside a runtime whose clock runs, the CPU's counter (the TSC, through `quanta`, the clock
//!   governor reads): a few nanoseconds a read, several times less than the system's monotonic clock
//!   behind `tokio::time::Instant`, so `try_acquire` costs what governor's `check` costs (see
//!   [Without the lock](#without-the-lock)). Instants that leave the limiter (a reservation's, a
//!   wait's end) are converted to tokio's clock by their distance from now.
//! - on a paused clock (`#[tokio::test(start_paused = true)]`, `tokio::time::pause()`) and outside
//!   any runtime, `tokio::time::Instant`, so tests on a paused clock run a minute of limiting in
//!   microseconds and `advance` moves the bucket exactly as it moves timers.
//!
//! The choice is made once, so a limiter first used on a paused runtime keeps tokio's clock, and one
//! first used on a running runtime keeps the counter even if a test pauses a runtime later: in tests,
//! make the first call on the paused runtime. Choosing costs one microsecond of spinning (a paused
//! clock does not move while it spins). The counter is calibrated once per process (shared with the
//! pools and groups, `bounded_sync::clock`), on a thread of its own, never on a caller's: `quanta`
//! spins until its estimate settles, within a millisecond on an idle core but up to its cap of 200
//! ms on a busy one, and a runtime's worker must not spin that long. Until it is done, a limiter
//! that chose the counter reads tokio's clock, and the first read after takes the counter on from
//! where tokio's clock had the time line. The counter's rate is `quanta`'s estimate, measured in well
//! under a millisecond, so once every millisecond of its time a read checks the limiter's time
//! against tokio's clock and sets it back to it: the limiter never runs ahead of tokio's clock (and
//! so past its quota) by more than the estimate's error over one millisecond.
//!
//! tokio's timer has millisecond resolution, so the driver wakes on millisecond ticks: with a bucket
//! shorter than that (a burst below `rate / 1000`) waiters are granted at most one bucket per tick, and
//! units that refill a full bucket while the driver waits for its tick are lost. Above 1,000 units a second, give a burst of
//! at least `rate / 500` (two milliseconds of units).
//!
//! # Why not `sleep(1s / rate)` in a loop
//!
//! A loop that sleeps `1s / rate` between calls spaces *its own* calls; it does not bound the rate
//! seen downstream. Two loops double it, a sleep that overshoots (timers, a busy runtime) is never
//! made up, and a slow call followed by the sleep wastes the slack instead of using the burst. A
//! shared bucket measures what was actually granted, against the clock, for every caller at once.
//!
//! # Cargo features
//!
//! - `tower`: `tower::RateLimitLayer` and `tower::KeyedRateLimitLayer`, fair tower middleware for HTTP
//!   and gRPC requests that waits under each request's context, with a gRPC mode that answers
//!   refusals with `RESOURCE_EXHAUSTED`.
//! - `metrics`: `bounded_ratelimit_granted_total`, `bounded_ratelimit_rejected_total`,
//!   `bounded_ratelimit_waiting` and `bounded_ratelimit_wait_seconds`, labelled `limiter` with
//!   [`Limiter::named`]; a [`KeyedLimiter`] records the two counters over all its keys, with
//!   `bounded_ratelimit_keys` and `bounded_ratelimit_evicted_total`, labelled with
//!   [`KeyedLimiter::named`].
//! - `tracing`: a wait that queues (or, on a [`KeyedLimiter`], sleeps until its instant) is a
//!   `rate limit wait` span under the caller's span, whose end is an event in it (`granted` at
//!   `TRACE`; refused, or given up, at `DEBUG`); both have the target `bounded_ratelimit`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod clock;
mod driver;
mod error;
#[cfg(feature = "metrics")]
mod export;
mod future;
mod gcra;
mod keyed;
mod limiter;
mod metrics;
mod quota;
mod reservation;
mod state;
mod throttle;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use error::{
    AcquireError, InsufficientCapacity, QuotaError, RetryAfter, Throttled, TryAcquireError,
};
pub use future::{Acquire, AcquireN, AcquireOwned, AcquireWith};
pub use keyed::{KeyedAcquire, KeyedAcquireN, KeyedAcquireWith, KeyedLimiter};
pub use limiter::Limiter;
pub use metrics::{KeyedMetrics, Metrics};
pub use quota::Quota;
pub use reservation::{Ready, Reservation};
pub use throttle::{Call, Throttle};
