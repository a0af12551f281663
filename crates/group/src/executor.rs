//! The tasks of a group run on a few long-lived driver tasks, not one tokio task each.
//!
//! A bare `tokio::spawn` costs more than everything else a group does per task, so a group starts one
//! driver per runtime worker the first time it admits a task. Each driver owns a `FuturesUnordered` and
//! an inbox; admitting a task pushes it into one inbox (round robin) and wakes that driver. The price of
//! this shape is documented on `Group`: a task that hogs the CPU without awaiting stalls the other tasks
//! on its driver, as it would stall any task sharing its tokio worker.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};

use bounded_cancel::live;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Completions a driver handles in one poll before it lets the runtime run something else.
const COMPLETIONS_PER_POLL: usize = 256;

#[derive(Default)]
struct Inbox {
    jobs: Mutex<Vec<Job>>,
    waker: AtomicWaker,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Vec<Job>> {
        // A job is pushed or the vector swapped; neither can leave it half-written.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Executor {
    inboxes: Box<[Arc<Inbox>]>,
    drivers: Box<[AbortHandle]>,
    next: AtomicUsize,
}

impl Executor {
    /// Starts one driver per worker of the current runtime.
    pub(crate) fn start() -> Self {
        let workers = Handle::current().metrics().num_workers().max(1);
        let inboxes: Box<[Arc<Inbox>]> = (0..workers).map(|_| Arc::default()).collect();
        let drivers = inboxes
            .iter()
            .map(|inbox| {
                let driver = Driver {
                    inbox: inbox.clone(),
                    running: FuturesUnordered::new(),
                    arrived: Vec::new(),
                };
                tokio::spawn(live::tracked("group driver", driver)).abort_handle()
            })
            .collect();
        Executor {
            inboxes,
            drivers,
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn submit(&self, job: Job) {
        let i = match self.inboxes.len() {
            1 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        let inbox = &self.inboxes[i];
        inbox.lock().push(job);
        inbox.waker.wake();
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Aborting a driver drops every task it holds; jobs still in an inbox go with the inbox.
        for driver in &self.drivers {
            driver.abort();
        }
    }
}

struct Driver {
    inbox: Arc<Inbox>,
    running: FuturesUnordered<Job>,
    // Swapped with the inbox on every poll, so neither vector is reallocated in steady state.
    arrived: Vec<Job>,
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        // Register before draining: a job pushed after the drain wakes this poll's waker.
        this.inbox.waker.register(cx.waker());
        std::mem::swap(&mut *this.inbox.lock(), &mut this.arrived);
        for job in this.arrived.drain(..) {
            this.running.push(job);
        }
        for _ in 0..COMPLETIONS_PER_POLL {
            match this.running.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => continue,
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
