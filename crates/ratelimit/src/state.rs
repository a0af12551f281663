//! The shared state of a [`Limiter`](crate::Limiter): the GCRA's one number and the FIFO of waiters.
//!
//! # Invariants
//!
//! Everything here is read and written under one lock (no atomics: the orderings are the lock's), and
//! no waker is woken and no task spawned while it is held (bounded-sync's rule).
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

use std::collections::BTreeMap;
use std::task::Waker;
use std::time::Duration;

use bounded_sync::{Mutex, MutexGuard};

use crate::clock::Clock;
use tokio::sync::Notify;

use crate::gcra::Gcra;
use crate::{InsufficientCapacity, Metrics, Quota};

/// The resolution of tokio's timer, in nanoseconds: how late a driver's wake-up can be in the normal
/// course of things.
const TICK: u64 = 1_000_000;

pub(crate) struct Shared {
    pub(crate) clock: Clock,
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
            state: Mutex::new(State {
                quota,
                gcra,
                tat: gcra.initial_tat(),
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
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
    /// The theoretical arrival time, in nanoseconds since the origin.
    pub(crate) tat: u64,
    /// Waiters by arrival; those at or after `cursor` are undecided, those before it wait to be told.
    waiters: BTreeMap<u64, Waiter>,
    next_seq: u64,
    cursor: u64,
    queued: usize,
    queued_units: u64,
    pub(crate) driver_running: bool,
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
                self.granted += u64::from(n);
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
        self.granted -= u64::from(n);
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
                self.granted -= u64::from(waiter.n);
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
                self.granted += u64::from(waiter.n);
                self.total_wait += u128::from(now - waiter.since);
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
