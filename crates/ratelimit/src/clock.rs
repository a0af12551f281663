//! A limiter's time line: nanoseconds since its creation.
//!
//! Two sources, chosen at the limiter's first read of the time (its first `try_acquire`, `acquire`
//! or `reserve`):
//!
//! - **The CPU's counter** (the TSC through `quanta`, a few nanoseconds a read), when that first
//!   read happens inside a tokio runtime whose clock runs: the decision `try_acquire` makes on every
//!   call reads the counter, not the system clock. The counter is calibrated once per process, on a
//!   thread of its own (`bounded_sync::clock`), never on the caller's: until it is, the time line
//!   reads tokio's clock, and the first read after it is takes the counter on from where tokio's
//!   clock had the time line, and keeps it. The pair of reads that joins the two is made tokio's
//!   first (`Counter::anchor`), and a read once every [`CHECK_EVERY`] of the time line sets it back
//!   to tokio's clock the same way (`Counter::check`): the counter's rate is an estimate, and the
//!   time line never runs ahead of tokio's clock by more than its error over that interval.
//! - **tokio's clock** otherwise: when it is paused there (`start_paused`, `pause()`), so that
//!   `advance` and auto-advance drive the limiter exactly as they drive tokio's timers, and outside
//!   any runtime, where nothing tells which clock the limiter will be used on.
//!
//! Waits always sleep on tokio's timer. With the counter as source, a time-line instant becomes a
//! tokio instant by its distance from now on both clocks, read together.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Clock {
    /// The time line's 0 on tokio's clock.
    origin: Instant,
    /// Whether the time line is to run on the counter, decided at the first read and kept.
    wants_counter: OnceLock<bool>,
    /// The counter, from the first read that finds it calibrated on (only if `wants_counter`).
    counter: OnceLock<Counter>,
}

#[derive(Debug)]
struct Counter {
    clock: &'static quanta::Clock,
    /// The counter's reading when it became the source...
    raw: u64,
    /// ... and the time line's nanoseconds then.
    base: u64,
    /// What the latest check against tokio's clock adds to `base` and the counter's nanoseconds
    /// since `raw`, to keep the time line at or behind tokio's clock.
    offset: AtomicI64,
    /// The time line's nanoseconds at which the next read checks it against tokio's clock.
    next_check: AtomicU64,
}

/// How often, on the time line, a read checks it against tokio's clock. The counter's rate is an
/// estimate (`quanta` measures it for well under a millisecond); between two checks the time line
/// can run ahead of tokio's clock by that estimate's error over this interval at most, instead of by
/// its error over the limiter's whole life.
const CHECK_EVERY: u64 = 1_000_000;

impl Counter {
    /// Pairs a reading of tokio's clock (`tokio_nanos`: the time line's nanoseconds by it) with one of
    /// `clock`, tokio's read first, so that the time line can only lag tokio's clock by the time
    /// between the two reads, never run ahead of it (the first check, a millisecond on, takes the lag
    /// back). Read the other way round, a thread preempted between the two reads carried the
    /// preemption into every later reading of the time line, as time the limiter granted units for.
    fn anchor(clock: &'static quanta::Clock, tokio_nanos: impl FnOnce() -> u64) -> Self {
        let base = tokio_nanos();
        let raw = clock.raw();
        Counter {
            clock,
            raw,
            base,
            offset: AtomicI64::new(0),
            next_check: AtomicU64::new(base.saturating_add(CHECK_EVERY)),
        }
    }

    /// The time line's nanoseconds now by the counter, before the offset.
    #[inline]
    fn counted(&self) -> u64 {
        let since = self.clock.delta_as_nanos(self.raw, self.clock.raw());
        self.base.saturating_add(since)
    }

    /// The time line now: the counter's reading, checked against tokio's clock (`tokio_nanos`) once
    /// every [`CHECK_EVERY`] of it.
    #[inline]
    fn line(&self, tokio_nanos: impl FnOnce() -> u64) -> u64 {
        let line = self
            .counted()
            .saturating_add_signed(self.offset.load(Ordering::Relaxed));
        if line < self.next_check.load(Ordering::Relaxed) {
            return line;
        }
        self.check(tokio_nanos)
    }

    /// Sets the offset so that the time line is tokio's clock, read first, as of the counter read
    /// after it (so it lags tokio's clock by the time between the two reads, never runs ahead).
    /// Threads that check at once each store a pair read in that order; any of them will do.
    #[cold]
    fn check(&self, tokio_nanos: impl FnOnce() -> u64) -> u64 {
        let tokio = tokio_nanos();
        let counted = self.counted();
        let offset = i64::try_from(i128::from(tokio) - i128::from(counted)).unwrap_or(0);
        self.offset.store(offset, Ordering::Relaxed);
        self.next_check
            .store(tokio.saturating_add(CHECK_EVERY), Ordering::Relaxed);
        tokio
    }
}

impl Clock {
    pub(crate) fn start() -> Self {
        Clock {
            origin: Instant::now(),
            wants_counter: if cfg!(bounded_loom) {
                OnceLock::from(false)
            } else {
                OnceLock::new()
            },
            counter: OnceLock::new(),
        }
    }

    /// The counter, if it is the time line's source by now.
    #[inline]
    fn counter(&self) -> Option<&Counter> {
        match self.counter.get() {
            Some(counter) => Some(counter),
            None => self.take_counter(bounded_sync::clock::counter_if_ready),
        }
    }

    /// Until the counter is the source: decides, at the first read, whether it is to be (a runtime
    /// whose clock runs), and makes it the source at the first read that finds it calibrated by
    /// `ready`, which never waits. One counter for the process, shared with the pool's and the
    /// group's timings.
    #[inline(never)]
    fn take_counter(
        &self,
        ready: impl FnOnce() -> Option<&'static quanta::Clock>,
    ) -> Option<&Counter> {
        if !*self
            .wants_counter
            .get_or_init(bounded_sync::clock::tokio_clock_runs)
        {
            return None;
        }
        let clock = ready()?;
        Some(
            self.counter
                .get_or_init(|| Counter::anchor(clock, || self.since_origin(Instant::now()))),
        )
    }

    /// Nanoseconds since the origin, now.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self.counter() {
            Some(counter) => counter.line(|| self.since_origin(Instant::now())),
            None => self.since_origin(Instant::now()),
        }
    }

    /// Nanoseconds since the origin at `at` on tokio's clock (0 before the origin).
    pub(crate) fn nanos(&self, at: Instant) -> u64 {
        if self.counter().is_none() {
            return self.since_origin(at);
        }
        let (now, tokio_now) = (self.now(), Instant::now());
        match at.checked_duration_since(tokio_now) {
            Some(ahead) => now.saturating_add(saturating_nanos(ahead)),
            None => now.saturating_sub(saturating_nanos(tokio_now - at)),
        }
    }

    /// The instant on tokio's clock `nanos` after the origin.
    pub(crate) fn instant(&self, nanos: u64) -> Instant {
        if self.counter().is_none() {
            return self.origin + Duration::from_nanos(nanos);
        }
        let (now, tokio_now) = (self.now(), Instant::now());
        if nanos >= now {
            tokio_now + Duration::from_nanos(nanos - now)
        } else {
            let behind = Duration::from_nanos(now - nanos);
            tokio_now.checked_sub(behind).unwrap_or(self.origin)
        }
    }

    fn since_origin(&self, at: Instant) -> u64 {
        saturating_nanos(at.saturating_duration_since(self.origin))
    }
}

fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Clock;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn on_a_paused_runtime_the_time_line_is_tokios() {
        let clock = Clock::start();
        assert_eq!(clock.now(), 0);
        assert!(clock.counter().is_none());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.now(), 3_000_000_000);
        assert_eq!(clock.instant(5), clock.origin + Duration::from_nanos(5));
        assert_eq!(
            clock.nanos(clock.origin + Duration::from_secs(1)),
            1_000_000_000
        );
    }

    #[test]
    fn first_read_outside_a_runtime_keeps_to_tokios_clock() {
        let clock = Clock::start();
        let _ = clock.now();
        runtime().block_on(async { assert!(clock.counter().is_none()) });
    }

    /// However long a thread is held up between the two reads that anchor the counter to tokio's
    /// clock, the time line never runs ahead of tokio's clock, also before its first check: a
    /// limiter on it never grants for time that has not passed. Real time here is a mock counter's
    /// nanoseconds, and the read of "tokio's clock" comes 0.5 ms after the counter's read before
    /// it, as if the thread had been preempted.
    #[test]
    fn the_time_line_never_runs_ahead_of_tokios_clock_however_far_apart_its_anchor_reads_are() {
        let (counter, mock) = quanta::Clock::mock();
        let counter: &'static quanta::Clock = Box::leak(Box::new(counter));
        mock.increment(5_000_000u64);
        let anchored = super::Counter::anchor(counter, || {
            mock.increment(500_000u64);
            counter.raw()
        });
        for _ in 0..8 {
            mock.increment(100_000u64);
            let real = counter.raw();
            let line = anchored.line(|| counter.raw());
            assert!(line <= real, "the time line at {line} ns, ahead of {real}");
        }
    }

    /// A counter whose calibration is off (here it counts 1 % fast) never carries the limiter's
    /// time line ahead of tokio's clock by more than that error over one check's interval, however
    /// long the limiter lives: checked against tokio's clock every millisecond of the time line, it
    /// is at most 10 µs ahead at any read over a simulated second, where it would otherwise be 10 ms
    /// ahead by its end, and 20 units over the quota at 2,000 a second.
    #[test]
    fn a_miscalibrated_counter_is_held_to_tokios_clock() {
        let (counter, mock) = quanta::Clock::mock();
        let counter: &'static quanta::Clock = Box::leak(Box::new(counter));
        // Tokio's clock, in nanoseconds: 99 for every 100 the counter counts.
        let tokio = || counter.raw() / 100 * 99;
        let anchored = super::Counter::anchor(counter, tokio);
        let mut ahead_most = 0;
        for _ in 0..10_000 {
            mock.increment(101_010u64);
            let line = anchored.line(tokio);
            ahead_most = ahead_most.max(line.saturating_sub(tokio()));
        }
        assert!(tokio() >= 999_000_000, "a second passed");
        assert!(
            ahead_most <= 10_500,
            "the time line ran up to {ahead_most} ns ahead of tokio's clock"
        );
    }

    /// The process's counter, once its calibration (started here if need be) is done.
    fn calibrated() -> &'static quanta::Clock {
        loop {
            match bounded_sync::clock::counter_if_ready() {
                Some(counter) => return counter,
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// The time line moves by about 20 ms over a sleep of 20 ms.
    fn measures_a_20_ms_sleep(clock: &Clock) {
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        let slept = clock.now() - before;
        assert!(
            (15_000_000..1_000_000_000).contains(&slept),
            "20 ms of sleep measured as {slept} ns"
        );
    }

    #[test]
    fn built_outside_a_runtime_and_first_read_inside_a_running_one_the_counter_is_the_source() {
        if cfg!(bounded_loom) {
            return;
        }
        calibrated();
        let clock = Clock::start();
        std::thread::sleep(Duration::from_millis(20));
        runtime().block_on(async {
            let now = clock.now();
            assert!(clock.counter().is_some());
            // The time line goes on from where tokio's clock had it: 20 ms in, not 0.
            assert!(
                (20_000_000..1_000_000_000).contains(&now),
                "{now} ns after 20 ms"
            );
        });
    }

    #[tokio::test(flavor = "current_thread")]
    async fn until_the_counter_is_calibrated_the_time_line_reads_tokios_clock_then_goes_on_on_it() {
        if cfg!(bounded_loom) {
            return;
        }
        let clock = Clock::start();
        std::thread::sleep(Duration::from_millis(20));
        // Not calibrated yet: the read waits for nothing and the time line is tokio's.
        assert!(clock.take_counter(|| None).is_none());
        assert!(clock.counter.get().is_none());
        // The process's calibration is waited for here, before tokio's clock is read: waited for
        // between the two reads, its 100 ms or so on a busy machine would look like a jump.
        let ready = calibrated();
        let on_tokio = clock.since_origin(tokio::time::Instant::now());
        assert!(on_tokio >= 20_000_000, "{on_tokio} ns after 20 ms");
        // Calibrated: the counter takes over from where tokio's clock has the time line.
        let counter = clock.take_counter(|| Some(ready)).expect("calibrated");
        assert!(counter.base >= on_tokio, "{} < {on_tokio}", counter.base);
        let after = clock.now();
        assert!(after >= counter.base);
        assert!(
            after - on_tokio < 50_000_000,
            "the time line jumped from {on_tokio} to {after} ns"
        );
        // And keeps it.
        assert!(clock.counter().is_some());
        measures_a_20_ms_sleep(&clock);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn on_a_paused_runtime_a_calibrated_counter_is_not_taken() {
        let clock = Clock::start();
        assert!(clock.take_counter(|| Some(calibrated())).is_none());
        assert_eq!(clock.now(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_a_running_runtime_the_counter_measures_time_and_converts_both_ways() {
        if cfg!(bounded_loom) {
            return;
        }
        calibrated();
        let clock = Clock::start();
        let _ = clock.now();
        assert!(clock.counter().is_some());
        measures_a_20_ms_sleep(&clock);
        // An instant a second ahead on the time line is a second ahead on tokio's clock, and back.
        let ahead = clock.now() + 1_000_000_000;
        let at = clock.instant(ahead);
        let there = at - tokio::time::Instant::now();
        assert!(
            there > Duration::from_millis(900) && there <= Duration::from_secs(1),
            "{there:?}"
        );
        let back = clock.nanos(at);
        assert!(back.abs_diff(ahead) < 50_000_000, "{back} vs {ahead}");
        // Instants before the origin map to its start, and one far behind now to tokio's origin: no panic.
        assert_eq!(clock.nanos(clock.origin - Duration::from_secs(1)), 0);
        assert!(clock.instant(0) <= tokio::time::Instant::now());
    }
}
