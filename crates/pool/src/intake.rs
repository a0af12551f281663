//! The way into the pool's host (pool invariant 8): workers on their way in, how many the host holds,
//! and whether its task runs, apart from the pool so that its loom models can drive it alone.
//!
//! # Invariants
//!
//! 1. `held` counts the workers in `inbox` and in the running host's places. It rises in
//!    [`Intake::adopt`] and falls as the host lets a worker go ([`Intake::left`]) or drops what it
//!    held ([`Intake::abandon`]).
//! 2. At most one host runs (`running`). An adopt that finds none running marks one running, and
//!    its caller starts it; a host ends only through [`Intake::end_if_empty`], under the lock in
//!    which it sees `held` at zero, so no adopt can slip a worker in behind it: an adopt after that
//!    starts a new host.
//! 3. A host that ended through `end_if_empty` no longer owns the intake: its drop must not touch it
//!    (a host started since owns it). A host dropped before it ended (an abort, a runtime shutting
//!    down) takes back everything on its way in, with [`Intake::abandon`], so no worker waits in
//!    the inbox for a host that will never poll it.
//! 4. The running host's waker is taken by the adopt that wakes it, and stored again at the host's
//!    next poll, which takes the inbox in the same lock: a worker adopted while the host runs is
//!    either in the inbox that poll takes or wakes the host after it.

use std::task::Waker;

use bounded_sync::Mutex;

/// The host's intake.
pub(crate) struct Intake<W>(Mutex<State<W>>);

struct State<W> {
    inbox: Vec<W>,
    waker: Option<Waker>,
    running: bool,
    /// Workers in `inbox` or in the host's places (invariant 1).
    held: usize,
}

impl<W> Default for Intake<W> {
    fn default() -> Self {
        Intake(Mutex::new(State {
            inbox: Vec::new(),
            waker: None,
            running: false,
            held: 0,
        }))
    }
}

/// What an adopt asks of its caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Adopted {
    /// The running host takes the worker.
    Taken,
    /// No host runs: the caller starts one, which takes the worker (invariant 2).
    StartHost,
}

impl<W> Intake<W> {
    /// Takes a worker in, unless the host already holds `most` or `refuse` says no (read under the
    /// lock): then the worker is handed back.
    pub(crate) fn adopt(
        &self,
        worker: W,
        most: usize,
        refuse: impl FnOnce() -> bool,
    ) -> Result<Adopted, W> {
        let mut state = self.0.lock();
        if state.held >= most || refuse() {
            return Err(worker);
        }
        state.inbox.push(worker);
        state.held += 1;
        if !state.running {
            state.running = true;
            return Ok(Adopted::StartHost);
        }
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(Adopted::Taken)
    }

    /// The host's poll begins: it waits on `waker` from now, and takes the workers on their way in
    /// (invariant 4).
    pub(crate) fn arrivals(&self, waker: &Waker) -> Vec<W> {
        let mut state = self.0.lock();
        match &state.waker {
            Some(stored) if stored.will_wake(waker) => {}
            _ => state.waker = Some(waker.clone()),
        }
        std::mem::take(&mut state.inbox)
    }

    /// The host let a worker go (it ended, or went back to its own task).
    pub(crate) fn left(&self) {
        self.0.lock().held -= 1;
    }

    /// The host's poll ends: `true` if it holds no worker, and then it has ended (invariant 2) and
    /// must not touch the intake again (invariant 3).
    pub(crate) fn end_if_empty(&self) -> bool {
        let mut state = self.0.lock();
        if state.held > 0 {
            return false;
        }
        state.running = false;
        state.waker = None;
        true
    }

    /// A host dropped before it ended, holding `in_places` workers, gives the intake up and takes
    /// back the workers on their way in, for its caller to drop outside the lock (invariant 3).
    pub(crate) fn abandon(&self, in_places: usize) -> Vec<W> {
        let mut state = self.0.lock();
        state.running = false;
        state.waker = None;
        let inbox = std::mem::take(&mut state.inbox);
        state.held -= inbox.len() + in_places;
        inbox
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::{Adopted, Intake};
    use bounded_sync::Arc;
    use bounded_sync::atomic::{AtomicUsize, Ordering};
    use loom::future::block_on;
    use std::task::Poll;

    /// A host that lets every worker go as soon as it takes it (each went back to its own task),
    /// counting them in `hosted`, and ends once it holds none; dropped after either, as a task is.
    fn host(intake: &Intake<u32>, hosted: &AtomicUsize) {
        let mut ended = false;
        block_on(std::future::poll_fn(|cx| {
            for _ in intake.arrivals(cx.waker()) {
                hosted.fetch_add(1, Ordering::Relaxed);
                intake.left();
            }
            ended = intake.end_if_empty();
            match ended {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        }));
        // The drop of a host that ended leaves the intake alone (invariant 3).
        if !ended {
            drop(intake.abandon(0));
        }
    }

    /// Adopts `worker`, starting a host on a thread of its own when none runs.
    fn adopt(
        intake: &Arc<Intake<u32>>,
        hosted: &Arc<AtomicUsize>,
        worker: u32,
    ) -> Option<loom::thread::JoinHandle<()>> {
        match intake.adopt(worker, 64, || false) {
            Ok(Adopted::StartHost) => {
                let (intake, hosted) = (intake.clone(), hosted.clone());
                Some(loom::thread::spawn(move || host(&intake, &hosted)))
            }
            Ok(Adopted::Taken) => None,
            Err(_) => unreachable!("room for both"),
        }
    }

    /// Two workers adopted one after another while the host started for the first may be ending:
    /// each is taken by a host, whichever adopt lands before or after that host ends, and once every
    /// host is done nothing is left on its way in, held, or marked running. A worker left behind in
    /// the inbox, or a host that misses its wake-up, would fail here (loom reports a host waiting for
    /// ever as a deadlock).
    #[test]
    fn every_worker_adopted_is_taken_by_a_host_that_ends() {
        loom::model(|| {
            let intake = Arc::new(Intake::default());
            let hosted = Arc::new(AtomicUsize::new(0));
            let first = adopt(&intake, &hosted, 1).expect("no host runs yet");
            let second = adopt(&intake, &hosted, 2);
            first.join().unwrap();
            if let Some(second) = second {
                second.join().unwrap();
            }
            assert_eq!(hosted.load(Ordering::Relaxed), 2);
            let state = intake.0.lock();
            assert!(state.inbox.is_empty() && state.held == 0 && !state.running);
        });
    }

    /// A host dropped before it ever polled, while a second worker is adopted: the drop takes back
    /// every worker on its way in, and an adopt after it starts a new host that owns the intake, so
    /// no worker waits for a host that will never poll it.
    #[test]
    fn a_host_dropped_before_it_ended_hands_the_intake_on() {
        loom::model(|| {
            let intake = Arc::new(Intake::default());
            assert_eq!(intake.adopt(1u32, 64, || false), Ok(Adopted::StartHost));
            let adopter = {
                let intake = intake.clone();
                loom::thread::spawn(move || intake.adopt(2, 64, || false))
            };
            let mut dropped = intake.abandon(0);
            dropped.sort();
            let second = adopter.join().unwrap();
            let state = intake.0.lock();
            match second {
                // Adopted behind the dropped host: taken back with the first.
                Ok(Adopted::Taken) => {
                    assert_eq!(dropped, [1, 2]);
                    assert!(state.inbox.is_empty() && state.held == 0 && !state.running);
                }
                // Adopted after the drop: a new host runs, and the worker waits for it alone.
                Ok(Adopted::StartHost) => {
                    assert_eq!(dropped, [1]);
                    assert!(state.inbox == [2] && state.held == 1 && state.running);
                }
                Err(_) => unreachable!("room for both"),
            }
        });
    }
}
