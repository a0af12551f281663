//! Where a worker lent to the pool's host is, as the task it came from (its shell) sees it: the
//! hand-over of pool invariant 8, apart from the pool so that its loom models can drive it alone.
//!
//! # Invariants
//!
//! 1. What is lent comes back to its shell at most once, through [`Home::send_back`], and only while
//!    the shell waits for it (`Away`); otherwise it is handed back to the caller to drop, outside
//!    the lock. So every worker lent ends in exactly one place: its shell, or a drop by whoever holds
//!    it when the home closes.
//! 2. Once closed ([`Home::close`], by the host or by the shell), a home stays `Gone`: nothing is
//!    sent back any more, and a shell that waits sees it and ends.
//! 3. A shell stores its waker before the worker leaves it ([`Home::lend`]), and every change the
//!    host makes while the shell waits wakes it, after the lock is released.

use std::task::{Context, Poll, Waker};

use bounded_sync::Mutex;

/// A shell's side of the worker it lent the host.
pub(crate) struct Home<W>(Mutex<Whereabouts<W>>);

enum Whereabouts<W> {
    /// In the host; the shell's waker, for when it comes back or is gone.
    Away(Option<Waker>),
    /// Sent back by the host: the shell polls it next.
    Back(W),
    /// Ended or dropped in the host, or its shell is gone: nothing more comes back.
    Gone,
}

impl<W> Default for Home<W> {
    fn default() -> Self {
        Home(Mutex::new(Whereabouts::Away(None)))
    }
}

impl<W> Home<W> {
    /// The shell is about to lend its worker: it waits, from now, on `waker` (invariant 3). Called
    /// before the host can have the worker, which may come back before the shell's poll returns.
    pub(crate) fn lend(&self, waker: &Waker) {
        *self.0.lock() = Whereabouts::Away(Some(waker.clone()));
    }

    /// The host sends the worker back to its shell; handed back to the caller, to drop outside any
    /// lock, if the shell is gone.
    pub(crate) fn send_back(&self, worker: W) -> Option<W> {
        let mut whereabouts = self.0.lock();
        let waker = match &mut *whereabouts {
            Whereabouts::Away(waker) => waker.take(),
            Whereabouts::Back(_) | Whereabouts::Gone => return Some(worker),
        };
        *whereabouts = Whereabouts::Back(worker);
        drop(whereabouts);
        if let Some(waker) = waker {
            waker.wake();
        }
        None
    }

    /// The worker will not come back: its shell ends. What it held (a worker sent back that its
    /// shell never took) is handed back to the caller, to drop outside the lock.
    pub(crate) fn close(&self) -> Option<W> {
        let before = std::mem::replace(&mut *self.0.lock(), Whereabouts::Gone);
        match before {
            Whereabouts::Away(Some(waker)) => {
                waker.wake();
                None
            }
            Whereabouts::Back(worker) => Some(worker),
            Whereabouts::Away(None) | Whereabouts::Gone => None,
        }
    }

    /// The shell waits for its worker: `Some` once it is back, `None` once the home is closed.
    pub(crate) fn poll_back(&self, cx: &mut Context<'_>) -> Poll<Option<W>> {
        let mut whereabouts = self.0.lock();
        match std::mem::replace(&mut *whereabouts, Whereabouts::Away(None)) {
            Whereabouts::Back(worker) => Poll::Ready(Some(worker)),
            Whereabouts::Away(_) => {
                *whereabouts = Whereabouts::Away(Some(cx.waker().clone()));
                Poll::Pending
            }
            Whereabouts::Gone => {
                *whereabouts = Whereabouts::Gone;
                Poll::Ready(None)
            }
        }
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::Home;
    use bounded_sync::Arc;
    use bounded_sync::atomic::{AtomicUsize, Ordering};
    use loom::future::block_on;
    use std::task::Poll;

    /// A worker that counts its drops.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The shell lends its worker to a host on another thread, which does `host` with it and the
    /// home; the shell waits for it, then ends (closing its home, as its drop does). Returns
    /// whether the worker came back, and how many times it was dropped in all.
    fn lend_and_wait(host: fn(&Home<Tracked>, Tracked)) -> (bool, usize) {
        let drops = Arc::new(AtomicUsize::new(0));
        let home = Arc::new(Home::default());
        let mut worker = Some(Tracked(drops.clone()));
        let mut thread = None;
        let back = block_on(std::future::poll_fn(|cx| {
            if let Some(worker) = worker.take() {
                home.lend(cx.waker());
                let home = home.clone();
                thread = Some(loom::thread::spawn(move || host(&home, worker)));
            }
            match home.poll_back(cx) {
                Poll::Ready(back) => Poll::Ready(back.is_some()),
                Poll::Pending => Poll::Pending,
            }
        }));
        drop(home.close());
        thread.expect("lent once").join().unwrap();
        (back, drops.load(Ordering::Relaxed))
    }

    /// A worker the host sends back reaches its waiting shell, whenever the send lands against the
    /// shell's waits; never dropped on the way. A missed wake-up would leave the shell waiting for
    /// ever, which loom reports.
    #[test]
    fn a_worker_sent_back_reaches_its_waiting_shell() {
        loom::model(|| {
            let (back, drops) =
                lend_and_wait(|home, worker| assert!(home.send_back(worker).is_none()));
            assert!(back);
            assert_eq!(drops, 1, "dropped once, by the shell that got it back");
        });
    }

    /// A worker that ends in the host closes its home: the waiting shell wakes and ends, and the
    /// worker is dropped once, by the host.
    #[test]
    fn a_worker_that_ends_in_the_host_ends_its_shell() {
        loom::model(|| {
            let (back, drops) = lend_and_wait(|home, worker| {
                drop(worker);
                assert!(home.close().is_none());
            });
            assert!(!back);
            assert_eq!(drops, 1);
        });
    }

    /// A shell dropped while the host sends its worker back: whichever is first, the worker is
    /// dropped exactly once, by the shell's close or by the host that finds the home closed, and
    /// nothing comes back after the close.
    #[test]
    fn a_shell_dropped_during_a_send_back_loses_and_keeps_nothing() {
        loom::model(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let home: Arc<Home<Tracked>> = Arc::new(Home::default());
            home.lend(std::task::Waker::noop());
            let host = {
                let (home, worker) = (home.clone(), Tracked(drops.clone()));
                loom::thread::spawn(move || drop(home.send_back(worker)))
            };
            drop(home.close());
            host.join().unwrap();
            assert_eq!(drops.load(Ordering::Relaxed), 1);
            assert!(
                home.send_back(Tracked(Arc::new(AtomicUsize::new(0))))
                    .is_some()
            );
        });
    }
}
