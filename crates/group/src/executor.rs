//! Where a group's tasks run once their first poll (made on the spawner) has left them waiting.
//!
//! Each such task becomes a tokio task, so the runtime's scheduler keeps it on the worker that spawned
//! it and balances load as it does for any task. The group keeps only an abort handle per *running*
//! task, in a slab whose slot the task frees as it ends: memory follows the tasks alive, not the tasks
//! ever spawned. Dropping the executor aborts every task still running.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bounded_cancel::live::TaskCounter;
use bounded_sync::{Mutex, MutexGuard};
use tokio::task::AbortHandle;

pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub(crate) struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    running: Mutex<Slab>,
    counter: TaskCounter,
}

/// Abort handles of the running tasks. A slot is reserved before its task is spawned and filled after,
/// so that no lock is held across `tokio::spawn` (which may wake another worker).
#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

enum Slot {
    Vacant,
    /// Spawned or about to be, handle not stored yet.
    Reserved,
    Running(AbortHandle),
    /// The task ended before its handle was stored.
    Ended,
}

impl Slab {
    fn reserve(&mut self) -> usize {
        match self.free.pop() {
            Some(key) => {
                self.slots[key] = Slot::Reserved;
                key
            }
            None => {
                self.slots.push(Slot::Reserved);
                self.slots.len() - 1
            }
        }
    }

    fn release(&mut self, key: usize) {
        self.slots[key] = Slot::Vacant;
        self.free.push(key);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Slab> {
        self.running.lock()
    }
}

impl Executor {
    pub(crate) fn new() -> Self {
        Executor {
            inner: Arc::new(Inner {
                running: Mutex::default(),
                counter: TaskCounter::new("group task"),
            }),
        }
    }

    pub(crate) fn submit(&self, job: Job) {
        let key = self.inner.lock().reserve();
        let inner = self.inner.clone();
        let task = self.inner.counter.track(async move {
            job.await;
            let mut slab = inner.lock();
            match slab.slots[key] {
                Slot::Reserved => slab.slots[key] = Slot::Ended,
                _ => slab.release(key),
            }
        });
        let handle = tokio::spawn(task).abort_handle();
        let mut slab = self.inner.lock();
        match slab.slots[key] {
            Slot::Ended => slab.release(key),
            _ => slab.slots[key] = Slot::Running(handle),
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        for slot in &self.inner.lock().slots {
            if let Slot::Running(handle) = slot {
                handle.abort();
            }
        }
    }
}
