//! The one bounded queue under `bounded`'s pool and pipeline stages: its places, the items queued in
//! order, the producers waiting in line for a place and the consumers parked waiting for an item,
//! under one lock.
//!
//! A producer reserves a place before its item exists, then pushes the item into it; the bound is on
//! places, not storage: the deque holds only what was pushed, so its memory follows what it holds,
//! not its capacity. Consumers free places in one of two ways:
//!
//! - a pool's worker takes one item at a time with [`Queue::poll_take`], which frees its place at
//!   once (the pool's workers bound what is running); a worker whose jobs finish at once (on a
//!   multi-thread runtime, also quickly) takes a run of them with
//!   [`Queue::release_and_try_take_many`], whose places it frees with the next take;
//! - a pipeline stage's worker takes a batch with [`Queue::poll_take_many`] or
//!   [`Queue::try_take_many`] and frees the places with [`Queue::release`] once the items have left
//!   its hands, so that the queue's capacity bounds what is queued and what is being worked on. It can
//!   [`give_back`](Queue::give_back) items it has not started; they keep their places.
//!
//! Batches move whole: pushing a batch into an empty queue ([`Queue::push_many`]), or taking all of
//! the queue into an empty batch, swaps the two buffers, so one lock and one wake-up serve many items
//! and no item is copied.
//!
//! A place reserved one at a time is a [`Place`]: pushing into it fills it, dropping it unfilled
//! frees it, so no path between the reservation and the push (a panic, a cancelled future) can lose
//! a place. A producer that holds a run of places ([`Queue::try_reserve_many`], or a [`Place`] kept
//! with [`Place::forget`]) carries them as a count instead, and frees what it does not fill with
//! [`Queue::release`]: one number rather than a guard per place.
//!
//! # Invariants
//!
//! Everything is under one lock, with no atomics of its own; no waker is woken and no item dropped
//! while it is held (the crate's one rule for locks).
//!
//! 1. Every item pushed is taken exactly once, by one consumer, in order (a give-back puts items back
//!    at the front in their order), or handed back by `drain`.
//! 2. `taken` counts the places held: reserved by a producer that has not pushed yet, holding a
//!    queued item, or, for items taken by `poll_take_many` or `try_take_many`, in a consumer's hands
//!    until `release`. It never exceeds `capacity`. A place freed while a producer waits goes straight
//!    to the first in line (`Granted`, `taken` unchanged), so waiting producers are served in order
//!    and a `try_reserve` never overtakes them.
//! 3. A consumer is *parked* exactly when its key is in `idle` (its waker stored). It parks only
//!    after finding the queue empty, under the lock, and after its `stop` check (so a shrink that sets
//!    its target and then wakes the parked workers under this lock is never missed).
//! 4. `searching` counts consumers woken (or new) that have not looked at the queue yet. A push wakes
//!    a parked consumer only when none is searching. A consumer that takes from the queue and leaves
//!    items behind owes them a consumer. `poll_take_many` and `try_take_many` always pay at once: they
//!    wake a parked consumer unless one is searching; so does a give-back. A pool's worker pays at
//!    once if its previous job waited (the next one likely will too), or under invariant 7. Otherwise
//!    it is told it owes one (`Took::Job(true)`): it comes back for the next item as soon as its
//!    job finishes, and if its job waits first (its first poll is `Pending`) it calls
//!    [`Queue::pass_on`] before it waits, which does the same wake then. So a queued item always has a
//!    consumer coming: a searching one, a worker whose job has not waited yet, or, with none parked,
//!    every consumer is busy or between items and looks before it parks. A run of pushes wakes one
//!    consumer, and a run of jobs that finish at their first poll wakes no other: the worker runs them
//!    one after another, with no hand-over between threads.
//! 5. After `refuse`, no place is reserved and every waiting producer is refused; once `taken` is
//!    then 0 (every reserved place pushed and taken, or given back), the queue closes: no push is
//!    accepted, and a consumer that finds it empty sees the end. So an item whose place was reserved
//!    before the refusal is never refused by the queue. `drain` refuses and closes at once, and nothing
//!    is queued after it: a push is handed back with its place freed (`push_or_keep` hands it back
//!    with its place still held, for the caller to free once it has counted the item), a give-back
//!    stays with the consumer, places held; `drain_counted` counts the items it takes before their
//!    places come back, under the lock; `close` closes at once and leaves what is queued to the
//!    consumers (a pipeline's link, once its last producer has pushed its last batch). Closing wakes
//!    every parked consumer, each counted as searching until it looks.
//! 6. A producer's wait dropped while in line is marked `Left` and skipped (its key freed) when the
//!    line reaches it; dropped after its grant, it frees the place again (which may grant the next in
//!    line).
//! 7. A job that never returns `Pending` (it burns CPU) holds its worker's thread until it ends. So a
//!    worker that takes an item and leaves others behind also wakes a parked worker at once when
//!    `hand_on_now` says so: on a multi-thread runtime, while fewer of the pool's workers are being
//!    polled than the runtime has threads, and when the job may compute (the worker's last job held
//!    its thread for `LONG_POLL` or more at its first poll, or the worker was just woken with no
//!    quick job before it). It then steps aside once before it runs its job (`handed_on`), so that
//!    the idle thread takes it while the worker it woke runs here. After a quick job it does not ask:
//!    a run of quick jobs stays on one thread, and a job that computes after them holds back the
//!    items behind it only until it ends. A batch take that wakes a consumer for the items it left
//!    sets `handed_on` too: a pipeline's worker whose items may compute steps aside on it.
//! 8. Batch takes (`poll_take_many`, `try_take_many`, `release_and_try_take_many`) number the items
//!    they take, under the lock, in the order the items leave the queue, from 0 and across every
//!    consumer: each tells its consumer the number of its batch's first item (`first_taken`; the
//!    others follow it). Given-back items are numbered again when they are taken again, so the
//!    numbers are the items' order in the queue only for consumers that never give back (a
//!    `map_ordered` stage's workers, which number their items by it).
//!
//! # Examples
//!
//! A producer reserves a place and pushes; a consumer takes the item and, done with it, frees its
//! place:
//!
//! ```
//! use bounded_sync::queue::Queue;
//! use std::collections::VecDeque;
//!
//! let queue = Queue::new(2);
//! let mut seat = queue.seat();
//! assert_eq!(queue.try_reserve_many(4), Ok(2)); // as many as are free, up to 4
//! queue.push_many(&mut vec!["a", "b"]);
//! let mut hands = VecDeque::new();
//! assert_eq!(queue.try_take_many(&mut seat, 16, 1, &mut hands), Some(true));
//! assert_eq!(hands, ["a", "b"]);
//! assert!(queue.try_reserve().is_err(), "both places are in the consumer's hands");
//! queue.release(hands.drain(..).count());
//! assert!(queue.slots_home());
//! queue.leave(&seat);
//! ```

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use crate::line::{Answer, Leave, Line};
use crate::{Mutex, MutexGuard};

/// A bounded queue of places, items, waiting producers and parked consumers: see the
/// [module docs](self).
///
/// On a cache line of its own (two, with the adjacent-line prefetch): the lock every producer and
/// consumer takes shares it with no counter that they move.
#[repr(align(128))]
pub struct Queue<T> {
    state: Mutex<State<T>>,
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Queue")
            .field("capacity", &state.capacity)
            .field("taken", &state.taken)
            .field("queued", &state.items.len())
            .field("closed", &state.closed)
            .finish()
    }
}

struct State<T> {
    items: VecDeque<T>,
    /// Keys of parked consumers.
    idle: Vec<usize>,
    /// A parked consumer's waker, by its key.
    wakers: Vec<Option<Waker>>,
    free_keys: Vec<usize>,
    searching: usize,
    closed: bool,
    capacity: usize,
    /// Places reserved, holding an item, or in a consumer's hands (invariant 2).
    taken: usize,
    /// No place is reserved any more (invariant 5).
    refusing: bool,
    /// `drain` took what was queued: nothing is queued again (invariant 5).
    drained: bool,
    /// Items taken so far by batch takes: the number the next batch's first item gets (invariant 8).
    numbered: u64,
    /// Producers waiting for a place (invariants 2 and 6).
    line: Line,
}

/// A consumer's place at the queue, from [`Queue::seat`]; it must be handed to [`Queue::leave`]
/// when the consumer ends or is dropped.
#[derive(Debug)]
pub struct Seat {
    key: usize,
    parked: bool,
    /// Counted in `searching`. A new consumer starts searching: it looks at its first poll.
    searching: bool,
    /// Its last job waited: it passes the search on as it takes the next one (invariant 4).
    pub eager: bool,
    /// It woke another consumer as it took its job or batch: on a multi-thread runtime it steps
    /// aside once before it runs a job that may compute (invariant 7). Set by each take; the
    /// consumer clears it.
    pub handed_on: bool,
    /// Its last [`Queue::poll_take`] freed a place a producer was waiting for: the queue is full
    /// and its producers wait on it. Set by each `poll_take`.
    pub saturated: bool,
    /// The number of the first item of the last batch this consumer took (invariant 8).
    pub first_taken: u64,
}

/// What a worker's [`Queue::poll_take`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Took {
    /// An item, put where the worker asked, and whether the worker owes the items left behind it
    /// a [`Queue::pass_on`] if its job waits (invariant 4).
    Job(bool),
    /// Closed and empty: the pool is draining or stopped.
    Closed,
    /// The worker's `stop` check said so (it retires).
    Stop,
}

/// Why no place was reserved.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every place is taken (only from the `try_` forms).
    Full,
    /// The queue refuses new items: it was refused, drained or closed.
    Closed,
}

/// Wakers collected under the lock, woken after it is released.
#[derive(Default)]
struct Wakes {
    worker: Option<Waker>,
    submitter: Option<Waker>,
    all: Vec<Waker>,
}

impl Wakes {
    // Inlined and by reference: a call that took the wakers by value would copy them through
    // memory moments after they were stored, which the core cannot forward from its store buffer.
    #[inline]
    fn wake(&mut self) {
        if let Some(waker) = self.worker.take() {
            waker.wake();
        }
        if let Some(waker) = self.submitter.take() {
            waker.wake();
        }
        if !self.all.is_empty() {
            self.all.drain(..).for_each(Waker::wake);
        }
    }
}

impl<T> State<T> {
    /// Wakes one parked consumer unless one is searching (invariant 4).
    fn search(&mut self) -> Option<Waker> {
        if self.searching > 0 {
            return None;
        }
        let key = self.idle.pop()?;
        self.searching += 1;
        self.wakers[key].take()
    }

    /// Wakes every parked consumer, each counted as searching (invariant 5).
    fn unpark_all(&mut self, wakes: &mut Wakes) {
        self.searching += self.idle.len();
        let wakers = &mut self.wakers;
        wakes
            .all
            .extend((self.idle.drain(..)).filter_map(|key| wakers[key].take()));
    }

    /// `n` places are free: each goes to the first producer in line, or back (invariant 2), and the
    /// queue closes if they were the last out after a refusal (invariant 5).
    #[inline(always)]
    fn free_slots(&mut self, mut n: usize, wakes: &mut Wakes) {
        while n > 0 {
            let Some(waker) = self.line.grant_first() else {
                break;
            };
            match wakes.submitter {
                None => wakes.submitter = Some(waker),
                Some(_) => wakes.all.push(waker),
            }
            n -= 1;
        }
        if n > 0 {
            self.taken -= n;
            self.close_if_home(wakes);
        }
    }

    fn close_if_home(&mut self, wakes: &mut Wakes) {
        if self.refusing && self.taken == 0 {
            self.close(wakes);
        }
    }

    fn close(&mut self, wakes: &mut Wakes) {
        if !self.closed {
            self.closed = true;
            self.unpark_all(wakes);
        }
    }

    /// Refuses every producer in line (invariant 5).
    fn refuse_line(&mut self, wakes: &mut Wakes) {
        self.line.refuse_all(&mut wakes.all);
    }

    /// Up to `most` free places, if there is one and nobody is in line for it (invariant 2).
    fn try_reserve(&mut self, most: usize) -> Result<usize, Refused> {
        self.room()?;
        let n = (self.capacity - self.taken).min(most);
        self.taken += n;
        Ok(n)
    }

    /// Whether a place can be reserved now without waiting: one is free and nobody is in line.
    fn room(&self) -> Result<(), Refused> {
        if self.refusing {
            return Err(Refused::Closed);
        }
        if self.taken < self.capacity && self.line.is_empty() {
            return Ok(());
        }
        Err(Refused::Full)
    }

    /// Where a consumer stands as it polls: `None` if it is still parked (nobody woke it, the poll is
    /// spurious), having stored `cx`'s waker; otherwise whether it was searching, now that it looks.
    fn arrive(&mut self, seat: &mut Seat, waker: Option<&Waker>) -> Option<bool> {
        if seat.parked {
            match (&mut self.wakers[seat.key], waker) {
                (Some(stored), Some(waker)) => {
                    if !stored.will_wake(waker) {
                        *stored = waker.clone();
                    }
                    return None;
                }
                // Still parked, but looking without waiting: it leaves the idle list.
                (stored @ Some(_), None) => {
                    *stored = None;
                    self.idle.retain(|&key| key != seat.key);
                }
                // Woken, and counted as searching by whoever woke it.
                (None, _) => seat.searching = true,
            }
            seat.parked = false;
        }
        let was_searching = std::mem::take(&mut seat.searching);
        if was_searching {
            self.searching -= 1;
        }
        Some(was_searching)
    }

    fn park(&mut self, seat: &mut Seat, waker: &Waker) {
        self.wakers[seat.key] = Some(waker.clone());
        self.idle.push(seat.key);
        seat.parked = true;
    }

    /// Takes up to `max` items into `into`, at most the share of one of `share_among` consumers,
    /// keeping their places (invariant 2): `Some(waker)` of a consumer to pass the rest on to
    /// (invariant 4) if it took any, `None` if the queue is empty.
    fn take_many(
        &mut self,
        seat: &mut Seat,
        max: usize,
        share_among: usize,
        into: &mut VecDeque<T>,
    ) -> Option<Option<Waker>> {
        let queued = self.items.len();
        if queued == 0 {
            return None;
        }
        let share = queued.div_ceil(share_among.max(1)).clamp(1, max.max(1));
        seat.first_taken = self.numbered;
        self.numbered += share as u64;
        if share == queued && into.is_empty() {
            // All of it, into an empty batch: the two buffers change places, no item is copied.
            std::mem::swap(into, &mut self.items);
        } else {
            into.reserve(share);
            // One item at a time: `extend` over a `Drain` of a `VecDeque` is several times slower.
            for item in std::iter::from_fn(|| self.items.pop_front()).take(share) {
                into.push_back(item);
            }
        }
        Some(match self.items.is_empty() {
            true => None,
            false => self.search(),
        })
    }
}

impl<T> Queue<T> {
    /// A queue of `capacity` places (at least one: 0 is taken as 1; the pool and the pipeline refuse
    /// 0 before they get here).
    pub fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                idle: Vec::new(),
                wakers: Vec::new(),
                free_keys: Vec::new(),
                searching: 0,
                closed: false,
                capacity: capacity.max(1),
                taken: 0,
                refusing: false,
                drained: false,
                numbered: 0,
                line: Line::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock()
    }

    /// Reserves a place now, if one is free and nobody is waiting for one.
    pub fn try_reserve(&self) -> Result<Place<'_, T>, Refused> {
        self.lock().try_reserve(1)?;
        Ok(Place { queue: self })
    }

    /// Reserves a place and queues `make(arg)` in it, under one lock, if a place is free and nobody
    /// waits in line for one; otherwise hands `arg` back with the reason ([`Refused::Full`] or
    /// [`Refused::Closed`]). Wakes a consumer as [`push`](Queue::push) does.
    ///
    /// One lock instead of two for a producer that has its item's makings at hand: a pool's
    /// submitter builds its job only once it knows there is room. `make` runs under the queue's lock,
    /// so it must be short and must not touch this queue or run code that might (no user code, no
    /// wake-up). If it panics, no place is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_sync::queue::{Queue, Refused};
    ///
    /// let queue = Queue::new(1);
    /// assert!(queue.try_push_with(7, |n| n * 6).is_ok());
    /// assert!(matches!(queue.try_push_with(8, |n| n * 6), Err((Refused::Full, 8))));
    /// ```
    pub fn try_push_with<A>(&self, arg: A, make: impl FnOnce(A) -> T) -> Result<(), (Refused, A)> {
        let mut state = self.lock();
        if let Err(refused) = state.room() {
            return Err((refused, arg));
        }
        let item = make(arg);
        state.taken += 1;
        Self::queue(state, item);
        Ok(())
    }

    /// Reserves as many places as are free now, up to `most` (at least one), if nobody is waiting
    /// for one: how many it reserved, which the caller fills with [`push_many`](Queue::push_many) or
    /// frees with [`release`](Queue::release).
    pub fn try_reserve_many(&self, most: usize) -> Result<usize, Refused> {
        self.lock().try_reserve(most.max(1))
    }

    /// Reserves a place, waiting in line for one; [`try_reserve`](Queue::try_reserve) never waits.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe (invariant 6): dropped while in line it leaves the line, and dropped after a place
    /// was granted to it but before it saw the grant, it frees the place again.
    pub fn reserve(&self) -> Reserve<'_, T> {
        Reserve {
            queue: self,
            key: None,
        }
    }

    /// Frees `n` places: reserved and not used, or holding items a consumer took with
    /// [`poll_take_many`](Queue::poll_take_many) and is done with. Each goes to the first producer
    /// in line, if any.
    pub fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut wakes = Wakes::default();
        self.lock().free_slots(n, &mut wakes);
        wakes.wake();
    }

    /// Whether the queue refuses new items.
    pub fn is_refusing(&self) -> bool {
        self.lock().refusing
    }

    /// Every place is free: nothing is queued, reserved or in a consumer's hands.
    pub fn slots_home(&self) -> bool {
        self.lock().taken == 0
    }

    /// A place for a new consumer, counted as searching until its first look: for a consumer that
    /// looks as soon as it runs (a pool's worker), so that a push meanwhile wakes no other.
    pub fn seat(&self) -> Seat {
        self.new_seat(true)
    }

    /// A place for a new consumer that may not look for a while (it waits for something else
    /// first): not counted as searching, so that a push meanwhile wakes a parked consumer.
    pub fn idle_seat(&self) -> Seat {
        self.new_seat(false)
    }

    fn new_seat(&self, searching: bool) -> Seat {
        let mut state = self.lock();
        state.searching += usize::from(searching);
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
            searching,
            eager: false,
            handed_on: false,
            saturated: false,
            first_taken: 0,
        }
    }

    /// A consumer is gone, whether it ended or was dropped while parked or searching.
    pub fn leave(&self, seat: &Seat) {
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

    /// Queues an item into a place its caller holds as a count ([`Place::forget`]), or, once the
    /// queue is closed (by `drain`), hands it back and frees the place. [`Place::push`] is the same
    /// for a place held as a guard.
    pub fn push(&self, item: T) -> Result<(), T> {
        let mut state = self.lock();
        if state.closed {
            state.taken -= 1;
            return Err(item);
        }
        Self::queue(state, item);
        Ok(())
    }

    /// Queues `item` in a place already counted, then, with the lock released, wakes the consumer
    /// made to search for it (invariant 4).
    fn queue(mut state: MutexGuard<'_, State<T>>, item: T) {
        state.items.push_back(item);
        let waker = state.search();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Queues every item of `batch`, each into a place its caller holds as a count, and wakes a
    /// consumer.
    /// `batch` is left empty (into an empty queue it swaps buffers with the queue: it then holds the
    /// queue's old buffer). Once the queue is closed it queues nothing, frees the places and leaves
    /// the items in `batch`: `false`.
    pub fn push_many(&self, batch: &mut Vec<T>) -> bool {
        self.push_many_and_release(batch, 0)
    }

    /// [`push_many`](Queue::push_many), then frees `unused` more places the caller holds, as
    /// [`release`](Queue::release) does, under one lock: a producer about to wait for something
    /// else queues what it made and gives back the places it will not fill meanwhile with one lock
    /// instead of two.
    pub fn push_many_and_release(&self, batch: &mut Vec<T>, unused: usize) -> bool {
        if batch.is_empty() {
            self.release(unused);
            return true;
        }
        let mut wakes = Wakes::default();
        let mut state = self.lock();
        let queued = if state.closed {
            state.taken -= batch.len();
            false
        } else {
            if state.items.is_empty() {
                // The batch becomes the queue, and the queue's empty buffer the next batch: no item
                // is copied, nothing is allocated or freed under the lock.
                let empty = Vec::from(std::mem::take(&mut state.items));
                state.items = VecDeque::from(std::mem::replace(batch, empty));
            } else {
                state.items.extend(batch.drain(..));
            }
            wakes.worker = state.search();
            true
        };
        if unused > 0 {
            state.free_slots(unused, &mut wakes);
        }
        drop(state);
        wakes.wake();
        queued
    }

    /// Takes the next item into `into` (which is empty), freeing its place, and parks the worker
    /// while there is none. `stop` is asked first, under the lock (invariant 3). `hand_on_now` is
    /// asked when a worker leaves items behind the one it takes, with whether it was just woken:
    /// whether to wake another worker for them at once (invariant 7). `took` is called under the
    /// lock once an item is taken, before its place is freed: what it counts is seen by whoever
    /// takes that place next, and by anyone who sees what they count after it.
    ///
    /// The item goes into the worker's own place rather than back with the answer: a worker that
    /// runs it from there never copies it through memory it has only just written, which the core
    /// cannot forward from its store buffer and stalls on.
    #[inline]
    pub fn poll_take(
        &self,
        seat: &mut Seat,
        cx: &mut Context<'_>,
        into: &mut Option<T>,
        stop: impl FnOnce() -> bool,
        hand_on_now: impl FnOnce(bool) -> bool,
        took: impl FnOnce(),
    ) -> Poll<Took> {
        debug_assert!(into.is_none(), "a worker takes an item into an empty place");
        let mut state = self.lock();
        let Some(was_searching) = state.arrive(seat, Some(cx.waker())) else {
            return Poll::Pending;
        };
        if stop() {
            return Poll::Ready(Took::Stop);
        }
        if let Some(item) = state.items.pop_front() {
            let mut more = !state.items.is_empty();
            let mut wakes = Wakes::default();
            if more && seat.eager {
                wakes.worker = state.search();
                more = false;
            } else if more && hand_on_now(was_searching) {
                wakes.worker = state.search();
                seat.handed_on = wakes.worker.is_some();
                more = false;
            }
            *into = Some(item);
            took();
            state.free_slots(1, &mut wakes);
            seat.saturated = wakes.submitter.is_some();
            drop(state);
            wakes.wake();
            return Poll::Ready(Took::Job(more));
        }
        if state.closed {
            return Poll::Ready(Took::Closed);
        }
        state.park(seat, cx.waker());
        Poll::Pending
    }

    /// Takes up to `max` items into `into` (no more than the share of one of `share_among`
    /// consumers: queued ÷ `share_among`, rounded up; 1 for as many as `max` allows), keeping their
    /// places until [`release`](Queue::release), and parks the consumer while there is none:
    /// `true` if it took some, `false` once the queue is closed and empty. If it leaves items
    /// behind, it wakes another consumer for them (invariant 4).
    pub fn poll_take_many(
        &self,
        seat: &mut Seat,
        cx: &mut Context<'_>,
        max: usize,
        share_among: usize,
        into: &mut VecDeque<T>,
    ) -> Poll<bool> {
        let mut state = self.lock();
        if state.arrive(seat, Some(cx.waker())).is_none() {
            return Poll::Pending;
        }
        match state.take_many(seat, max, share_among, into) {
            Some(pass_on) => {
                drop(state);
                seat.handed_on = pass_on.is_some();
                pass_on.into_iter().for_each(Waker::wake);
                Poll::Ready(true)
            }
            None if state.closed => Poll::Ready(false),
            None => {
                state.park(seat, cx.waker());
                Poll::Pending
            }
        }
    }

    /// [`poll_take_many`](Queue::poll_take_many) without waiting: `None` if the queue is empty for
    /// now (the consumer is then not parked).
    pub fn try_take_many(
        &self,
        seat: &mut Seat,
        max: usize,
        share_among: usize,
        into: &mut VecDeque<T>,
    ) -> Option<bool> {
        self.release_and_try_take_many(0, seat, max, share_among, into)
    }

    /// Frees `done` places, as [`release`](Queue::release) does, then does what
    /// [`try_take_many`](Queue::try_take_many) does, under one lock: a consumer that runs its items one
    /// after another comes back for the next ones with one lock instead of two.
    pub fn release_and_try_take_many(
        &self,
        done: usize,
        seat: &mut Seat,
        max: usize,
        share_among: usize,
        into: &mut VecDeque<T>,
    ) -> Option<bool> {
        let mut wakes = Wakes::default();
        let mut state = self.lock();
        state.free_slots(done, &mut wakes);
        state.arrive(seat, None);
        let took = state.take_many(seat, max, share_among, into);
        let closed = state.closed;
        drop(state);
        let answer = match took {
            Some(pass_on) => {
                seat.handed_on = pass_on.is_some();
                wakes.worker = pass_on;
                Some(true)
            }
            None => closed.then_some(false),
        };
        wakes.wake();
        answer
    }

    /// Puts items taken with [`poll_take_many`](Queue::poll_take_many) and not started back at the
    /// front of the queue, in their order, for another consumer: they keep their places. After a
    /// [`drain`](Queue::drain) it queues nothing (no consumer would take them): `false`, and the items
    /// stay in `items`, their places still held, for the caller to drop and [`release`](Queue::release).
    pub fn give_back(&self, items: &mut VecDeque<T>) -> bool {
        if items.is_empty() {
            return true;
        }
        let mut state = self.lock();
        if state.drained {
            return false;
        }
        while let Some(item) = items.pop_back() {
            state.items.push_front(item);
        }
        let waker = state.search();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// The caller took an item that others were left behind and its job now waits: wakes a parked
    /// worker for them, unless one is searching or none is left (invariant 4).
    pub fn pass_on(&self) {
        let mut state = self.lock();
        let waker = match state.items.is_empty() {
            true => None,
            false => state.search(),
        };
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes every parked consumer to look again (after a shrink, to check whether to retire).
    pub fn wake_all(&self) {
        let mut wakes = Wakes::default();
        self.lock().unpark_all(&mut wakes);
        wakes.wake();
    }

    /// Refuses new items; the queue closes, and consumers see the end, once every place is free
    /// (invariant 5).
    pub fn refuse(&self) {
        self.refuse_then(State::close_if_home);
    }

    /// Refuses and closes at once, leaving what is queued to the consumers, which see the end once
    /// it is taken (invariant 5). For when every producer has pushed all it will: places still
    /// reserved are freed as they are released; a push after this is handed back.
    pub fn close(&self) {
        self.refuse_then(State::close);
    }

    /// Refuses and closes at once, and takes every item still queued (the caller drops them).
    pub fn drain(&self) -> VecDeque<T> {
        self.drain_counted(|_| {})
    }

    /// As [`drain`](Queue::drain), telling `count` how many items it takes while their places are
    /// still held, under the queue's lock: whoever waits for every place to come home
    /// ([`slots_home`](Queue::slots_home)) then finds them counted. `count` must not block or call
    /// back into the queue.
    pub fn drain_counted(&self, count: impl FnOnce(usize)) -> VecDeque<T> {
        self.refuse_then(|state, wakes| {
            state.drained = true;
            let items = std::mem::take(&mut state.items);
            count(items.len());
            state.taken -= items.len();
            state.close(wakes);
            items
        })
    }

    /// Refuses new items and every producer in line, then runs `then` under the same lock; wakes
    /// whoever it all woke once the lock is released.
    fn refuse_then<R>(&self, then: impl FnOnce(&mut State<T>, &mut Wakes) -> R) -> R {
        let mut wakes = Wakes::default();
        let mut state = self.lock();
        state.refusing = true;
        state.refuse_line(&mut wakes);
        let out = then(&mut state, &mut wakes);
        drop(state);
        wakes.wake();
        out
    }
}

/// A place reserved in a [`Queue`], from [`Queue::try_reserve`] or [`Queue::reserve`]: filled by
/// [`push`](Place::push), freed again when dropped unfilled.
#[derive(Debug)]
#[must_use = "a place is freed again as soon as it is dropped"]
pub struct Place<'a, T> {
    queue: &'a Queue<T>,
}

impl<T> Place<'_, T> {
    /// Queues `item` in this place and wakes a consumer; once the queue is closed (by `drain`), hands
    /// it back and frees the place.
    pub fn push(self, item: T) -> Result<(), T> {
        self.push_or_keep(item).map_err(|(item, place)| {
            drop(place);
            item
        })
    }

    /// As [`push`](Place::push), but once the queue is closed the item comes back with the place
    /// still held: the caller does what must happen before the place counts as free (a pool counts
    /// the job as never started, so that whoever waits for every place to come home, to take a
    /// report, finds the job counted), then drops the place, which frees it.
    pub fn push_or_keep(self, item: T) -> Result<(), (T, Self)> {
        let queue = self.queue;
        let state = queue.lock();
        if state.closed {
            drop(state);
            return Err((item, self));
        }
        std::mem::forget(self);
        Queue::queue(state, item);
        Ok(())
    }

    /// Keeps the place as a count the caller carries: it then fills it with
    /// [`Queue::push`] or [`Queue::push_many`], or frees it with [`Queue::release`].
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl<T> Drop for Place<'_, T> {
    fn drop(&mut self) {
        self.queue.release(1);
    }
}

/// Future of [`Queue::reserve`]: a place, or `Refused::Closed`.
#[derive(Debug)]
pub struct Reserve<'a, T> {
    queue: &'a Queue<T>,
    /// Its key in line, once it has waited.
    key: Option<usize>,
}

impl<'a, T> std::future::Future for Reserve<'a, T> {
    type Output = Result<Place<'a, T>, Refused>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.queue.lock();
        let Some(key) = self.key else {
            match state.try_reserve(1) {
                Err(Refused::Full) => {}
                Err(refused) => return Poll::Ready(Err(refused)),
                Ok(_) => return Poll::Ready(Ok(Place { queue: self.queue })),
            }
            let key = state.line.join(cx.waker());
            drop(state);
            self.key = Some(key);
            return Poll::Pending;
        };
        let answer = std::task::ready!(state.line.poll(key, cx.waker()));
        drop(state);
        self.key = None;
        Poll::Ready(match answer {
            Answer::Granted => Ok(Place { queue: self.queue }),
            Answer::Refused => Err(Refused::Closed),
        })
    }
}

impl<T> Drop for Reserve<'_, T> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut wakes = Wakes::default();
        let mut state = self.queue.lock();
        let left = state.line.leave(key);
        // Granted but never seen: the place goes to the next in line, or back (invariant 6).
        if let Leave::Granted = left {
            state.free_slots(1, &mut wakes);
        }
        drop(state);
        // Dropped outside the lock, as every waker here.
        drop(left);
        wakes.wake();
    }
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use super::{Queue, Refused, Seat, Took};
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    /// A queue of 4 with two workers parked on it, then three items pushed: the first push woke one
    /// worker (`b`, the last to park), the others woke nobody.
    fn two_parked_then_three_pushed() -> (Queue<u32>, Seat, Seat) {
        let queue = Queue::new(4);
        let cx = &mut Context::from_waker(Waker::noop());
        let (mut a, mut b) = (queue.seat(), queue.seat());
        for seat in [&mut a, &mut b] {
            assert!(
                queue
                    .poll_take(seat, cx, &mut None, || false, |_| false, || {})
                    .is_pending()
            );
        }
        for item in [1, 2, 3] {
            queue.try_reserve().unwrap().push(item).unwrap();
        }
        {
            let state = queue.lock();
            assert_eq!(
                (state.searching, state.idle.as_slice()),
                (1, [a.key].as_slice())
            );
        }
        (queue, a, b)
    }

    fn take(queue: &Queue<u32>, seat: &mut Seat) -> (u32, bool) {
        let cx = &mut Context::from_waker(Waker::noop());
        let mut item = None;
        match queue.poll_take(seat, cx, &mut item, || false, |_| false, || {}) {
            Poll::Ready(Took::Job(owed)) => (item.expect("taken into the place"), owed),
            _ => panic!("an item is queued"),
        }
    }

    #[test]
    fn a_worker_whose_last_job_finished_at_once_wakes_nobody_until_its_job_waits() {
        let (queue, a, mut b) = two_parked_then_three_pushed();
        assert_eq!(take(&queue, &mut b), (1, true));
        // Items are left, but `a` stays parked while `b`'s job has not waited.
        assert_eq!(queue.lock().idle, [a.key]);
        assert_eq!(queue.lock().searching, 0);
        // Its job waits: it passes the search on, to `a`.
        queue.pass_on();
        let state = queue.lock();
        assert_eq!((state.searching, state.idle.len()), (1, 0));
        assert!(state.wakers[a.key].is_none(), "a was woken");
    }

    #[test]
    fn a_worker_whose_last_job_waited_wakes_another_as_it_takes_one() {
        let (queue, a, mut b) = two_parked_then_three_pushed();
        b.eager = true;
        assert_eq!(take(&queue, &mut b), (1, false));
        let state = queue.lock();
        assert_eq!((state.searching, state.idle.len()), (1, 0));
        assert!(state.wakers[a.key].is_none(), "a was woken");
    }

    #[test]
    fn a_woken_worker_wakes_another_as_it_takes_one_while_a_thread_is_spare() {
        for spare in [true, false] {
            let (queue, a, mut b) = two_parked_then_three_pushed();
            let cx = &mut Context::from_waker(Waker::noop());
            let mut item = None;
            let Poll::Ready(Took::Job(owed)) = queue.poll_take(
                &mut b,
                cx,
                &mut item,
                || false,
                |searching| searching && spare,
                || {},
            ) else {
                panic!("an item is queued");
            };
            assert_eq!(item.take(), Some(1));
            let state = queue.lock();
            assert_eq!(owed, !spare, "owes a search only when none was made");
            assert_eq!(b.handed_on, spare);
            assert_eq!(state.wakers[a.key].is_none(), spare, "a woken only then");
            drop(state);
            // Back for the next item, no longer just woken, after a quick job: it wakes nobody.
            let took = queue.poll_take(
                &mut b,
                cx,
                &mut item,
                || false,
                |searching| {
                    assert!(!searching, "no longer just woken");
                    false
                },
                || {},
            );
            assert_eq!((took, item), (Poll::Ready(Took::Job(true)), Some(2)));
        }
    }

    #[test]
    fn a_push_after_a_drain_is_handed_back_and_its_slot_freed() {
        let queue = Queue::new(2);
        queue.try_reserve().unwrap().push(1).unwrap();
        // A submitter between its slot and its push when the drain comes.
        let place = queue.try_reserve().unwrap();
        assert_eq!(queue.drain(), [1]);
        assert_eq!(place.push(2), Err(2));
        let state = queue.lock();
        assert!(state.items.is_empty() && state.closed);
        assert_eq!(state.taken, 0, "every slot is free again");
        drop(state);
        assert!(matches!(queue.try_reserve(), Err(Refused::Closed)));
    }

    #[test]
    fn a_push_or_keep_after_a_drain_keeps_its_place_until_the_caller_lets_it_go() {
        let queue = Queue::new(2);
        let place = queue.try_reserve().unwrap();
        assert!(queue.drain().is_empty());
        let Err((item, place)) = place.push_or_keep(2) else {
            panic!("a drained queue takes nothing");
        };
        assert_eq!(item, 2);
        assert!(
            !queue.slots_home(),
            "the place is held until the caller drops it"
        );
        drop(place);
        assert!(queue.slots_home());
        let state = queue.lock();
        assert!(state.items.is_empty() && state.closed);
    }

    #[test]
    fn a_refused_queue_closes_only_once_every_reserved_slot_is_pushed_and_taken() {
        let queue = Queue::new(2);
        let cx = &mut Context::from_waker(Waker::noop());
        let mut seat = queue.seat();
        let place = queue.try_reserve().unwrap();
        queue.refuse();
        assert!(matches!(queue.try_reserve(), Err(Refused::Closed)));
        assert!(!queue.lock().closed, "a slot is still reserved");
        place
            .push(7)
            .expect("a slot reserved before the refusal is honoured");
        let mut item = None;
        assert_eq!(
            queue.poll_take(&mut seat, cx, &mut item, || false, |_| false, || {}),
            Poll::Ready(Took::Job(false))
        );
        assert_eq!(item.take(), Some(7));
        assert!(queue.lock().closed);
        assert_eq!(
            queue.poll_take(&mut seat, cx, &mut item, || false, |_| false, || {}),
            Poll::Ready(Took::Closed)
        );
    }

    #[test]
    fn a_consumer_that_has_not_looked_yet_keeps_a_parked_one_from_being_woken_only_if_announced() {
        for announced in [true, false] {
            let queue = Queue::new(2);
            let cx = &mut Context::from_waker(Waker::noop());
            let mut parked = queue.idle_seat();
            let mut hands = std::collections::VecDeque::new();
            assert!(
                queue
                    .poll_take_many(&mut parked, cx, 2, 1, &mut hands)
                    .is_pending()
            );
            // A consumer busy with something else before its first look.
            let later = if announced {
                queue.seat()
            } else {
                queue.idle_seat()
            };
            queue.try_reserve().unwrap().forget();
            assert!(queue.push_many(&mut vec![1]));
            let woken = queue.lock().wakers[parked.key].is_none();
            assert_eq!(woken, !announced, "the push wakes the parked consumer");
            queue.leave(&later);
            queue.leave(&parked);
        }
    }

    #[test]
    fn batches_move_whole_keep_their_order_and_hold_their_places_until_released() {
        let queue = Queue::new(6);
        let mut seat = queue.idle_seat();
        assert_eq!(queue.try_reserve_many(4), Ok(4));
        let mut batch = vec![1, 2, 3, 4];
        assert!(queue.push_many(&mut batch));
        assert!(batch.is_empty());
        let mut hands = std::collections::VecDeque::new();
        // The share of one of three consumers: 4 queued, so 2.
        assert_eq!(
            queue.try_take_many(&mut seat, 16, 3, &mut hands),
            Some(true)
        );
        assert_eq!(hands, [1, 2]);
        // Give the second back: it goes before the rest, in order.
        let mut back = hands.split_off(1);
        assert!(queue.give_back(&mut back));
        assert_eq!(queue.try_reserve_many(16), Ok(2), "places held: 4 of 6");
        assert_eq!(
            queue.try_take_many(&mut seat, 16, 1, &mut hands),
            Some(true)
        );
        assert_eq!(hands, [1, 2, 3, 4]);
        assert!(!queue.slots_home());
        queue.release(6);
        assert!(
            queue.slots_home(),
            "the two reserved and the four taken are free again"
        );
        queue.close();
        assert_eq!(
            queue.try_take_many(&mut seat, 16, 1, &mut hands),
            Some(false)
        );
        assert_eq!(queue.try_reserve_many(1), Err(Refused::Closed));
        queue.leave(&seat);
    }

    #[test]
    fn batch_takes_number_their_items_in_the_order_they_leave_the_queue() {
        let queue = Queue::new(8);
        let (mut a, mut b) = (queue.idle_seat(), queue.idle_seat());
        let cx = &mut Context::from_waker(Waker::noop());
        let mut hands = std::collections::VecDeque::new();
        assert_eq!(queue.try_reserve_many(5), Ok(5));
        queue.push_many(&mut (0..5).collect());
        // Numbered across consumers and across every batch take: 2 items, then 1, then the rest.
        assert_eq!(queue.try_take_many(&mut a, 2, 1, &mut hands), Some(true));
        assert_eq!((a.first_taken, hands.len()), (0, 2));
        assert_eq!(
            queue.poll_take_many(&mut b, cx, 1, 1, &mut hands),
            Poll::Ready(true)
        );
        assert_eq!(b.first_taken, 2);
        let (taken, done) = (hands.len(), 3);
        assert_eq!(
            queue.release_and_try_take_many(done, &mut a, 16, 1, &mut hands),
            Some(true)
        );
        assert_eq!((a.first_taken, hands.len() - taken), (3, 2));
        assert_eq!(hands, [0, 1, 2, 3, 4]);
        // An empty take numbers nothing: the next item is still the sixth.
        assert_eq!(queue.try_take_many(&mut b, 16, 1, &mut hands), None);
        assert_eq!(queue.try_reserve_many(1), Ok(1));
        queue.push_many(&mut vec![5]);
        assert_eq!(queue.try_take_many(&mut b, 16, 1, &mut hands), Some(true));
        assert_eq!(b.first_taken, 5);
        queue.release(3);
        assert!(queue.slots_home());
        queue.leave(&a);
        queue.leave(&b);
    }

    #[test]
    fn items_given_back_after_a_drain_stay_with_their_consumer_and_keep_their_places() {
        let queue = Queue::new(4);
        let mut seat = queue.idle_seat();
        assert_eq!(queue.try_reserve_many(4), Ok(4));
        assert!(queue.push_many(&mut vec![1, 2, 3, 4]));
        let mut hands = std::collections::VecDeque::new();
        assert_eq!(queue.try_take_many(&mut seat, 3, 1, &mut hands), Some(true));
        assert_eq!(queue.drain(), [4]);
        // A consumer that took items before the drain cannot queue them again: nobody would take
        // them, and their places would never come home.
        assert!(!queue.give_back(&mut hands));
        assert_eq!(hands, [1, 2, 3]);
        assert!(
            !queue.slots_home(),
            "the three in hand still hold their places"
        );
        assert_eq!(
            queue.try_take_many(&mut seat, 16, 1, &mut hands),
            Some(false)
        );
        queue.release(hands.drain(..).count());
        assert!(queue.slots_home());
        queue.leave(&seat);
    }

    #[test]
    fn a_consumer_frees_the_places_of_its_last_run_and_takes_the_next_under_one_lock() {
        let queue: Queue<u32> = Queue::new(3);
        let mut seat = queue.idle_seat();
        let mut hands = std::collections::VecDeque::new();
        assert_eq!(queue.try_reserve_many(3), Ok(3));
        assert!(queue.push_many(&mut vec![1, 2, 3]));
        assert_eq!(
            queue.release_and_try_take_many(0, &mut seat, 16, 1, &mut hands),
            Some(true)
        );
        assert_eq!(hands.drain(..).collect::<Vec<_>>(), [1, 2, 3]);
        // A producer waits in line: the run's places are all held.
        let cx = &mut Context::from_waker(Waker::noop());
        let mut waiting = Box::pin(queue.reserve());
        assert!(waiting.as_mut().poll(cx).is_pending());
        // The consumer comes back with the run done: the first place goes to the producer in line,
        // the others are free, and the queue is empty.
        assert_eq!(
            queue.release_and_try_take_many(3, &mut seat, 16, 1, &mut hands),
            None
        );
        let Poll::Ready(Ok(place)) = waiting.as_mut().poll(cx) else {
            panic!("the producer in line was granted a place");
        };
        place.push(4).unwrap();
        assert_eq!(queue.try_reserve_many(16), Ok(2));
        queue.release(2);
        assert_eq!(
            queue.release_and_try_take_many(0, &mut seat, 16, 1, &mut hands),
            Some(true)
        );
        assert_eq!(hands.drain(..).collect::<Vec<_>>(), [4]);
        // Refused, with every place freed by the consumer's last visit, the queue closes.
        queue.refuse();
        assert_eq!(
            queue.release_and_try_take_many(1, &mut seat, 16, 1, &mut hands),
            Some(false)
        );
        assert!(queue.slots_home());
        queue.leave(&seat);
    }

    #[test]
    fn a_producer_queues_its_batch_and_frees_its_unused_places_under_one_lock() {
        let queue: Queue<u32> = Queue::new(4);
        let mut seat = queue.seat();
        let mut hands = std::collections::VecDeque::new();
        assert_eq!(queue.try_reserve_many(4), Ok(4));
        let cx = &mut Context::from_waker(Waker::noop());
        let mut waiting = Box::pin(queue.reserve());
        assert!(waiting.as_mut().poll(cx).is_pending());
        // Two of the four places hold items; of the other two, the first goes to the producer in
        // line and the second is free.
        assert!(queue.push_many_and_release(&mut vec![1, 2], 2));
        let Poll::Ready(Ok(place)) = waiting.as_mut().poll(cx) else {
            panic!("the producer in line was granted a freed place");
        };
        assert_eq!(queue.try_reserve_many(4), Ok(1), "one place is free");
        queue.release(1);
        assert_eq!(
            queue.release_and_try_take_many(0, &mut seat, 16, 1, &mut hands),
            Some(true)
        );
        assert_eq!(hands.drain(..).collect::<Vec<_>>(), [1, 2]);
        // An empty batch only frees places.
        assert!(queue.push_many_and_release(&mut Vec::new(), 0));
        place.push(3).unwrap();
        assert_eq!(queue.try_reserve_many(4), Ok(1));
        assert!(queue.push_many_and_release(&mut Vec::new(), 1));
        assert_eq!(
            queue.release_and_try_take_many(2, &mut seat, 16, 1, &mut hands),
            Some(true)
        );
        assert_eq!(hands.drain(..).collect::<Vec<_>>(), [3]);
        // Closed: nothing is queued, and the items' places and the unused ones all come back.
        assert_eq!(queue.try_reserve_many(4), Ok(3));
        queue.close();
        let mut late = vec![4, 5];
        assert!(!queue.push_many_and_release(&mut late, 1));
        assert_eq!(late, [4, 5], "the items stay with the producer");
        assert_eq!(
            queue.release_and_try_take_many(1, &mut seat, 16, 1, &mut hands),
            Some(false)
        );
        assert!(queue.slots_home());
        queue.leave(&seat);
    }

    #[test]
    fn a_release_of_several_places_serves_the_producers_in_line_in_order_then_frees_the_rest() {
        let queue: Queue<u32> = Queue::new(3);
        assert_eq!(queue.try_reserve_many(3), Ok(3));
        let cx = &mut Context::from_waker(Waker::noop());
        let mut first = Box::pin(queue.reserve());
        let mut second = Box::pin(queue.reserve());
        assert!(first.as_mut().poll(cx).is_pending());
        assert!(second.as_mut().poll(cx).is_pending());
        assert_eq!(queue.try_reserve_many(1), Err(Refused::Full));
        queue.release(3);
        let Poll::Ready(Ok(first)) = first.as_mut().poll(cx) else {
            panic!("the first in line is served first");
        };
        let Poll::Ready(Ok(second)) = second.as_mut().poll(cx) else {
            panic!("the second in line is served too");
        };
        assert_eq!(queue.try_reserve_many(5), Ok(1), "the third place is free");
        first.forget();
        second.forget();
    }

    #[test]
    fn a_place_dropped_unfilled_is_free_again_and_the_last_one_out_closes_a_refused_queue() {
        let queue: Queue<u32> = Queue::new(1);
        let place = queue.try_reserve().unwrap();
        assert!(matches!(queue.try_reserve(), Err(Refused::Full)));
        drop(place);
        let place = queue
            .try_reserve()
            .expect("the dropped place is free again");
        queue.refuse();
        assert!(!queue.lock().closed, "a place is still held");
        drop(place);
        assert!(queue.lock().closed && queue.slots_home());
    }

    #[test]
    fn a_push_with_fills_a_free_place_in_one_step_and_takes_none_when_refused_or_unmade() {
        let queue: Queue<u32> = Queue::new(2);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            queue.try_push_with(1, |_| -> u32 { panic!("the item could not be made") })
        }));
        assert!(unwound.is_err());
        assert!(queue.slots_home(), "a panic in make takes no place");
        assert!(queue.try_push_with(1, |n| n * 10).is_ok());
        assert_eq!(queue.lock().items, [10]);
        // A producer in line for a place is not overtaken: the place freed goes to it.
        let place = queue.try_reserve().unwrap();
        let mut waiting = Box::pin(queue.reserve());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(place);
        assert!(matches!(
            queue.try_push_with(2, |n| n),
            Err((Refused::Full, 2))
        ));
        assert!(matches!(waiting.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        queue.refuse();
        assert!(matches!(
            queue.try_push_with(3, |n| n),
            Err((Refused::Closed, 3))
        ));
    }

    #[test]
    fn nothing_is_passed_on_when_no_item_is_left() {
        let (queue, a, mut b) = two_parked_then_three_pushed();
        assert_eq!(take(&queue, &mut b), (1, true));
        assert_eq!(take(&queue, &mut b), (2, true));
        assert_eq!(take(&queue, &mut b), (3, false));
        queue.pass_on();
        assert_eq!(queue.lock().idle, [a.key]);
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::{Queue, Refused, Seat, Took};
    use crate::Arc;
    use crate::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::future::poll_fn;
    use std::task::Poll;

    /// A worker loop: takes items until the queue closes or `stop` says so, then leaves.
    fn worker(queue: Arc<Queue<u32>>, stop: Arc<AtomicBool>) -> Vec<u32> {
        let mut seat: Seat = queue.seat();
        let mut seen = Vec::new();
        loop {
            let mut item = None;
            let took = loom::future::block_on(poll_fn(|cx| {
                let stop = || stop.load(Ordering::Acquire);
                queue.poll_take(&mut seat, cx, &mut item, stop, |_| false, || {})
            }));
            match took {
                Took::Job(_) => seen.extend(item),
                Took::Closed | Took::Stop => break,
            }
        }
        queue.leave(&seat);
        seen
    }

    /// A batch consumer's loop: takes up to two items at a time (its share of two consumers), each
    /// held until it is recorded, then frees their places; ends at the close.
    fn batch_consumer(queue: Arc<Queue<u32>>) -> Vec<u32> {
        let mut seat = queue.idle_seat();
        let mut hands = std::collections::VecDeque::new();
        let mut seen = Vec::new();
        while loom::future::block_on(poll_fn(|cx| {
            queue.poll_take_many(&mut seat, cx, 2, 2, &mut hands)
        })) {
            let n = hands.len();
            seen.extend(hands.drain(..));
            queue.release(n);
        }
        queue.leave(&seat);
        seen
    }

    /// Into a queue of two: a batch of two, then, once a place comes free, a batch of one; then the
    /// close.
    fn push_three_in_two_batches_and_close(queue: &Queue<u32>) {
        assert_eq!(queue.try_reserve_many(3), Ok(2), "two places are free");
        assert!(queue.push_many(&mut vec![0, 1]));
        loom::future::block_on(queue.reserve())
            .expect("a place comes free")
            .forget();
        assert!(queue.push_many(&mut vec![2]));
        queue.close();
    }

    /// The three items arrived once each, every place is home, and no consumer is left parked or
    /// searching.
    fn assert_each_item_once_and_nothing_left(queue: &Queue<u32>, mut seen: Vec<u32>) {
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2]);
        let state = queue.lock();
        assert_eq!((state.taken, state.searching, state.idle.len()), (0, 0, 0));
    }

    /// A producer pushes a batch of two into a queue of two, waits in line for a place for a third
    /// (freed only once a consumer is done with an item), pushes it and closes; two consumers park
    /// and take in batches. Every item arrives once, both consumers see the end, every place comes
    /// back, and nothing is left parked or searching: a push, a release and the close each wake a
    /// parked consumer however they interleave with its parking (invariants 1 to 5).
    #[test]
    fn batches_arrive_once_and_parked_consumers_see_every_item_and_the_end() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(2));
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let queue = queue.clone();
                    loom::thread::spawn(move || batch_consumer(queue))
                })
                .collect();
            push_three_in_two_batches_and_close(&queue);
            let seen = consumers
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect();
            assert_each_item_once_and_nothing_left(&queue, seen);
        });
    }

    /// A batch consumer that, finding the queue empty, parks, then looks again without waiting, and
    /// only then waits, as a pipeline stage's worker does on a multi-thread runtime before it waits
    /// for good (its yield between the two is a turn of its scheduler, which loom need not model).
    fn looking_consumer(queue: Arc<Queue<u32>>) -> Vec<u32> {
        let mut seat = queue.idle_seat();
        let mut hands = std::collections::VecDeque::new();
        let mut seen = Vec::new();
        loop {
            let mut took = queue.try_take_many(&mut seat, 2, 1, &mut hands);
            if took.is_none() {
                let parked = loom::future::block_on(poll_fn(|cx| {
                    Poll::Ready(queue.poll_take_many(&mut seat, cx, 2, 1, &mut hands))
                }));
                took = match parked {
                    Poll::Ready(took) => Some(took),
                    Poll::Pending => queue.try_take_many(&mut seat, 2, 1, &mut hands),
                };
            }
            let took = took.unwrap_or_else(|| {
                loom::future::block_on(poll_fn(|cx| {
                    queue.poll_take_many(&mut seat, cx, 2, 1, &mut hands)
                }))
            });
            if !took {
                break;
            }
            let n = hands.len();
            seen.extend(hands.drain(..));
            queue.release(n);
        }
        queue.leave(&seat);
        seen
    }

    /// A producer pushes two batches into a queue of two (the second waits for a place) and closes,
    /// while a consumer parks, looks again without waiting and then waits, each time it finds the
    /// queue empty: every item arrives once, the consumer sees the end, and nothing is left parked
    /// or searching, however the pushes fall between its park, its look and its wait (invariants 1
    /// to 5).
    #[test]
    fn a_consumer_that_parks_then_looks_again_misses_nothing() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(2));
            let consumer = {
                let queue = queue.clone();
                loom::thread::spawn(move || looking_consumer(queue))
            };
            push_three_in_two_batches_and_close(&queue);
            assert_each_item_once_and_nothing_left(&queue, consumer.join().unwrap());
        });
    }

    /// A pool worker on a runtime of one thread: it takes runs with `release_and_try_take_many`,
    /// holding their places until it comes back, and parks with `poll_take` when nothing is queued.
    fn run_worker(queue: Arc<Queue<u32>>) -> Vec<u32> {
        let mut seat = queue.seat();
        let mut hands = std::collections::VecDeque::new();
        let mut seen = Vec::new();
        let mut done = 0;
        loop {
            match queue.release_and_try_take_many(done, &mut seat, 16, 1, &mut hands) {
                Some(true) => {
                    done = hands.len();
                    seen.extend(hands.drain(..));
                    continue;
                }
                Some(false) => break,
                None => done = 0,
            }
            let mut item = None;
            let took = loom::future::block_on(poll_fn(|cx| {
                queue.poll_take(&mut seat, cx, &mut item, || false, |_| false, || {})
            }));
            match took {
                Took::Job(_) => seen.extend(item),
                Took::Closed | Took::Stop => break,
            }
        }
        queue.leave(&seat);
        seen
    }

    /// A producer fills a queue of two, waits in line for a place for a third, pushes it and
    /// refuses more, while a worker takes runs and holds their places until it comes back: the
    /// producer is granted a place by the worker's next take (or its park), every item arrives once,
    /// the worker sees the end, and every place comes back (invariants 1 to 5).
    #[test]
    fn a_run_frees_its_places_when_its_worker_comes_back() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(2));
            let worker = {
                let queue = queue.clone();
                loom::thread::spawn(move || run_worker(queue))
            };
            for item in [0, 1] {
                queue.try_reserve().unwrap().push(item).unwrap();
            }
            loom::future::block_on(queue.reserve())
                .expect("a place comes free")
                .push(2)
                .unwrap();
            queue.refuse();
            let mut seen = worker.join().unwrap();
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2]);
            let state = queue.lock();
            assert_eq!((state.taken, state.searching, state.idle.len()), (0, 0, 0));
        });
    }

    /// A worker gives back two items it took while another thread drains the queue (a pool's abort):
    /// whichever comes first, no item is left queued for nobody, each item is either drained or
    /// still in the worker's hands, and once the worker frees what it holds every place is home
    /// (invariant 5).
    #[test]
    fn a_give_back_racing_a_drain_leaves_nothing_queued() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(3));
            assert_eq!(queue.try_reserve_many(3), Ok(3));
            assert!(queue.push_many(&mut vec![0, 1, 2]));
            let mut seat = queue.idle_seat();
            let mut hands = std::collections::VecDeque::new();
            assert_eq!(queue.try_take_many(&mut seat, 2, 1, &mut hands), Some(true));
            let drainer = {
                let queue = queue.clone();
                loom::thread::spawn(move || queue.drain().into_iter().collect::<Vec<_>>())
            };
            let queued = queue.give_back(&mut hands);
            let mut every = drainer.join().unwrap();
            if queued {
                assert!(hands.is_empty());
            } else {
                assert_eq!(hands, [0, 1], "refused items stay in hand, in order");
                queue.release(hands.len());
                every.extend(hands.drain(..));
            }
            assert!(queue.drain().is_empty(), "nothing queued after the drain");
            every.sort_unstable();
            assert_eq!(every, [0, 1, 2], "each item drained or in hand, once");
            let state = queue.lock();
            assert_eq!((state.taken, state.items.len()), (0, 0));
            drop(state);
            queue.leave(&seat);
        });
    }

    /// What a worker counts in `poll_take`'s `took` is seen by the submitter that takes the place
    /// the take frees: with a queue of one place full, a submitter that gets the place (and so
    /// pushes a second item) always sees the first one counted, so a count of items taken read
    /// after a count of items pushed never shows more queued than the queue holds.
    #[test]
    fn a_take_is_counted_before_its_place_is_free_again() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(1));
            let taken = Arc::new(AtomicUsize::new(0));
            queue.try_reserve().unwrap().push(1).unwrap();
            let worker = {
                let (queue, taken) = (queue.clone(), taken.clone());
                loom::thread::spawn(move || {
                    let mut seat = queue.seat();
                    let mut item = None;
                    let took = loom::future::block_on(poll_fn(|cx| {
                        let took = || {
                            taken.store(1, Ordering::Relaxed);
                        };
                        queue.poll_take(&mut seat, cx, &mut item, || false, |_| false, took)
                    }));
                    assert!(matches!(took, Took::Job(_)) && item == Some(1));
                    queue.leave(&seat);
                })
            };
            match queue.try_reserve() {
                Ok(place) => {
                    // Relaxed: the queue's lock alone orders the count before the place.
                    assert_eq!(
                        taken.load(Ordering::Relaxed),
                        1,
                        "a place freed before its count"
                    );
                    place.push(2).unwrap();
                }
                Err(refused) => assert_eq!(refused, Refused::Full),
            }
            worker.join().unwrap();
        });
    }

    /// Two workers, two pushes, then a refusal: every item is taken exactly once, both workers end
    /// once the slots are free, and nothing is left parked or searching (invariants 1 to 5).
    #[test]
    fn every_item_is_taken_once_and_every_worker_ends_at_the_close() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(2));
            let stop = Arc::new(AtomicBool::new(false));
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (queue, stop) = (queue.clone(), stop.clone());
                    loom::thread::spawn(move || worker(queue, stop))
                })
                .collect();
            for item in [1, 2] {
                queue.try_reserve().unwrap().push(item).unwrap();
            }
            queue.refuse();
            assert!(
                matches!(queue.try_reserve(), Err(Refused::Closed)),
                "a closed queue refuses"
            );
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

    /// With no refusal to wake it, a parked worker is woken by the pushes themselves: it takes both
    /// items whichever way its parking and the pushes interleave (invariant 3).
    #[test]
    fn a_push_wakes_a_parked_worker() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(2));
            let w = {
                let queue = queue.clone();
                loom::thread::spawn(move || {
                    let mut seat = queue.seat();
                    let mut taken = 0;
                    loop {
                        let took = loom::future::block_on(poll_fn(|cx| {
                            queue.poll_take(
                                &mut seat,
                                cx,
                                &mut None,
                                || taken == 2,
                                |_| false,
                                || {},
                            )
                        }));
                        match took {
                            Took::Job(..) => taken += 1,
                            Took::Closed | Took::Stop => break,
                        }
                    }
                    queue.leave(&seat);
                })
            };
            for item in [1, 2] {
                queue.try_reserve().unwrap().push(item).unwrap();
            }
            w.join().unwrap();
            let state = queue.lock();
            assert!(state.items.is_empty());
            assert_eq!((state.searching, state.idle.len()), (0, 0));
        });
    }

    /// Two items pushed while two workers park: the worker that takes the first item waits until the
    /// second is taken by the other. When the second was queued behind the first, the push of the
    /// second woke nobody (a worker was searching), so the first must pass the search on before it
    /// waits; without the pass-on, the model deadlocks (invariant 4).
    #[test]
    fn a_job_that_waits_passes_the_search_on() {
        // Eager workers (their last job waited) pass the search on as they take an item.
        for eager in [false, true] {
            a_job_that_waits_passes_the_search_on_when(eager);
        }
    }

    fn a_job_that_waits_passes_the_search_on_when(eager: bool) {
        the_second_item_is_taken_while_the_first_job_runs(eager, true);
    }

    /// As above, but the first job never waits (it burns CPU until the second is taken), so it never
    /// passes the search on: a worker just woken that takes it, leaving the second queued while a
    /// thread is spare, must wake the other worker as it takes it. Without that, the model
    /// deadlocks (invariant 7).
    #[test]
    fn a_job_that_never_waits_has_the_items_behind_it_taken_while_a_thread_is_spare() {
        the_second_item_is_taken_while_the_first_job_runs(false, false);
    }

    /// Two workers, two items pushed while they park; the first job ends only once the second is
    /// taken. A job that `waits` passes the search on if it owes one (invariant 4); one that does not
    /// relies on a thread being spare, which it always is here (invariant 7).
    fn the_second_item_is_taken_while_the_first_job_runs(eager: bool, waits: bool) {
        loom::model(move || {
            let queue = Arc::new(Queue::new(2));
            let second_taken = Arc::new(loom::sync::Notify::new());
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (queue, second_taken) = (queue.clone(), second_taken.clone());
                    loom::thread::spawn(move || {
                        let mut seat = queue.seat();
                        seat.eager = eager;
                        let mut item = None;
                        let took = loom::future::block_on(poll_fn(|cx| {
                            queue.poll_take(
                                &mut seat,
                                cx,
                                &mut item,
                                || false,
                                |searching| !waits && searching,
                                || {},
                            )
                        }));
                        match (took, item) {
                            (Took::Job(owed), Some(1)) => {
                                if waits && owed {
                                    queue.pass_on();
                                }
                                second_taken.wait();
                            }
                            (Took::Job(_), _) => second_taken.notify(),
                            (Took::Closed | Took::Stop, _) => unreachable!("never closed here"),
                        }
                        queue.leave(&seat);
                    })
                })
                .collect();
            for item in [1, 2] {
                queue.try_reserve().unwrap().push(item).unwrap();
            }
            workers.into_iter().for_each(|w| w.join().unwrap());
            let state = queue.lock();
            assert!(state.items.is_empty());
            assert_eq!((state.searching, state.idle.len(), state.taken), (0, 0, 0));
        });
    }

    /// A stop (a shrink) set and then announced with `wake_all` reaches a worker however the two
    /// race with its parking: the worker ends without a close (invariant 2).
    #[test]
    fn a_stop_announced_with_wake_all_is_never_missed() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(2));
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

    /// A submitter that finds the one slot taken waits in line and is given the slot when a worker
    /// takes the job in it; after the refusal the queue closes only once that second job is taken
    /// too, so the worker sees both (invariants 2 and 5).
    #[test]
    fn a_waiting_submitter_gets_the_slot_a_worker_frees() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(1));
            let stop = Arc::new(AtomicBool::new(false));
            let w = {
                let (queue, stop) = (queue.clone(), stop.clone());
                loom::thread::spawn(move || worker(queue, stop))
            };
            queue.try_reserve().unwrap().push(1).unwrap();
            let place = loom::future::block_on(queue.reserve()).unwrap();
            place.push(2).unwrap();
            queue.refuse();
            assert_eq!(w.join().unwrap(), [1, 2]);
            let state = queue.lock();
            assert_eq!((state.taken, state.closed), (0, true));
        });
    }

    /// A submitter filling the place it reserved as an abort drains the queue, and a reporter that
    /// waits for every place to come home before it reads the counts: it always finds the item
    /// counted, drained or refused, because a refused item comes back with its place still held and
    /// the submitter counts it before it lets the place go.
    #[test]
    fn every_place_home_means_every_refused_item_is_counted() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(1));
            let submitted = Arc::new(AtomicUsize::new(0));
            let counted = Arc::new(AtomicUsize::new(0));
            let submitter = {
                let (queue, submitted, counted) =
                    (queue.clone(), submitted.clone(), counted.clone());
                loom::thread::spawn(move || {
                    let Ok(place) = queue.try_reserve() else {
                        return;
                    };
                    submitted.fetch_add(1, Ordering::SeqCst);
                    if let Err((_refused, place)) = place.push_or_keep(1) {
                        counted.fetch_add(1, Ordering::SeqCst);
                        drop(place);
                    }
                })
            };
            let drained = queue.drain();
            counted.fetch_add(drained.len(), Ordering::SeqCst);
            while !queue.slots_home() {
                loom::thread::yield_now();
            }
            assert_eq!(
                counted.load(Ordering::SeqCst),
                submitted.load(Ordering::SeqCst),
                "every place is home, so every item is counted"
            );
            submitter.join().unwrap();
        });
    }

    /// A drain on a thread of its own, and a reporter that waits for the queue to be closed with
    /// every place home: the drain counts what it takes before their places come home, so the
    /// reporter always finds the queued item counted.
    #[test]
    fn a_drain_counts_what_it_takes_before_the_places_come_home() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(1));
            queue.try_reserve().unwrap().push(1).unwrap();
            let counted = Arc::new(AtomicUsize::new(0));
            let drainer = {
                let (queue, counted) = (queue.clone(), counted.clone());
                loom::thread::spawn(move || {
                    let drained = queue.drain_counted(|n| {
                        counted.fetch_add(n, Ordering::SeqCst);
                    });
                    drop(drained);
                })
            };
            loop {
                let home = {
                    let state = queue.lock();
                    state.closed && state.taken == 0
                };
                if home {
                    break;
                }
                loom::thread::yield_now();
            }
            assert_eq!(
                counted.load(Ordering::SeqCst),
                1,
                "the drained item is counted"
            );
            drainer.join().unwrap();
        });
    }

    /// A drain (an abort) racing a push and a worker: every item ends in exactly one place (taken
    /// by the worker, taken by the drain, or handed back to its pusher), and every slot comes back
    /// (invariants 1 and 5).
    #[test]
    fn a_drain_racing_a_push_leaves_every_item_in_exactly_one_place() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(2));
            let stop = Arc::new(AtomicBool::new(false));
            queue.try_reserve().unwrap().push(1).unwrap();
            // Held as a count, so that the pusher's thread can fill it.
            queue.try_reserve().unwrap().forget();
            let pusher = {
                let queue = queue.clone();
                loom::thread::spawn(move || queue.push(2).err())
            };
            let w = {
                let (queue, stop) = (queue.clone(), stop.clone());
                loom::thread::spawn(move || worker(queue, stop))
            };
            let mut everywhere: Vec<u32> = queue.drain().into();
            everywhere.extend(pusher.join().unwrap());
            everywhere.extend(w.join().unwrap());
            everywhere.sort_unstable();
            assert_eq!(everywhere, [1, 2]);
            let state = queue.lock();
            assert!(state.items.is_empty());
            assert_eq!((state.taken, state.closed), (0, true));
        });
    }

    /// A refusal racing a submitter in line and a worker freeing the slot: the submitter either gets
    /// the slot (and its job is taken) or is refused, never both and never neither; the queue ends
    /// closed with every slot free.
    #[test]
    fn a_refusal_answers_every_submitter_in_line() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(1));
            let stop = Arc::new(AtomicBool::new(false));
            queue.try_reserve().unwrap().push(1).unwrap();
            let submitter = {
                let queue = queue.clone();
                loom::thread::spawn(move || match loom::future::block_on(queue.reserve()) {
                    Ok(place) => place.push(2).is_ok(),
                    Err(Refused::Closed) => false,
                    Err(Refused::Full) => unreachable!("a wait is never told full"),
                })
            };
            let w = {
                let (queue, stop) = (queue.clone(), stop.clone());
                loom::thread::spawn(move || worker(queue, stop))
            };
            queue.refuse();
            let pushed = submitter.join().unwrap();
            let seen = w.join().unwrap();
            assert_eq!(seen, if pushed { vec![1, 2] } else { vec![1] });
            let state = queue.lock();
            assert_eq!((state.taken, state.closed), (0, true));
            assert!(state.line.is_empty());
        });
    }
}
