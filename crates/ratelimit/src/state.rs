//! The shared state of a [`Limiter`](crate::Limiter): the GCRA's one number and the FIFO of waiters.
//!
//! # Invariants
//!
//! Everything here is read and written under one lock, except the way in for a grant or refusal
//! decided at once (`Fast`, invariant 6), and no waker is woken and no task spawned while the lock
//! is held (bounded-sync's rule).
//!
//! 1. Waiters are granted in sequence order; `cursor` is one past the last decided waiter, and a waiter
//!    at or past it is undecided. `try_take` grants nothing while any waiter is undecided.
//! 2. While a waiter is undecided, exactly one of these holds: `driver_running` is set and that driver
//!    will look at the queue again (its timer, or `driver_wake` when the head leaves); or the head has
//!    been (or is being) woken and will claim the driver's place when it polls. A driver that finds the
//!    queue empty gives up its place in the same critical section (`drive`).
//! 3. A driver dropped without ending (its runtime shut down, even before its first poll) gives up its
//!    place and wakes the head (`driver_gone`); a head that leaves while no driver runs wakes the next.
//! 4. `tat` only grows, except by a refund, and a refund returns only time no later grant was built on:
//!    the waiter's own `tat` must still be the limiter's.
//! 5. A grant is counted from the instant its waiter conformed, at most one timer tick before `now`,
//!    so every rate a quota accepts is delivered and a late driver never releases a burst.
//! 6. The lock-free way (`Fast`) is governor's: one compare-and-swap of `tat`. Its word holds `tat`
//!    while the way is open and `CLOSED` otherwise, and only a holder of the lock opens or closes it:
//!    [`Shared::lock`] closes it (taking the word's `tat` into `State::tat`, so that everything under
//!    the lock sees every grant made without it), and the guard's drop opens it again when nobody is
//!    queued (so invariant 1 holds for grants without the lock too). The quota's arithmetic the way
//!    reads (`SharedGcra`) is written only while it is closed. A taker that read the word, then the
//!    arithmetic, may hold arithmetic newer than its word; its swap must then fail, and does: a
//!    reopening under changed arithmetic publishes a `tat` above every value the word ever held
//!    (`published`), and while open the word only grows, so no word it read comes back. Under
//!    unchanged arithmetic a word may come back (after a refund), and a swap from it grants what the
//!    same arithmetic grants at the taker's reading of the clock, as governor's does.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::task::Waker;
use std::time::Duration;

use bounded_sync::atomic::{AtomicU64, Ordering};
use bounded_sync::tally::Tally;
use bounded_sync::{Mutex, MutexGuard};

use crate::clock::Clock;
use tokio::sync::Notify;

use crate::gcra::{Gcra, SharedGcra};
use crate::{InsufficientCapacity, Metrics, Quota};

/// `Fast::word` while the lock-free way is closed (invariant 6). No `tat` reaches it: every sum in
/// `gcra` stays far below.
const CLOSED: u64 = u64::MAX;

/// The resolution of tokio's timer, in nanoseconds: how late a driver's wake-up can be in the normal
/// course of things.
const TICK: u64 = 1_000_000;

pub(crate) struct Shared {
    pub(crate) clock: Clock,
    /// Grants and refusals decided without the lock (invariant 6).
    fast: Fast,
    state: Mutex<State>,
    /// Wakes the driver when the head of the queue or the quota changed under it.
    pub(crate) driver_wake: Notify,
    #[cfg(feature = "metrics")]
    pub(crate) export: crate::export::Export,
}

impl Shared {
    pub(crate) fn new(quota: Quota, gcra: Gcra) -> Self {
        Shared {
            clock: Clock::start(),
            fast: Fast {
                word: AtomicU64::new(gcra.initial_tat()),
                gcra: SharedGcra::new(gcra),
                counts: Tally::default(),
            },
            state: Mutex::new(State {
                quota,
                gcra,
                tat: gcra.initial_tat(),
                published: gcra.initial_tat(),
                open_gcra: gcra,
                waiters: BTreeMap::new(),
                next_seq: 0,
                cursor: 0,
                queued: 0,
                queued_units: 0,
                driver_running: false,
                granted: 0,
                rejected: 0,
                abandoned: 0,
                total_wait: 0,
            }),
            driver_wake: Notify::new(),
            #[cfg(feature = "metrics")]
            export: crate::export::Export::default(),
        }
    }

    /// The state, with the lock-free way closed until the guard is dropped (invariant 6).
    pub(crate) fn lock(&self) -> Locked<'_> {
        let mut state = self.state.lock();
        // Only a holder of the lock closes the word, so it cannot close between these two.
        if self.fast.word.load(Ordering::Relaxed) != CLOSED {
            let tat = self.fast.word.swap(CLOSED, Ordering::Acquire);
            state.published = state.published.max(tat);
            state.tat = tat;
        }
        Locked {
            state,
            fast: &self.fast,
        }
    }

    /// The state without closing the lock-free way: for what does not read `tat`.
    fn peek(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Takes `n` units now, or says when they would conform, without the lock, when the way is open
    /// (invariant 6); `now` reads the time line, only then. Counts nothing: a grant or refusal
    /// that stands is counted by [`granted`](Shared::granted) or [`rejected`](Shared::rejected).
    #[inline]
    pub(crate) fn take_fast(&self, n: u32, now: impl FnOnce() -> u64) -> Taken {
        let mut tat = self.fast.word.load(Ordering::Acquire);
        if tat == CLOSED {
            return Taken::Closed;
        }
        let now = now();
        loop {
            let gcra = self.fast.gcra.load();
            if let Err(err) = gcra.fits(n) {
                return Taken::Capacity(err);
            }
            let next = match gcra.test(tat, now, n) {
                Ok(next) if next != CLOSED => next,
                Ok(_) => return Taken::Closed,
                Err(at) => return Taken::NotBefore { at, now },
            };
            match (self.fast.word).compare_exchange_weak(
                tat,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Taken::Granted(next),
                Err(CLOSED) => return Taken::Closed,
                Err(current) => tat = current,
            }
        }
    }

    /// Counts `n` units granted by [`take_fast`](Shared::take_fast).
    #[inline]
    pub(crate) fn granted(&self, n: u32) {
        self.fast.counts.add(GRANTED, u64::from(n));
    }

    /// Counts a refusal decided by [`take_fast`](Shared::take_fast).
    pub(crate) fn rejected(&self) {
        self.fast.counts.add(REJECTED, 1);
    }

    /// Units a `try_acquire_n` could take now (none while anyone is queued), without closing the way.
    pub(crate) fn tokens(&self) -> u32 {
        let state = self.peek();
        // Under the lock the word neither opens nor closes; while open, nobody is queued.
        let tat = self.fast.word.load(Ordering::Acquire);
        let now = self.clock.now();
        if tat == CLOSED {
            state.tokens(now)
        } else {
            state.gcra.available(tat, now)
        }
    }

    pub(crate) fn quota(&self) -> Quota {
        self.peek().quota
    }

    pub(crate) fn burst(&self) -> u32 {
        self.peek().gcra.burst()
    }

    pub(crate) fn metrics(&self) -> Metrics {
        let mut metrics = self.peek().metrics();
        metrics.granted = (metrics.granted).wrapping_add(self.fast.counts.sum(GRANTED));
        metrics.rejected += self.fast.counts.sum(REJECTED);
        metrics
    }
}

/// The lock-free way in (invariant 6).
struct Fast {
    /// `tat` while the way is open, `CLOSED` while it is not.
    word: AtomicU64,
    /// The quota's arithmetic, as of the last opening.
    gcra: SharedGcra,
    /// Units granted through the way (`GRANTED`) and refusals decided on it (`REJECTED`);
    /// `State::granted` and `State::rejected` count the others. A tally, so that counting a grant
    /// adds no second locked instruction to the swap.
    counts: Tally<2>,
}

const GRANTED: usize = 0;
const REJECTED: usize = 1;

/// What [`Shared::take_fast`] found.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Granted: the limiter's `tat` right after (what a reservation gives back against).
    Granted(u64),
    /// The units conform at `at` and not before; `now` is when that was decided.
    NotBefore { at: u64, now: u64 },
    /// More units than the burst: never granted.
    Capacity(InsufficientCapacity),
    /// The way is closed: take the lock.
    Closed,
}

/// The locked state, with the lock-free way closed until it is dropped (invariant 6).
pub(crate) struct Locked<'a> {
    state: MutexGuard<'a, State>,
    fast: &'a Fast,
}

impl Deref for Locked<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let state = &mut *self.state;
        let arithmetic_kept = state.gcra == state.open_gcra;
        if state.queued > 0
            || state.tat == CLOSED
            || !(arithmetic_kept || state.tat > state.published)
        {
            return;
        }
        if !arithmetic_kept {
            self.fast.gcra.store(state.gcra);
            state.open_gcra = state.gcra;
        }
        state.published = state.published.max(state.tat);
        self.fast.word.store(state.tat, Ordering::Release);
    }
}

/// What a leaving head owes the queue, done after the lock is released.
pub(crate) enum Left {
    Nothing,
    /// The driver may be sleeping until the leaver's instant: it must look again.
    NotifyDriver,
    /// No driver runs: the new head must be woken to start one.
    Wake(Waker),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Granted,
    Refused(InsufficientCapacity),
}

struct Waiter {
    n: u32,
    since: u64,
    waker: Option<Waker>,
    outcome: Option<Outcome>,
    /// The limiter's `tat` right after this waiter's grant: while it is still the limiter's, no later
    /// grant has been built on this one, so giving it back returns only time no one else was given.
    tat: u64,
    /// A reservation dropped without cancelling: granted in its turn, then forgotten.
    detached: bool,
}

pub(crate) struct State {
    pub(crate) quota: Quota,
    pub(crate) gcra: Gcra,
    /// The theoretical arrival time, in nanoseconds since the origin; while the lock-free way is
    /// open, its word holds the current one (invariant 6).
    pub(crate) tat: u64,
    /// The highest `tat` the lock-free way's word has held.
    published: u64,
    /// The arithmetic the lock-free way's readers may hold: the quota's when the way last opened.
    open_gcra: Gcra,
    /// Waiters by arrival; those at or after `cursor` are undecided, those before it wait to be told.
    waiters: BTreeMap<u64, Waiter>,
    next_seq: u64,
    cursor: u64,
    queued: usize,
    queued_units: u64,
    pub(crate) driver_running: bool,
    /// Units granted under the lock, less those given back (wrapping: units granted without the lock
    /// and given back under it come off here; their sum with `Fast::granted` is the true count).
    pub(crate) granted: u64,
    pub(crate) rejected: u64,
    abandoned: u64,
    total_wait: u128,
}

impl State {
    /// Takes `n` units now if nobody is queued and they conform; otherwise the instant they would.
    pub(crate) fn try_take(&mut self, now: u64, n: u32) -> Result<(), u64> {
        if self.queued > 0 {
            return Err(self.predict(now, n));
        }
        match self.gcra.test(self.tat, now, n) {
            Ok(tat) => {
                self.tat = tat;
                self.granted = self.granted.wrapping_add(u64::from(n));
                Ok(())
            }
            Err(at) => Err(at),
        }
    }

    /// When `n` units joining the back of the queue now would be granted, if nothing changes.
    /// Units a `try_acquire_n` could take now: none while anyone is queued (they come first).
    pub(crate) fn tokens(&self, now: u64) -> u32 {
        if self.queued > 0 {
            return 0;
        }
        self.gcra.available(self.tat, now)
    }

    pub(crate) fn predict(&self, now: u64, n: u32) -> u64 {
        self.gcra.earliest(self.tat, self.queued_units, n).max(now)
    }

    pub(crate) fn enqueue(&mut self, n: u32, now: u64, waker: Waker) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiters.insert(
            seq,
            Waiter {
                n,
                since: now,
                waker: Some(waker),
                outcome: None,
                tat: 0,
                detached: false,
            },
        );
        self.queued += 1;
        self.queued_units += u64::from(n);
        seq
    }

    /// The waiter's outcome once decided (and then forgets it), with the limiter's `tat` right after
    /// its grant; or stores the waker to be told later.
    pub(crate) fn poll_waiter(&mut self, seq: u64, waker: &Waker) -> Option<(Outcome, u64)> {
        let waiter = self.waiters.get_mut(&seq)?;
        if let Some(outcome) = waiter.outcome {
            let tat = waiter.tat;
            self.waiters.remove(&seq);
            return Some((outcome, tat));
        }
        match &mut waiter.waker {
            Some(old) if old.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        None
    }

    /// A reservation kept by dropping it: its units are granted in its turn and then forgotten, since
    /// nobody will look.
    pub(crate) fn detach(&mut self, seq: u64) {
        let Some(waiter) = self.waiters.get_mut(&seq) else {
            return;
        };
        if waiter.outcome.is_some() {
            self.waiters.remove(&seq);
        } else {
            waiter.detached = true;
            waiter.waker = None;
        }
    }

    /// When the waiter's units are granted, on the limiter's time line: `now` once decided, else the
    /// earliest instant behind the units queued ahead of it (as the queue stands now).
    pub(crate) fn due(&self, seq: u64, now: u64) -> u64 {
        let Some(waiter) = self.waiters.get(&seq) else {
            return now;
        };
        if waiter.outcome.is_some() {
            return now;
        }
        let ahead: u64 = self
            .waiters
            .range(self.cursor..seq)
            .filter(|(_, w)| w.outcome.is_none())
            .map(|(_, w)| u64::from(w.n))
            .sum();
        self.gcra.earliest(self.tat, ahead, waiter.n).max(now)
    }

    /// A unit count granted at once (`try_take`) is handed back: its time is returned only if no
    /// later grant was built on it (invariant 4), and it no longer counts as granted.
    pub(crate) fn give_back(&mut self, n: u32, tat: u64) {
        if self.tat == tat {
            self.tat = self.gcra.refund(tat, n);
        }
        self.granted = self.granted.wrapping_sub(u64::from(n));
    }

    /// A wait whose context had ended before it asked: it took nothing and queued nowhere, and counts
    /// as abandoned, as one whose context ends in the queue does.
    pub(crate) fn ended_before_asking(&mut self) {
        self.abandoned += 1;
    }

    /// A waiter gave up. Gives back a grant it never saw; returns whether it was at the head.
    fn abandon(&mut self, seq: u64) -> bool {
        let was_head = self.head() == Some(seq);
        let Some(waiter) = self.waiters.remove(&seq) else {
            return false;
        };
        self.abandoned += 1;
        match waiter.outcome {
            Some(Outcome::Granted) => {
                // A grant that later grants were built on is not given back: its time lies before
                // theirs, and returning it would let the next grant come early (over the quota).
                if self.tat == waiter.tat {
                    self.tat = self.gcra.refund(self.tat, waiter.n);
                }
                self.granted = self.granted.wrapping_sub(u64::from(waiter.n));
            }
            Some(Outcome::Refused(_)) => {}
            None => {
                self.queued -= 1;
                self.queued_units -= u64::from(waiter.n);
            }
        }
        was_head
    }

    /// A waiter leaves (its wait was dropped or its context ended): what must happen once the lock is
    /// released so that the waiter behind it is not stranded (invariants 2 and 3).
    pub(crate) fn leave(&mut self, seq: u64) -> Left {
        if !self.abandon(seq) {
            return Left::Nothing;
        }
        if self.driver_running {
            Left::NotifyDriver
        } else {
            // No driver (its runtime shut down): the new head starts one when woken.
            self.wake_head().map_or(Left::Nothing, Left::Wake)
        }
    }

    fn head(&self) -> Option<u64> {
        self.waiters
            .range(self.cursor..)
            .next()
            .map(|(seq, _)| *seq)
    }

    /// Decides every waiter at the head that conforms at `now`, in arrival order, collecting their
    /// wakers. Returns when the next head will conform, or `None` when no one is left waiting.
    pub(crate) fn grant_ready(&mut self, now: u64, wakers: &mut Vec<Waker>) -> Option<u64> {
        while let Some((&seq, waiter)) = self.waiters.range_mut(self.cursor..).next() {
            let outcome = if let Err(err) = self.gcra.fits(waiter.n) {
                self.rejected += 1;
                Outcome::Refused(err)
            } else {
                // The waiter is granted as of the instant it conformed (or arrived, if later), not as
                // of `now`: tokio's timer fires up to a tick late, and a grant counted from `now` would
                // lose that lateness for good, capping the rate at one grant per tick. Lateness up to
                // one tick is credited, so every rate a quota accepts is delivered; grants that fall
                // due within one tick are delivered together at it. A driver later than a tick (a busy
                // runtime) is not credited the rest, so a stall never turns into a burst.
                let at = self
                    .gcra
                    .earliest(self.tat, 0, waiter.n)
                    .max(waiter.since)
                    .max(now.saturating_sub(TICK));
                if at > now {
                    return Some(at);
                }
                let Ok(tat) = self.gcra.test(self.tat, at, waiter.n) else {
                    unreachable!("a request conforms at its earliest instant")
                };
                self.tat = tat;
                waiter.tat = tat;
                self.granted = self.granted.wrapping_add(u64::from(waiter.n));
                self.total_wait += u128::from(now.saturating_sub(waiter.since));
                Outcome::Granted
            };
            waiter.outcome = Some(outcome);
            wakers.extend(waiter.waker.take());
            self.queued -= 1;
            self.queued_units -= u64::from(waiter.n);
            self.cursor = seq + 1;
            if waiter.detached {
                self.waiters.remove(&seq);
            }
        }
        None
    }

    /// Wakes the head so that it can start a new driver (the old one was dropped with its runtime).
    /// One step of the driver: grants whoever conforms at `now` (their wakers into `wakers`, to wake
    /// once the lock is released), and returns when the new head conforms. `None` means the queue is
    /// empty and the driver ends: its place is given up under the same lock (invariant 2).
    pub(crate) fn drive(&mut self, now: u64, wakers: &mut Vec<Waker>) -> Option<u64> {
        let next = self.grant_ready(now, wakers);
        if next.is_none() {
            self.driver_running = false;
        }
        next
    }

    /// With no driver running, decides the waiters that conform at `now`, as the driver would (their
    /// wakers into `wakers`). A driver lost with its runtime leaves its queue to the head, which
    /// starts another when it polls; a reservation nobody polls would hold up every `try_acquire`
    /// behind it for good, so a `try_acquire` that finds the queue undriven moves it on itself.
    pub(crate) fn catch_up(&mut self, now: u64, wakers: &mut Vec<Waker>) {
        if self.queued > 0 && !self.driver_running {
            self.grant_ready(now, wakers);
        }
    }

    /// The driver was dropped before the queue emptied (its runtime shut down): its place is given up
    /// and the head is returned, to be woken so that it starts another (invariant 3).
    pub(crate) fn driver_gone(&mut self) -> Option<Waker> {
        self.driver_running = false;
        self.wake_head()
    }

    pub(crate) fn wake_head(&mut self) -> Option<Waker> {
        let head = self.head()?;
        self.waiters.get_mut(&head)?.waker.clone()
    }

    pub(crate) fn metrics(&self) -> Metrics {
        Metrics {
            granted: self.granted,
            rejected: self.rejected,
            waiting: self.queued,
            abandoned: self.abandoned,
            total_wait: Duration::from_nanos(u64::try_from(self.total_wait).unwrap_or(u64::MAX)),
        }
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use std::sync::Arc as StdArc;
    use std::task::{Wake, Waker};

    use bounded_sync::Arc;
    use bounded_sync::atomic::{AtomicUsize, Ordering};

    use super::Shared;
    use crate::Quota;
    use crate::gcra::Gcra;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: StdArc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `n` units taken without the lock, or with it when the way is closed, at instant 0: the
    /// limiter's `tat` right after the grant.
    fn take(shared: &Shared, n: u32) -> Option<u64> {
        match shared.take_fast(n, || 0) {
            super::Taken::Granted(tat) => {
                shared.granted(n);
                Some(tat)
            }
            super::Taken::Closed => {
                let mut state = shared.lock();
                state.gcra.fits(n).ok()?;
                state.try_take(0, n).ok().map(|()| state.tat)
            }
            super::Taken::NotBefore { .. } | super::Taken::Capacity(_) => None,
        }
    }

    /// Two takers, one with the lock-free way open and one that may find it closed, race a holder
    /// of the lock: every grant is in the `tat` the lock holders see, and in the count (invariant 6).
    #[test]
    fn a_grant_without_the_lock_is_never_lost_to_a_holder_of_it() {
        loom::model(|| {
            let quota = Quota::per_second(1).burst(3);
            let shared = Arc::new(Shared::new(quota, Gcra::new(&quota).unwrap()));
            let takers: Vec<_> = (0..2)
                .map(|_| {
                    let shared = shared.clone();
                    loom::thread::spawn(move || take(&shared, 1).is_some())
                })
                .collect();
            // A holder of the lock that reads `tat` and changes nothing: it closes the way and opens
            // it again.
            let seen = shared.lock().tat;
            let granted = takers
                .into_iter()
                .map(|t| u64::from(t.join().unwrap()))
                .sum::<u64>();
            assert_eq!(granted, 2, "a full bucket of 3 grants both");
            assert!(
                seen.is_multiple_of(1_000_000_000),
                "a holder of the lock saw a `tat` of {seen}"
            );
            let tat = shared.lock().tat;
            assert_eq!(
                tat,
                granted * 1_000_000_000,
                "a grant is missing from `tat`"
            );
            assert_eq!(shared.metrics().granted, granted);
        });
    }

    /// Races a taker of `n` units without the lock (a full bucket of 2 at 1 a second, at instant 0)
    /// against a holder of the lock that changes the state with `change`: if the taker was granted,
    /// its grant came first and the holder saw it. Returns the limiter, for checks after.
    fn race_a_taker(n: u32, change: impl FnOnce(&mut super::State)) -> Arc<Shared> {
        let quota = Quota::per_second(1).burst(2);
        let shared = Arc::new(Shared::new(quota, Gcra::new(&quota).unwrap()));
        let taker = {
            let shared = shared.clone();
            loom::thread::spawn(move || take(&shared, n))
        };
        let seen = {
            let mut state = shared.lock();
            let seen = state.tat;
            change(&mut state);
            seen
        };
        if let Some(tat) = taker.join().unwrap() {
            assert_eq!(
                seen, tat,
                "granted without the lock after a change that did not see the grant"
            );
        }
        shared
    }

    /// A taker of two units without the lock races a rate change to a burst of 1, with the bucket
    /// full before and after (the word it read comes back): either the taker's grant came first
    /// and the change saw it, or the taker is refused. Two units granted on the old arithmetic
    /// after the change would be an over-grant (invariant 6).
    #[test]
    fn a_rate_change_is_never_granted_against_on_the_old_arithmetic() {
        loom::model(|| {
            let shared = race_a_taker(2, |state| {
                // As `Limiter::set_rate` at instant 0.
                let smaller = Gcra::new(&Quota::per_second(1).burst(1)).unwrap();
                state.tat = state.gcra.rescale(state.tat, 0, &smaller);
                state.gcra = smaller;
            });
            assert!(
                take(&shared, 2).is_none(),
                "two units never fit a burst of 1"
            );
        });
    }

    /// A taker without the lock races a waiter joining the queue: either its grant came first and
    /// the queue's holder saw it, or it is refused; never a grant past a queued waiter (invariants
    /// 1 and 6).
    #[test]
    fn no_grant_without_the_lock_passes_a_queued_waiter() {
        loom::model(|| {
            let shared = race_a_taker(1, |state| {
                state.enqueue(1, 0, std::task::Waker::noop().clone());
            });
            assert!(take(&shared, 1).is_none(), "a waiter is queued");
        });
    }

    /// The driver is dropped with its runtime while the head leaves: in every order, the waiter left
    /// behind is woken (to start a new driver), so no waiter is stranded with no driver (invariants 2, 3).
    #[test]
    fn a_dead_driver_and_a_leaving_head_never_strand_the_next_waiter() {
        loom::model(|| {
            let quota = Quota::per_second(1).burst(1);
            let shared = Arc::new(Shared::new(quota, Gcra::new(&quota).unwrap()));
            let (head, next) = (StdArc::new(Count::default()), StdArc::new(Count::default()));
            let (first, _second) = {
                let mut state = shared.lock();
                assert!(state.try_take(0, 1).is_ok(), "the burst is spent");
                let first = state.enqueue(1, 0, Waker::from(head.clone()));
                let second = state.enqueue(1, 0, Waker::from(next.clone()));
                assert!(super::super::driver::claim(&mut state));
                (first, second)
            };
            let driver_dies = {
                let shared = shared.clone();
                loom::thread::spawn(move || {
                    let head = shared.lock().driver_gone();
                    if let Some(waker) = head {
                        waker.wake();
                    }
                })
            };
            let head_leaves = {
                let shared = shared.clone();
                loom::thread::spawn(move || {
                    let left = shared.lock().leave(first);
                    if let super::Left::Wake(waker) = left {
                        waker.wake();
                    }
                })
            };
            driver_dies.join().unwrap();
            head_leaves.join().unwrap();
            let state = shared.lock();
            assert!(!state.driver_running, "the only driver is gone");
            assert!(
                next.0.load(Ordering::Relaxed) >= 1,
                "the waiter left is queued with no driver and was never woken"
            );
        });
    }
}
