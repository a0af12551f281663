//! `map_ordered`: workers finish in any order; one reorder task passes results on in input order.
//!
//! An item's place in the order is the number the input link gives it as a worker takes it, under
//! the link's own lock (queue invariant 8), so workers take at the same time without waiting for
//! one another. The reorder buffer is bounded by a window of `2 × workers` places, a bounded queue
//! (`bounded_sync::queue`, as the links are): a worker reserves a place before it takes an item and
//! pushes the finished item into it, and the reorder task, which takes what has arrived in batches,
//! frees the place once that item is passed on. A slow item at the head therefore stops intake after
//! at most `2 × workers` items instead of growing memory, and the buffer, a ring indexed from the
//! next number to pass on, never holds more.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bounded_cancel::Context;
use bounded_sync::queue::{Queue, Seat};

use crate::host::{Sampler, spawn_workers};
use crate::link::{Link, Producer};
use crate::shared::{Counters, Item, Shared};
use crate::worker::{Step, call, let_go, shares};

/// An item on its way to the reorder task: its number in the input's order, and what the stage
/// made of it (`None`: filtered out).
struct Done<U> {
    seq: u64,
    item: Option<Item<U>>,
}

/// The window: each of its places is held from before a worker takes an item until the reorder
/// task has passed that item on, and the items finished wait in it for the reorder task.
struct Window<U> {
    queue: Queue<Done<U>>,
    /// Workers that have not ended: the last to end closes the queue, which ends the reorder task
    /// once it has passed on everything.
    workers: AtomicUsize,
}

/// A worker's membership of the window, dropped however the worker ends.
struct Member<U>(Arc<Window<U>>);

impl<U> Drop for Member<U> {
    fn drop(&mut self) {
        if self.0.workers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.queue.close();
        }
    }
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
    let window = Arc::new(Window {
        queue: Queue::new(2 * workers),
        workers: AtomicUsize::new(workers),
    });
    let mut stage_workers = Vec::with_capacity(workers);
    for f in shares(Arc::new(f), workers) {
        let (task, counters, member, input) = (
            shared.clone(),
            counters.clone(),
            Member(window.clone()),
            input.clone(),
        );
        let worker = async move {
            let window = &member.0.queue;
            let mut input = input.consumer();
            let ctx = task.ctx.alias();
            let mut taken = VecDeque::with_capacity(1);
            let mut sampler = Sampler::new();
            'work: loop {
                // A place in the window before the item: freed if the worker ends before it pushes.
                let Ok(place) = window.reserve().await else {
                    break 'work;
                };
                // Numbered by the link as it is taken, under the link's lock.
                if !input.take(1, true, &mut taken).await {
                    break 'work;
                }
                let seq = input.first_taken();
                let Some(item) = taken.pop_front() else {
                    break 'work;
                };
                counters.add_in(1);
                let index = item.index;
                let item = match call(&task, &ctx, &counters, &*f, item, true, &mut sampler).await {
                    Step::Pass(value) => Some(Item { index, value }),
                    Step::Drop => None,
                    Step::Stop => break 'work,
                };
                // The item leaves the input here; its place in the window goes with it.
                input.done(1);
                if place.push(Done { seq, item }).is_err() {
                    break 'work;
                }
            }
            // Before the worker leaves the window, which closes with the last one.
            let_go(f, &task, &counters);
            drop(member);
        };
        stage_workers.push(worker);
    }
    spawn_workers(shared, &counters, stage_workers, true);
    let stage = counters.name.clone();
    shared.spawn_stage(&stage, reorder(window, output, counters));
}

/// The reorder task's seat at the window, given up however the task ends.
struct Sitting<'a, U>(&'a Queue<Done<U>>, Seat);

impl<U> Drop for Sitting<'_, U> {
    fn drop(&mut self) {
        self.0.leave(&self.1);
    }
}

async fn reorder<U>(window: Arc<Window<U>>, mut out: Producer<Item<U>>, counters: Arc<Counters>) {
    let queue = &window.queue;
    let mut seat = Sitting(queue, queue.seat());
    // The item numbered `next + i` waits at `i`. Every item from `next` on that was taken holds a
    // place in the window until it is passed on, so this never holds more than the window.
    let mut waiting: VecDeque<Option<Done<U>>> = VecDeque::new();
    let mut arrived = VecDeque::new();
    let mut next = 0;
    loop {
        let more = match queue.try_take_many(&mut seat.1, usize::MAX, 1, &mut arrived) {
            Some(more) => more,
            None => {
                // Nothing more is ready: pass on what is in hand before waiting.
                out.idle();
                std::future::poll_fn(|cx| {
                    queue.poll_take_many(&mut seat.1, cx, usize::MAX, 1, &mut arrived)
                })
                .await
            }
        };
        if !more {
            return;
        }
        for done in arrived.drain(..) {
            let at = usize::try_from(done.seq - next).expect("within the window");
            // Items mostly arrive in order, a place or two past the end: pushed one at a time.
            while waiting.len() <= at {
                waiting.push_back(None);
            }
            waiting[at] = Some(done);
        }
        let mut passed = 0;
        while let Some(Some(_)) = waiting.front() {
            let Some(Some(ready)) = waiting.pop_front() else {
                unreachable!("the front was just seen")
            };
            next += 1;
            passed += 1;
            if let Some(item) = ready.item {
                out.reserve().await;
                out.push(item);
                counters.add_out(1);
            }
        }
        // The places go back only now, once their items have left the reorder buffer.
        queue.release(passed);
    }
}
