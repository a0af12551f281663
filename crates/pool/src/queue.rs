//! The pool's queue: accepted jobs in order, and the workers parked waiting for one.
//!
//! Its bound is not here: a submitter takes a place in the pool's `slots` before it pushes, and a
//! worker gives the place back when it takes the job, so the queue only ever holds what was
//! accepted, and its memory follows what it holds, not its bound.
//!
//! # Invariants
//!
//! Everything is under one lock, with no atomics of its own; no waker is woken and no item dropped
//! while it is held (bounded-sync's rule).
//!
//! 1. Every item pushed is taken exactly once, by one worker, in order, or handed back by `drain`.
//! 2. A worker is *parked* exactly when its key is in `idle` (its waker stored). It parks only after
//!    finding the queue empty, under the lock, and after its `stop` check (so a shrink that sets its
//!    target and then wakes the parked workers under this lock is never missed).
//! 3. `searching` counts workers woken (or new) that have not looked at the queue yet. A push, or a
//!    take that leaves items behind, wakes a parked worker only when none is searching. So a queued
//!    item always has a worker coming: a searching one, or, with none parked, every worker is busy or
//!    between jobs and looks before it parks. A run of pushes wakes one worker, which passes the
//!    search on as it takes a job, rather than one worker per push.
//! 4. After `close`, no push is accepted, and a worker that finds the queue empty ends; `close` and
//!    `wake_all` wake every parked worker, each counted as searching until it looks.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bounded_sync::{Mutex, MutexGuard};

pub(crate) struct JobQueue<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    items: VecDeque<T>,
    /// Keys of parked workers.
    idle: Vec<usize>,
    /// A parked worker's waker, by its key.
    wakers: Vec<Option<Waker>>,
    free_keys: Vec<usize>,
    searching: usize,
    closed: bool,
}

/// A worker's place at the queue.
#[derive(Debug)]
pub(crate) struct Seat {
    key: usize,
    parked: bool,
    /// Counted in `searching`. A new worker starts searching: it looks at its first poll.
    searching: bool,
}

/// What a worker gets from [`JobQueue::poll_take`].
pub(crate) enum Took<T> {
    Job(T),
    /// Closed and empty: the pool is draining or stopped.
    Closed,
    /// The worker's `stop` check said so (it retires).
    Stop,
}

impl<T> State<T> {
    /// Wakes one parked worker unless one is searching (invariant 3).
    fn search(&mut self) -> Option<Waker> {
        if self.searching > 0 {
            return None;
        }
        let key = self.idle.pop()?;
        self.searching += 1;
        self.wakers[key].take()
    }

    /// Wakes every parked worker, each counted as searching (invariant 4).
    fn unpark_all(&mut self) -> Vec<Waker> {
        self.searching += self.idle.len();
        let wakers = &mut self.wakers;
        (self.idle.drain(..))
            .filter_map(|key| wakers[key].take())
            .collect()
    }
}

impl<T> JobQueue<T> {
    pub(crate) fn new() -> Self {
        JobQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                idle: Vec::new(),
                wakers: Vec::new(),
                free_keys: Vec::new(),
                searching: 0,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock()
    }

    /// A place for a new worker, counted as searching until its first look.
    pub(crate) fn seat(&self) -> Seat {
        let mut state = self.lock();
        state.searching += 1;
        let key = match state.free_keys.pop() {
            Some(key) => key,
            None => {
                state.wakers.push(None);
                state.wakers.len() - 1
            }
        };
        Seat {
            key,
            parked: false,
            searching: true,
        }
    }

    /// A worker is gone, whether it ended or was dropped while parked or searching.
    pub(crate) fn leave(&self, seat: &Seat) {
        let mut state = self.lock();
        let woken = seat.parked && state.wakers[seat.key].is_none();
        if seat.searching || woken {
            state.searching -= 1;
        }
        if seat.parked && !woken {
            state.idle.retain(|&key| key != seat.key);
            state.wakers[seat.key] = None;
        }
        state.free_keys.push(seat.key);
    }

    /// Queues an item, or hands it back once the queue is closed.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut state = self.lock();
        if state.closed {
            return Err(item);
        }
        state.items.push_back(item);
        let waker = state.search();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Takes the next item, parking the worker while there is none. `stop` is asked first, under the
    /// lock (invariant 2).
    pub(crate) fn poll_take(
        &self,
        seat: &mut Seat,
        cx: &mut Context<'_>,
        stop: impl FnOnce() -> bool,
    ) -> Poll<Took<T>> {
        let mut state = self.lock();
        if seat.parked {
            match &mut state.wakers[seat.key] {
                // Still parked: nobody woke it, this poll is spurious.
                Some(stored) => {
                    if !stored.will_wake(cx.waker()) {
                        *stored = cx.waker().clone();
                    }
                    return Poll::Pending;
                }
                // Woken, and counted as searching by whoever woke it.
                None => {
                    seat.parked = false;
                    seat.searching = true;
                }
            }
        }
        if seat.searching {
            seat.searching = false;
            state.searching -= 1;
        }
        if stop() {
            return Poll::Ready(Took::Stop);
        }
        if let Some(item) = state.items.pop_front() {
            let pass_on = if state.items.is_empty() {
                None
            } else {
                state.search()
            };
            drop(state);
            if let Some(waker) = pass_on {
                waker.wake();
            }
            return Poll::Ready(Took::Job(item));
        }
        if state.closed {
            return Poll::Ready(Took::Closed);
        }
        state.wakers[seat.key] = Some(cx.waker().clone());
        state.idle.push(seat.key);
        seat.parked = true;
        Poll::Pending
    }

    /// Wakes every parked worker to look again (after a shrink, to check whether to retire).
    pub(crate) fn wake_all(&self) {
        let wakers = self.lock().unpark_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Refuses later pushes; workers end once the queue is empty.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let wakers = state.unpark_all();
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
    }

    /// [`close`](JobQueue::close), and takes every item still queued (the caller drops them).
    pub(crate) fn drain(&self) -> VecDeque<T> {
        let mut state = self.lock();
        state.closed = true;
        let items = std::mem::take(&mut state.items);
        let wakers = state.unpark_all();
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        items
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::{JobQueue, Seat, Took};
    use bounded_sync::Arc;
    use bounded_sync::atomic::{AtomicBool, Ordering};
    use std::future::poll_fn;

    /// A worker loop: takes items until the queue closes or `stop` says so, then leaves.
    fn worker(queue: Arc<JobQueue<u32>>, stop: Arc<AtomicBool>) -> Vec<u32> {
        let mut seat: Seat = queue.seat();
        let mut seen = Vec::new();
        loop {
            let took = loom::future::block_on(poll_fn(|cx| {
                queue.poll_take(&mut seat, cx, || stop.load(Ordering::Acquire))
            }));
            match took {
                Took::Job(item) => seen.push(item),
                Took::Closed | Took::Stop => break,
            }
        }
        queue.leave(&seat);
        seen
    }

    /// Two workers, two pushes, then a close: every item is taken exactly once, both workers end,
    /// and nothing is left parked or searching (invariants 1 to 4).
    #[test]
    fn every_item_is_taken_once_and_every_worker_ends_at_the_close() {
        loom::model(|| {
            let queue = Arc::new(JobQueue::new());
            let stop = Arc::new(AtomicBool::new(false));
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (queue, stop) = (queue.clone(), stop.clone());
                    loom::thread::spawn(move || worker(queue, stop))
                })
                .collect();
            queue.push(1).unwrap();
            queue.push(2).unwrap();
            queue.close();
            assert_eq!(queue.push(3), Err(3), "a closed queue refuses");
            let mut seen: Vec<u32> = workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, [1, 2]);
            let state = queue.lock();
            assert_eq!((state.searching, state.idle.len()), (0, 0));
        });
    }

    /// With no close to wake it, a parked worker is woken by the pushes themselves: it takes both
    /// items whichever way its parking and the pushes interleave (invariant 3).
    #[test]
    fn a_push_wakes_a_parked_worker() {
        loom::model(|| {
            let queue = Arc::new(JobQueue::new());
            let w = {
                let queue = queue.clone();
                loom::thread::spawn(move || {
                    let mut seat = queue.seat();
                    let mut taken = 0;
                    loop {
                        let took = loom::future::block_on(poll_fn(|cx| {
                            queue.poll_take(&mut seat, cx, || taken == 2)
                        }));
                        match took {
                            Took::Job(_) => taken += 1,
                            Took::Closed | Took::Stop => break,
                        }
                    }
                    queue.leave(&seat);
                })
            };
            queue.push(1).unwrap();
            queue.push(2).unwrap();
            w.join().unwrap();
            let state = queue.lock();
            assert!(state.items.is_empty());
            assert_eq!((state.searching, state.idle.len()), (0, 0));
        });
    }

    /// A stop (a shrink) set and then announced with `wake_all` reaches a worker however the two
    /// race with its parking: the worker ends without a close (invariant 2).
    #[test]
    fn a_stop_announced_with_wake_all_is_never_missed() {
        loom::model(|| {
            let queue = Arc::new(JobQueue::new());
            let stop = Arc::new(AtomicBool::new(false));
            let w = {
                let (queue, stop) = (queue.clone(), stop.clone());
                loom::thread::spawn(move || worker(queue, stop))
            };
            stop.store(true, Ordering::Release);
            queue.wake_all();
            assert!(w.join().unwrap().is_empty());
            let state = queue.lock();
            assert_eq!((state.searching, state.idle.len()), (0, 0));
        });
    }
}
