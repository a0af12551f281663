//! The channel between two stages.
//!
//! Items queue in order; its capacity counts the items queued *and* the items the next stage has taken
//! but not yet passed on, so a stage's workers and its buffer together bound what it holds. Items
//! move in batches: a producer fills a local batch (each item with a place reserved first, a run of
//! places at a time while the link has room, so that one atomic serves a run of items) and pushes it
//! under one lock with one wake-up; a consumer takes several items at once (its fair share, or a whole
//! batch once its items prove cheap: see `worker`; the output, the last link's only consumer, takes
//! all that is queued), and can give back those it has not started. Taking all of the queue into an
//! empty batch, or flushing a batch into an empty queue, swaps the two buffers: no item is copied.
//! One lock and one wake-up then serve many items, where a plain channel pays both per item.
//!
//! # Invariants
//!
//! 1. Places: `room`'s permits + places reserved by producers + items queued + items in consumers'
//!    hands (taken, not yet `done`) == capacity. A producer reserves before it pushes, a consumer
//!    returns places with `done`, a give-back keeps the items' places, and a dropped producer returns
//!    the places it reserved and did not use. So nothing ever holds more than the capacity.
//! 2. Every item pushed is taken exactly once: it moves from a producer's batch to the queue, and from
//!    the queue to one consumer, under the queue's lock; a give-back puts it at the front, in order.
//! 3. `closed` is set, under the lock, by the last producer to leave, after its batch is queued; a
//!    consumer reports the end only when the queue is empty and `closed` is set, so no item is queued
//!    after the end is seen. This needs every producer of a link to exist before any of them runs: a
//!    producer made after the others had all left would find the link already closed (a stage makes
//!    all of its workers' producers first, then spawns them).
//! 4. Wake-ups: a push or give-back wakes one consumer, which passes the wake-up on if items remain;
//!    the close wakes them all. A consumer registers for a wake-up before its last look, so none is
//!    missed. No waker is woken under the lock.
//!
//! The queue is under one lock and has no atomics of its own; `room` is a tokio semaphore.

use std::collections::VecDeque;
use std::sync::Arc;

use bounded_sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

/// The most items a producer batches, a run of places holds, or a worker takes at once. (The output,
/// a link's only consumer, takes all that is queued: into its empty batch that is one swap.)
pub(crate) const MAX_BATCH: usize = 16;

pub(crate) struct Link<T> {
    queue: Mutex<Queue<T>>,
    /// Places left: the capacity less the items queued or taken and not yet `done`.
    room: Semaphore,
    /// Items were queued, or the last producer left.
    ready: Notify,
    consumers: usize,
    /// How many places a blocked producer waits for: it then wakes once for a run of items rather than
    /// once per item.
    run: usize,
}

struct Queue<T> {
    items: VecDeque<T>,
    producers: usize,
    closed: bool,
}

impl<T> Link<T> {
    /// A link holding at most `capacity` items between queue and consumers' hands, read by `consumers`.
    pub(crate) fn new(capacity: usize, consumers: usize) -> Arc<Self> {
        Arc::new(Link {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                producers: 0,
                closed: false,
            }),
            room: Semaphore::new(capacity.max(1)),
            ready: Notify::new(),
            consumers: consumers.max(1),
            run: (capacity / 2).clamp(1, MAX_BATCH),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock()
    }

    pub(crate) fn producer(self: &Arc<Self>) -> Producer<T> {
        self.lock().producers += 1;
        Producer {
            link: Arc::clone(self),
            batch: Vec::new(),
            reserved: 0,
        }
    }

    /// Takes up to `max` items into `into` without waiting (with `fair`, no more than this consumer's
    /// share, queued ÷ consumers): `Some(true)` if it took some, `Some(false)` once every producer has left
    /// and the queue is empty, `None` if the queue is empty for now. Each item taken holds its place
    /// until [`done`](Link::done).
    pub(crate) fn try_take(&self, max: usize, fair: bool, into: &mut VecDeque<T>) -> Option<bool> {
        let mut queue = self.lock();
        let queued = queue.items.len();
        if queued == 0 {
            return queue.closed.then_some(false);
        }
        let share = if fair {
            queued.div_ceil(self.consumers)
        } else {
            queued
        };
        let share = share.clamp(1, max.max(1));
        if share == queued && into.is_empty() {
            // All of it, into an empty batch: the two buffers change places, no item is copied.
            std::mem::swap(into, &mut queue.items);
        } else {
            into.reserve(share);
            // One item at a time: `extend` over a `Drain` of a `VecDeque` is several times slower.
            into.extend(std::iter::from_fn(|| queue.items.pop_front()).take(share));
        }
        let left = !queue.items.is_empty();
        drop(queue);
        if left {
            // Pass the wake-up on: another consumer may take the rest.
            self.ready.notify_one();
        }
        Some(true)
    }

    /// [`try_take`](Link::try_take), waiting while the queue is empty; `false` at the end.
    pub(crate) async fn take(&self, max: usize, fair: bool, into: &mut VecDeque<T>) -> bool {
        loop {
            if let Some(took) = self.try_take(max, fair, into) {
                return took;
            }
            let notified = self.ready.notified();
            tokio::pin!(notified);
            // Registered before looking again, so a push or a close after the look still wakes us.
            notified.as_mut().enable();
            if let Some(took) = self.try_take(max, fair, into) {
                return took;
            }
            notified.await;
        }
    }

    /// Puts items taken but not started back at the front of the queue, in their order, for another
    /// consumer: they keep their places.
    pub(crate) fn give_back(&self, items: &mut VecDeque<T>) {
        if items.is_empty() {
            return;
        }
        let mut queue = self.lock();
        while let Some(item) = items.pop_back() {
            queue.items.push_front(item);
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// `n` items taken from this link have left the consumer's hands.
    pub(crate) fn done(&self, n: usize) {
        if n > 0 {
            self.room.add_permits(n);
        }
    }
}

/// A producer's end of a link: a local batch of items with their places already reserved.
pub(crate) struct Producer<T> {
    link: Arc<Link<T>>,
    batch: Vec<T>,
    reserved: usize,
}

impl<T> Producer<T> {
    /// Whether a place is reserved for the next item: then [`reserve`](Producer::reserve) has nothing
    /// to do, and a caller on a hot path skips it.
    pub(crate) fn has_place(&self) -> bool {
        self.reserved > self.batch.len()
    }

    /// Reserves a place for one more item, pushing the local batch first if it has to wait for one.
    /// While the link has room it reserves a run of places at once; a producer about to wait for
    /// anything but room gives back those it will not use now ([`idle`](Producer::idle),
    /// [`flush_keeping_one`](Producer::flush_keeping_one)).
    pub(crate) async fn reserve(&mut self) {
        if self.reserved > self.batch.len() {
            return;
        }
        if self.batch.len() >= MAX_BATCH {
            self.flush();
        }
        let run = self.link.run;
        if run > 1
            && (self.link.room)
                .try_acquire_many(run as u32)
                .map(SemaphorePermit::forget)
                .is_ok()
        {
            self.reserved += run;
        } else if self
            .link
            .room
            .try_acquire()
            .map(SemaphorePermit::forget)
            .is_ok()
        {
            self.reserved += 1;
        } else {
            let run = self.link.run as u32;
            // The items held here may be what the consumers need to make room: pass them on first.
            self.flush();
            match self.link.room.acquire_many(run).await {
                Ok(permits) => permits.forget(),
                Err(_) => unreachable!("a link's semaphore is never closed"),
            }
            self.reserved += run as usize;
        }
    }

    /// Adds an item whose place was reserved.
    pub(crate) fn push(&mut self, item: T) {
        debug_assert!(
            self.reserved > self.batch.len(),
            "a place is reserved before each push"
        );
        self.batch.push(item);
    }

    /// Gives back a reserved place that no item will use (the item was filtered out or failed).
    pub(crate) fn unreserve(&mut self) {
        if self.reserved > self.batch.len() {
            self.reserved -= 1;
            self.link.room.add_permits(1);
        }
    }

    /// [`flush`](Producer::flush), and gives back the places reserved for items not yet made: for when
    /// this producer is about to wait for its own input, which may take a while.
    pub(crate) fn idle(&mut self) {
        self.flush();
        if self.reserved > 0 {
            self.link.room.add_permits(self.reserved);
            self.reserved = 0;
        }
    }

    /// [`flush`](Producer::flush), keeping only the one place reserved for the item being made: for when
    /// that item has to wait, so that this producer holds no other places meanwhile.
    pub(crate) fn flush_keeping_one(&mut self) {
        self.flush();
        if self.reserved > 1 {
            self.link.room.add_permits(self.reserved - 1);
            self.reserved = 1;
        }
    }

    /// Queues the local batch and wakes a consumer.
    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.reserved -= self.batch.len();
        let mut queue = self.link.lock();
        if queue.items.is_empty() {
            // The batch becomes the queue, and the queue's empty buffer the next batch: no item is
            // copied, nothing is allocated or freed under the lock.
            let empty = Vec::from(std::mem::take(&mut queue.items));
            queue.items = VecDeque::from(std::mem::replace(&mut self.batch, empty));
        } else {
            queue.items.extend(self.batch.drain(..));
        }
        drop(queue);
        self.link.ready.notify_one();
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.flush();
        if self.reserved > 0 {
            self.link.room.add_permits(self.reserved);
        }
        let mut queue = self.link.lock();
        queue.producers -= 1;
        if queue.producers == 0 {
            queue.closed = true;
            drop(queue);
            self.link.ready.notify_waiters();
        }
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::*;
    use futures_util::FutureExt;

    /// Two producers on their own threads push one item each and leave, while a consumer takes, gives
    /// back and returns places: every item arrives exactly once, the end is seen only after both, and
    /// every place is back at the end (invariants 1 to 3).
    /// With a capacity of 2 each producer reserves one place at a time; with 4, a run of two.
    #[test]
    fn every_item_arrives_once_and_every_place_comes_back() {
        every_item_arrives_once_and_every_place_comes_back_with(2);
        every_item_arrives_once_and_every_place_comes_back_with(4);
    }

    fn every_item_arrives_once_and_every_place_comes_back_with(capacity: usize) {
        loom::model(move || {
            let link = Link::new(capacity, 1);
            // Every producer exists before any runs (invariant 3).
            let outs: Vec<_> = (0..2u32).map(|item| (item, link.producer())).collect();
            let producers: Vec<_> = outs
                .into_iter()
                .map(|(item, mut out)| {
                    loom::thread::spawn(move || {
                        out.reserve().now_or_never().expect("room for both items");
                        out.push(item);
                        // Dropping flushes the batch and, for the last one, closes the link.
                    })
                })
                .collect();
            let mut seen = Vec::new();
            let mut taken = VecDeque::new();
            let mut gave_back = false;
            loop {
                match link.try_take(2, false, &mut taken) {
                    Some(true) => {
                        if !gave_back && taken.len() == 2 {
                            // Keep the first, hand the second back: it keeps its place and its turn.
                            let first = taken.pop_front().unwrap();
                            link.give_back(&mut taken);
                            taken.push_back(first);
                            gave_back = true;
                        }
                        let n = taken.len();
                        seen.extend(taken.drain(..));
                        link.done(n);
                    }
                    Some(false) => break,
                    None => loom::thread::yield_now(),
                }
            }
            for p in producers {
                p.join().unwrap();
            }
            seen.sort_unstable();
            assert_eq!(seen, [0, 1], "every item exactly once");
            assert_eq!(
                link.room.available_permits(),
                capacity,
                "every place came back"
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Producers and consumers on two threads, with small capacity, random batch sizes and items given
    /// back: every item arrives once, the places in use never exceed the capacity, and the consumers end
    /// when the producers have.
    #[test]
    fn stress_link_delivers_every_item_once_within_its_capacity() {
        const PRODUCERS: u64 = 4;
        const ITEMS: u64 = 5_000;
        const CAPACITY: usize = 5;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let link = Link::new(CAPACITY, 3);
            let in_use = Arc::new(AtomicUsize::new(0));
            let mut producers = Vec::new();
            for p in 0..PRODUCERS {
                let (mut out, in_use) = (link.producer(), in_use.clone());
                producers.push(tokio::spawn(async move {
                    for i in 0..ITEMS {
                        out.reserve().await;
                        // SeqCst in a test: the simplest ordering to reason about, and its cost is moot.
                        let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= CAPACITY, "{now} places in use, capacity {CAPACITY}");
                        out.push(p * ITEMS + i);
                        if i % 97 == 0 {
                            out.idle();
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            let mut consumers = Vec::new();
            for c in 0..3usize {
                let (link, in_use) = (link.clone(), in_use.clone());
                consumers.push(tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut taken = VecDeque::new();
                    let mut turn = c;
                    while link
                        .take(1 + turn % MAX_BATCH, turn % 2 == 0, &mut taken)
                        .await
                    {
                        turn += 1;
                        if turn % 5 == 0 && taken.len() > 1 {
                            // Keep the first, give the rest back.
                            let first = taken.pop_front().unwrap();
                            link.give_back(&mut taken);
                            taken.push_back(first);
                        }
                        let n = taken.len();
                        seen.extend(taken.drain(..));
                        in_use.fetch_sub(n, Ordering::SeqCst);
                        link.done(n);
                        if turn % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    seen
                }));
            }
            for p in producers {
                p.await.unwrap();
            }
            let mut all: Vec<u64> = Vec::new();
            for c in consumers {
                all.extend(c.await.unwrap());
            }
            all.sort_unstable();
            assert!(
                all == (0..PRODUCERS * ITEMS).collect::<Vec<_>>(),
                "every item exactly once"
            );
        });
    }
}
