//! `Pipeline` is Go's fan-out / fan-in pipeline for tokio: stages of worker tasks, each with its own
//! parallelism, joined by bounded channels, that stop together and never lose an error or a panic.
//!
//! | Go | bounded-pipeline |
//! | --- | --- |
//! | a stage: N goroutines ranging over `in`, sending to `out` | [`.map(n, f)`](Stage::map), [`.filter_map(n, f)`](Stage::filter_map) |
//! | (order lost) | [`.map_ordered(n, f)`](Stage::map_ordered): parallel, passed on in input order, bounded reorder buffer |
//! | `make(chan T, cap)` between stages | [`.buffer(cap)`](Stage::buffer) (16 by default); every channel is bounded |
//! | `wg.Wait(); close(out)` in a closer goroutine | built in: a stage's channel closes when its last worker ends |
//! | `if err != nil { continue }` | fail fast by default (first error stops every stage), or [`skip_errors(handler)`](Pipeline::skip_errors) with the item's index |
//! | `case <-ctx.Done(): return` in every send | built in: the pipeline's context ending aborts every task |
//! | ranging over the last channel | [`Output`]: a `Stream`, plus [`try_collect`](Output::try_collect), [`collect`](Output::collect), [`for_each`](Output::for_each) |
//!
//! The common Go `Pipeline` (an `in` channel of orders, 8 workers running `enrich`, an `out` channel) in
//! this crate's API, stacked into the stages a service runs (fetch, enrich, validate, store):
//!
//! ```
//! use bounded_cancel::Context;
//! use bounded_pipeline::Pipeline;
//!
//! # #[derive(Debug)] struct Order(u32);
//! # #[derive(Debug)] struct Enriched(u32);
//! # async fn fetch(_: &Context, id: u32) -> Result<Order, String> { Ok(Order(id)) }
//! # async fn enrich(_: &Context, o: Order) -> Result<Enriched, String> { Ok(Enriched(o.0)) }
//! # fn valid(e: &Enriched) -> bool { e.0 % 10 != 0 }
//! # async fn store(_: &Context, e: Enriched) -> Result<u32, String> { Ok(e.0) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Context::new();
//! let stored = Pipeline::new(&app)
//!     .source(1..=100u32)
//!     .map(4, |ctx, id| async move { fetch(&ctx, id).await }).named("fetch")
//!     .map(8, |ctx, order| async move { enrich(&ctx, order).await }).named("enrich")
//!     .filter_map(2, |_ctx, e| async move { Ok(valid(&e).then_some(e)) }).named("validate")
//!     .map(2, |ctx, e| async move { store(&ctx, e).await }).named("store")
//!     .output()
//!     .try_collect()
//!     .await
//!     .expect("no stage failed");
//! assert_eq!(stored.len(), 90);
//! # }
//! ```
//!
//! # Channels: the creator closes
//!
//! Go's rule is that whoever creates a channel closes it. Here each stage creates its output channel and
//! is the only one holding its sending ends: when its last worker ends the channel closes, and the next
//! stage sees a clean end once it has taken every item. No consumer can close a channel under a
//! producer, and a send after close is impossible to write.
//!
//! # Stopping
//!
//! The pipeline runs under a child of the context given to [`Pipeline::new`]. The first error (fail
//! fast), a panic, that context ending, or dropping the [`Output`] cancels it, and a watch task aborts
//! every stage's tasks; the source is never pulled again. The output then yields what was already
//! through, then one `Err` ([`PipelineError`]) saying why, then ends. A context that ends only after
//! every stage has run to its end (its items waiting in the last channel for the reader) stops
//! nothing, and the output ends with no error. A panic is returned as a value,
//! [`PipelineError::Panicked`] with its payload: re-raise it with
//! [`PanicPayload::resume`](bounded_cancel::PanicPayload::resume) if that is what you want. With an
//! error type that is `Send + Sync`, a [`PipelineError`] is too, so `?` turns it into
//! `anyhow::Error` or tower's `BoxError`.
//! If the tokio runtime the stages run on shuts down mid-stream, the output (read
//! from another runtime) ends with [`PipelineError::Lost`], never as if the source had run out.
//!
//! # Draining on shutdown
//!
//! Stopping drops what is inside the stages. To finish what was taken in instead, end the source
//! and keep the pipeline's context apart from the shutdown's: every stage then drains and the output
//! ends with no error, as when a source runs out. Go does this by closing the input channel. A drain
//! that outlasts its grace is still stopped by dropping the output, or by cancelling that context.
//!
//! ```
//! use bounded_cancel::Context;
//! use bounded_pipeline::Pipeline;
//! use futures_util::StreamExt;
//! use std::time::Duration;
//! use tokio::time::sleep;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let shutdown = Context::new(); // the service's, cancelled on SIGTERM
//! // An order arrives every 10 ms, for ever.
//! let orders = futures_util::stream::iter(0u32..).then(|n| async move {
//!     sleep(Duration::from_millis(10)).await;
//!     n
//! });
//! // Its own context: cancelling it (or `shutdown`, were it the parent) would drop the orders inside.
//! let out = Pipeline::new(&Context::new())
//!     .source_stream(orders.take_until(shutdown.token().cancelled_owned()))
//!     .map(4, |_ctx, order| async move {
//!         sleep(Duration::from_millis(35)).await; // the database write
//!         Ok::<_, String>(order)
//!     })
//!     .output();
//! tokio::spawn(async move {
//!     sleep(Duration::from_millis(105)).await;
//!     shutdown.cancel();
//! });
//! let mut stored = out.try_collect().await.expect("drained, not stopped");
//! stored.sort();
//! // All ten orders taken in before the shutdown: the last three were stored after it began.
//! assert_eq!(stored, (0..10).collect::<Vec<_>>());
//! # }
//! ```
//!
//! # Backpressure
//!
//! Every channel is bounded, and counts the items its consumers hold as well as those queued. With a
//! stalled consumer the items pulled from the source never exceed the source's buffer, plus for every
//! stage its workers and its buffer, plus one for the output (and `2 × workers` for a `map_ordered`
//! stage's reorder window).
//!
//! # Batches
//!
//! Items move between stages in batches of up to 16: a worker takes several items at once, runs
//! them one after another, and passes its results on together, so that one lock and one wake-up
//! serve many items. It takes its fair share of the queue (queued ÷ workers) until its items prove
//! cheap (under 2 µs each, never waiting), then up to a whole batch: CPU-heavy items stay spread
//! over the workers. A batch is held only while its items finish without waiting: as soon as one
//! has to wait, the worker passes on what it has finished and gives the items it has not started
//! back to the queue for the other workers, so no item waits behind a slow one while a worker is
//! free. A producer that waits for its input, or for room, first passes on what it holds.
//!
//! # Comparison with `buffer_unordered`
//!
//! `stream.map(f).buffer_unordered(n)` runs its `n` futures inside the task that polls the stream:
//! nothing runs in parallel on a multi-thread runtime, and when the consumer is slow to poll, none of
//! those futures is polled either: their timeouts fire, and locks or semaphore permits they hold are
//! held while nothing happens. Here every stage is made of real tasks on the runtime's threads: they
//! keep working while the consumer is busy, up to their bounded buffers, and a CPU-heavy stage uses
//! more than one core. The cost is a hop per stage, paid per batch (see `docs/benchmarks.md`).
//!
//! # Cargo features
//!
//! - `metrics`: each stage's `bounded_pipeline_items_in_total`, `bounded_pipeline_items_out_total`,
//!   `bounded_pipeline_errors_total` and `bounded_pipeline_busy_workers`, labelled `stage`.
//! - `tracing`: every stage worker runs in a `pipeline stage` span whose parent is the span current
//!   where the pipeline was built; a failure is an `error` event naming its stage. Both have the
//!   target `bounded_pipeline`, which a filter such as `RUST_LOG=bounded_pipeline=debug` selects.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod error;
#[cfg(feature = "metrics")]
mod export;
mod future;
mod host;
mod link;
mod metrics;
mod ordered;
mod output;
mod pipeline;
mod shared;
mod stage;
mod worker;

pub use error::PipelineError;
pub use future::{Collect, ForEach, TryCollect};
pub use metrics::{MetricsHandle, StageMetrics};
pub use output::Output;
pub use pipeline::Pipeline;
pub use stage::{DEFAULT_BUFFER, MAX_BUFFER, MAX_WORKERS, Stage};
