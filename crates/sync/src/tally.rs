//! [`Tally`]: counters that many threads add to on a hot path, each thread without a locked
//! instruction, read exactly by summing.
//!
//! A shared `AtomicU64::fetch_add` is one locked read-modify-write per count. Beside another locked
//! instruction on the same path (the rate limiter's compare-and-swap of its `tat`), it costs about
//! as much again as all the rest of the path. A tally instead gives each thread a slot of its own,
//! on cache lines of its own, that only that thread writes: an add is a load and a store.
//!
//! # Invariants
//!
//! 1. A slot has at most one writer at a time. A thread writes only the slot of the claim it holds
//!    (a thread-local cell, set on the thread's first add from a process-wide pool of `SLOTS`
//!    claims). A claim goes back to the pool only from the destructor of a second thread-local,
//!    registered before the claim is taken, which first marks the cell as holding none (that
//!    thread's later adds go to the shared counter); it is taken again under the pool's lock, so
//!    the next holder's first load sees the last holder's last store. Every count lands once: in a
//!    slot, or in the shared counter by `fetch_add`.
//! 2. A thread with no claim (more than `SLOTS` threads count at once, or it is exiting) adds to
//!    the shared counter with `fetch_add`: slower, never lost.
//! 3. [`Tally::sum`] adds up loads of every slot and the shared counter: a count made on another
//!    thread is in it once that thread's add happens before the sum (a join, a lock, a channel);
//!    adds racing with the sum may or may not be. Every add is a release and every load an
//!    acquire, so a sum that counts an add also sees everything the adding thread did before it,
//!    its earlier adds to other counters included: sums taken in the reverse order of the adds of
//!    one piece of work (ended, then started, then submitted) never count it ended but not started.
//!
//! The slots are allocated on the first add through a claim: `SLOTS` slots of 128 bytes (4 KiB for
//! up to 16 counters) per tally.
//!
//! Built with `--cfg bounded_loom`, every add goes to the shared counter (loom models no
//! thread-locals here), so models see the counts exact by construction.

use std::sync::OnceLock;

use crate::atomic::{AtomicU64, Ordering};

/// Claims in the process-wide pool: threads past this many, counting at once, share one counter.
pub const SLOTS: usize = 32;

/// `K` counters that many threads add to; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use bounded_sync::tally::Tally;
///
/// let tally = Tally::<2>::default();
/// std::thread::scope(|scope| {
///     for _ in 0..4 {
///         scope.spawn(|| {
///             for _ in 0..1000 {
///                 tally.add(0, 1);
///             }
///             tally.add(1, 5);
///         });
///     }
/// });
/// assert_eq!((tally.sum(0), tally.sum(1)), (4000, 20));
/// ```
pub struct Tally<const K: usize> {
    slots: OnceLock<Box<[Slot<K>; SLOTS]>>,
    shared: [AtomicU64; K],
}

/// One thread's counts, alone on its cache lines (128 bytes: a pair of lines, which x86 prefetches
/// together).
#[repr(align(128))]
struct Slot<const K: usize>([AtomicU64; K]);

impl<const K: usize> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            slots: OnceLock::new(),
            shared: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl<const K: usize> Tally<K> {
    /// Adds `n` to counter `k` (wrapping).
    ///
    /// # Panics
    ///
    /// If `k >= K`.
    #[inline]
    pub fn add(&self, k: usize, n: u64) {
        if let (Some(slot), Some(slots)) = (claimed(), self.slots.get()) {
            let count = &slots[slot].0[k];
            // The only writer of this slot (invariant 1): no locked instruction needed.
            count.store(
                count.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Release,
            );
        } else {
            self.add_first(k, n);
        }
    }

    /// `add` without a claim, or before this tally's slots exist.
    #[cold]
    #[inline(never)]
    fn add_first(&self, k: usize, n: u64) {
        match claimed() {
            Some(slot) => {
                let count = &self.slots()[slot].0[k];
                count.store(
                    count.load(Ordering::Relaxed).wrapping_add(n),
                    Ordering::Release,
                );
            }
            None => {
                self.shared[k].fetch_add(n, Ordering::Release);
            }
        }
    }

    /// Counter `k`: everything added before this call began, on this thread or one it synchronised
    /// with (wrapping).
    ///
    /// # Panics
    ///
    /// If `k >= K`.
    pub fn sum(&self, k: usize) -> u64 {
        let shared = self.shared[k].load(Ordering::Acquire);
        self.slots.get().map_or(shared, |slots| {
            slots.iter().fold(shared, |sum, slot| {
                sum.wrapping_add(slot.0[k].load(Ordering::Acquire))
            })
        })
    }

    fn slots(&self) -> &[Slot<K>; SLOTS] {
        self.slots.get_or_init(|| {
            Box::new(std::array::from_fn(|_| {
                Slot(std::array::from_fn(|_| AtomicU64::new(0)))
            }))
        })
    }
}

impl<const K: usize> std::fmt::Debug for Tally<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sums: Vec<u64> = (0..K).map(|k| self.sum(k)).collect();
        f.debug_tuple("Tally").field(&sums).finish()
    }
}

/// The claims not held by any thread, and the next never handed out.
#[cfg(not(bounded_loom))]
static POOL: std::sync::Mutex<Pool> = std::sync::Mutex::new(Pool {
    free: Vec::new(),
    next: 0,
});

#[cfg(not(bounded_loom))]
struct Pool {
    free: Vec<usize>,
    next: usize,
}

/// `SLOT` before the thread's first add.
#[cfg(not(bounded_loom))]
const UNCLAIMED: usize = usize::MAX;
/// `SLOT` with no claim: the pool was empty, or the thread's locals are being destroyed.
#[cfg(not(bounded_loom))]
const NONE: usize = usize::MAX - 1;

#[cfg(not(bounded_loom))]
std::thread_local! {
    /// The thread's claim: a cell with a constant start and no destructor, so that reading it is
    /// one load with no check of whether it is alive (it lives until the thread is gone).
    static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(UNCLAIMED) };
    /// Gives the claim back when the thread's locals are destroyed.
    static GIVE_BACK: GiveBack = const { GiveBack };
}

#[cfg(not(bounded_loom))]
struct GiveBack;

#[cfg(not(bounded_loom))]
impl Drop for GiveBack {
    fn drop(&mut self) {
        let slot = SLOT.replace(NONE);
        if slot < SLOTS {
            crate::lock_static(&POOL).free.push(slot);
        }
    }
}

/// This thread's slot, claimed on its first call: `None` without one.
#[inline]
fn claimed() -> Option<usize> {
    #[cfg(not(bounded_loom))]
    {
        let slot = SLOT.get();
        if slot < SLOTS {
            return Some(slot);
        }
        if slot == UNCLAIMED {
            return claim();
        }
    }
    None
}

/// Takes a claim from the pool for this thread, if it has one and the thread is not exiting.
#[cfg(not(bounded_loom))]
#[cold]
fn claim() -> Option<usize> {
    // Registers the give-back first: a thread whose locals are already being destroyed cannot,
    // and must not take a claim it would never give back.
    if GIVE_BACK.try_with(|_| ()).is_err() {
        SLOT.set(NONE);
        return None;
    }
    let mut pool = crate::lock_static(&POOL);
    let slot = pool.free.pop().or_else(|| {
        (pool.next < SLOTS).then(|| {
            pool.next += 1;
            pool.next - 1
        })
    });
    SLOT.set(slot.unwrap_or(NONE));
    slot
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use super::{SLOTS, Tally};

    #[test]
    fn more_threads_than_slots_lose_no_count() {
        let tally = Tally::<1>::default();
        std::thread::scope(|scope| {
            for _ in 0..SLOTS * 2 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        tally.add(0, 1);
                    }
                });
            }
        });
        assert_eq!(tally.sum(0), (SLOTS * 2 * 10_000) as u64);
    }

    #[test]
    fn threads_that_come_and_go_lose_no_count() {
        // Each round's threads exit and give their claims back; the next round's take them over
        // and go on adding to the same slots.
        let tally = Tally::<2>::default();
        for round in 0..20 {
            std::thread::scope(|scope| {
                for _ in 0..4 {
                    scope.spawn(|| {
                        for _ in 0..1_000 {
                            tally.add(0, 1);
                        }
                        tally.add(1, 3);
                    });
                }
            });
            assert_eq!(tally.sum(0), (round + 1) * 4_000);
            assert_eq!(tally.sum(1), (round + 1) * 12);
        }
    }

    #[test]
    fn a_count_made_while_the_thread_exits_is_not_lost() {
        // A thread-local whose destructor counts, set before the thread's claim exists: thread-locals
        // are destroyed in the reverse order of their first use on Linux, so the claim is gone when it
        // counts (elsewhere the order may differ; the count must land either way, without a panic).
        struct CountsOnExit(&'static Tally<1>);
        impl Drop for CountsOnExit {
            fn drop(&mut self) {
                self.0.add(0, 7);
            }
        }
        std::thread_local! {
            static ON_EXIT: std::cell::RefCell<Option<CountsOnExit>> =
                const { std::cell::RefCell::new(None) };
        }
        static TALLY: std::sync::OnceLock<Tally<1>> = std::sync::OnceLock::new();
        let tally = TALLY.get_or_init(Tally::default);
        std::thread::spawn(|| {
            ON_EXIT.with(|slot| *slot.borrow_mut() = Some(CountsOnExit(tally)));
            tally.add(0, 1);
        })
        .join()
        .expect("counting while the thread exits must not panic");
        assert_eq!(tally.sum(0), 8);
    }
}
