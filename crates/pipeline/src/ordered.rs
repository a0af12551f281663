//! `map_ordered`: workers finish in any order; one reorder task passes results on in input order.
//!
//! The reorder buffer is bounded by a window of `2 × workers` permits: a worker takes a permit before
//! it takes an item, and the reorder task returns it when that item is passed on. A slow item at the
//! head therefore stops intake after at most `2 × workers` items instead of growing memory.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use bounded_cancel::Context;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::shared::{Counters, Item, Shared};
use crate::worker::{Step, call, receive, send};

struct Done<U> {
    seq: u64,
    item: Option<Item<U>>,
    _permit: OwnedSemaphorePermit,
}

/// The input and the count of items taken from it, under one lock, so a sequence number is the
/// order of taking.
struct Input<T> {
    rx: Receiver<Item<T>>,
    taken: u64,
}

pub(crate) fn spawn<T, U, E, F, Fut>(
    shared: &Arc<Shared<E>>,
    counters: Arc<Counters>,
    workers: usize,
    rx: Receiver<Item<T>>,
    tx: Sender<Item<U>>,
    f: F,
) where
    T: Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
    F: Fn(Context, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<U>, E>> + Send + 'static,
{
    let window = Arc::new(Semaphore::new(2 * workers));
    let input = Arc::new(Mutex::new(Input { rx, taken: 0 }));
    let (done_tx, done_rx) = async_channel::bounded(2 * workers);
    let f = Arc::new(f);
    for _ in 0..workers {
        let (shared2, counters, window, input, done_tx, f) = (
            shared.clone(),
            counters.clone(),
            window.clone(),
            input.clone(),
            done_tx.clone(),
            f.clone(),
        );
        shared.spawn(async move {
            loop {
                let Ok(permit) = window.clone().acquire_owned().await else {
                    return;
                };
                let (seq, item) = {
                    let mut input = input.lock().await;
                    let Ok(item) = input.rx.recv().await else {
                        return;
                    };
                    input.taken += 1;
                    (input.taken - 1, item)
                };
                counters.add_in();
                let index = item.index;
                let item = match call(&shared2, &counters, &*f, item).await {
                    Step::Pass(value) => Some(Item { index, value }),
                    Step::Drop => None,
                    Step::Stop => return,
                };
                if done_tx
                    .send(Done {
                        seq,
                        item,
                        _permit: permit,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    shared.spawn(reorder(done_rx, tx, counters));
}

async fn reorder<U>(done: Receiver<Done<U>>, tx: Sender<Item<U>>, counters: Arc<Counters>) {
    let mut waiting = BTreeMap::new();
    let mut next = 0;
    while let Some(item) = receive(&done).await {
        waiting.insert(item.seq, item);
        while let Some(ready) = waiting.remove(&next) {
            next += 1;
            if let Some(item) = ready.item {
                if !send(&tx, item).await {
                    return;
                }
                counters.add_out();
            }
            // The permit goes back only now, after the item has left the buffer.
        }
    }
}
