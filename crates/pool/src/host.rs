//! Where a worker is polled on a runtime with threads to spare: in a task of its own (`Shell`), or,
//! while its jobs wait, in the pool's one `Host` with the others (invariant 8). The invariants cited
//! are the pool's, in `inner.rs`.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bounded_sync::busy::{Stamp, step_aside};
use bounded_sync::places::{PLACES, Places};
use bounded_sync::slow::{LongPolls, Picker, SAMPLE_EVERY};

use crate::home::Home;
use crate::inner::Inner;
use crate::intake::Adopted;
use crate::worker::Worker;

/// Where a worker asks to be polled next, told through `ASK` to the task that polls it (invariant 8).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    Stay,
    /// Its job waits: it joins the pool's host.
    Join,
    /// It parked on the queue, or stepped aside for a worker it woke: it goes on in a task of its own.
    Leave,
}

thread_local! {
    pub(crate) static ASK: Cell<Ask> = const { Cell::new(Ask::Stay) };
}

/// Steps aside for the worker just woken, so that an idle thread runs one of the two (queue
/// invariant 7), in a task of its own (invariant 8).
pub(crate) async fn step_aside_from_host() {
    ASK.set(Ask::Leave);
    step_aside().await;
}

/// A worker on its way into the host or in it, with the home its shell waits at (invariant 8).
pub(crate) type Lent = (Worker, Arc<Home<Worker>>);

impl Inner {
    /// Takes a worker whose job waits into the host, starting the host's task if it is not running;
    /// hands the worker back when the host is full or the pool is stopping (invariant 8).
    pub(crate) fn adopt(
        self: &Arc<Self>,
        worker: Worker,
        home: &Arc<Home<Worker>>,
    ) -> Result<(), Worker> {
        if self.spread.load(Ordering::Relaxed) {
            return Err(worker);
        }
        let stopping = || self.stopping.load(Ordering::Acquire);
        match self.hosting.adopt((worker, home.clone()), PLACES, stopping) {
            Ok(Adopted::Taken) => return Ok(()),
            Ok(Adopted::StartHost) => {}
            Err((worker, _)) => return Err(worker),
        }
        let host = Host {
            inner: self.clone(),
            workers: Vec::new(),
            free: Vec::new(),
            places: Places::new(),
            ended: false,
            picker: Picker::new(SAMPLE_EVERY),
            long_polls: LongPolls::new(SAMPLE_EVERY),
        };
        let handle = self.runtime.spawn(self.tasks.track(host));
        self.keep_handles(vec![handle]);
        Ok(())
    }
}

/// A worker on a task of its own, on a runtime with threads to spare (invariant 8). While its
/// worker is in the host, the shell waits at its `Home` for it to come back.
pub(crate) struct Shell {
    inner: Arc<Inner>,
    worker: Option<Worker>,
    home: Arc<Home<Worker>>,
}

impl Shell {
    /// A worker in a task of its own, with a home to wait at while the host has it.
    pub(crate) fn new(inner: Arc<Inner>, worker: Worker) -> Self {
        Shell {
            inner,
            worker: Some(worker),
            home: Arc::new(Home::default()),
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // A worker lent to the host is dropped there, or by the host's send-back, once it finds the
        // shell gone; one sent back and not yet taken is dropped here, outside the lock.
        drop(self.home.close());
    }
}

impl Future for Shell {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = &mut *self;
        if this.worker.is_none() {
            match std::task::ready!(this.home.poll_back(cx)) {
                Some(worker) => this.worker = Some(worker),
                None => return std::task::Poll::Ready(()),
            }
        }
        let worker = this
            .worker
            .as_mut()
            .expect("a shell polls its worker while it has it");
        // Polled at once when it comes back: it waited on the waker of the host.
        ASK.set(Ask::Stay);
        if worker.as_mut().poll(cx).is_ready() {
            this.worker = None;
            return std::task::Poll::Ready(());
        }
        if ASK.replace(Ask::Stay) == Ask::Join
            && let Some(worker) = this.worker.take()
        {
            // Waits for it before it goes: the host may send it back before this poll returns.
            this.home.lend(cx.waker());
            if let Err(worker) = this.inner.adopt(worker, &this.home) {
                this.worker = Some(worker);
            }
        }
        std::task::Poll::Pending
    }
}

/// The workers of a pool whose jobs wait, polled by one tokio task, each through a waker of its own
/// (invariant 8).
struct Host {
    inner: Arc<Inner>,
    workers: Vec<Option<(Worker, Arc<Home<Worker>>)>>,
    free: Vec<usize>,
    places: Places,
    /// It returned, having found nothing to hold, and gave the intake up.
    ended: bool,
    /// Picks the polls it times, and weighs the long ones (invariant 8).
    picker: Picker,
    long_polls: LongPolls,
}

impl Future for Host {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = &mut *self;
        let arrivals = this.inner.hosting.arrivals(cx.waker());
        let mut woken = this.places.take(cx.waker());
        for worker in arrivals {
            let place = match this.free.pop() {
                Some(place) => place,
                None => {
                    this.workers.push(None);
                    this.workers.len() - 1
                }
            };
            this.workers[place] = Some(worker);
            // Polled at once: it waited on the waker of the task it came from.
            woken |= 1 << place;
        }
        while woken != 0 {
            let place = woken.trailing_zeros() as usize;
            woken &= woken - 1;
            let Some((worker, _)) = this.workers[place].as_mut() else {
                // Woken by a waker an earlier worker of the place kept.
                continue;
            };
            ASK.set(Ask::Stay);
            let waker = this.places.waker(place);
            let timed = this.picker.pick().then(Stamp::now);
            let ready = worker
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
                .is_ready();
            if let Some(start) = timed
                && this.long_polls.count(start, start.elapsed().1)
            {
                this.inner.spread.store(true, Ordering::Relaxed);
            }
            let leave =
                ASK.replace(Ask::Stay) == Ask::Leave || this.inner.spread.load(Ordering::Relaxed);
            if !ready && !leave {
                continue;
            }
            let (worker, home) = this.workers[place]
                .take()
                .expect("the place was polled just now");
            this.free.push(place);
            this.inner.hosting.left();
            // Dropped outside every lock: a worker's drop counts its job and may abort the pool.
            let unclaimed = match ready {
                true => {
                    drop(worker);
                    home.close()
                }
                false => home.send_back(worker),
            };
            drop(unclaimed);
        }
        if !this.inner.hosting.end_if_empty() {
            return std::task::Poll::Pending;
        }
        this.ended = true;
        std::task::Poll::Ready(())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.ended {
            // It ended with nothing to hold: a host started since owns the intake.
            return;
        }
        let inbox = (self.inner.hosting).abandon(self.workers.iter().flatten().count());
        // Dropped outside the lock: a worker's drop counts its job and may abort the pool. Each
        // shell then ends.
        let held = self.workers.iter_mut().filter_map(Option::take);
        for (worker, home) in inbox.into_iter().chain(held) {
            drop(worker);
            drop(home.close());
        }
    }
}
