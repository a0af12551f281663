//! Work that computes without awaiting, for tests that check it spreads over a runtime's threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Burns the thread for `for_how_long`.
pub(crate) fn burn(for_how_long: Duration) {
    let start = Instant::now();
    while start.elapsed() < for_how_long {
        std::hint::spin_loop();
    }
}

/// Counts itself in `started`, then spins until `started` reaches `want`, for at most half a second;
/// `true` if it did. Two such calls can only both return `true` if they run on two threads at once.
pub(crate) fn spin_until_all_started(started: &AtomicUsize, want: usize) -> bool {
    started.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_millis(500);
    while started.load(Ordering::SeqCst) < want {
        if Instant::now() > deadline {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}
