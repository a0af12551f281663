//! `Group` is `errgroup.Group` for tokio: tasks that share a fate, a limit on how many run at once, the
//! first real error, and panics that are never lost.
//!
//! | Go (`golang.org/x/sync/errgroup`) | `bounded-group` |
//! | --- | --- |
//! | `var g errgroup.Group` | [`Group::new()`] |
//! | `g, gctx := errgroup.WithContext(ctx)` | [`Group::with_context(&ctx)`](Group::with_context), [`group.context()`](Group::context) |
//! | `g.SetLimit(n)` | [`group.set_limit(Some(n))`](Group::set_limit) (refused while tasks run) |
//! | `g.Go(f)` | [`group.spawn(f).await`](Group::spawn) (waits for a slot, cancellable) |
//! | `g.TryGo(f)` | [`group.try_spawn(f)`](Group::try_spawn) (hands `f` back in a [`TrySpawnError`]) |
//! | `g.Wait()` | [`group.wait().await`](Group::wait) (re-raises panics; repeatable) |
//!
//! The common Go `Fanout` (fetch every id under the request's context, keep the results in order, fail on the
//! first error) in this crate's API:
//!
//! ```
//! use bounded_cancel::Context;
//! use bounded_group::ResultGroup;
//!
//! # #[derive(Debug, Clone, PartialEq)] struct Record(String);
//! # async fn fetch(_ctx: &Context, id: &str) -> std::io::Result<Record> { Ok(Record(id.to_uppercase())) }
//! async fn fanout(ctx: &Context, ids: Vec<String>) -> std::io::Result<Vec<Record>> {
//!     let mut group = ResultGroup::new();
//!     group.set_limit(Some(8)).expect("idle group");
//!     for id in ids {
//!         // `spawn_with` stops waiting for a slot when the request's context ends.
//!         let spawned = group.spawn_with(ctx, move |gctx| async move { fetch(&gctx, &id).await }).await;
//!         if spawned.is_err() {
//!             break;
//!         }
//!     }
//!     group.wait().await // values in the order of `ids`
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let ctx = Context::new();
//! let records = fanout(&ctx, vec!["a".into(), "b".into()]).await.unwrap();
//! assert_eq!(records, [Record("A".into()), Record("B".into())]);
//! // The same in one call:
//! let again = bounded_group::map_with(&ctx, ["a", "b"], 8, |gctx, id| async move { fetch(&gctx, id).await })
//!     .await
//!     .unwrap();
//! assert_eq!(again, records);
//! # }
//! ```
//!
//! # Use this when / use that instead
//!
//! Use a `Group` for a set of tasks started together that succeed or fail together: a fan-out per request,
//! a batch, the workers of one job. Use [`map`] / [`for_each`] when the tasks are one function over a list.
//! For a long-lived queue of independent jobs use `bounded-pool`; for stages with different parallelism,
//! `bounded-pipeline`.
//!
//! # Comparison to `JoinSet`
//!
//! tokio's `JoinSet` owns its tasks and aborts them on drop, as a `Group` does. What the usual
//! `JoinSet` + `Semaphore` + `CancellationToken` code has to build by hand, a `Group` does for you:
//!
//! - **Limits with backpressure.** `spawn` waits for a slot *before* the task exists; `try_spawn` hands the
//!   closure back. A `JoinSet` accepts everything and leaves each task to take a permit inside.
//! - **First error wins, and cancels the rest.** A `JoinSet` gives results in completion order; telling the
//!   real error from the cancellation errors it caused is left to you. `wait` returns the first error as the
//!   value the task returned, and errors that follow it never replace it.
//! - **Panics are never lost.** `wait` re-raises the first panic with its payload (or returns it, with
//!   [`wait_and_recover`](Group::wait_and_recover)); a `JoinSet` hands back `JoinError`s you may forget to check.
//! - **Flat memory.** A `Group` keeps nothing per finished task; a `JoinSet` keeps every result until you
//!   `join_next` it.
//! - **Tasks run as tokio tasks do.** `spawn` returns before any of the task's code runs, as
//!   `JoinSet::spawn` does (see [`Group`]); the group keeps an abort handle only while a task runs.
//!
//! Use a `JoinSet` when each task's result is wanted as it completes, or tasks must be aborted one by one.
//!
//! # Cargo features
//!
//! - `tracing`: each task runs in a `group task` span whose parent is the span current at `spawn`,
//!   wherever the task runs; failures and panics are events. Both have the target `bounded_group`,
//!   which a filter such as `RUST_LOG=bounded_group=debug` selects.
//! - `metrics`: the gauge `bounded_group_tasks_alive`, labelled `group` with [`Group::named`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod error;
mod executor;
mod executors;
mod future;
mod group;
mod helpers;
mod lent;
mod own;
mod result_group;
mod runner;
mod shared;
mod state;
mod task;

pub use error::{
    Failure, MapError, Panic, SetLimitError, SpawnError, TaskError, TaskPanicked, TrySpawnError,
};
pub use future::Spawn;
pub use group::{Group, MAX_LIMIT};
pub use helpers::{
    for_each, for_each_borrowed, for_each_with, map, map_results, map_results_with, map_with,
};
pub use result_group::{ResultGroup, ResultSpawn};
pub use task::{Named, TaskFn};
