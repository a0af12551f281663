//! The tasks of a bounded set that wait to add to that same set, each holding a place it cannot give
//! back while it waits: a group's tasks spawning into their own group, a pool's jobs submitting to
//! their own pool. Once as many distinct tasks wait so as there are places they could wait for
//! (the group's limit, the pool's workers), none of them can ever go on: [`OwnWaits::enter`]
//! refuses the wait that would make it so, instead of letting it wait for ever.
//!
//! A task counts once however many of its waits run side by side (a `join!` of two spawns): it
//! holds one place between them.
//!
//! # Examples
//!
//! ```
//! use bounded_sync::own::OwnWaits;
//!
//! let waits = OwnWaits::default();
//! // Two places; the task at 1 waits twice, side by side: it still holds one place.
//! let first = waits.enter(1, 2).expect("the other place's holder can still go on");
//! let second = waits.enter(1, 2).expect("the same task");
//! // The task at 2, the only other holder, would wait too: refused.
//! assert!(waits.enter(2, 2).is_none());
//! drop((first, second));
//! assert!(waits.enter(2, 2).is_some());
//! ```

use crate::Mutex;

/// The tasks waiting, each with how many of its waits are in progress.
#[derive(Debug, Default)]
pub struct OwnWaits(Mutex<Vec<(usize, usize)>>);

impl OwnWaits {
    /// Counts a wait of `task` (any number that tells the caller's task apart while it lives) in,
    /// unless with it `places` distinct tasks would wait: then `None`, and nothing is counted.
    pub fn enter(&self, task: usize, places: usize) -> Option<OwnWait<'_>> {
        let mut waits = self.0.lock();
        match waits.iter().position(|(waiting, _)| *waiting == task) {
            // Another wait of a task already counted: no more places are held than before.
            Some(at) => waits[at].1 += 1,
            None if waits.len() + 1 >= places => return None,
            None => waits.push((task, 1)),
        }
        drop(waits);
        Some(OwnWait { waits: self, task })
    }
}

/// A wait counted in its [`OwnWaits`] until dropped.
#[derive(Debug)]
pub struct OwnWait<'a> {
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
