//! A reservation of units for one key of a [`KeyedLimiter`](super::KeyedLimiter): what its futures
//! wait on, given back if dropped before its instant.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use std::sync::atomic::Ordering;
use tokio::time::{Instant, Sleep};

use super::{Before, KeyedChange, KeyedLimiter, KeyedState};
use crate::AcquireError;

/// A unit reserved for a key at a known instant; dropping it before the instant gives the unit back.
pub(super) struct Reservation<'a, K: Hash + Eq + Clone> {
    pub(super) limiter: &'a KeyedLimiter<K>,
    key: K,
    pub(super) n: u32,
    pub(super) at: Option<Instant>,
    /// The key's theoretical arrival time right after this reservation: if it is still the key's when
    /// the reservation is dropped, no later reservation depends on it and it can be given back.
    tat: u64,
    /// Waiting for room in a table full of keys that owe time, rather than for a reserved instant.
    for_room: bool,
    pub(super) finished: bool,
    /// Counted among the limiter's waiting callers: it has slept, and has not ended.
    sleeping: bool,
    /// The `rate limit wait` span of a wait that sleeps (feature `tracing`), under the caller's span.
    #[cfg(feature = "tracing")]
    span: Option<tracing::Span>,
}

/// What a reservation got.
enum Reserved {
    /// The unit, now.
    Now,
    /// The unit, at this instant.
    At(Instant),
    /// Nothing yet: room for the key is sure to exist at this instant; reserve again then.
    Room(Instant),
}

impl<'a, K: Hash + Eq + Clone> Reservation<'a, K> {
    pub(super) fn new(limiter: &'a KeyedLimiter<K>, key: &K, n: u32) -> Self {
        Reservation {
            limiter,
            key: key.clone(),
            n,
            at: None,
            tat: 0,
            for_room: false,
            finished: false,
            sleeping: false,
            #[cfg(feature = "tracing")]
            span: None,
        }
    }

    /// Reserves the units: granted now, at an instant to sleep until, or (when the key table is full
    /// of keys that owe time) nothing yet, with the instant room is sure to exist.
    fn reserve(&mut self, deadline: Option<Instant>) -> Result<Reserved, AcquireError> {
        let shared = &*self.limiter.shared;
        let mut state = shared.lock();
        let before = Before::of(&state);
        let reserved = self.reserve_locked(&mut state, deadline);
        // A unit reserved for later counts once its caller has it (see `poll_wait`).
        let granted = if matches!(reserved, Ok(Reserved::Now)) {
            self.n
        } else {
            0
        };
        let change = KeyedChange::left(&state, before, granted, reserved.is_err());
        drop(state);
        shared.record(change);
        reserved
    }

    fn reserve_locked(
        &mut self,
        state: &mut KeyedState<K>,
        deadline: Option<Instant>,
    ) -> Result<Reserved, AcquireError> {
        let shared = &*self.limiter.shared;
        let now = shared.clock.now();
        if let Err(err) = state.gcra.fits(self.n) {
            state.rejected += 1;
            self.finished = true;
            return Err(err.into());
        }
        if self.n == 0 {
            self.finished = true;
            return Ok(Reserved::Now);
        }
        let (tat, at) = match shared.tat(state, &self.key, now) {
            Ok(tat) => (tat, state.gcra.earliest(tat, 0, self.n).max(now)),
            Err(room) => (0, room),
        };
        if let Some(deadline) = deadline.map(|d| shared.clock.nanos(d))
            && at > now
            && at >= deadline
        {
            state.rejected += 1;
            self.finished = true;
            return Err(AcquireError::DeadlineTooSoon {
                wait: Duration::from_nanos(at - now),
                remaining: Duration::from_nanos(deadline.saturating_sub(now)),
            });
        }
        if !state.tats.contains_key(&self.key) && state.tats.len() >= shared.max_keys {
            // No room yet: nothing is reserved, and the wait is for room, not for a unit.
            self.for_room = true;
            return Ok(Reserved::Room(shared.clock.instant(at)));
        }
        self.for_room = false;
        let Ok(tat) = state.gcra.test(tat, at, self.n) else {
            unreachable!("the earliest instant conforms")
        };
        state.tats.insert(self.key.clone(), tat);
        state.granted += u64::from(self.n);
        if at == now {
            self.finished = true;
            return Ok(Reserved::Now);
        }
        let at = shared.clock.instant(at);
        self.at = Some(at);
        self.tat = tat;
        Ok(Reserved::At(at))
    }

    /// Reserves (again, after waiting for room) and sleeps until the reserved instant.
    pub(super) fn poll_wait(
        &mut self,
        mut sleep: Pin<&mut Option<Sleep>>,
        cx: &mut TaskContext<'_>,
        deadline: Option<Instant>,
    ) -> Poll<Result<(), AcquireError>> {
        // A first poll spends the caller's tokio budget, as `Limiter`'s does (and gives it back if
        // the wait has to sleep); out of budget, it has reserved nothing.
        let coop = match self.at.is_none() && !self.sleeping {
            true => Some(std::task::ready!(tokio::task::coop::poll_proceed(cx))),
            false => None,
        };
        let made_progress = || {
            if let Some(coop) = &coop {
                coop.made_progress();
            }
        };
        loop {
            if self.at.is_none() {
                match self.reserve(deadline) {
                    Ok(Reserved::Now) => {
                        // Granted at once, or once a full key table had room.
                        #[cfg(feature = "tracing")]
                        if let Some(span) = self.span.take() {
                            tracing::trace!(target: "bounded_ratelimit", parent: &span, "granted");
                        }
                        self.wakes();
                        made_progress();
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Reserved::At(at) | Reserved::Room(at)) => {
                        if !self.sleeping {
                            self.sleeping = true;
                            self.limiter.shared.sleeping(true);
                        }
                        #[cfg(feature = "tracing")]
                        if self.span.is_none() {
                            self.span = Some(tracing::info_span!(
                                target: "bounded_ratelimit",
                                "rate limit wait",
                                units = self.n
                            ));
                        }
                        match sleep.as_mut().as_pin_mut() {
                            Some(sleep) => sleep.reset(at),
                            None => sleep.set(Some(tokio::time::sleep_until(at))),
                        }
                    }
                    Err(err) => {
                        #[cfg(feature = "tracing")]
                        if let Some(span) = self.span.take() {
                            tracing::debug!(target: "bounded_ratelimit", parent: &span, "refused");
                        }
                        self.wakes();
                        made_progress();
                        return Poll::Ready(Err(err));
                    }
                }
            }
            let Some(timer) = sleep.as_mut().as_pin_mut() else {
                unreachable!("a wait reserved for later has its timer")
            };
            std::task::ready!(timer.poll(cx));
            if !self.for_room {
                self.finished = true;
                self.wakes();
                #[cfg(feature = "tracing")]
                if let Some(span) = self.span.take() {
                    tracing::trace!(target: "bounded_ratelimit", parent: &span, "granted");
                }
                self.limiter.shared.record(KeyedChange {
                    granted: self.n,
                    ..KeyedChange::default()
                });
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// No longer among the waiting callers.
    fn wakes(&mut self) {
        if std::mem::take(&mut self.sleeping) {
            self.limiter.shared.sleeping(false);
        }
    }

    pub(super) fn cancel(&mut self) {
        #[cfg(feature = "tracing")]
        if !self.finished
            && let Some(span) = self.span.take()
        {
            tracing::debug!(target: "bounded_ratelimit", parent: &span, "left without a grant");
        }
        if !self.finished && self.sleeping {
            self.limiter
                .shared
                .abandoned
                .fetch_add(1, Ordering::Relaxed);
        }
        self.wakes();
        if self.finished || self.at.is_none() {
            return;
        }
        self.finished = true;
        let shared = &*self.limiter.shared;
        let mut state = shared.lock();
        // Only the latest reservation of a key gives its unit back: an earlier one's time has been
        // built on by the reservations after it, and giving it back would let two of them share an
        // instant. Its unit is then lost, which never grants more than the quota.
        let refund = state.gcra.refund(self.tat, self.n);
        if let Some(tat) = state.tats.get_mut(&self.key)
            && *tat == self.tat
        {
            *tat = refund;
        }
        state.granted -= u64::from(self.n);
    }
}

impl<K: Hash + Eq + Clone> Drop for Reservation<'_, K> {
    fn drop(&mut self) {
        self.cancel();
    }
}
