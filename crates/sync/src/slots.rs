//! A fixed number of slots, taken without a lock while nobody waits, and a first-come,
//! first-served line of tasks waiting for one.
//!
//! A limited group takes a slot for each task it admits and gives it back when the task ends, once
//! per task. tokio's `Semaphore` takes its lock on every give-back, which makes every task's end
//! contend with the spawner on one lock. Here taking and giving back are one compare-and-swap on
//! one word while the line is empty; the lock guards only the line.
//!
//! # Invariants
//!
//! The word holds the count of free slots, `WAITING` and `CLOSED`.
//!
//! 1. `WAITING` is set exactly while the [`Line`] is not empty, and only under the line's lock. It is
//!    set only from a word with no free slot, and while it is set the count stays 0: a give-back then
//!    takes the lock and hands its slot to the first in line, or, finding the line empty (every
//!    waiter left), adds it and clears `WAITING` in one step. So a slot never sits free while a
//!    task waits for one, and a newcomer never overtakes the line (it sees `WAITING`).
//! 2. A waiter joins the line in the same critical section in which it set `WAITING` (or found it
//!    set) by a compare-and-swap on a word with no free slot, so a give-back that raced with it
//!    either changed the word first (the swap fails and the waiter looks again) or sees `WAITING`
//!    and takes the lock, which the waiter holds until it is in line.
//! 3. A waiter that leaves after it was granted a slot it never saw gives that slot back (to the
//!    next in line, or to the count); one that leaves while in line stays marked in the line until
//!    the line reaches it ([`Line::leave`]).
//! 4. After [`close`](Slots::close), every take fails, the line is refused, and no one joins it.
//!
//! No waker is woken and no waker dropped while the lock is held (bounded-sync's rule).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::Mutex;
use crate::atomic::{AtomicUsize, Ordering};
use crate::line::{Answer, Leave, Line};

const CLOSED: usize = 1 << (usize::BITS - 1);
const WAITING: usize = 1 << (usize::BITS - 2);
const COUNT: usize = WAITING - 1;

/// The most slots a [`Slots`] holds: `usize::MAX >> 3`, as tokio's `Semaphore::MAX_PERMITS`.
pub const MAX_SLOTS: usize = usize::MAX >> 3;

/// Why no slot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No slot is free, or others are in line for one.
    Full,
    /// The slots were closed.
    Closed,
}

/// A count of free slots with a line of waiters; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use bounded_sync::slots::{Refused, Slots};
///
/// let slots = Slots::new(1);
/// assert_eq!(slots.try_take(), Ok(()));
/// assert_eq!(slots.try_take(), Err(Refused::Full));
/// slots.give_back();
/// assert_eq!(slots.try_take(), Ok(()));
/// slots.close();
/// assert_eq!(slots.try_take(), Err(Refused::Closed));
/// ```
#[derive(Debug)]
pub struct Slots {
    word: AtomicUsize,
    line: Mutex<Line>,
}

impl Slots {
    /// `n` free slots.
    ///
    /// # Panics
    ///
    /// Panics if `n` is above [`MAX_SLOTS`].
    pub fn new(n: usize) -> Self {
        assert!(n <= MAX_SLOTS, "at most {MAX_SLOTS} slots, not {n}");
        Slots {
            word: AtomicUsize::new(n),
            line: Mutex::new(Line::new()),
        }
    }

    /// The slots free now.
    pub fn free(&self) -> usize {
        self.word.load(Ordering::Acquire) & COUNT
    }

    /// Takes a slot if one is free and nobody is in line for one.
    pub fn try_take(&self) -> Result<(), Refused> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if word & CLOSED != 0 {
                return Err(Refused::Closed);
            }
            // A set `WAITING` means a count of 0 (invariant 1).
            if word & COUNT == 0 {
                return Err(Refused::Full);
            }
            match (self.word).compare_exchange_weak(
                word,
                word - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => word = now,
            }
        }
    }

    /// Takes a slot, waiting in line for one. Dropping the future gives up its place, or gives
    /// back the slot it was granted but never saw. Polling it again after it resolved panics.
    pub fn take(&self) -> Take<'_> {
        Take {
            slots: self,
            key: None,
            done: false,
        }
    }

    /// Gives a slot back: to the first in line, or to the count.
    pub fn give_back(&self) {
        let mut word = self.word.load(Ordering::Acquire);
        while word & WAITING == 0 {
            match (self.word).compare_exchange_weak(
                word,
                word + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
        let mut line = self.line.lock();
        let waker = self.hand_over(&mut line);
        drop(line);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Under the line's lock, a slot comes free: it goes to the first in line, whose waker is
    /// returned, or to the count, clearing `WAITING` once the line is empty (invariant 1).
    fn hand_over(&self, line: &mut Line) -> Option<Waker> {
        if let Some(waker) = line.grant_first() {
            if line.is_empty() {
                self.word.fetch_and(!WAITING, Ordering::AcqRel);
            }
            return Some(waker);
        }
        // Nobody left in line: one step adds the slot and clears `WAITING`.
        let _ = (self.word).fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            Some((word & !WAITING) + 1)
        });
        None
    }

    /// Refuses every waiter and every later take (invariant 4).
    pub fn close(&self) {
        let mut wakers = Vec::new();
        let mut line = self.line.lock();
        line.refuse_all(&mut wakers);
        self.word.fetch_or(CLOSED, Ordering::AcqRel);
        self.word.fetch_and(!WAITING, Ordering::AcqRel);
        drop(line);
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Sets the free count to `n` (closed slots stay closed). Only for an owner that holds none of them
    /// and lends them to nobody who could be waiting (a group changing its limit while idle and
    /// borrowed mutably): places left in line by waiters that gave up stay there, marked, and are
    /// skipped as before.
    ///
    /// # Panics
    ///
    /// Panics if `n` is above [`MAX_SLOTS`].
    pub fn reset(&self, n: usize) {
        assert!(n <= MAX_SLOTS, "at most {MAX_SLOTS} slots, not {n}");
        let _line = self.line.lock();
        let closed = self.word.load(Ordering::Acquire) & CLOSED;
        self.word.store(n | closed, Ordering::Release);
    }

    /// Under the line's lock: a slot (`None`), or a place in line (its key), invariant 2.
    fn take_or_join(&self, line: &mut Line, waker: &Waker) -> Result<Option<usize>, Refused> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if word & CLOSED != 0 {
                return Err(Refused::Closed);
            }
            let (next, took) = match word & COUNT {
                0 => (word | WAITING, false),
                _ => (word - 1, true),
            };
            match (self.word).compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if took => return Ok(None),
                Ok(_) => return Ok(Some(line.join(waker))),
                Err(now) => word = now,
            }
        }
    }
}

/// Future of [`Slots::take`]: a slot, or [`Refused::Closed`]. Never [`Refused::Full`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Take<'a> {
    slots: &'a Slots,
    /// Its place in line, once it has joined.
    key: Option<usize>,
    /// It resolved: polled again, it would take another slot.
    done: bool,
}

impl Future for Take<'_> {
    type Output = Result<(), Refused>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let taken = self.as_mut().poll_take(cx);
        self.done = taken.is_ready();
        taken
    }
}

impl Take<'_> {
    fn poll_take(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        assert!(!self.done, "a slot's `Take` polled after it resolved");
        let slots = self.slots;
        let Some(key) = self.key else {
            match slots.try_take() {
                Err(Refused::Full) => {}
                done => return Poll::Ready(done),
            }
            let mut line = slots.line.lock();
            let joined = slots.take_or_join(&mut line, cx.waker());
            drop(line);
            return match joined {
                Ok(Some(key)) => {
                    self.key = Some(key);
                    Poll::Pending
                }
                Ok(None) => Poll::Ready(Ok(())),
                Err(refused) => Poll::Ready(Err(refused)),
            };
        };
        let answer = std::task::ready!(slots.line.lock().poll(key, cx.waker()));
        self.key = None;
        Poll::Ready(match answer {
            Answer::Granted => Ok(()),
            Answer::Refused => Err(Refused::Closed),
        })
    }
}

impl Drop for Take<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let slots = self.slots;
        let mut line = slots.line.lock();
        let (left, waker) = match line.leave(key) {
            // Granted a slot it never saw: the slot goes on (invariant 3).
            Leave::Granted => (None, slots.hand_over(&mut line)),
            Leave::Waiting(waker) => (Some(waker), None),
            Leave::Nothing => (None, None),
        };
        drop(line);
        drop(left);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use super::{Refused, Slots, Take};
    use std::future::Future;
    use std::pin::{Pin, pin};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    /// Counts its wakes.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes::default());
        (wakes.clone(), Waker::from(wakes))
    }

    /// Polls a wait for a slot once with `waker`.
    fn poll(take: Pin<&mut Take<'_>>, waker: &Waker) -> Poll<Result<(), Refused>> {
        take.poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_freed_slot_goes_to_the_first_in_line_not_to_a_newcomer() {
        let slots = Slots::new(1);
        slots.try_take().unwrap();
        let (first_wakes, first_waker) = waker();
        let (_, second_waker) = waker();
        let mut first = pin!(slots.take());
        let mut second = pin!(slots.take());
        assert!(poll(first.as_mut(), &first_waker).is_pending());
        assert!(poll(second.as_mut(), &second_waker).is_pending());
        slots.give_back();
        assert_eq!(
            first_wakes.0.load(Ordering::SeqCst),
            1,
            "the first in line is woken"
        );
        assert_eq!(
            slots.try_take(),
            Err(Refused::Full),
            "a newcomer does not overtake"
        );
        let polled = poll(first.as_mut(), &first_waker);
        assert_eq!(polled, Poll::Ready(Ok(())));
        assert!(poll(second.as_mut(), &second_waker).is_pending());
        slots.give_back();
        let polled = poll(second.as_mut(), &second_waker);
        assert_eq!(polled, Poll::Ready(Ok(())));
        slots.give_back();
        assert_eq!(
            slots.free(),
            1,
            "with the line empty, the slot is free again"
        );
        assert_eq!(slots.try_take(), Ok(()));
    }

    #[test]
    fn a_waiter_dropped_after_its_grant_passes_the_slot_on() {
        let slots = Slots::new(1);
        slots.try_take().unwrap();
        let (_, w) = waker();
        let mut granted = Box::pin(slots.take());
        let mut next = pin!(slots.take());
        assert!(poll(granted.as_mut(), &w).is_pending());
        assert!(poll(next.as_mut(), &w).is_pending());
        slots.give_back();
        drop(granted);
        assert_eq!(poll(next.as_mut(), &w), Poll::Ready(Ok(())));
        slots.give_back();
        assert_eq!(slots.free(), 1);
    }

    #[test]
    fn a_waiter_dropped_in_line_is_skipped_and_the_slot_is_free_after() {
        let slots = Slots::new(1);
        slots.try_take().unwrap();
        let (_, w) = waker();
        let mut left = Box::pin(slots.take());
        assert!(poll(left.as_mut(), &w).is_pending());
        drop(left);
        assert_eq!(slots.try_take(), Err(Refused::Full), "still held");
        slots.give_back();
        assert_eq!(slots.free(), 1);
        assert_eq!(
            slots.try_take(),
            Ok(()),
            "nobody waits: a newcomer takes it at once"
        );
    }

    #[test]
    fn closing_refuses_the_line_and_every_later_take() {
        let slots = Slots::new(0);
        let (wakes, w) = waker();
        let mut waiting = pin!(slots.take());
        assert!(poll(waiting.as_mut(), &w).is_pending());
        slots.close();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        let polled = poll(waiting.as_mut(), &w);
        assert_eq!(polled, Poll::Ready(Err(Refused::Closed)));
        assert_eq!(slots.try_take(), Err(Refused::Closed));
        let mut late = pin!(slots.take());
        let polled = poll(late.as_mut(), &w);
        assert_eq!(polled, Poll::Ready(Err(Refused::Closed)));
    }

    #[test]
    fn reset_sets_the_count_and_closed_slots_stay_closed() {
        let slots = Slots::new(2);
        slots.reset(5);
        assert_eq!(slots.free(), 5);
        for _ in 0..5 {
            slots.try_take().unwrap();
        }
        assert_eq!(slots.try_take(), Err(Refused::Full));
        slots.reset(super::MAX_SLOTS);
        assert_eq!(slots.free(), super::MAX_SLOTS);
        slots.close();
        slots.reset(3);
        assert_eq!(slots.try_take(), Err(Refused::Closed));
    }

    /// Runs `fut` to its end on this thread, parking between polls; panics if it is not woken to
    /// its end within ten seconds (a lost wake-up).
    fn block_on<F: Future>(fut: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut fut = pin!(fut);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                return out;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "a waiter in line was never woken");
            std::thread::park_timeout(left);
        }
    }

    /// Four threads take two slots 20,000 times between them, by `try_take`, by waiting in line, and
    /// by waiting and giving up after one poll: never more than two holders, and both slots free at
    /// the end, however the threads interleave.
    #[test]
    fn stress_never_more_holders_than_slots_and_every_slot_comes_back() {
        const SLOTS: usize = 2;
        let slots = Arc::new(Slots::new(SLOTS));
        let holders = Arc::new(AtomicUsize::new(0));
        let waited = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (slots, holders, waited) = (slots.clone(), holders.clone(), waited.clone());
                std::thread::spawn(move || {
                    let (_, w) = waker();
                    for i in 0..5_000usize {
                        let held = match (i + t) % 3 {
                            0 => slots.try_take().is_ok(),
                            1 => {
                                let mut take = pin!(slots.take());
                                match poll(take.as_mut(), &w) {
                                    Poll::Ready(took) => took.is_ok(),
                                    Poll::Pending => {
                                        waited.fetch_add(1, Ordering::Relaxed);
                                        block_on(take).is_ok()
                                    }
                                }
                            }
                            _ => {
                                let mut take = Box::pin(slots.take());
                                let polled = poll(take.as_mut(), &w);
                                drop(take);
                                polled.is_ready()
                            }
                        };
                        if held {
                            let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(now <= SLOTS, "{now} holders of {SLOTS} slots");
                            std::thread::yield_now();
                            holders.fetch_sub(1, Ordering::SeqCst);
                            slots.give_back();
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(slots.free(), SLOTS);
        assert_eq!(slots.try_take(), Ok(()), "nobody is left in line");
        assert!(
            waited.load(Ordering::Relaxed) >= 100,
            "the threads waited in line only {} times",
            waited.load(Ordering::Relaxed)
        );
    }

    #[test]
    #[should_panic(expected = "polled after it resolved")]
    fn a_take_polled_again_after_it_resolved_panics_rather_than_take_a_second_slot() {
        let slots = Slots::new(2);
        let (_, w) = waker();
        let mut take = pin!(slots.take());
        assert_eq!(poll(take.as_mut(), &w), Poll::Ready(Ok(())));
        let _ = poll(take.as_mut(), &w);
    }

    #[test]
    #[should_panic(expected = "at most")]
    fn more_than_the_most_slots_is_refused_clearly() {
        let _ = Slots::new(usize::MAX);
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::Slots;
    use crate::Arc;
    use crate::atomic::{AtomicUsize, Ordering};
    use std::future::Future;

    /// One slot, three threads each taking it (waiting in line when it is held), holding it, and
    /// giving it back: never two holders at once, every take ends (no wake-up is lost between a
    /// give-back without the lock and a waiter joining the line), and the slot is free at the end
    /// (invariants 1 and 2).
    #[test]
    fn one_slot_is_held_by_one_task_at_a_time_and_every_waiter_gets_it() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            let holders = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (slots, holders) = (slots.clone(), holders.clone());
                    loom::thread::spawn(move || {
                        loom::future::block_on(slots.take()).unwrap();
                        assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        holders.fetch_sub(1, Ordering::SeqCst);
                        slots.give_back();
                    })
                })
                .collect();
            if slots.try_take().is_ok() {
                assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                holders.fetch_sub(1, Ordering::SeqCst);
                slots.give_back();
            }
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(slots.free(), 1);
        });
    }

    /// A waiter gives up while the holder gives the slot back: whether it was granted first or
    /// not, the slot ends free, never lost (invariant 3).
    #[test]
    fn a_waiter_that_gives_up_never_loses_the_slot() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            slots.try_take().unwrap();
            let holder = {
                let slots = slots.clone();
                loom::thread::spawn(move || slots.give_back())
            };
            let mut take = Box::pin(slots.take());
            let waker = std::task::Waker::noop();
            let polled = take
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker));
            drop(take);
            holder.join().unwrap();
            if polled.is_ready() {
                // It took the slot without waiting: it holds it until it gives it back.
                slots.give_back();
            }
            assert_eq!(slots.free(), 1);
        });
    }

    /// A close races a waiter joining the line: the waiter is refused, never left waiting.
    #[test]
    fn a_close_refuses_a_waiter_whenever_it_joins() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(0));
            let waiter = {
                let slots = slots.clone();
                loom::thread::spawn(move || loom::future::block_on(slots.take()))
            };
            slots.close();
            assert!(waiter.join().unwrap().is_err());
        });
    }
}
