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
