//! The loop each worker of an unordered stage runs, and the call of a stage function.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_channel::{Receiver, Sender};
use bounded_cancel::Context;
use futures_util::FutureExt;

use crate::PipelineError;
use crate::shared::{Counters, Item, Shared};

/// What a worker does with the item it just ran.
pub(crate) enum Step<U> {
    Pass(U),
    /// Filtered out, or its error was handed to the skip handler.
    Drop,
    /// The pipeline failed; the worker ends.
    Stop,
}

/// Runs the stage function on one item: panics and errors become the pipeline's failure or go to the
/// skip handler, and `busy` counts the call.
pub(crate) async fn call<T, U, E, F, Fut>(
    shared: &Shared<E>,
    counters: &Counters,
    f: &F,
    item: Item<T>,
) -> Step<U>
where
    E: Send + 'static,
    F: Fn(Context, T) -> Fut,
    Fut: Future<Output = Result<Option<U>, E>>,
{
    let Item { index, value } = item;
    counters.busy.fetch_add(1, Ordering::Relaxed);
    let _busy = Busy(counters);
    let result = match std::panic::catch_unwind(AssertUnwindSafe(|| f(shared.ctx.clone(), value))) {
        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
        Err(payload) => Err(payload),
    };
    match result {
        Ok(Ok(Some(value))) => Step::Pass(value),
        Ok(Ok(None)) => Step::Drop,
        Ok(Err(error)) => {
            if shared.error(counters, index, error) {
                Step::Drop
            } else {
                Step::Stop
            }
        }
        Err(payload) => {
            shared.fail(PipelineError::Panicked {
                stage: counters.name.clone(),
                index,
                payload,
            });
            Step::Stop
        }
    }
}

struct Busy<'a>(&'a Counters);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One worker of a `map` or `filter_map` stage. It ends when its input closes (the stage before is
/// done), when its output closes, or when the pipeline aborts it.
pub(crate) async fn run<T, U, E, F, Fut>(
    shared: Arc<Shared<E>>,
    counters: Arc<Counters>,
    input: Receiver<Item<T>>,
    output: Sender<Item<U>>,
    f: Arc<F>,
) where
    E: Send + 'static,
    F: Fn(Context, T) -> Fut,
    Fut: Future<Output = Result<Option<U>, E>>,
{
    while let Some(item) = receive(&input).await {
        counters.add_in();
        let index = item.index;
        match call(&shared, &counters, &*f, item).await {
            Step::Pass(value) => {
                if !send(&output, Item { index, value }).await {
                    return;
                }
                counters.add_out();
            }
            Step::Drop => {}
            Step::Stop => return,
        }
    }
}

/// The next item, without building a wait when one is already queued; `None` once the channel is closed
/// and empty.
pub(crate) async fn receive<T>(input: &Receiver<T>) -> Option<T> {
    match input.try_recv() {
        Ok(item) => Some(item),
        Err(async_channel::TryRecvError::Empty) => input.recv().await.ok(),
        Err(async_channel::TryRecvError::Closed) => None,
    }
}

/// Passes an item on, waiting for room only when there is none; `false` once the receivers are gone.
pub(crate) async fn send<T>(output: &Sender<T>, item: T) -> bool {
    match output.try_send(item) {
        Ok(()) => true,
        Err(async_channel::TrySendError::Full(item)) => output.send(item).await.is_ok(),
        Err(async_channel::TrySendError::Closed(_)) => false,
    }
}
