//! `Pool` is the common Go bounded worker `Pool` (a Go `chan Job` drained by N goroutines) for tokio, with
//! its flaws fixed: queued jobs are never dropped without a trace, and no error or panic is swallowed.
//!
//! | the Go worker pool | bounded-pool |
//! | --- | --- |
//! | `NewPool(size)` + `Start(ctx)` | `Pool::builder().workers(size).queue(size * 2).context(&ctx).build()?` |
//! | `Submit(ctx, job)` | [`pool.submit_with(&ctx, job).await?`](Pool::submit_with), returning a [`JobHandle`] |
//! | (none) | [`pool.try_submit(job)`](Pool::try_submit): `Full(job)` / `Closed(job)`, never waits |
//! | `Submit` and forget | [`pool.submit_detached(job).await?`](Pool::submit_detached): no handle and no result channel; failures reach the error hook |
//! | `_ = job(ctx)`: errors swallowed | the handle gets `Ok`, `Failed`, `Panicked`, `Cancelled`; unawaited failures reach the error hook |
//! | workers return on `ctx.Done()`, dropping queued jobs | cancelling the pool's context resolves every queued job as `Cancelled` and counts it |
//! | `Shutdown()`: close + `wg.Wait()` | [`shutdown`](Pool::shutdown), [`shutdown_timeout`](Pool::shutdown_timeout) (with a report) |
//!
//! The common Go pool in this crate's API:
//!
//! ```
//! use bounded_cancel::Context;
//! use bounded_pool::Pool;
//! use std::time::Duration;
//!
//! # async fn send_email(_ctx: Context, to: String) -> Result<(), String> { let _ = to; Ok(()) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Context::new();
//! let pool = Pool::builder().workers(8).queue(16).context(&app).build().expect("8 workers, queue 16");
//!
//! // A request with a deadline: fail fast if the pool stays saturated past it.
//! let request = app.with_timeout(Duration::from_millis(200));
//! let to = "ops@example.com".to_owned();
//! match pool.submit_with(&request, move |ctx| send_email(ctx, to)).await {
//!     Ok(handle) => handle.detach(), // a failure now goes to the error hook
//!     Err(refused) => eprintln!("{refused}"),
//! }
//!
//! let report = pool.shutdown_timeout(Duration::from_secs(5)).await;
//! assert_eq!(report.submitted, report.completed + report.failed + report.panicked
//!     + report.cancelled + report.never_started);
//! # }
//! ```
//!
//! # Lifecycle
//!
//! ```text
//!            submit / try_submit                      worker takes it
//!  caller ─────────────────────────▶ [ queue: ≤ cap ] ─────────────────▶ [ running: ≤ workers ]
//!    │  waits while the queue is full       │                                  │
//!    │  (drop the future, or end the         │                                  ├─▶ completed / failed / panicked
//!    │   caller's context: job handed back)  │                                  │   (handle, or error hook)
//!    ▼                                       │                                  │
//!  close()      intake ends ─────────────────┼── queued jobs still run ─────────┤
//!  shutdown()   close, then wait for all ────┘                                  │
//!  shutdown_timeout(grace): close, drain for grace, then:                        │
//!               queued ─▶ never_started      running: context cancelled, then ─▶ cancelled (aborted)
//!  abort() / drop / pool context cancelled: all of the above at once, no drain
//! ```
//!
//! Every accepted job ends in exactly one of completed, failed, panicked, cancelled, never started: see
//! [`PoolReport`] and [`Metrics`].
//!
//! # Use this when / use that instead
//!
//! Use a `Pool` for a long-lived stream of independent jobs with a fixed amount of parallelism (sending
//! mail, webhooks, thumbnailing) where callers should feel backpressure. For a batch of tasks that succeed
//! or fail together, use `bounded-group`; for stages with different parallelism, `bounded-pipeline`.
//!
//! # Comparison to `mpsc` + `Mutex<Receiver>`
//!
//! The usual hand-rolled pool shares one tokio `mpsc::Receiver` behind a `Mutex` among N spawned tasks.
//! A `Pool` adds what that code usually lacks: a submit that hands the job back when the caller gives up,
//! results and panics per job, a drain with a deadline and a report, resizing, and metrics. Its workers
//! take jobs from one queue whose lock is held for a push or a pop, never across an await. A run of
//! submissions wakes one idle worker; it wakes another for the jobs left behind it when its job first
//! waits, so jobs that finish at once run back to back on one worker with no hand-over between
//! threads, and jobs that wait spread over every worker. A worker whose jobs finish at once (on a
//! multi-thread runtime, also within 10 µs) takes up to 16 queued jobs in one lock and runs them one
//! after another (a *run*): on one thread nothing else could run meanwhile, so no job starts later for
//! it. The first job of a run that waits gives the rest back to the queue, in order, for another
//! worker; on a multi-thread runtime so does the first that holds its thread for 10 µs or more, as it
//! ends. The run's places are freed when the worker comes back to the queue, and a job of the run
//! that submits to its own pool finds them free. See `docs/benchmarks.md` for the measured cost.
//!
//! A job is polled on its worker like any tokio task: one that runs long without awaiting holds its
//! worker and its runtime thread, and the jobs queued behind it wait for that worker unless a new
//! submission wakes another. Put blocking or CPU-heavy work in
//! [`tokio::task::spawn_blocking`] inside the job.
//!
//! On a multi-thread runtime, while the pool is saturated (its queue is full and submitters wait for
//! room), workers whose jobs wait share one tokio task, which polls each of them through a waker of
//! its own: jobs that await I/O then run back to back on one thread instead of being handed between
//! threads at every wake-up. A worker moves into that task when its job first waits, if the take
//! that gave it the job freed room a submitter was waiting for; it leaves for a task of its own when
//! it has nothing to do (so a new submission always finds a worker that can start at once) and when
//! it hands jobs on to another thread. A pool with room to spare keeps each worker on a task of its
//! own, so jobs submitted one or a few at a time pay nothing for the move. The price: a job that
//! computes for long after it first waited holds back the waiting jobs that share its task until it
//! awaits again, and `tokio::task::id()` inside a job names whichever task polls its worker.
//!
//! # Cargo features
//!
//! - `metrics`: the pool's counters, gauges and histograms on the `metrics` facade, labelled `pool`
//!   with the builder's `name`: `bounded_pool_submitted_total`, `bounded_pool_rejected_total`,
//!   `bounded_pool_jobs_total{outcome}`, `bounded_pool_queue_depth`, `bounded_pool_busy_workers`,
//!   `bounded_pool_queue_wait_seconds`, `bounded_pool_run_seconds`. The gauges move as each job
//!   moves, outside the pool's locks, so for an instant the queue's depth can read one job over
//!   its bound per worker; [`Pool::metrics`] never does.
//! - `tracing`: each job runs in a `pool job` span whose parent is the span current at submission, on
//!   whichever worker runs it; failures, panics and aborts are events. Both have the target
//!   `bounded_pool`, which a filter such as `RUST_LOG=bounded_pool=debug` selects.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod accounting;
mod builder;
mod error;
#[cfg(feature = "metrics")]
mod export;
mod failure;
mod home;
mod host;
mod inner;
mod intake;
mod job;
mod job_handle;
mod metrics;
mod pool;
mod report;
mod submit;
mod worker;

pub use builder::PoolBuilder;
pub use error::{BuildError, ResizeError, SubmitError, TrySubmitError};
pub use failure::JobFailure;
pub use job_handle::{JobError, JobHandle};
pub use metrics::Metrics;
pub use pool::{CANCEL_WINDOW, MAX_QUEUE, MAX_WORKERS, Pool};
pub use report::PoolReport;
