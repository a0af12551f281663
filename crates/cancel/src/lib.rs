//! Go's `context` for tokio: cancellation with a cause, deadlines, graceful shutdown, and live-task accounting.
//!
//! [`Context`] is `context.Context`: a tree of cancellation scopes, each ending with a [`Cause`]
//! (`Cancelled`, `DeadlineExceeded`, or the error passed to `cancel_with`), with deadlines that every
//! descendant sees. [`Shutdown`] is the graceful-shutdown half that Go services write by hand around
//! `signal.NotifyContext` and a `WaitGroup`: named tasks, a trigger, a bounded drain and a report.
//! [`live`] lets tests assert that no task spawned by `bounded` outlived its owner.
//!
//! ```
//! use bounded_cancel::{Cause, Context};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let server = Context::new();
//! let request = server.with_timeout(Duration::from_millis(200));
//!
//! let reply = request.run(async {
//!     tokio::time::sleep(Duration::from_millis(50)).await;
//!     "pong"
//! });
//! assert_eq!(reply.await.unwrap(), "pong");
//!
//! server.cancel();
//! assert!(matches!(request.cause(), Some(Cause::Cancelled)));
//! # }
//! ```
//!
//! # Use this when / use that instead
//!
//! Use `Context` when work needs to know *why* it was stopped, or must honour a deadline set far up the
//! call chain: every pattern crate of `bounded` takes one. If all you need is a flag to stop a loop,
//! tokio-util's `CancellationToken` is enough, and [`Context::token`] hands one out for such code.
//!
//! # Comparison to `CancellationToken`
//!
//! `Context` is a tree like the token's, with what Go's context has and the token lacks:
//!
//! | | `CancellationToken` | `Context` |
//! | --- | --- | --- |
//! | why it ended | no | [`Cause`]; first cause wins; descendants see it |
//! | deadline | no (a `sleep` per waiter) | read from tokio's clock where an answer depends on it; no task, a timer per wait only while it waits |
//! | `is_cancelled` | takes the tree's mutex | lock-free: one atomic load per level |
//! | a wait woken by the end | takes the tree's mutex | takes no lock |
//! | race a future | `run_until_cancelled` | [`run`](Context::run), returning the cause |
//!
//! # Cargo features
//!
//! - `signal` (default): `Shutdown::on_signals`. Without it the crate builds for
//!   `wasm32-unknown-unknown`, whose platform has no signals for tokio to handle.
//! - `tower`: `tower::ContextLayer`, a context per HTTP or gRPC request with its own deadline, and
//!   `tower::ClientContextLayer`, which gives up a call when its context ends.
//! - `tracing`: each [`Shutdown::spawn`] task runs in a `shutdown task` span whose parent is the span
//!   current at `spawn`; tasks that fail, panic or are aborted are events. Both have the target
//!   `bounded_cancel`, which a filter such as `RUST_LOG=bounded_cancel=debug` selects.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod cause;
mod context;
mod future;
pub mod live;
mod panic;
mod report;
mod shutdown;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use cause::Cause;
pub use context::Context;
pub use future::{Cancelled, Run};
pub use panic::{PanicPayload, capture_panic_backtraces, panic_message, take_panic_backtrace};
pub use report::{ShutdownReport, TaskOutcome, TaskReport};
pub use shutdown::{Shutdown, SignalReceived, TaskFailed};

/// The instant `timeout` from now on tokio's clock, or `None` when that instant is too far away to
/// represent (as with [`Duration::MAX`](std::time::Duration::MAX)).
///
/// This is how every `bounded` crate turns a timeout into a deadline: durations saturate, and a timeout
/// too long to be an instant means "no deadline", as it does for tokio's `sleep`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// assert!(bounded_cancel::deadline_after(Duration::from_secs(1)).is_some());
/// assert!(bounded_cancel::deadline_after(Duration::MAX).is_none());
/// ```
pub fn deadline_after(timeout: std::time::Duration) -> Option<tokio::time::Instant> {
    tokio::time::Instant::now().checked_add(timeout)
}

// The README's example is compiled with the doc tests so that it cannot rot.
#[cfg(all(doctest, feature = "signal"))]
#[doc = include_str!("../../../README.md")]
struct ReadmeExample;
