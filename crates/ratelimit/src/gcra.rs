//! The arithmetic of the generic cell rate algorithm (GCRA), the same decisions governor makes,
//! on nanoseconds since a limiter's origin (see `clock`).
//!
//! The state is one number, the theoretical arrival time (`tat`): the instant at which the bucket
//! would be full again if nothing more were granted. A request for `n` units conforms at `now` when
//! `tat + (n - 1) * t - tau <= now`, where `t` is the time one unit costs and `tau = (burst - 1) * t`.

use bounded_sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::{InsufficientCapacity, QuotaError, quota::Quota};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Nanoseconds one unit costs (the emission interval).
    t: u64,
    /// How far the theoretical arrival time may run ahead of now: `(burst - 1) * t`.
    tau: u64,
    burst: u32,
}

/// The cost of a unit under a blocked quota: about 73 years, so that no unit conforms while the block
/// stands, and small enough that every sum below stays exact.
const BLOCKED: u64 = u64::MAX / 8;

/// The longest bucket a quota may have: a century of 365.25-day years, in nanoseconds (about 0.7 of
/// `u64::MAX / 4`).
const CENTURY_NANOS: u128 = 36_525 * 86_400 * 1_000_000_000;

impl Gcra {
    pub(crate) fn new(quota: &Quota) -> Result<Self, QuotaError> {
        if quota.is_blocked() {
            return Ok(Gcra {
                t: BLOCKED,
                tau: 0,
                burst: 1,
            });
        }
        if quota.is_unlimited() {
            // A unit costs no time: every request conforms at once, and `tat` never passes `now`.
            return Ok(Gcra {
                t: 0,
                tau: 0,
                burst: u32::MAX,
            });
        }
        let (count, per, burst) = quota.parts();
        if count == 0 {
            return Err(QuotaError::ZeroRate);
        }
        if per.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        if per.as_nanos() < u128::from(count) {
            return Err(QuotaError::TooFast { quota: *quota });
        }
        // Rounded up to whole nanoseconds: a unit never costs less than the quota says, so the
        // limiter never grants faster than its quota (3 a second cost 333,333,334 ns each).
        let t = quota.interval().as_nanos();
        // A bucket longer than a century is a configuration mistake, and a bound that keeps the
        // products below u64::MAX / 4 lets every sum below stay exact.
        let bucket = t * u128::from(burst);
        if bucket > CENTURY_NANOS {
            return Err(QuotaError::TooSlow { quota: *quota });
        }
        let t = t as u64;
        Ok(Gcra {
            t,
            tau: t * u64::from(burst - 1),
            burst,
        })
    }

    pub(crate) fn burst(&self) -> u32 {
        self.burst
    }

    /// Whether `n` units can ever be granted together: never when they are more than the burst.
    pub(crate) fn fits(&self, n: u32) -> Result<(), InsufficientCapacity> {
        if n > self.burst {
            return Err(InsufficientCapacity {
                requested: n,
                burst: self.burst,
            });
        }
        Ok(())
    }

    /// The `tat` of a limiter that starts under this quota: a full bucket, or an empty one if blocked.
    pub(crate) fn initial_tat(&self) -> u64 {
        if self.t == BLOCKED { BLOCKED } else { 0 }
    }

    /// The `tat` of a key seen for the first time (see [`initial_tat`](Gcra::initial_tat)), at `now`.
    pub(crate) fn fresh_tat(&self, now: u64) -> u64 {
        if self.t == BLOCKED {
            now.saturating_add(BLOCKED)
        } else {
            0
        }
    }

    /// Units a request could take at `now`, with nobody queued: the bucket's level.
    pub(crate) fn available(&self, tat: u64, now: u64) -> u32 {
        if self.t == 0 || tat <= now {
            return self.burst;
        }
        let used = (tat - now).div_ceil(self.t);
        u32::try_from(u64::from(self.burst).saturating_sub(used)).unwrap_or(0)
    }

    /// The earliest instant at which `n` units conform, given `ahead` units that must be granted first.
    /// `n` must not exceed the burst.
    pub(crate) fn earliest(&self, tat: u64, ahead: u64, n: u32) -> u64 {
        let weight = self
            .t
            .saturating_mul(ahead.saturating_add(u64::from(n) - 1));
        tat.saturating_add(weight).saturating_sub(self.tau)
    }

    /// Grants `n` units at `now`: `Ok(new tat)`, or `Err(earliest instant)` when they do not conform yet.
    /// `n` must not exceed the burst.
    pub(crate) fn test(&self, tat: u64, now: u64, n: u32) -> Result<u64, u64> {
        let earliest = self.earliest(tat, 0, n);
        if now < earliest {
            return Err(earliest);
        }
        Ok(tat
            .max(now)
            .saturating_add(self.t.saturating_mul(u64::from(n))))
    }

    /// Gives back `n` units granted earlier and never used.
    pub(crate) fn refund(&self, tat: u64, n: u32) -> u64 {
        tat.saturating_sub(self.t.saturating_mul(u64::from(n)))
    }

    /// Carries a `tat` over to a new quota: the units in use now stay in use, counted in the new
    /// quota's units (rounded up, so a change of rate never frees more than it should), and at most a
    /// whole bucket of them: the new quota starts empty at worst, as Go's `SetLimit` does.
    pub(crate) fn rescale(&self, tat: u64, now: u64, to: &Gcra) -> u64 {
        if to.t == BLOCKED {
            // The bucket is empty for as long as the block stands.
            return now.saturating_add(BLOCKED);
        }
        if self.t == 0 || to.t == 0 || self.t == BLOCKED {
            // From or to unlimited, or out of a block: no unit is in use that a limit must carry over.
            return now;
        }
        let debt = u128::from(tat.saturating_sub(now));
        let scaled = (debt * u128::from(to.t)).div_ceil(u128::from(self.t));
        let bucket = u128::from(to.t) * u128::from(to.burst);
        // The bucket fits in u64 (checked in `new`), so the minimum does too.
        now.saturating_add(scaled.min(bucket) as u64)
    }
}

/// A [`Gcra`] that takes without the limiter's lock read: written only while that way is closed
/// (see `state`, invariant 6), read after the word that opened it.
pub(crate) struct SharedGcra {
    t: AtomicU64,
    tau: AtomicU64,
    burst: AtomicU32,
}

impl SharedGcra {
    pub(crate) fn new(gcra: Gcra) -> Self {
        SharedGcra {
            t: AtomicU64::new(gcra.t),
            tau: AtomicU64::new(gcra.tau),
            burst: AtomicU32::new(gcra.burst),
        }
    }

    /// Acquire loads: a reader that sees a value stored after a close of the lock-free way also sees
    /// that close, so its compare-and-swap on the closed word fails.
    #[inline]
    pub(crate) fn load(&self) -> Gcra {
        Gcra {
            t: self.t.load(Ordering::Acquire),
            tau: self.tau.load(Ordering::Acquire),
            burst: self.burst.load(Ordering::Acquire),
        }
    }

    pub(crate) fn store(&self, gcra: Gcra) {
        self.t.store(gcra.t, Ordering::Release);
        self.tau.store(gcra.tau, Ordering::Release);
        self.burst.store(gcra.burst, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gcra(count: u32, burst: u32) -> Gcra {
        Gcra::new(&Quota::per_second(count).burst(burst)).unwrap()
    }

    #[test]
    fn a_full_bucket_grants_the_burst_then_one_per_interval() {
        let g = gcra(100, 10);
        let mut tat = 0;
        for _ in 0..10 {
            tat = g.test(tat, 0, 1).unwrap();
        }
        assert_eq!(g.test(tat, 0, 1), Err(10_000_000));
        assert!(g.test(tat, 10_000_000, 1).is_ok());
    }

    #[test]
    fn units_ahead_push_the_earliest_instant_back_one_interval_each() {
        let g = gcra(100, 10);
        let tat = 100_000_000; // empty bucket at instant 0
        assert_eq!(g.earliest(tat, 0, 1), 10_000_000);
        assert_eq!(g.earliest(tat, 3, 1), 40_000_000);
        assert_eq!(g.earliest(tat, 3, 2), 50_000_000);
    }

    #[test]
    fn rescale_keeps_the_units_in_use() {
        let fast = gcra(100, 10);
        let slow = gcra(10, 10);
        // 4 units in use at 10 ms each: 40 ms of debt becomes 400 ms at 100 ms each.
        assert_eq!(
            fast.rescale(1_040_000_000, 1_000_000_000, &slow),
            1_400_000_000
        );
        // A full bucket stays full.
        assert_eq!(fast.rescale(5, 1_000, &slow), 1_000);
        // An empty bucket stays empty, no emptier: 10 units in use of a new burst of 2.
        let small = gcra(10, 2);
        assert_eq!(
            fast.rescale(1_100_000_000, 1_000_000_000, &small),
            1_200_000_000
        );
    }

    #[test]
    fn zeros_and_extremes_are_refused() {
        assert_eq!(Gcra::new(&Quota::per_second(0)), Err(QuotaError::ZeroRate));
        assert_eq!(
            Gcra::new(&Quota::per_second(5).burst(0)),
            Err(QuotaError::ZeroBurst)
        );
        assert_eq!(
            Gcra::new(&Quota::new(5, Duration::ZERO)),
            Err(QuotaError::ZeroPeriod)
        );
        let too_fast = Quota::new(u32::MAX, Duration::from_secs(1));
        assert_eq!(
            Gcra::new(&too_fast),
            Err(QuotaError::TooFast { quota: too_fast })
        );
        let too_slow = Quota::new(1, Duration::from_secs(3600 * 24 * 365 * 200));
        assert_eq!(
            Gcra::new(&too_slow),
            Err(QuotaError::TooSlow { quota: too_slow })
        );
    }

    #[test]
    fn a_bucket_of_a_century_is_the_longest_accepted() {
        let century = Duration::from_secs(36_525 * 86_400);
        assert!(Gcra::new(&Quota::new(1, century)).is_ok());
        assert!(Gcra::new(&Quota::new(100, century).burst(100)).is_ok());
        for too_slow in [
            Quota::new(1, century + Duration::from_nanos(1)),
            // 136 years: a unit a second with the largest burst.
            Quota::per_second(1).burst(u32::MAX),
            Quota::new(100, century).burst(101),
        ] {
            assert_eq!(
                Gcra::new(&too_slow),
                Err(QuotaError::TooSlow { quota: too_slow })
            );
        }
    }
}
