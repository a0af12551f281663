//! Where a group's tasks run.
//!
//! Each task is a tokio task, so the runtime's scheduler keeps it on the worker that spawned
//! it and balances load as it does for any task. The group keeps only an abort handle per *running*
//! task, in a slab whose slot the task frees as it ends: memory follows the tasks alive, not the tasks
//! ever spawned. Dropping the executor aborts every task still running.
//!
//! # Invariants
//!
//! 1. No lock is held across `tokio::spawn`: a slot is reserved before the spawn and filled after it.
//! 2. A slot is `Reserved` from `reserve` until exactly one of `fill` (the spawner stores the handle)
//!    or `finish` (the task ended first) sees it; whichever comes second frees it. So every slot is
//!    freed exactly once, whatever the order, and the slab holds one slot per task alive.
//! 3. A `Running` slot holds the handle of a task that has not ended; `Drop` aborts exactly those. A
//!    task still `Reserved` at drop cannot exist: `submit` borrows the executor until it has filled.
//!
//! All of it is under one lock, with no atomics of its own: the orderings are the lock's.

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
struct Slab<H = AbortHandle> {
    slots: Vec<Slot<H>>,
    free: Vec<usize>,
}

impl<H> Default for Slab<H> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

enum Slot<H> {
    Vacant,
    /// Spawned or about to be, handle not stored yet.
    Reserved,
    Running(H),
    /// The task ended before its handle was stored.
    Ended,
}

impl<H> Slab<H> {
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

    /// The spawner stores its task's handle (invariant 2).
    fn fill(&mut self, key: usize, handle: H) {
        match self.slots[key] {
            Slot::Ended => self.release(key),
            _ => self.slots[key] = Slot::Running(handle),
        }
    }

    /// The task has ended (invariant 2).
    fn finish(&mut self, key: usize) {
        match self.slots[key] {
            Slot::Reserved => self.slots[key] = Slot::Ended,
            _ => self.release(key),
        }
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
            inner.lock().finish(key);
        });
        let handle = tokio::spawn(task).abort_handle();
        self.inner.lock().fill(key, handle);
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

#[cfg(all(test, bounded_loom))]
mod model {
    use super::{Slab, Slot};
    use bounded_sync::{Arc, Mutex};

    /// Two tasks spawned from one thread end on their own threads, racing the spawner's `fill`: every
    /// slot is freed exactly once, and a later task reuses a freed slot.
    #[test]
    fn every_slot_is_freed_once_whichever_of_fill_and_finish_comes_first() {
        loom::model(|| {
            let slab = Arc::new(Mutex::new(Slab::<u32>::default()));
            let mut tasks = Vec::new();
            for handle in 0..2 {
                let key = slab.lock().reserve();
                let ends = {
                    let slab = slab.clone();
                    loom::thread::spawn(move || slab.lock().finish(key))
                };
                slab.lock().fill(key, handle);
                tasks.push(ends);
            }
            for task in tasks {
                task.join().unwrap();
            }
            let mut slab = slab.lock();
            assert!(slab.slots.iter().all(|s| matches!(s, Slot::Vacant)));
            // Each slot is on the free list exactly once (the second task may have reused the first's).
            let mut free = slab.free.clone();
            free.sort_unstable();
            free.dedup();
            assert_eq!(free.len(), slab.free.len(), "a slot was freed twice");
            assert_eq!(free.len(), slab.slots.len(), "a slot was never freed");
            let again = slab.reserve();
            assert!(again < slab.slots.len(), "a freed slot is reused");
        });
    }
}
