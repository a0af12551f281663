//! Slow polls among quick ones: which polls to time, picked at random, and whether the long ones
//! among those timed fill the time of the workers that made them.
//!
//! Workers that share one task (a pool's host, a pipeline stage's host) run on one thread, which
//! pays while their polls are quick and costs half the machine once some of them compute: one
//! poll in a hundred that computes for a millisecond is enough, although nearly every poll is
//! quick. Timing every poll costs more than sharing the task saves, so a [`Picker`] picks about
//! one in some number to time, at random, so that no rhythm of the work (every hundredth item
//! computes, say, and items come in batches of sixteen) keeps the timed ones off the slow ones.
//! Each timed poll of [`LONG`] or more then stands, in [`LongPolls`], for the polls it was picked
//! from; once those fill a quarter or more of a stretch of at least [`STRETCH`], even without
//! the longest of them, and [`LONG_POLLS`] or more were timed, the workers had better run on
//! every thread. A few long polls do not say so, nor do long polls far apart, nor one poll
//! however long: a blocking call, or the operating system running another thread on the CPU in
//! the middle of a timed poll (which, a timed poll being short, is rarely caught).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::busy::Stamp;

/// A timed poll of this long or more is a long one (it computed, or was interrupted). Ten times as
/// long in a build without optimizations, where the quick polls beside it run about ten times as
/// slowly too.
pub const LONG: Duration = match cfg!(debug_assertions) {
    true => Duration::from_micros(200),
    false => Duration::from_micros(20),
};

/// The stretch over which [`LongPolls`] weighs long polls.
pub const STRETCH: Duration = Duration::from_millis(10);

/// How many long polls [`LongPolls`] must have timed in a stretch before they can fill it: each
/// stands for many polls, so that a few rare ones, timed by chance, do not.
pub const LONG_POLLS: u32 = 3;

/// How many polls a [`Picker`] picks one of, for workers that share a task.
pub const SAMPLE_EVERY: u32 = 16;

/// Where the next picker's generator starts, so that pickers made together pick apart.
static STARTS: AtomicU32 = AtomicU32::new(1);

/// Picks about one poll in `every` to time, at random.
#[derive(Debug)]
pub struct Picker {
    every: u32,
    /// Polls until the next one is picked, and the state of the generator.
    countdown: u32,
    random: u32,
}

impl Picker {
    /// One poll in `every` on average (at least 1); the first poll is picked.
    pub fn new(every: u32) -> Self {
        let start = STARTS.fetch_add(0x9e37_79b9, std::sync::atomic::Ordering::Relaxed);
        Picker {
            every: every.max(1),
            countdown: 1,
            random: start | 1,
        }
    }

    /// Whether to time this poll.
    #[inline]
    pub fn pick(&mut self) -> bool {
        self.countdown -= 1;
        if self.countdown > 0 {
            return false;
        }
        // Xorshift: from 1 to 2 × every - 1 polls apart, `every` on average.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 17;
        self.random ^= self.random << 5;
        self.countdown = 1 + self.random % (2 * self.every - 1);
        true
    }

    /// The next poll is picked, whatever the generator says (a poll timed so is not one picked at
    /// random, and stands for no other).
    pub fn next(&mut self) {
        self.countdown = 1;
    }

    /// The poll after the next `polls` is picked, whatever the generator says (as with
    /// [`next`](Picker::next), it stands for no other).
    pub fn skip(&mut self, polls: u32) {
        self.countdown = polls.saturating_add(1);
    }

    /// No poll is picked again.
    pub fn stop(&mut self) {
        self.countdown = u32::MAX;
    }
}

/// The long polls timed among polls picked at random, one in `every`: whether they fill the time
/// (see the module's documentation).
#[derive(Debug)]
pub struct LongPolls {
    every: u32,
    /// When the first long poll of the current stretch began.
    since: Option<Stamp>,
    /// The long polls timed in the stretch, the time they stand for, and the most that one of them
    /// stands for.
    polls: u32,
    busy: Duration,
    largest: Duration,
}

impl LongPolls {
    /// For polls picked one in `every`.
    pub fn new(every: u32) -> Self {
        LongPolls {
            every,
            since: None,
            polls: 0,
            busy: Duration::ZERO,
            largest: Duration::ZERO,
        }
    }

    /// Counts a poll picked at random, begun at `start`, that took `took`: whether the long polls
    /// now fill their time. A poll shorter than [`LONG`] counts for nothing.
    pub fn count(&mut self, start: Stamp, took: Duration) -> bool {
        if took < LONG {
            return false;
        }
        let counted = took.saturating_mul(self.every);
        let since = *self.since.get_or_insert(start);
        self.polls += 1;
        self.busy = self.busy.saturating_add(counted);
        self.largest = self.largest.max(counted);
        let (_, stretch) = since.elapsed();
        if stretch < STRETCH {
            return false;
        }
        if self.busy < stretch / 4 {
            // Too far apart: a new stretch begins with this poll.
            self.since = Some(start);
            self.polls = 1;
            self.busy = counted;
            self.largest = counted;
            return false;
        }
        // Enough of them, and enough without the longest, which may stand alone.
        self.polls >= LONG_POLLS && self.busy - self.largest >= stretch / 4
    }
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use super::{LONG, LONG_POLLS, LongPolls, Picker, STRETCH};
    use crate::busy::Stamp;
    use std::time::{Duration, Instant};

    const EVERY: u32 = 16;

    /// A long poll, begun now and timed as `took`, once that much time has passed.
    fn long_poll(polls: &mut LongPolls, took: Duration) -> bool {
        let start = Stamp::now();
        std::thread::sleep(took);
        polls.count(start, took)
    }

    /// One poll, however long, does not fill a stretch for the polls around it: a few short long
    /// polls after it, which would not fill it without it, do not say the time is full.
    #[test]
    fn one_long_poll_alone_does_not_fill_the_time_however_long() {
        let mut polls = LongPolls::new(EVERY);
        assert!(!long_poll(&mut polls, STRETCH * 20));
        for _ in 0..LONG_POLLS {
            assert!(!long_poll(&mut polls, LONG));
        }
    }

    #[test]
    fn long_polls_back_to_back_fill_it_once_they_cover_a_stretch() {
        let mut polls = LongPolls::new(EVERY);
        let began = Instant::now();
        let took = STRETCH / EVERY;
        let mut n = 1;
        while !long_poll(&mut polls, took) {
            n += 1;
            assert!(n < 100, "never full");
        }
        assert!(n >= LONG_POLLS, "full after {n} long polls");
        assert!(began.elapsed() >= STRETCH, "full before a whole stretch");
    }

    #[test]
    fn long_polls_far_apart_do_not_fill_it() {
        let mut polls = LongPolls::new(EVERY);
        // Each stands for a tenth of the time between them.
        let took = (STRETCH / EVERY / 10).max(LONG);
        let gap = took * EVERY * 10;
        for _ in 0..2 * LONG_POLLS {
            assert!(!long_poll(&mut polls, took));
            std::thread::sleep(gap - took);
        }
    }

    #[test]
    fn short_polls_count_for_nothing() {
        let mut polls = LongPolls::new(EVERY);
        let start = Stamp::now();
        std::thread::sleep(STRETCH * 2);
        for _ in 0..10 * LONG_POLLS {
            assert!(!polls.count(start, LONG / 2));
        }
    }

    /// About one in `every`, never two picks more than `2 × every - 1` apart, and no rhythm: over
    /// polls numbered from 0, the picks fall on every remainder of a division by 16.
    #[test]
    fn picks_about_one_in_every_at_random() {
        let mut picker = Picker::new(EVERY);
        let mut picked = 0;
        let mut since = 0;
        let mut remainders = [false; 16];
        for n in 0..160_000u32 {
            since += 1;
            if picker.pick() {
                assert!(since < 2 * EVERY, "{since} polls apart");
                since = 0;
                picked += 1;
                remainders[(n % 16) as usize] = true;
            }
        }
        assert!((9_000..11_000).contains(&picked), "{picked} of 160,000");
        assert!(
            remainders.iter().all(|&r| r),
            "picks in a rhythm: {remainders:?}"
        );
        picker.next();
        assert!(picker.pick());
        picker.skip(40);
        assert!(
            !(0..40).any(|_| picker.pick()),
            "picked within the polls skipped"
        );
        assert!(picker.pick(), "the poll after them is picked");
        picker.stop();
        assert!(!(0..1_000).any(|_| picker.pick()));
    }
}
