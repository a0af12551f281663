//! [`Places`]: up to [`PLACES`] futures polled by one owner, each through a waker of its own, so that
//! the owner polls only the futures that were woken.
//!
//! A place's waker is made once, the first time the place is used, and serves every future that
//! holds the place after it. So a future may be woken by a waker its place handed to an earlier
//! future; that is a spurious wake, which every future tolerates, and it costs one poll.
//!
//! # Invariants
//!
//! 1. `woken` holds the places woken since the owner last [took](Places::take) them; a wake sets its
//!    place's bit and [`take`](Places::take) clears them all, both under the lock, so no wake is
//!    lost between the two.
//! 2. `owner` is the waker of the owner's latest `take`, until a wake takes it and wakes it: every
//!    wake after a `take` either wakes the owner or finds it already woken (`owner` empty), in which
//!    case the owner's next `take` sees the bit. The owner is woken at most once per `take`.
//! 3. The owner is woken outside the lock (the crate's rule on locks).

use std::task::{Wake, Waker};

use crate::Mutex;

/// How many places a [`Places`] has: one bit each of a `u64`.
pub const PLACES: usize = 64;

/// Up to [`PLACES`] places, each with a waker that marks it woken and wakes the owner.
///
/// # Examples
///
/// ```
/// use bounded_sync::places::Places;
/// use std::task::Waker;
///
/// let mut places = Places::new();
/// let owner = Waker::noop();
/// assert_eq!(places.take(owner), 0);
/// places.waker(3).wake_by_ref();
/// places.waker(5).wake_by_ref();
/// assert_eq!(places.take(owner), 1 << 3 | 1 << 5);
/// assert_eq!(places.take(owner), 0);
/// ```
pub struct Places {
    state: std::sync::Arc<Mutex<State>>,
    wakers: Vec<Waker>,
}

struct State {
    woken: u64,
    owner: Option<Waker>,
}

/// A place's waker.
struct Place {
    bit: u64,
    state: std::sync::Arc<Mutex<State>>,
}

impl Wake for Place {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        let owner = {
            let mut state = self.state.lock();
            state.woken |= self.bit;
            state.owner.take()
        };
        if let Some(owner) = owner {
            owner.wake();
        }
    }
}

impl Places {
    /// No place woken, and no owner until the first [`take`](Places::take).
    pub fn new() -> Self {
        Places {
            state: std::sync::Arc::new(Mutex::new(State {
                woken: 0,
                owner: None,
            })),
            wakers: Vec::new(),
        }
    }

    /// The waker of `place`, made the first time it is asked for.
    ///
    /// # Panics
    ///
    /// If `place` is [`PLACES`] or more.
    pub fn waker(&mut self, place: usize) -> &Waker {
        assert!(place < PLACES, "a place is below {PLACES}, not {place}");
        while self.wakers.len() <= place {
            let place = Place {
                bit: 1 << self.wakers.len(),
                state: self.state.clone(),
            };
            self.wakers.push(Waker::from(std::sync::Arc::new(place)));
        }
        &self.wakers[place]
    }

    /// The places woken since the last `take`, one bit each (place `i` is `1 << i`); the next wake
    /// of any place wakes `owner`.
    pub fn take(&self, owner: &Waker) -> u64 {
        let mut state = self.state.lock();
        match &state.owner {
            Some(stored) if stored.will_wake(owner) => {}
            _ => state.owner = Some(owner.clone()),
        }
        std::mem::take(&mut state.woken)
    }

    /// Marks `places` woken again, for places taken and not yet polled; wakes no one.
    pub fn put_back(&self, places: u64) {
        self.state.lock().woken |= places;
    }
}

impl std::fmt::Debug for Places {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Places")
            .field("made", &self.wakers.len())
            .finish_non_exhaustive()
    }
}

impl Default for Places {
    fn default() -> Self {
        Places::new()
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::Places;
    use std::pin::pin;
    use std::task::Poll;

    /// Two places are woken from two other threads while the owner takes and parks: the owner
    /// always sees both wakes, whatever the interleaving (loom reports a deadlock if a wake is lost).
    #[test]
    fn a_wake_from_another_thread_is_never_lost() {
        loom::model(|| {
            let mut places = Places::new();
            let (one, two) = (places.waker(1).clone(), places.waker(2).clone());
            let wakers = [
                loom::thread::spawn(move || one.wake()),
                loom::thread::spawn(move || two.wake_by_ref()),
            ];
            let mut seen = 0;
            let owner = pin!(std::future::poll_fn(|cx| {
                seen |= places.take(cx.waker());
                match seen == 0b110 {
                    true => Poll::Ready(()),
                    false => Poll::Pending,
                }
            }));
            loom::future::block_on(owner);
            for waker in wakers {
                waker.join().unwrap();
            }
        });
    }

    /// A place put back is seen at the next take.
    #[test]
    fn places_put_back_are_taken_again() {
        loom::model(|| {
            let places = Places::new();
            let owner = std::task::Waker::noop();
            places.put_back(0b1001);
            assert_eq!(places.take(owner), 0b1001);
            assert_eq!(places.take(owner), 0);
        });
    }
}
