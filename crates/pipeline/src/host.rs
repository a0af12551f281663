//! A stage's workers on a runtime of several threads: in one task while its items are cheap.
//!
//! Workers in tasks of their own hand items to each other, and to the stages around them, between the
//! runtime's threads whenever tokio's idle thread takes some of them, and a hand-over between two
//! threads costs more than a cheap item does. So on a multi-thread runtime each worker of a `map`,
//! `filter_map` or `map_ordered` stage of at most [`MAX_HOSTED`] workers starts in a task of its own
//! (its shell) and times about one call of the stage function in [`SAMPLE_EVERY`], picked at random
//! (with every poll of its future, if it waits). After [`JOIN_AFTER`] timed polls in a row under
//! [`COMPUTES`] each, it asks to join the stage's host: one task that polls each of the workers it
//! holds whenever one of them is woken (as `futures::future::join_all` does), so that they run on
//! one thread. The stage spreads for good, the host spawning each of its workers into a task of its
//! own and no worker joining again, once a worker times [`SAMPLES`] polls in a row at [`COMPUTES`]
//! or more and, [`LOOK_AGAIN_AFTER`] calls later, [`SAMPLES`] more, or once the long calls its
//! workers time fill the stage's time although most calls are quick (`Counters::long_calls`; see
//! `bounded_sync::slow`).
//!
//! The first items of a stage always run in the workers' own tasks, side by side on every thread:
//! items that compute, or that wait for each other, never share a thread unless every call before
//! them was quick.
//!
//! # Invariants
//!
//! 1. A worker is in exactly one place: its shell, the host's list of newcomers, the host's own list,
//!    or a task of its own spawned by the host; it moves only between polls, with its future whole.
//! 2. A worker handed to the host is polled by the host after the hand-over, before anything else can
//!    wake it: the shell that hands it over wakes the running host, or spawns a new one, after
//!    queueing it. So the waker it stored while in its shell, now stale, is replaced before it can be
//!    missed.
//! 3. While `running`, a host task exists that will take every newcomer: it ends only under the lock,
//!    when it holds no worker and there is no newcomer, clearing `running` as it does.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use bounded_sync::Mutex;
use bounded_sync::atomic::Ordering;
use bounded_sync::busy::Stamp;
use bounded_sync::slow::{self, Picker};

use crate::shared::{Counters, Shared};

/// A worker of a stage, boxed so that it can move between its shell, the host and a task of its own.
pub(crate) type Worker = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The most workers a stage may have to be hosted: the host polls every one of them at each wake-up
/// of any.
const MAX_HOSTED: usize = 16;

/// A stage whose calls take this long each runs faster spread over the runtime's threads than on
/// one: about what handing an item between two threads costs. Ten times as long in a build without
/// optimizations, whose hand-overs (tokio's code) and calls both run about ten times as slowly, so
/// that the same stage is hosted in both.
const COMPUTES: Duration = match cfg!(debug_assertions) {
    true => Duration::from_nanos(2_500),
    false => Duration::from_nanos(250),
};

/// How many timed polls in a row must take [`COMPUTES`] or more, twice, before a worker spreads its
/// stage: one such poll may only have been interrupted (by the operating system, say), and on a
/// machine whose CPUs are all busy a few quick calls in a row now and then take several times as
/// long, for a microsecond or two. Spreading is for good, so after a first run of six the worker
/// lets [`LOOK_AGAIN_AFTER`] calls pass untimed and times the calls after them: six more in a row at
/// [`COMPUTES`] or more spread the stage, a quick one clears the first six. After one such poll
/// the next calls are all timed, so that a stage whose calls compute spreads within 44 of them.
const SAMPLES: u32 = 6;

/// How many calls pass untimed between the two runs of [`SAMPLES`] timed polls that spread a stage.
/// While a slow spell lasts each call takes [`COMPUTES`] or more, so these 32 outlast any spell of
/// up to 32 × [`COMPUTES`] (8 µs in an optimized build), several times the spells a busy machine
/// was seen to make (see docs/pipeline.md).
const LOOK_AGAIN_AFTER: u32 = 32;

/// How many timed polls in a row must take less than [`COMPUTES`] before a worker asks to join the
/// host.
const JOIN_AFTER: u32 = 4;

/// A worker times about one call of the stage function in this many, picked at random.
pub(crate) const SAMPLE_EVERY: u32 = slow::SAMPLE_EVERY;

thread_local! {
    /// Set by a worker, during a poll by its shell, that asks to join the host.
    static JOIN: Cell<bool> = const { Cell::new(false) };
}

/// What a worker has seen of its calls' times.
pub(crate) struct Sampler {
    /// Timed polls in a row at [`COMPUTES`] or more.
    computing: u32,
    /// Timed polls in a row under [`COMPUTES`].
    quick: u32,
    /// Picks the calls to time.
    picker: Picker,
    /// Whether the next timed call follows one that computed, rather than being picked at random;
    /// whether the call being timed was picked at random.
    forced: bool,
    picked: bool,
    /// Whether a first run of [`SAMPLES`] timed polls at [`COMPUTES`] or more ended with no quick
    /// poll since.
    looked: bool,
}

impl Sampler {
    pub(crate) fn new() -> Self {
        Sampler {
            computing: 0,
            quick: 0,
            picker: Picker::new(SAMPLE_EVERY),
            forced: false,
            picked: false,
            looked: false,
        }
    }

    /// Whether to time this call: one in [`SAMPLE_EVERY`] on average (and each right after one that
    /// computed), until the stage has spread, or was never to be hosted. The stage's flag, on a line
    /// its other workers write, is read only when a call is due to be timed.
    pub(crate) fn start(&mut self, counters: &Counters) -> Option<Stamp> {
        if !self.picker.pick() {
            return None;
        }
        if counters.spread.load(Ordering::Relaxed) {
            // For good: no call of this worker is timed again.
            self.picker.stop();
            return None;
        }
        self.picked = !std::mem::take(&mut self.forced);
        Some(Stamp::now())
    }

    /// Counts a timed poll of the stage function's code, begun at `timed`: the stage spreads, the
    /// worker asks to join the host, or neither yet.
    pub(crate) fn sampled(&mut self, timed: Stamp, counters: &Counters) {
        let took = timed.elapsed().1;
        // Only a call picked at random stands for the calls around it.
        if took >= slow::LONG && self.picked && counters.long_calls.lock().count(timed, took) {
            counters.spread.store(true, Ordering::Relaxed);
        }
        if took < COMPUTES {
            self.computing = 0;
            self.looked = false;
            self.quick += 1;
            if self.quick == JOIN_AFTER {
                JOIN.set(true);
            }
            return;
        }
        self.quick = 0;
        self.computing += 1;
        self.forced = true;
        if self.computing < SAMPLES {
            self.picker.next();
        } else if std::mem::replace(&mut self.looked, true) {
            counters.spread.store(true, Ordering::Relaxed);
        } else {
            // The first run of six: look again once a slow spell would have passed.
            self.computing = 0;
            self.picker.skip(LOOK_AGAIN_AFTER);
        }
    }
}

/// A stage's host: the workers handed to it and not yet taken, and whether its task runs.
#[derive(Default)]
pub(crate) struct Host {
    state: Mutex<HostState>,
}

#[derive(Default)]
struct HostState {
    newcomers: Vec<Worker>,
    /// A host task exists (invariant 3); its waker, once it has polled.
    running: bool,
    waker: Option<Waker>,
}

impl Host {
    /// A shell hands its worker over: queued for the running host, which is woken, or, with none
    /// running, `true`: the caller spawns one (invariants 2 and 3).
    fn hand_over(&self, worker: Worker) -> bool {
        let mut state = self.state.lock();
        state.newcomers.push(worker);
        if !state.running {
            state.running = true;
            return true;
        }
        let waker = state.waker.clone();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        false
    }

    /// The host takes the newcomers into `workers`, and stores `waker` for the next ones: `false`
    /// if it holds none and none came, and so ends (invariant 3).
    fn take_newcomers(&self, workers: &mut Vec<Worker>, waker: &Waker) -> bool {
        let mut state = self.state.lock();
        workers.append(&mut state.newcomers);
        if workers.is_empty() {
            state.running = false;
            state.waker = None;
            return false;
        }
        match &mut state.waker {
            Some(stored) if stored.will_wake(waker) => {}
            stored => *stored = Some(waker.clone()),
        }
        true
    }
}

/// Spawns a stage's `workers`: each in a shell of its own, from which it may join the stage's host,
/// if the stage may be hosted (`hostable`, on a runtime of several threads, at most [`MAX_HOSTED`]
/// workers); otherwise each in a task of its own for good, the stage marked as spread from the
/// start, so that its workers time nothing.
pub(crate) fn spawn_workers<E, W>(
    shared: &Arc<Shared<E>>,
    counters: &Arc<Counters>,
    workers: impl IntoIterator<Item = W>,
    hostable: bool,
) where
    E: Send + 'static,
    W: Future<Output = ()> + Send + 'static,
{
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    if !hostable || threads == 1 || counters.workers > MAX_HOSTED {
        counters.spread.store(true, Ordering::Relaxed);
        for worker in workers {
            shared.spawn_stage(&counters.name, worker);
        }
        return;
    }
    let host = Arc::new(Host::default());
    for worker in workers {
        let shell = Shell {
            worker: Some(Box::pin(worker)),
            host: Arc::clone(&host),
            shared: Arc::clone(shared),
            counters: Arc::clone(counters),
        };
        shared.spawn_stage(&counters.name, shell);
    }
}

/// A worker in a task of its own, until it asks to join the host.
struct Shell<E> {
    worker: Option<Worker>,
    host: Arc<Host>,
    shared: Arc<Shared<E>>,
    counters: Arc<Counters>,
}

impl<E: Send + 'static> Future for Shell<E> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(worker) = this.worker.as_mut() else {
            return Poll::Ready(());
        };
        JOIN.set(false);
        if worker.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !JOIN.replace(false) || this.counters.spread.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        let worker = this.worker.take().expect("checked above");
        if this.host.hand_over(worker) {
            spawn_host(&this.shared, &this.counters, Arc::clone(&this.host));
        }
        Poll::Ready(())
    }
}

/// Spawns the task of `host`, which polls the workers handed to it until the stage spreads or they
/// end.
fn spawn_host<E: Send + 'static>(
    shared: &Arc<Shared<E>>,
    counters: &Arc<Counters>,
    host: Arc<Host>,
) {
    let (spawner, counters) = (Arc::clone(shared), Arc::clone(counters));
    let mut workers: Vec<Worker> = Vec::new();
    let stage = counters.name.clone();
    shared.spawn_stage(
        &stage,
        std::future::poll_fn(move |cx| {
            loop {
                if !host.take_newcomers(&mut workers, cx.waker()) {
                    return Poll::Ready(());
                }
                workers.retain_mut(|worker| {
                    let pending = worker.as_mut().poll(cx).is_pending();
                    // Only a worker in its shell joins.
                    JOIN.set(false);
                    pending
                });
                if counters.spread.load(Ordering::Relaxed) {
                    // Each worker's next poll, in its own task, stores that task's waker wherever
                    // it waits.
                    for worker in workers.drain(..) {
                        spawner.spawn_stage(&counters.name, worker);
                    }
                }
                if !workers.is_empty() {
                    return Poll::Pending;
                }
                // Every worker ended or left: end, unless newcomers came meanwhile.
            }
        }),
    );
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::{Host, Worker};
    use bounded_sync::Arc;
    use bounded_sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A worker whose drop is counted.
    fn worker(taken: &Arc<AtomicUsize>) -> Worker {
        let tracked = Tracked(taken.clone());
        Box::pin(async move {
            let _tracked = tracked;
        })
    }

    /// Runs a host as its task does, minus the polls: it takes what has come and drops it (as a
    /// worker ends), and ends once nothing more comes.
    fn run_host(host: &Host) {
        let mut workers = Vec::new();
        while host.take_newcomers(&mut workers, std::task::Waker::noop()) {
            workers.clear();
        }
    }

    /// Two shells hand their workers over while the host that the first one started may be ending:
    /// each worker is taken by a host and dropped exactly once, whichever shell finds none running
    /// starts one, and no worker is left queued with no host to take it.
    #[test]
    fn every_worker_handed_over_is_taken_once() {
        loom::model(|| {
            let host = Arc::new(Host::default());
            let taken = Arc::new(AtomicUsize::new(0));
            let shells: Vec<_> = (0..2)
                .map(|_| {
                    let (host, taken) = (host.clone(), taken.clone());
                    loom::thread::spawn(move || {
                        if host.hand_over(worker(&taken)) {
                            run_host(&host);
                        }
                    })
                })
                .collect();
            for shell in shells {
                shell.join().unwrap();
            }
            assert_eq!(taken.load(Ordering::Relaxed), 2);
            let state = host.state.lock();
            assert!(state.newcomers.is_empty() && !state.running);
        });
    }
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use std::time::{Duration, Instant};

    use super::{COMPUTES, LOOK_AGAIN_AFTER, SAMPLES, Sampler};
    use crate::shared::Counters;

    /// One call of a stage through `sampler`, timed if it picks it: a call that computes spins for
    /// twice [`COMPUTES`], a quick one returns at once. Whether the stage has spread.
    fn call(sampler: &mut Sampler, counters: &Counters, computes: bool) -> bool {
        if let Some(timed) = sampler.start(counters) {
            if computes {
                spin(2 * COMPUTES);
            }
            sampler.sampled(timed, counters);
        }
        counters.spread.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn spin(time: Duration) {
        let start = Instant::now();
        while start.elapsed() < time {
            std::hint::spin_loop();
        }
    }

    /// Calls that all compute spread the stage at the last call of the second run of six, and not
    /// before: the first call is timed, the next five because it computed, then 32 go untimed and
    /// the six after them are timed.
    #[test]
    fn calls_that_compute_spread_the_stage_after_a_second_look() {
        let counters = Counters::new("stage".into(), 8);
        let mut sampler = Sampler::new();
        let spreads_at = 2 * SAMPLES + LOOK_AGAIN_AFTER;
        for n in 1..spreads_at {
            assert!(!call(&mut sampler, &counters, true), "spread at call {n}");
        }
        assert!(
            call(&mut sampler, &counters, true),
            "not spread at call {spreads_at}"
        );
    }

    /// A spell of calls that compute, long enough for six timed in a row and over before the second
    /// look (as when a busy machine slows a few quick calls in a row), leaves the stage as it was:
    /// the quick call the second look times clears the first, so that later spells are first looks
    /// again.
    #[test]
    fn a_spell_of_slow_calls_over_before_the_second_look_does_not_spread_the_stage() {
        let counters = Counters::new("stage".into(), 8);
        let mut sampler = Sampler::new();
        for spell in 0..3 {
            // The spell starts at a timed call: quick calls until the sampler times one, which
            // computes, and makes it time the calls after it.
            loop {
                let timed = sampler.start(&counters);
                let computes = timed.is_some();
                if let Some(timed) = timed {
                    spin(2 * COMPUTES);
                    sampler.sampled(timed, &counters);
                }
                if computes {
                    break;
                }
            }
            for n in 1..SAMPLES + 2 {
                assert!(
                    !call(&mut sampler, &counters, true),
                    "spell {spell}, call {n}"
                );
            }
            for n in 0..1_000 {
                assert!(
                    !call(&mut sampler, &counters, false),
                    "after spell {spell}, call {n}"
                );
            }
        }
    }
}
