//! The context a runner lends the tasks it starts, on a multi-thread runtime.
//!
//! Each task gets a clone of its group's context, and every clone adds to and takes from one
//! reference count. When a spawner on one thread checks the context at each spawn while runners on
//! another clone it for each task they start and drop it as each ends, the two threads take that
//! count's cache line from one another twice per task. So a runner on a multi-thread runtime that
//! has started a run of tasks makes an alias of the group's context of its own (the same context in
//! everything it does, counted apart: see `Context::alias`), and while it is polled, the tasks of
//! that group it starts on this thread clone the alias instead.

use std::cell::Cell;

use bounded_cancel::Context;

/// A group's context, and the group (the address of its shared state) whose tasks an alias of it
/// may be lent to.
pub(crate) struct GroupContext {
    pub(crate) ctx: Context,
    pub(crate) group: usize,
}

thread_local! {
    /// The group whose tasks may take the alias lent on this thread (0 for none): read first, alone,
    /// so that a task finds out that nothing is lent to it in one read.
    static LENT_TO: Cell<usize> = const { Cell::new(0) };
    /// The alias lent on this thread.
    static LENT: Cell<Option<Context>> = const { Cell::new(None) };
}

/// While it lives, the tasks of `group` that start on this thread take clones of `alias`; dropped,
/// it puts back what was lent before.
pub(crate) struct Lending {
    before: (usize, Option<Context>),
}

impl Lending {
    pub(crate) fn new(group: usize, alias: Context) -> Self {
        Lending {
            before: (LENT_TO.replace(group), LENT.replace(Some(alias))),
        }
    }
}

impl Drop for Lending {
    fn drop(&mut self) {
        LENT_TO.set(self.before.0);
        LENT.set(self.before.1.take());
    }
}

/// A clone of the alias lent on this thread to the tasks of `group`, if one is.
pub(crate) fn lent(group: usize) -> Option<Context> {
    if LENT_TO.get() != group {
        return None;
    }
    LENT.with(|lent| {
        let alias = lent.take();
        let clone = alias.clone();
        lent.set(alias);
        clone
    })
}
