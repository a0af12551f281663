//! The channel between two stages: `bounded-sync`'s [`Queue`], shared with the pool, used the way a
//! stage needs it.
//!
//! Items queue in order; the link's capacity counts the items queued *and* the items the next stage
//! has taken but not yet passed on, so a stage's workers and its buffer together bound what it holds.
//! Items move in batches: a producer fills a local batch (each item with a place reserved first, as
//! many places at a time as the link has free, up to a run, so that one lock serves a run of items)
//! and pushes it under one lock with one wake-up; a consumer takes several items at once (its fair
//! share, or a whole batch once its items prove cheap: see `worker`; the output, the last link's only
//! consumer, takes all that is queued), and can give back those it has not started. Taking all of the
//! queue into an empty batch, or pushing a batch into an empty queue, swaps the two buffers: no item
//! is copied. One lock and one wake-up then serve many items, where a plain channel pays both per
//! item.
//!
//! # Invariants
//!
//! The queue's own invariants hold (every item is taken once, in order; the places held never exceed
//! the capacity; producers waiting for a place are served in order; a consumer is never left parked
//! while an item waits). Beside them:
//!
//! 1. Places: free places + places reserved by producers + items queued + items in consumers' hands
//!    (taken, not yet `done`) == capacity. A producer reserves before it pushes, a consumer returns
//!    places with `done`, a give-back keeps the items' places, and a dropped producer returns the
//!    places it reserved and did not use.
//! 2. The last producer to leave closes the queue after its batch is queued; a consumer reports the
//!    end only when the queue is empty and closed, so no item is queued after the end is seen. This
//!    needs every producer of a link to exist before any of them runs: a producer made after the
//!    others had all left would find the link already closed (a stage makes all of its workers'
//!    producers first, then spawns them).
//! 3. Every task of a pipeline (the source, each worker) produces into a link, and reserves a run of
//!    places there at least once per run of items. A producer that has reserved `RUNS_BEFORE_YIELD`
//!    runs in a row without waiting for a place passes on what it holds and yields to its runtime
//!    once: a source whose stage keeps up, or a stage whose input never empties, on a multi-thread
//!    runtime, does not keep its thread from the runtime's other tasks. Waiting for a place starts the
//!    count again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use bounded_sync::atomic::{AtomicUsize, Ordering};
use bounded_sync::queue::{Queue, Seat};

/// The most items a producer batches, a run of places holds, or a worker takes at once. (The output,
/// a link's only consumer, takes all that is queued: into its empty batch that is one swap.)
pub(crate) const MAX_BATCH: usize = 16;

/// Runs of places a producer reserves without waiting before it yields to its runtime (invariant 3):
/// as many as tokio's coop budget lets a task send on its channels in one poll.
const RUNS_BEFORE_YIELD: u32 = 128;

pub(crate) struct Link<T> {
    queue: Queue<T>,
    producers: AtomicUsize,
    consumers: usize,
    /// How many places a producer reserves at once while they are free: it then takes the lock once
    /// for a run of items rather than once per item.
    run: usize,
}

impl<T> Link<T> {
    /// A link holding at most `capacity` items between queue and consumers' hands, read by `consumers`.
    pub(crate) fn new(capacity: usize, consumers: usize) -> Arc<Self> {
        Arc::new(Link {
            queue: Queue::new(capacity.max(1)),
            producers: AtomicUsize::new(0),
            consumers: consumers.max(1),
            run: (capacity / 2).clamp(1, MAX_BATCH),
        })
    }

    pub(crate) fn producer(self: &Arc<Self>) -> Producer<T> {
        self.producers.fetch_add(1, Ordering::Relaxed);
        Producer {
            link: Arc::clone(self),
            batch: Vec::new(),
            reserved: 0,
            runs: 0,
        }
    }

    /// One consumer's end of the link; the link was made for `consumers` of them.
    pub(crate) fn consumer(self: &Arc<Self>) -> Consumer<T> {
        Consumer {
            // Not counted as searching until it looks: a consumer may wait for something else
            // first (a `map_ordered` worker waits for room in its window), and while it is
            // counted, no parked consumer would be woken.
            seat: self.queue.idle_seat(),
            link: Arc::clone(self),
        }
    }
}

/// A consumer's end of a link: its seat at the queue, given up when it is dropped.
pub(crate) struct Consumer<T> {
    link: Arc<Link<T>>,
    seat: Seat,
}

impl<T> Consumer<T> {
    fn share_among(&self, fair: bool) -> usize {
        if fair { self.link.consumers } else { 1 }
    }

    /// Takes up to `max` items into `into` without waiting (with `fair`, no more than this consumer's
    /// share, queued ÷ consumers): `Some(true)` if it took some, `Some(false)` once every producer has
    /// left and the queue is empty, `None` if the queue is empty for now. Each item taken holds its
    /// place until [`done`](Consumer::done).
    pub(crate) fn try_take(
        &mut self,
        max: usize,
        fair: bool,
        into: &mut VecDeque<T>,
    ) -> Option<bool> {
        self.done_and_try_take(0, max, fair, into)
    }

    /// [`done`](Consumer::done) with `done` items, then [`try_take`](Consumer::try_take), under one
    /// lock of the link; the places are freed whatever the take finds.
    pub(crate) fn done_and_try_take(
        &mut self,
        done: usize,
        max: usize,
        fair: bool,
        into: &mut VecDeque<T>,
    ) -> Option<bool> {
        let share_among = self.share_among(fair);
        (self.link.queue).release_and_try_take_many(done, &mut self.seat, max, share_among, into)
    }

    /// [`take`](Consumer::take) as a poll: `Pending` while the queue is empty, with `cx` woken when
    /// items are queued or the last producer leaves.
    pub(crate) fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        fair: bool,
        into: &mut VecDeque<T>,
    ) -> Poll<bool> {
        let share_among = self.share_among(fair);
        (self.link.queue).poll_take_many(&mut self.seat, cx, max, share_among, into)
    }

    /// [`try_take`](Consumer::try_take), waiting while the queue is empty; `false` at the end.
    pub(crate) async fn take(&mut self, max: usize, fair: bool, into: &mut VecDeque<T>) -> bool {
        std::future::poll_fn(|cx| self.poll_take(cx, max, fair, into)).await
    }

    /// The number of the first item of this consumer's last take: items are numbered in the order
    /// they are taken from the link, from 0, across all of its consumers. Only for a link whose
    /// consumers never give items back.
    pub(crate) fn first_taken(&self) -> u64 {
        self.seat.first_taken
    }

    /// Whether its last take woke another consumer for the items it left (and forgets it).
    pub(crate) fn handed_on(&mut self) -> bool {
        std::mem::take(&mut self.seat.handed_on)
    }

    /// Puts items taken but not started back at the front of the queue, in their order, for another
    /// consumer: they keep their places.
    pub(crate) fn give_back(&self, items: &mut VecDeque<T>) {
        // A link is never drained, so the items always go back.
        let queued = self.link.queue.give_back(items);
        debug_assert!(queued, "a link is never drained");
    }

    /// `n` items taken from this link have left the consumer's hands.
    pub(crate) fn done(&self, n: usize) {
        self.link.queue.release(n);
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.link.queue.leave(&self.seat);
    }
}

/// A producer's end of a link: a local batch of items with their places already reserved.
pub(crate) struct Producer<T> {
    link: Arc<Link<T>>,
    batch: Vec<T>,
    reserved: usize,
    /// Runs of places reserved since the producer last waited or yielded (invariant 3).
    runs: u32,
}

impl<T> Producer<T> {
    /// Whether a place is reserved for the next item: then [`reserve`](Producer::reserve) has nothing
    /// to do, and a caller on a hot path skips it.
    pub(crate) fn has_place(&self) -> bool {
        self.reserved > self.batch.len()
    }

    /// Reserves a place for one more item, pushing the local batch first if it has to wait for one.
    /// While the link has room it reserves a run of places at once (as many as are free, up to the
    /// run); a producer about to wait for anything but room gives back those it will not use now
    /// ([`idle`](Producer::idle), [`flush_keeping_one`](Producer::flush_keeping_one)).
    pub(crate) async fn reserve(&mut self) {
        self.reserve_up_to(self.link.run).await;
    }

    /// [`reserve`](Producer::reserve), one place at most: for a producer whose items wait before
    /// they are made, which would give back the rest of a run at its next wait
    /// ([`flush_keeping_one`](Producer::flush_keeping_one)) after keeping it from the other producers
    /// meanwhile.
    pub(crate) async fn reserve_one(&mut self) {
        self.reserve_up_to(1).await;
    }

    async fn reserve_up_to(&mut self, run: usize) {
        if self.reserved > self.batch.len() {
            return;
        }
        if self.batch.len() >= MAX_BATCH {
            self.flush();
        }
        if let Ok(n) = self.link.queue.try_reserve_many(run) {
            self.reserved += n;
            self.runs += 1;
            if self.runs == RUNS_BEFORE_YIELD {
                self.runs = 0;
                self.flush();
                tokio::task::yield_now().await;
            }
            return;
        }
        self.runs = 0;
        // The items held here may be what the consumers need to make room: pass them on first.
        self.flush();
        match self.link.queue.reserve().await {
            // Carried in `reserved`, with the run's other places.
            Ok(place) => place.forget(),
            Err(_) => unreachable!("a link closes only once its last producer is gone"),
        }
        self.reserved += 1;
        // Served in line: the places freed with this one are likely free still.
        if run > 1 {
            self.reserved += self.link.queue.try_reserve_many(run - 1).unwrap_or(0);
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
            self.link.queue.release(1);
        }
    }

    /// [`flush`](Producer::flush), and gives back the places reserved for items not yet made: for when
    /// this producer is about to wait for its own input, which may take a while.
    pub(crate) fn idle(&mut self) {
        self.flush_keeping(0);
    }

    /// [`flush`](Producer::flush), keeping only the one place reserved for the item being made: for when
    /// that item has to wait, so that this producer holds no other places meanwhile.
    pub(crate) fn flush_keeping_one(&mut self) {
        self.flush_keeping(1);
    }

    /// Queues the local batch and gives back every reserved place but `keep`, under one lock.
    fn flush_keeping(&mut self, keep: usize) {
        let unused = (self.reserved - self.batch.len()).saturating_sub(keep);
        if self.batch.is_empty() && unused == 0 {
            return;
        }
        self.reserved -= self.batch.len() + unused;
        let queued = self
            .link
            .queue
            .push_many_and_release(&mut self.batch, unused);
        debug_assert!(queued, "a link closes only once its last producer is gone");
    }

    /// Queues the local batch and wakes a consumer.
    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.reserved -= self.batch.len();
        let queued = self.link.queue.push_many(&mut self.batch);
        debug_assert!(queued, "a link closes only once its last producer is gone");
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.idle();
        // The last one out, its batch queued, closes the link (invariant 2).
        if self.link.producers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.link.queue.close();
        }
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::*;
    use futures_util::FutureExt;

    /// Two producers on their own threads push one item each and leave, while a consumer takes, gives
    /// back and returns places with its next take: every item arrives exactly once, the end is seen
    /// only after both, and every place is back at the end (invariants 1 to 3).
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
            let mut input = link.consumer();
            let mut seen = Vec::new();
            let mut taken = VecDeque::new();
            let mut gave_back = false;
            // The places of what the consumer saw are freed with its next take, as a worker's are.
            let mut done = 0;
            loop {
                match input.done_and_try_take(std::mem::take(&mut done), 2, false, &mut taken) {
                    Some(true) => {
                        if !gave_back && taken.len() == 2 {
                            // Keep the first, hand the second back: it keeps its place and its turn.
                            let first = taken.pop_front().unwrap();
                            input.give_back(&mut taken);
                            taken.push_back(first);
                            gave_back = true;
                        }
                        done = taken.len();
                        seen.extend(taken.drain(..));
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
            assert!(link.queue.slots_home(), "every place came back");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A producer that never has to wait for a place (a link of a million, 100,000 items) still
    /// yields to its runtime every `RUNS_BEFORE_YIELD` runs: another task on its thread ticks while
    /// it produces, where without the yield it would tick only once the producer is done.
    #[tokio::test(flavor = "current_thread")]
    async fn a_producer_that_never_waits_still_lets_its_thread_run_other_tasks() {
        let link = Link::<u32>::new(1_000_000, 1);
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut out = link.producer();
        let produced = tokio::spawn(async move {
            for item in 0..100_000 {
                out.reserve().await;
                out.push(item);
            }
            out.flush();
            ticks.load(Ordering::Relaxed)
        });
        let ticked = produced.await.unwrap();
        ticker.abort();
        // 100,000 items in runs of 16 are 6,250 runs: a yield every 128 of them.
        assert!(
            ticked >= 40,
            "the other task ticked {ticked} times while the producer ran"
        );
    }

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
                let (mut input, in_use) = (link.consumer(), in_use.clone());
                consumers.push(tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut taken = VecDeque::new();
                    let mut turn = c;
                    while input
                        .take(1 + turn % MAX_BATCH, turn % 2 == 0, &mut taken)
                        .await
                    {
                        turn += 1;
                        if turn % 5 == 0 && taken.len() > 1 {
                            // Keep the first, give the rest back.
                            let first = taken.pop_front().unwrap();
                            input.give_back(&mut taken);
                            taken.push_back(first);
                        }
                        let n = taken.len();
                        seen.extend(taken.drain(..));
                        in_use.fetch_sub(n, Ordering::SeqCst);
                        input.done(n);
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
