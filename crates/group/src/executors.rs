//! A group's executors: one per runtime its tasks are spawned from, so that a task always runs on
//! the runtime of the task that spawned it, as with `tokio::spawn`.
//!
//! Runners take any task queued in their executor. With one executor shared by two runtimes, a task
//! spawned on one could run on runners of the other, and wait for ever if that runtime was not being
//! driven (a current_thread runtime between two `block_on` calls), or be dropped with it as it shut
//! down. So each runtime gets an executor of its own, found by the runtime's id.
//!
//! The executors form a list that only grows while the group lives (a group spawned into from a
//! handful of runtimes keeps a handful of executors, each holding no runner once idle): the first
//! is found without a lock, and so is every later one, through `OnceLock`s. Finding the spawner's
//! runtime reads tokio's handle (two atomic read-modify-writes of a count every thread shares), so
//! the last answer is kept per thread, for the tokio task that asked: a task never moves to
//! another runtime, and task ids are never reused.

use std::cell::Cell;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Id};

use crate::executor::Executor;
use crate::lent::GroupContext;

/// Every executor of a group, the first one made first.
#[derive(Default)]
pub(crate) struct Executors {
    first: OnceLock<Box<Node>>,
}

struct Node {
    runtime: Id,
    executor: Executor,
    next: OnceLock<Box<Node>>,
}

impl Executors {
    /// The executor of the runtime the caller runs on, made on first use.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub(crate) fn here(&self, group: impl Fn() -> GroupContext) -> &Executor {
        let runtime = current_runtime();
        match self.nodes().find(|node| node.runtime == runtime) {
            Some(node) => &node.executor,
            // The first spawn from this runtime: asks tokio itself (the answer kept for a task
            // may be another runtime's, entered with `Handle::enter` when it was asked).
            None => self.add(handle(), group),
        }
    }

    /// The executor of `runtime`, added at the end of the list unless there already; `group` is
    /// the group's context, for the executor made.
    fn add(&self, runtime: Handle, group: impl Fn() -> GroupContext) -> &Executor {
        let id = runtime.id();
        let mut slot = &self.first;
        loop {
            let node = slot.get_or_init(|| {
                Box::new(Node {
                    runtime: id,
                    executor: Executor::new(runtime.clone(), group()),
                    next: OnceLock::new(),
                })
            });
            if node.runtime == id {
                return &node.executor;
            }
            slot = &node.next;
        }
    }

    fn nodes(&self) -> impl Iterator<Item = &Node> {
        std::iter::successors(self.first.get(), |node| node.next.get()).map(|node| &**node)
    }

    /// Every executor made so far.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Executor> {
        self.nodes().map(|node| &node.executor)
    }
}

impl Drop for Executors {
    /// One executor after another, not nested, however many runtimes spawned into the group.
    fn drop(&mut self) {
        let mut next = self.first.take().and_then(|mut node| node.next.take());
        while let Some(mut node) = next {
            next = node.next.take();
        }
    }
}

fn handle() -> Handle {
    bounded_sync::runtime::current("a group task was spawned")
}

thread_local! {
    /// The runtime of the tokio task that last asked on this thread.
    static LAST: Cell<Option<(tokio::task::Id, Id)>> = const { Cell::new(None) };
}

/// The id of the runtime the caller runs on.
fn current_runtime() -> Id {
    let task = tokio::task::try_id();
    if let Some(task) = task
        && let Some((asked, runtime)) = LAST.get()
        && asked == task
    {
        return runtime;
    }
    let runtime = handle().id();
    if let Some(task) = task {
        LAST.set(Some((task, runtime)));
    }
    runtime
}
