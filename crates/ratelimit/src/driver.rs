//! The one task per busy limiter that grants queued waiters at their instants.
//!
//! Waiters never sleep on timers of their own: the driver sleeps until the head conforms, decides it
//! (and any others that conform at the same instant), and wakes exactly those. Each waiter is woken
//! once, when it has its units; no herd races for a token. The driver ends when the queue is empty
//! and the next waiter starts a new one.

use std::sync::Arc;
use std::task::Waker;

use crate::state::{Locked, Shared, State};

/// Makes sure a driver runs for the queue: claims its place under the state's lock, then releases the
/// lock before spawning one if it was free (no lock is held across `tokio::spawn`; see bounded-sync).
pub(crate) fn ensure(shared: &Arc<Shared>, mut state: Locked<'_>) {
    let start = claim(&mut state);
    drop(state);
    if start {
        spawn(shared);
    }
}

/// Claims the driver's place if no driver runs: `true` means the caller must [`spawn`] one, after
/// releasing the state's lock (no lock is held across `tokio::spawn`; see bounded-sync).
pub(crate) fn claim(state: &mut State) -> bool {
    !std::mem::replace(&mut state.driver_running, true)
}

/// Starts the driver whose place the caller claimed.
pub(crate) fn spawn(shared: &Arc<Shared>) {
    // The guard exists from the spawn on, so a driver dropped before its first poll still hands over.
    let running = Running {
        shared: Arc::clone(shared),
        ended: false,
    };
    tokio::spawn(bounded_cancel::live::tracked(
        "rate limiter driver",
        run(running),
    ));
}

async fn run(mut running: Running) {
    let shared = Arc::clone(&running.shared);
    let sleep = tokio::time::sleep_until(shared.clock.instant(0));
    tokio::pin!(sleep);
    let mut wakers: Vec<Waker> = Vec::new();
    loop {
        let next = shared.lock().drive(shared.clock.now(), &mut wakers);
        running.ended = next.is_none();
        wakers.drain(..).for_each(Waker::wake);
        let Some(next) = next else { return };
        // One timer for the driver's whole life, moved to each new instant.
        sleep.as_mut().reset(shared.clock.instant(next));
        tokio::select! {
            biased;
            () = shared.driver_wake.notified() => {}
            () = &mut sleep => {}
        }
    }
}

/// Hands the queue back if the driver is dropped early (its runtime shut down): the head is woken and
/// starts a new driver on its own runtime.
struct Running {
    shared: Arc<Shared>,
    ended: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let head = self.shared.lock().driver_gone();
        if let Some(waker) = head {
            waker.wake();
        }
    }
}
