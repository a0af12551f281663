//! `map_ordered`: workers finish in any order; one reorder task passes results on in input order.
//!
//! An item's place in the order is the number the input link gives it as a worker takes it, under
//! the link's own lock (queue invariant 8), so workers take at the same time without waiting for
//! one another. The reorder buffer is bounded by a window of `2 × workers` permits: a worker takes a
//! permit before it takes an item, and the reorder task returns it when that item is passed on. A
//! slow item at the head therefore stops intake after at most `2 × workers` items instead of growing
//! memory, and the buffer, a ring indexed from the next number to pass on, never holds more.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use async_channel::{Receiver, Sender, TryRecvError};
use bounded_cancel::Context;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::link::{Link, Producer};
use crate::shared::{Counters, Item, Shared};
use crate::worker::{Step, call};

struct Done<U> {
    seq: u64,
    item: Option<Item<U>>,
    _permit: OwnedSemaphorePermit,
}

pub(crate) fn spawn<T, U, E, F, Fut>(
    shared: &Arc<Shared<E>>,
    counters: Arc<Counters>,
    workers: usize,
    input: Arc<Link<Item<T>>>,
    output: Producer<Item<U>>,
    f: F,
) where
    T: Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
    F: Fn(Context, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<U>, E>> + Send + 'static,
{
    let window = Arc::new(Semaphore::new(2 * workers));
    let (done_tx, done_rx) = async_channel::bounded(2 * workers);
    let f = Arc::new(f);
    for _ in 0..workers {
        let (task, counters, window, input, done_tx, f) = (
            shared.clone(),
            counters.clone(),
            window.clone(),
            input.clone(),
            done_tx.clone(),
            f.clone(),
        );
        let stage = counters.name.clone();
        shared.spawn_stage(&stage, async move {
            let mut input = input.consumer();
            let ctx = task.ctx.alias();
            let mut taken = VecDeque::with_capacity(1);
            loop {
                let Ok(permit) = window.clone().acquire_owned().await else {
                    return;
                };
                // Numbered by the link as it is taken, under the link's lock.
                if !input.take(1, true, &mut taken).await {
                    return;
                }
                let seq = input.first_taken();
                let Some(item) = taken.pop_front() else {
                    return;
                };
                counters.add_in(1);
                let index = item.index;
                let item = match call(&task, &ctx, &counters, &*f, item, true).await {
                    Step::Pass(value) => Some(Item { index, value }),
                    Step::Drop => None,
                    Step::Stop => return,
                };
                // The item leaves the input here; the window permit goes with it to the reorder task.
                input.done(1);
                if !send(
                    &done_tx,
                    Done {
                        seq,
                        item,
                        _permit: permit,
                    },
                )
                .await
                {
                    return;
                }
            }
        });
    }
    let stage = counters.name.clone();
    shared.spawn_stage(&stage, reorder(done_rx, output, counters));
}

async fn send<T>(tx: &Sender<T>, item: T) -> bool {
    match tx.try_send(item) {
        Ok(()) => true,
        Err(async_channel::TrySendError::Full(item)) => tx.send(item).await.is_ok(),
        Err(async_channel::TrySendError::Closed(_)) => false,
    }
}

async fn reorder<U>(done: Receiver<Done<U>>, mut out: Producer<Item<U>>, counters: Arc<Counters>) {
    // The item numbered `next + i` waits at `i`. Every item from `next` on that was taken holds a
    // window permit until it is passed on, so this never holds more than the window.
    let mut waiting: VecDeque<Option<Done<U>>> = VecDeque::new();
    let mut next = 0;
    loop {
        let item = match done.try_recv() {
            Ok(item) => item,
            Err(TryRecvError::Empty) => {
                // Nothing more is ready: pass on what is in hand before waiting.
                out.idle();
                match done.recv().await {
                    Ok(item) => item,
                    Err(_) => return,
                }
            }
            Err(TryRecvError::Closed) => return,
        };
        let at = usize::try_from(item.seq - next).expect("within the window");
        if at >= waiting.len() {
            waiting.resize_with(at + 1, || None);
        }
        waiting[at] = Some(item);
        while let Some(Some(_)) = waiting.front() {
            let Some(Some(ready)) = waiting.pop_front() else {
                unreachable!("the front was just seen")
            };
            next += 1;
            if let Some(item) = ready.item {
                out.reserve().await;
                out.push(item);
                counters.add_out(1);
            }
            // The window permit goes back only now, after the item has left the reorder buffer.
        }
    }
}
