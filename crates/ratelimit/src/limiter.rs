use std::fmt;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use bounded_cancel::Context;

use crate::gcra::Gcra;
use crate::state::{Shared, Taken};
use crate::{
    Acquire, AcquireN, AcquireOwned, AcquireWith, InsufficientCapacity, Metrics, Quota, QuotaError,
    Reservation, RetryAfter, TryAcquireError,
};

/// A rate limiter: GCRA on a clock tokio's paused time drives, with a FIFO queue of waiters each woken once.
///
/// Clones share one quota, one bucket and one queue. See the [crate docs](crate) for fairness,
/// cancel safety and the clock.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::{Limiter, Quota};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = Limiter::new(Quota::per_second(100).burst(10)).expect("a valid quota");
/// let start = tokio::time::Instant::now();
/// for _ in 0..20 {
///     limiter.acquire().await;
/// }
/// // 10 at once, then one every 10 ms.
/// assert_eq!(start.elapsed(), Duration::from_millis(100));
/// # }
/// ```
#[derive(Clone)]
pub struct Limiter {
    pub(crate) shared: Arc<Shared>,
}

impl Limiter {
    /// A limiter with a full bucket.
    ///
    /// # Errors
    ///
    /// A [`QuotaError`] when the quota has a rate, period or burst of zero, or is beyond tokio's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_ratelimit::{Limiter, Quota, QuotaError};
    ///
    /// assert!(Limiter::new(Quota::per_second(50)).is_ok());
    /// assert_eq!(Limiter::new(Quota::per_second(50).burst(0)).unwrap_err(), QuotaError::ZeroBurst);
    /// ```
    pub fn new(quota: Quota) -> Result<Self, QuotaError> {
        let gcra = Gcra::new(&quota)?;
        Ok(Limiter {
            shared: Arc::new(Shared::new(quota, gcra)),
        })
    }

    /// Waits for one unit, as a future that owns a clone of the limiter (which shares its state), so it
    /// can be spawned or stored: `tokio::spawn(limiter.acquire_owned())` needs no `Arc` or lifetime.
    ///
    /// # Errors
    ///
    /// Never, for one unit (every burst is at least 1): the output is a `Result` only so that it is
    /// the same future as [`acquire_n_owned`](Limiter::acquire_n_owned).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Limiter::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(2).burst(1)).unwrap();
    /// let waits: Vec<_> = (0..3).map(|_| tokio::spawn(limiter.acquire_owned())).collect();
    /// for wait in waits {
    ///     wait.await.unwrap().unwrap();
    /// }
    /// # }
    /// ```
    pub fn acquire_owned(&self) -> AcquireOwned {
        AcquireOwned::new(self.clone(), 1)
    }

    /// Like [`acquire_n`](Limiter::acquire_n), as a future that owns a clone of the limiter.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once when `n` exceeds the burst.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Limiter::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10)).unwrap();
    /// let wait = limiter.acquire_n_owned(5);
    /// drop(limiter); // the wait keeps the shared state alive
    /// wait.await.unwrap();
    /// # }
    /// ```
    pub fn acquire_n_owned(&self, n: u32) -> AcquireOwned {
        AcquireOwned::new(self.clone(), n)
    }

    /// Waits for one unit.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes consumes nothing: it leaves the queue, and a unit
    /// granted to it but not yet seen is given back. The waiters behind it move up at once.
    ///
    /// # Fairness
    ///
    /// Waiters are granted in the order they first polled, and [`try_acquire`](Limiter::try_acquire)
    /// never jumps the queue. A first poll that finds the task's tokio budget spent yields and has
    /// taken nothing and no place: its wait counts from the next poll.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(1)).unwrap();
    /// limiter.acquire().await;
    /// # }
    /// ```
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire::new(self)
    }

    /// Waits for `n` units granted together (`n = 0` is granted at once).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once when `n` exceeds the burst, since no wait could grant it; also
    /// when a [`set_rate`](Limiter::set_rate) lowers the burst below `n` while this waits.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Limiter::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10)).unwrap();
    /// limiter.acquire_n(10).await.expect("10 fits a burst of 10");
    /// assert!(limiter.acquire_n(11).await.is_err());
    /// # }
    /// ```
    pub fn acquire_n(&self, n: u32) -> AcquireN<'_> {
        AcquireN::new(self, n)
    }

    /// Waits for one unit unless `ctx` ends first.
    ///
    /// When `ctx` has a deadline and the wait is known to end at or after it, this fails at once with
    /// [`AcquireError::DeadlineTooSoon`](crate::AcquireError::DeadlineTooSoon), which carries the wait,
    /// instead of sleeping until the deadline to fail then (the behaviour of Go's `rate.Limiter.Wait`,
    /// with an error that says so).
    ///
    /// # Errors
    ///
    /// [`AcquireError`](crate::AcquireError): the context's cause, the deadline that comes too soon, or
    /// [`InsufficientCapacity`] for a burst lowered below 1 unit (which cannot happen; kept for `_n`).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Limiter::acquire); a context that ends also gives the place back.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10)).unwrap();
    /// let request = Context::new();
    /// limiter.acquire_with(&request).await.expect("a unit is free");
    /// # }
    /// ```
    pub fn acquire_with<'a>(&'a self, ctx: &'a Context) -> AcquireWith<'a> {
        AcquireWith::new(self, ctx, 1)
    }

    /// [`acquire_n`](Limiter::acquire_n) unless `ctx` ends first, failing at once on a deadline that
    /// comes too soon, as [`acquire_with`](Limiter::acquire_with).
    ///
    /// # Errors
    ///
    /// [`AcquireError`](crate::AcquireError), as [`acquire_with`](Limiter::acquire_with), plus
    /// `InsufficientCapacity` when `n` exceeds the burst.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Limiter::acquire); a context that ends also gives the place back.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10)).unwrap();
    /// limiter.acquire_n_with(&Context::new(), 4).await.expect("4 of 10 are free");
    /// # }
    /// ```
    pub fn acquire_n_with<'a>(&'a self, ctx: &'a Context, n: u32) -> AcquireWith<'a> {
        AcquireWith::new(self, ctx, n)
    }

    /// Takes one unit if it conforms now and nobody is queued; never waits.
    ///
    /// # Errors
    ///
    /// [`RetryAfter`] with the time until the unit would conform, behind the callers already queued.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(2).burst(1)).unwrap();
    /// assert!(limiter.try_acquire().is_ok());
    /// assert_eq!(limiter.try_acquire().unwrap_err().wait(), std::time::Duration::from_millis(500));
    /// # }
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<(), RetryAfter> {
        match self.try_acquire_n(1) {
            Ok(()) => Ok(()),
            Err(TryAcquireError::RetryAfter(retry)) => Err(retry),
            Err(_) => unreachable!("a single unit is always within the burst"),
        }
    }

    /// Takes `n` units together if they conform now and nobody is queued; never waits.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::RetryAfter`] ("not yet", with the wait) or
    /// [`TryAcquireError::InsufficientCapacity`] ("never": `n` is above the burst). Nothing is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10)).unwrap();
    /// assert_eq!(limiter.try_acquire_n(8), Ok(()));
    /// assert!(limiter.try_acquire_n(8).unwrap_err().retry_after().is_some());
    /// assert!(limiter.try_acquire_n(11).unwrap_err().retry_after().is_none());
    /// # }
    /// ```
    #[inline]
    pub fn try_acquire_n(&self, n: u32) -> Result<(), TryAcquireError> {
        if n == 0 {
            return Ok(());
        }
        self.take_now(n).map(drop)
    }

    /// Takes `n` units now if they conform and nobody is queued, counting the grant or the refusal:
    /// `Ok` with the limiter's `tat` right after the grant (what a [`Reservation`] gives back against).
    #[inline]
    pub(crate) fn take_now(&self, n: u32) -> Result<u64, TryAcquireError> {
        let shared = &*self.shared;
        let taken = match shared.take_fast(n, || shared.clock.now()) {
            Taken::Granted(tat) => {
                shared.granted(n);
                Ok(tat)
            }
            Taken::NotBefore { at, now } => {
                shared.rejected();
                Err(RetryAfter {
                    wait: Duration::from_nanos(at.saturating_sub(now)),
                }
                .into())
            }
            Taken::Capacity(err) => {
                shared.rejected();
                Err(err.into())
            }
            Taken::Closed => self.take_locked(n),
        };
        #[cfg(feature = "metrics")]
        match taken {
            Ok(_) => shared.export.granted(n),
            Err(_) => shared.export.rejected(),
        }
        taken
    }

    /// `take_now` under the lock, while the lock-free way is closed; counts what it decides.
    #[inline(never)]
    fn take_locked(&self, n: u32) -> Result<u64, TryAcquireError> {
        let mut wakers = Vec::new();
        let mut state = self.shared.lock();
        let taken = match state.gcra.fits(n) {
            Err(err) => Err(err.into()),
            Ok(()) => {
                let now = self.shared.clock.now();
                state.catch_up(now, &mut wakers);
                state.try_take(now, n).map(|()| state.tat).map_err(|at| {
                    RetryAfter {
                        wait: Duration::from_nanos(at.saturating_sub(now)),
                    }
                    .into()
                })
            }
        };
        if taken.is_err() {
            state.rejected += 1;
        }
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        taken
    }

    /// Changes the quota at run time.
    ///
    /// The units in use carry over, counted in the new quota's units, so a change never lets through a
    /// burst that the new quota forbids after what was just granted; more units in use than the new
    /// burst leave the new bucket empty (the next unit comes one new interval later), as Go's
    /// `SetLimit` does. Waiters already queued are granted
    /// at the new rate from now on; a waiter for more units than the new burst gets
    /// [`InsufficientCapacity`].
    ///
    /// # Errors
    ///
    /// A [`QuotaError`] for a quota that cannot work; the old quota stays in force.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10)).unwrap();
    /// limiter.set_rate(Quota::per_second(100)).expect("a valid quota");
    /// assert_eq!(limiter.quota(), Quota::per_second(100));
    /// assert!(limiter.set_rate(Quota::per_second(0)).is_err());
    /// # }
    /// ```
    pub fn set_rate(&self, quota: Quota) -> Result<(), QuotaError> {
        let gcra = Gcra::new(&quota)?;
        let mut state = self.shared.lock();
        let now = self.shared.clock.now();
        state.tat = state.gcra.rescale(state.tat, now, &gcra);
        state.gcra = gcra;
        state.quota = quota;
        let notify = state.driver_running;
        drop(state);
        if notify {
            self.shared.driver_wake.notify_one();
        }
        Ok(())
    }

    /// Reserves one unit now, in its turn behind everyone waiting: x/time/rate's `Reserve`. See
    /// [`Reservation`] for acting at its instant, or cancelling to give the unit back.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, when the reservation has to wait and no other wait keeps the queue
    /// moving: the turns are kept by a task. The limiter is left as it was. A reservation granted at
    /// once needs no runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(2).burst(1)).unwrap();
    /// limiter.acquire().await;
    /// let reservation = limiter.reserve();
    /// assert_eq!(reservation.delay(), Duration::from_millis(500));
    /// # }
    /// ```
    pub fn reserve(&self) -> Reservation {
        match Reservation::new(self, 1) {
            Ok(reservation) => reservation,
            Err(_) => unreachable!("a single unit is always within the burst"),
        }
    }

    /// Reserves `n` units now, granted together in their turn: x/time/rate's `ReserveN`. A
    /// reservation of 0 units is granted at once and takes nothing.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] when `n` exceeds the burst; nothing is reserved.
    ///
    /// # Panics
    ///
    /// As [`reserve`](Limiter::reserve), outside a tokio runtime when the reservation has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10)).unwrap();
    /// assert!(limiter.reserve_n(11).is_err());
    /// let batch = limiter.reserve_n(10).unwrap();
    /// assert!(batch.delay().is_zero());
    /// # }
    /// ```
    pub fn reserve_n(&self, n: u32) -> Result<Reservation, InsufficientCapacity> {
        Reservation::new(self, n)
    }

    /// Changes only the burst, keeping the rate: `set_rate(self.quota().burst(burst))`, with the same
    /// carrying over of the units in use.
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroBurst`] for 0 (or a bucket too long); the quota in force is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(100).burst(1)).unwrap();
    /// limiter.set_burst(20).unwrap();
    /// assert_eq!(limiter.quota(), Quota::per_second(100).burst(20));
    /// assert!(limiter.set_burst(0).is_err());
    /// # }
    /// ```
    pub fn set_burst(&self, burst: u32) -> Result<(), QuotaError> {
        let quota = self.quota();
        if quota.is_unlimited() {
            return Ok(());
        }
        self.set_rate(quota.burst(burst))
    }

    /// The units a caller could take now without waiting: the bucket's level, or 0 while anyone is
    /// queued (they come first). For display and decisions such as "defer the optional work"; a
    /// `try_acquire_n` right after may still find another caller got there first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(10)).unwrap();
    /// assert_eq!(limiter.tokens(), 10);
    /// limiter.try_acquire_n(4).unwrap();
    /// assert_eq!(limiter.tokens(), 6);
    /// tokio::time::advance(Duration::from_millis(200)).await;
    /// assert_eq!(limiter.tokens(), 8);
    /// # }
    /// ```
    pub fn tokens(&self) -> u32 {
        self.shared.tokens()
    }

    /// Names the limiter: the `limiter` label of its metrics (cargo feature `metrics`; `"limiter"` when
    /// unnamed). Name it where it is built, before it is used: once anything has been recorded the
    /// label stays as it was. Without the feature the name is not kept.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// let pricing = Limiter::new(Quota::per_second(100)).unwrap().named("pricing");
    /// # let _ = pricing;
    /// ```
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub fn named(self, name: impl Into<String>) -> Self {
        #[cfg(feature = "metrics")]
        self.shared.export.name(&name.into());
        self
    }

    /// The quota in force.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// let limiter = Limiter::new(Quota::per_minute(60)).unwrap();
    /// assert_eq!(limiter.quota(), Quota::per_minute(60));
    /// ```
    pub fn quota(&self) -> Quota {
        self.shared.quota()
    }

    /// A snapshot of the counters.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = Limiter::new(Quota::per_second(1).burst(1)).unwrap();
    /// limiter.acquire().await;
    /// let _ = limiter.try_acquire();
    /// let m = limiter.metrics();
    /// assert_eq!((m.granted, m.rejected, m.waiting), (1, 1, 0));
    /// # }
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("quota", &self.shared.quota())
            .field("metrics", &self.shared.metrics())
            .finish()
    }
}
