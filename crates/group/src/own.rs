//! Which task of which group this thread is polling, if any: how a group tells that a `wait` or a
//! `spawn` comes from one of its own tasks, which would wait for itself.
//!
//! Each task's future marks the thread for the length of each of its polls (a replace of a
//! thread-local and its restore), with the address of the group's shared state and the address of
//! the task's own pinned future, which no other task can have while it lives. Whatever the task
//! polls inside its poll (a `join!`, a `select!`, a `block_on` under `block_in_place`) runs in it.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bounded_sync::Mutex;
use pin_project_lite::pin_project;

std::thread_local! {
    static POLLING: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

pin_project! {
    /// A task's future, which marks the thread with its group and itself (its own address, fixed
    /// while it is pinned) for the length of each of its polls.
    pub(crate) struct Marked<F> {
        group: usize,
        #[pin]
        task: F,
    }
}

impl<F> Marked<F> {
    pub(crate) fn new(group: usize, task: F) -> Self {
        Marked { group, task }
    }
}

impl<F: Future> Future for Marked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let task = std::ptr::from_ref::<Self>(&self).addr();
        let this = self.project();
        let _polling = Polling(POLLING.replace((*this.group, task)));
        this.task.poll(cx)
    }
}

/// Puts back, when dropped, what the thread was marked with before a task's poll.
struct Polling((usize, usize));

impl Drop for Polling {
    fn drop(&mut self) {
        POLLING.set(self.0);
    }
}

/// The task of the group at `group` that this thread is polling, if any.
pub(crate) fn task_of(group: usize) -> Option<usize> {
    let (polled, task) = POLLING.get();
    (polled == group && task != 0).then_some(task)
}

/// The group's own tasks that wait in `spawn` for a slot, each with how many of its spawns wait.
/// Each holds a slot it cannot give back while it waits, so once as many wait as the limit, no slot
/// is free and none is on its way to anyone: none of them can ever go on.
#[derive(Default)]
pub(crate) struct OwnWaits(Mutex<Vec<(usize, usize)>>);

impl OwnWaits {
    /// Counts a spawn of `task` in, unless with it `limit` distinct tasks would wait.
    pub(crate) fn enter(&self, task: usize, limit: usize) -> Option<OwnWait<'_>> {
        let mut waits = self.0.lock();
        match waits.iter().position(|(waiting, _)| *waiting == task) {
            // Another spawn of a task already counted: no more slots are held than before.
            Some(at) => waits[at].1 += 1,
            None if waits.len() + 1 >= limit => return None,
            None => waits.push((task, 1)),
        }
        drop(waits);
        Some(OwnWait { waits: self, task })
    }
}

/// A waiting spawn of one of the group's tasks, counted until dropped.
pub(crate) struct OwnWait<'a> {
    waits: &'a OwnWaits,
    task: usize,
}

impl Drop for OwnWait<'_> {
    fn drop(&mut self) {
        let mut waits = self.waits.0.lock();
        if let Some(at) = waits.iter().position(|(waiting, _)| *waiting == self.task) {
            waits[at].1 -= 1;
            if waits[at].1 == 0 {
                waits.swap_remove(at);
            }
        }
    }
}
