//! [`KeyedLimiter`]: one limit per key (a tenant, a user, a client address), in a table of keys
//! bounded in size.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use bounded_cancel::Context;
use bounded_sync::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::clock::Clock;
use crate::gcra::Gcra;
use crate::{KeyedMetrics, Quota, QuotaError, RetryAfter, TryAcquireError};

mod future;
mod reservation;

pub use future::{KeyedAcquire, KeyedAcquireN, KeyedAcquireWith};

use reservation::Reservation;

/// One quota applied to each key on its own (per client, per tenant, per route), remembering at most
/// `max_keys` keys.
///
/// # Memory
///
/// When a new key arrives and `max_keys` are remembered, keys whose bucket has refilled are
/// forgotten (forgetting them changes nothing: a key never seen starts with a full bucket too). A
/// key that still owes time is never forgotten, since a client could otherwise get a fresh bucket
/// by rotating keys. If every remembered key owes time, the new key is limited like any other until
/// the soonest of them has refilled: `try_acquire` answers [`RetryAfter`] with that wait, `acquire`
/// waits for it (in the same way it waits for its own instant), and `acquire_with` fails at once
/// with [`AcquireError::DeadlineTooSoon`](crate::AcquireError::DeadlineTooSoon) when its deadline
/// comes first. These refusals count as `rejected`. Choose `max_keys` above the number of keys
/// active within one bucket's refill time, and new keys are never held back.
///
/// # Fairness
///
/// [`acquire`](KeyedLimiter::acquire) reserves the caller's instant when first polled and sleeps until
/// it, so callers of one key are granted in arrival order and each is woken once. Dropping a wait
/// before its instant gives its unit back.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::{KeyedLimiter, Quota};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let per_tenant = KeyedLimiter::new(Quota::per_second(5), 10_000).expect("a valid quota");
/// for _ in 0..5 {
///     per_tenant.try_acquire(&"tenant-a").expect("a burst of 5");
/// }
/// assert!(per_tenant.try_acquire(&"tenant-a").is_err());
/// assert!(per_tenant.try_acquire(&"tenant-b").is_ok(), "keys are independent");
/// # }
/// ```
pub struct KeyedLimiter<K> {
    shared: Arc<KeyedShared<K>>,
}

struct KeyedShared<K> {
    clock: Clock,
    max_keys: usize,
    state: Mutex<KeyedState<K>>,
    /// Callers sleeping until their instant, and waits that ended without a grant.
    waiting: AtomicUsize,
    abandoned: AtomicU64,
    #[cfg(feature = "metrics")]
    export: crate::export::KeyedExport,
}

/// What one call changed in a keyed limiter's counters: read under its lock, recorded on the
/// `metrics` facade (feature `metrics`) after the lock is released.
#[derive(Clone, Copy, Default)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) struct KeyedChange {
    pub(crate) granted: u32,
    pub(crate) rejected: bool,
    /// Keys remembered now less keys remembered before the call. The gauge's count moves by it rather
    /// than being set, so that calls recorded out of order, and limiters sharing a name, still add up.
    pub(crate) keys: i64,
    pub(crate) evicted: u64,
}

/// A keyed limiter's table before a call, to tell what the call changed.
#[derive(Clone, Copy)]
struct Before {
    keys: usize,
    evicted: u64,
}

impl Before {
    fn of<K>(state: &KeyedState<K>) -> Self {
        Before {
            keys: state.tats.len(),
            evicted: state.evicted,
        }
    }
}

impl KeyedChange {
    /// A call that granted `granted` units at once, or was refused, and left the table as `state`
    /// holds it.
    fn left<K>(state: &KeyedState<K>, before: Before, granted: u32, rejected: bool) -> Self {
        KeyedChange {
            granted,
            rejected,
            keys: state.tats.len() as i64 - before.keys as i64,
            evicted: state.evicted - before.evicted,
        }
    }
}

struct KeyedState<K> {
    quota: Quota,
    gcra: Gcra,
    tats: HashMap<K, u64>,
    /// When the table was last found full of keys that owe time: the soonest of their refill instants.
    /// Until then no key can be forgotten, so a new key is refused without looking at the table.
    full_until: u64,
    granted: u64,
    rejected: u64,
    evicted: u64,
}

impl<K> Clone for KeyedLimiter<K> {
    fn clone(&self) -> Self {
        KeyedLimiter {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter applying `quota` to each key, remembering at most `max_keys` keys.
    ///
    /// # Errors
    ///
    /// A [`QuotaError`] for a quota that cannot work, or [`QuotaError::ZeroKeys`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{KeyedLimiter, Quota, QuotaError};
    /// assert!(KeyedLimiter::<u64>::new(Quota::per_second(5), 1_000).is_ok());
    /// assert_eq!(KeyedLimiter::<u64>::new(Quota::per_second(5), 0).unwrap_err(), QuotaError::ZeroKeys);
    /// ```
    pub fn new(quota: Quota, max_keys: usize) -> Result<Self, QuotaError> {
        let gcra = Gcra::new(&quota)?;
        if max_keys == 0 {
            return Err(QuotaError::ZeroKeys);
        }
        let state = KeyedState {
            quota,
            gcra,
            tats: HashMap::new(),
            full_until: 0,
            granted: 0,
            rejected: 0,
            evicted: 0,
        };
        Ok(KeyedLimiter {
            shared: Arc::new(KeyedShared {
                clock: Clock::start(),
                max_keys,
                state: Mutex::new(state),
                waiting: AtomicUsize::new(0),
                abandoned: AtomicU64::new(0),
                #[cfg(feature = "metrics")]
                export: crate::export::KeyedExport::default(),
            }),
        })
    }

    /// Takes one unit for `key` if it conforms now; never waits.
    ///
    /// # Errors
    ///
    /// [`RetryAfter`] with the time until it would conform.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedLimiter::new(Quota::per_second(1), 100).unwrap();
    /// assert!(limiter.try_acquire(&7).is_ok());
    /// assert!(limiter.try_acquire(&7).is_err());
    /// # }
    /// ```
    pub fn try_acquire(&self, key: &K) -> Result<(), RetryAfter> {
        match self.try_acquire_n(key, 1) {
            Ok(()) => Ok(()),
            Err(TryAcquireError::RetryAfter(retry)) => Err(retry),
            Err(_) => unreachable!("a single unit is always within the burst"),
        }
    }

    /// Takes `n` units for `key` together if they conform now; never waits.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::InsufficientCapacity`] when `n` exceeds the burst,
    /// [`TryAcquireError::RetryAfter`] when the units do not conform yet (or the key table is full of
    /// keys that owe time). Nothing is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedLimiter::new(Quota::per_second(4), 100).unwrap();
    /// assert_eq!(limiter.try_acquire_n(&"a", 4), Ok(()));
    /// assert!(limiter.try_acquire_n(&"a", 5).is_err());
    /// # }
    /// ```
    pub fn try_acquire_n(&self, key: &K, n: u32) -> Result<(), TryAcquireError> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        if let Err(err) = state.gcra.fits(n) {
            state.rejected += 1;
            drop(state);
            shared.record(KeyedChange {
                rejected: true,
                ..KeyedChange::default()
            });
            return Err(err.into());
        }
        if n == 0 {
            return Ok(());
        }
        let now = shared.clock.now();
        let before = Before::of(&state);
        let taken = shared
            .tat(&mut state, key, now)
            .and_then(|tat| state.gcra.test(tat, now, n));
        let result = match taken {
            Ok(tat) => {
                state.tats.insert(key.clone(), tat);
                state.granted += u64::from(n);
                Ok(())
            }
            Err(at) => {
                state.rejected += 1;
                Err(RetryAfter {
                    wait: Duration::from_nanos(at - now),
                }
                .into())
            }
        };
        let granted = if result.is_ok() { n } else { 0 };
        let change = KeyedChange::left(&state, before, granted, result.is_err());
        drop(state);
        shared.record(change);
        result
    }

    /// Waits for one unit for `key`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before its instant gives the unit back.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedLimiter::new(Quota::per_second(10).burst(1), 100).unwrap();
    /// let start = tokio::time::Instant::now();
    /// limiter.acquire(&"a").await;
    /// limiter.acquire(&"a").await;
    /// assert_eq!(start.elapsed(), std::time::Duration::from_millis(100));
    /// # }
    /// ```
    pub fn acquire(&self, key: &K) -> KeyedAcquire<'_, K> {
        KeyedAcquire::new(Reservation::new(self, key, 1))
    }

    /// Waits for `n` units for `key`, granted together.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`](crate::InsufficientCapacity) at once when `n` exceeds the burst.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](KeyedLimiter::acquire): dropping it before its instant gives the units back when
    /// no later wait on the key was reserved after it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedLimiter::new(Quota::per_second(10), 100).unwrap();
    /// let start = tokio::time::Instant::now();
    /// limiter.acquire_n(&"a", 10).await.unwrap();
    /// limiter.acquire_n(&"a", 5).await.unwrap();
    /// assert_eq!(start.elapsed(), std::time::Duration::from_millis(500));
    /// assert!(limiter.acquire_n(&"a", 11).await.is_err());
    /// # }
    /// ```
    pub fn acquire_n(&self, key: &K, n: u32) -> KeyedAcquireN<'_, K> {
        KeyedAcquireN::new(Reservation::new(self, key, n))
    }

    /// Like [`acquire_with`](KeyedLimiter::acquire_with), for `n` units granted together.
    ///
    /// # Errors
    ///
    /// As `acquire_with`, plus
    /// [`AcquireError::InsufficientCapacity`](crate::AcquireError::InsufficientCapacity) at once
    /// when `n` exceeds the burst.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](KeyedLimiter::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedLimiter::new(Quota::per_second(4), 100).unwrap();
    /// limiter.acquire_n_with(&Context::new(), &"a", 4).await.unwrap();
    /// # }
    /// ```
    pub fn acquire_n_with<'a>(
        &'a self,
        ctx: &'a Context,
        key: &K,
        n: u32,
    ) -> KeyedAcquireWith<'a, K> {
        KeyedAcquireWith::new(Reservation::new(self, key, n), ctx)
    }

    /// Changes the quota of every key at run time. Each key keeps the units it has in use, counted in
    /// the new quota's units (at most a whole bucket), as [`Limiter::set_rate`](crate::Limiter::set_rate)
    /// does; waits already reserved keep their instants.
    ///
    /// # Errors
    ///
    /// [`QuotaError`] for a quota no limiter takes; the quota in force is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedLimiter::new(Quota::per_second(1), 100).unwrap();
    /// limiter.try_acquire(&"a").unwrap();
    /// limiter.set_rate(Quota::per_second(100)).unwrap();
    /// assert_eq!(limiter.quota(), Quota::per_second(100));
    /// limiter.try_acquire_n(&"a", 99).unwrap(); // the unit in use stays in use
    /// assert!(limiter.try_acquire(&"a").is_err());
    /// # }
    /// ```
    pub fn set_rate(&self, quota: Quota) -> Result<(), QuotaError> {
        let gcra = Gcra::new(&quota)?;
        let shared = &*self.shared;
        let mut state = shared.lock();
        let now = shared.clock.now();
        let old = state.gcra;
        for tat in state.tats.values_mut() {
            *tat = old.rescale(*tat, now, &gcra);
        }
        state.gcra = gcra;
        state.quota = quota;
        // Keys may have room to be forgotten sooner (or later) under the new quota: look again.
        state.full_until = 0;
        Ok(())
    }

    /// Waits for one unit for `key` unless `ctx` ends first; a deadline that comes before the unit
    /// fails at once with [`AcquireError::DeadlineTooSoon`](crate::AcquireError::DeadlineTooSoon).
    ///
    /// # Errors
    ///
    /// [`AcquireError`](crate::AcquireError): the context's cause, or the deadline that comes too
    /// soon.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](KeyedLimiter::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedLimiter::new(Quota::per_second(1), 100).unwrap();
    /// limiter.acquire_with(&Context::new(), &"a").await.expect("a full bucket");
    /// # }
    /// ```
    pub fn acquire_with<'a>(&'a self, ctx: &'a Context, key: &K) -> KeyedAcquireWith<'a, K> {
        KeyedAcquireWith::new(Reservation::new(self, key, 1), ctx)
    }

    /// Names the limiter: the `limiter` label of its metrics (cargo feature `metrics`; `"limiter"`
    /// when unnamed). Name it where it is built, before its first call: its metrics are registered
    /// then. Give each limiter its own name; a plain and a keyed limiter of one name add up.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// let per_tenant = KeyedLimiter::<String>::new(Quota::per_second(5), 10_000)
    ///     .unwrap()
    ///     .named("per_tenant");
    /// # let _ = per_tenant;
    /// ```
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub fn named(self, name: impl Into<String>) -> Self {
        #[cfg(feature = "metrics")]
        self.shared.export.name(&name.into());
        self
    }

    /// The quota applied to each key.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// let limiter = KeyedLimiter::<String>::new(Quota::per_second(3), 10).unwrap();
    /// assert_eq!(limiter.quota(), Quota::per_second(3));
    /// ```
    pub fn quota(&self) -> Quota {
        self.shared.lock().quota
    }

    /// A snapshot of the counters, including how many keys are remembered.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{KeyedLimiter, Quota};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedLimiter::new(Quota::per_second(3), 10).unwrap();
    /// limiter.try_acquire(&1).unwrap();
    /// limiter.try_acquire(&2).unwrap();
    /// assert_eq!(limiter.metrics().keys, 2);
    /// # }
    /// ```
    pub fn metrics(&self) -> KeyedMetrics {
        let state = self.shared.lock();
        KeyedMetrics {
            granted: state.granted,
            rejected: state.rejected,
            keys: state.tats.len(),
            evicted: state.evicted,
            waiting: self.shared.waiting.load(Ordering::Relaxed),
            abandoned: self.shared.abandoned.load(Ordering::Relaxed),
        }
    }
}

impl<K: Hash + Eq + Clone> KeyedShared<K> {
    fn lock(&self) -> MutexGuard<'_, KeyedState<K>> {
        self.state.lock()
    }

    /// A caller starts (`true`) or stops (`false`) sleeping until its instant.
    fn sleeping(&self, starts: bool) {
        if starts {
            self.waiting.fetch_add(1, Ordering::Relaxed);
        } else {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        self.export.sleeping(starts);
    }

    /// Records a call's change on the `metrics` facade; called with the lock released.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    fn record(&self, change: KeyedChange) {
        #[cfg(feature = "metrics")]
        self.export.record(change);
    }

    /// The key's theoretical arrival time (a full bucket for a key not remembered), once
    /// there is room to remember it; or `Err` with the instant room is sure to exist.
    fn tat(&self, state: &mut KeyedState<K>, key: &K, now: u64) -> Result<u64, u64> {
        if let Some(tat) = state.tats.get(key) {
            return Ok(*tat);
        }
        if state.tats.len() < self.max_keys {
            return Ok(state.gcra.fresh_tat(now));
        }
        if now < state.full_until {
            return Err(state.full_until);
        }
        // A key whose bucket is full again is the same as a key never seen: forgetting it is free.
        let before = state.tats.len();
        state.tats.retain(|_, tat| *tat > now);
        state.evicted += (before - state.tats.len()) as u64;
        if state.tats.len() < self.max_keys {
            return Ok(state.gcra.fresh_tat(now));
        }
        // Every key owes time: none is forgotten (a fresh bucket for a new key name would be a way
        // around the limit). The soonest refill is when room is sure to exist.
        state.full_until = state.tats.values().copied().min().unwrap_or(now);
        Err(state.full_until)
    }
}

impl<K> fmt::Debug for KeyedLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("max_keys", &self.shared.max_keys)
            .finish_non_exhaustive()
    }
}
