//! `Reservation`: units taken now, to be used at a known instant, or given back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use crate::state::{Left, Outcome, Shared, Taken};
use crate::{InsufficientCapacity, Limiter, driver};

/// Units reserved from a [`Limiter`]: x/time/rate's `Reservation`.
///
/// Made by [`Limiter::reserve`] and [`Limiter::reserve_n`]. The units are the reservation's from the
/// moment it is made, in its turn behind every caller already waiting. [`delay`](Reservation::delay)
/// says how long until they are granted; act then (or await [`ready`](Reservation::ready)), or
/// [`cancel`](Reservation::cancel) to give them back.
///
/// # Dropping and cancelling
///
/// Dropping a reservation keeps it: its units are used at their instant, as with x/time/rate, where a
/// reservation is kept unless cancelled. [`cancel`](Reservation::cancel) gives the units back under the
/// rule every `bounded` limiter follows: time that a later grant was built on is never returned, so
/// cancelling can never make the limiter grant over its quota. A reservation still waiting in line
/// simply leaves it, and the callers behind move up.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::{Limiter, Quota};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
/// let now = limiter.reserve();
/// assert_eq!(now.delay(), Duration::ZERO);
/// let later = limiter.reserve();
/// assert_eq!(later.delay(), Duration::from_millis(100));
/// // Too late for what it was for: give it back.
/// later.cancel();
/// assert_eq!(limiter.reserve().delay(), Duration::from_millis(100));
/// # }
/// ```
#[must_use = "a reservation's units are taken: use them at `delay()`, or `cancel()` it"]
pub struct Reservation {
    limiter: Limiter,
    n: u32,
    held: Held,
}

enum Held {
    /// Granted, with the limiter's `tat` right after the grant.
    Granted { tat: u64 },
    /// In the queue: decided by the driver in its turn.
    Queued { seq: u64 },
    /// Refused (a rate change lowered the burst below it), cancelled, or given up.
    Gone,
}

impl Reservation {
    pub(crate) fn new(limiter: &Limiter, n: u32) -> Result<Self, InsufficientCapacity> {
        let shared = &limiter.shared;
        let held = match n {
            // Nothing to take: granted at once, and giving it back returns nothing.
            0 => Held::Granted { tat: 0 },
            _ => match shared.take_fast(n, || shared.clock.now()) {
                Taken::Granted(tat) => {
                    shared.granted(n);
                    #[cfg(feature = "metrics")]
                    shared.export.granted(n);
                    Held::Granted { tat }
                }
                Taken::Capacity(err) => {
                    shared.rejected();
                    return Err(err);
                }
                Taken::NotBefore { .. } | Taken::Closed => Self::reserve_locked(shared, n)?,
            },
        };
        Ok(Reservation {
            limiter: limiter.clone(),
            n,
            held,
        })
    }

    /// `new` under the lock: granted now, or queued in its turn.
    fn reserve_locked(shared: &Arc<Shared>, n: u32) -> Result<Held, InsufficientCapacity> {
        let mut state = shared.lock();
        if let Err(err) = state.gcra.fits(n) {
            state.rejected += 1;
            return Err(err);
        }
        let now = shared.clock.now();
        Ok(match state.try_take(now, n) {
            Ok(()) => {
                let tat = state.tat;
                drop(state);
                #[cfg(feature = "metrics")]
                shared.export.granted(n);
                Held::Granted { tat }
            }
            Err(_) => {
                // Checked before it joins the queue, so that the panic leaves the limiter as it was.
                if !state.driver_running && tokio::runtime::Handle::try_current().is_err() {
                    drop(state);
                    panic!(
                        "Limiter::reserve outside a tokio runtime: this reservation has to wait for \
                         its turn, and a task on a runtime keeps the turns; reserve from inside a \
                         runtime, or use try_acquire, which never waits"
                    );
                }
                // Nobody is woken for it: `ready` registers a waker when someone waits.
                let seq = state.enqueue(n, now, Waker::noop().clone());
                driver::ensure(shared, state);
                #[cfg(feature = "metrics")]
                shared.export.queued();
                Held::Queued { seq }
            }
        })
    }

    /// How long until the units are granted: zero once they are. For a reservation still in line,
    /// the wait as the line stands now (callers ahead that leave make it shorter; a rate change can
    /// move it either way).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(4).burst(4)).unwrap();
    /// assert_eq!(limiter.reserve_n(4).unwrap().delay(), Duration::ZERO);
    /// assert_eq!(limiter.reserve_n(2).unwrap().delay(), Duration::from_millis(500));
    /// # }
    /// ```
    pub fn delay(&self) -> Duration {
        match self.held {
            Held::Granted { .. } | Held::Gone => Duration::ZERO,
            Held::Queued { seq } => {
                let shared = &self.limiter.shared;
                let state = shared.lock();
                let now = shared.clock.now();
                Duration::from_nanos(state.due(seq, now).saturating_sub(now))
            }
        }
    }

    /// How many units this reservation holds.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(4)).unwrap();
    /// assert_eq!(limiter.reserve_n(3).unwrap().units(), 3);
    /// # }
    /// ```
    pub fn units(&self) -> u32 {
        self.n
    }

    /// Waits until the units are granted.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if a rate change lowered the burst below this reservation while it was
    /// in line (nothing was taken).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future leaves the reservation as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    /// limiter.acquire().await;
    /// let mut reservation = limiter.reserve();
    /// let start = tokio::time::Instant::now();
    /// reservation.ready().await.unwrap();
    /// assert_eq!(start.elapsed(), Duration::from_millis(100));
    /// # }
    /// ```
    pub fn ready(&mut self) -> Ready<'_> {
        Ready { reservation: self }
    }

    /// Gives the units back: a reservation in line leaves it, and granted units return their time
    /// unless a later grant was built on it (see the type's docs).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    /// limiter.reserve().cancel();
    /// assert!(limiter.try_acquire().is_ok(), "the cancelled unit was given back");
    /// # }
    /// ```
    pub fn cancel(mut self) {
        let shared = &self.limiter.shared;
        match std::mem::replace(&mut self.held, Held::Gone) {
            Held::Granted { tat } => shared.lock().give_back(self.n, tat),
            Held::Queued { seq } => {
                #[cfg(feature = "metrics")]
                shared.export.left(None);
                let left = shared.lock().leave(seq);
                match left {
                    Left::Nothing => {}
                    Left::NotifyDriver => shared.driver_wake.notify_one(),
                    Left::Wake(head) => head.wake(),
                }
            }
            Held::Gone => {}
        }
    }

    pub(crate) fn poll_ready(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), InsufficientCapacity>> {
        let Held::Queued { seq } = self.held else {
            return match self.held {
                Held::Gone => Poll::Ready(Err(InsufficientCapacity {
                    requested: self.n,
                    burst: self.limiter.shared.burst(),
                })),
                _ => Poll::Ready(Ok(())),
            };
        };
        let shared = &self.limiter.shared;
        let mut state = shared.lock();
        match state.poll_waiter(seq, cx.waker()) {
            Some((Outcome::Granted, tat)) => {
                drop(state);
                #[cfg(feature = "metrics")]
                {
                    shared.export.left(None);
                    shared.export.granted(self.n);
                }
                self.held = Held::Granted { tat };
                Poll::Ready(Ok(()))
            }
            Some((Outcome::Refused(err), _)) => {
                drop(state);
                #[cfg(feature = "metrics")]
                {
                    shared.export.left(None);
                    shared.export.rejected();
                }
                self.held = Held::Gone;
                Poll::Ready(Err(err))
            }
            None => {
                // Its driver may have gone with its runtime: the head starts another.
                driver::ensure(shared, state);
                Poll::Pending
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Kept: a reservation in line is granted in its turn and then forgotten.
        if let Held::Queued { seq } = self.held {
            self.limiter.shared.lock().detach(seq);
            // Kept, but nobody waits for it any more.
            #[cfg(feature = "metrics")]
            self.limiter.shared.export.left(None);
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("units", &self.n)
            .field("delay", &self.delay())
            .finish()
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`Reservation::ready`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Ready<'a> {
        reservation: &'a mut Reservation,
    }
}

impl Future for Ready<'_> {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // An answer that is there already spends the caller's tokio budget, as `acquire` does.
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let ready = std::task::ready!(self.project().reservation.poll_ready(cx));
        coop.made_progress();
        Poll::Ready(ready)
    }
}
