//! A group's state under its executor's one lock: the slab of its runners' abort handles, its
//! queue of admitted tasks and its runners parked or searching. The invariants cited are the
//! executor's (`executor.rs`).

use std::collections::VecDeque;
use std::task::Waker;

use crate::executor::MAX_PARKED;
use bounded_sync::busy::{Busy, LastJob};
use tokio::task::AbortHandle;

pub(crate) struct State<J, H> {
    pub(crate) slab: Slab<H>,
    pub(crate) runs: Runs<J>,
}

/// Abort handles of the tokio tasks alive. A slot is reserved before its task is spawned and filled
/// after, so that no lock is held across `tokio::spawn` (which may wake another worker).
pub(crate) struct Slab<H> {
    pub(crate) slots: Vec<Slot<H>>,
    pub(crate) free: Vec<usize>,
}

impl<H> Default for Slab<H> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

pub(crate) enum Slot<H> {
    Vacant,
    /// Spawned or about to be, handle not stored yet.
    Reserved,
    Running(H),
    /// The task ended before its handle was stored.
    Ended,
}

impl<H> Slab<H> {
    pub(crate) fn reserve(&mut self) -> usize {
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
    pub(crate) fn fill(&mut self, key: usize, handle: H) {
        match self.slots[key] {
            Slot::Ended => self.release(key),
            _ => self.slots[key] = Slot::Running(handle),
        }
    }

    /// The task has ended (invariant 2).
    pub(crate) fn finish(&mut self, key: usize) {
        match self.slots[key] {
            Slot::Reserved => self.slots[key] = Slot::Ended,
            _ => self.release(key),
        }
    }
}

/// A limited group's queue and runners (invariants 4 to 6).
pub(crate) struct Runs<J> {
    pub(crate) queue: VecDeque<J>,
    pub(crate) pending: usize,
    pub(crate) runners: usize,
    /// Keys of parked runners.
    pub(crate) idle: Vec<usize>,
    /// A parked runner's waker, by its key (the key of its slot in the slab).
    pub(crate) wakers: Vec<Option<Waker>>,
    /// `wait` found the group idle; cleared by the next push (invariant 6).
    pub(crate) draining: bool,
    /// Runners woken or started that have not looked at the queue yet (invariant 5).
    pub(crate) searching: usize,
    /// The executor was dropped: every runner ends, none starts (invariant 3).
    pub(crate) closed: bool,
    /// The task that closes the group's slots when its context ends, so that a spawn waiting for a
    /// slot needs no waiter of its own on the context (invariant 7).
    pub(crate) watcher: Option<AbortHandle>,
}

impl<J> Default for Runs<J> {
    fn default() -> Self {
        Runs {
            queue: VecDeque::new(),
            pending: 0,
            runners: 0,
            idle: Vec::new(),
            wakers: Vec::new(),
            draining: false,
            searching: 0,
            closed: false,
            watcher: None,
        }
    }
}

/// Who is made to search the queue, once the lock is released (invariant 5).
pub(crate) enum Push {
    Wake(Waker),
    /// Start a runner with this slab key.
    Start(usize),
    /// A runner searching or between tasks will take it.
    Nothing,
}

/// What a dropped runner leaves to do, once the lock is released.
pub(crate) enum Orphans<J> {
    None,
    Wake(Waker),
    Drop(VecDeque<J>),
}

/// Where a runner stands when it looks at the queue (see `State::arrive`).
enum Arrived {
    Parked,
    Closed,
    Looking { was_searching: bool },
}

/// What a runner does next.
pub(crate) enum Next<J> {
    /// Take this task into a place of its own, after making this search; `true` when it steps
    /// aside once before it polls the task (invariant 8).
    Run(J, Push, bool),
    /// Every place is taken: wait for the tasks, after making this search for the tasks queued.
    Full(Push),
    Park,
    /// Look once more before parking: a spawn waits for a slot that likely just freed, and its task
    /// is about to be queued. The runner stays counted as searching, so that push wakes nobody.
    Linger,
    /// End, waking these parked runners so that they end too (invariant 6); the runner holds no
    /// task.
    End(Vec<Waker>),
}

impl<J, H> State<J, H> {
    pub(crate) fn push(&mut self, job: J, limit: usize) -> Push {
        let runs = &mut self.runs;
        runs.queue.push_back(job);
        runs.pending += 1;
        runs.draining = false;
        self.search(limit)
    }

    /// Makes one runner search the queue unless one already is (invariant 5).
    fn search(&mut self, limit: usize) -> Push {
        let runs = &mut self.runs;
        if runs.searching > 0 || runs.closed {
            return Push::Nothing;
        }
        if let Some(key) = runs.idle.pop() {
            runs.searching += 1;
            let waker = runs.wakers[key].take();
            return Push::Wake(waker.expect("a parked runner has a waker"));
        }
        if runs.runners >= limit {
            return Push::Nothing;
        }
        runs.runners += 1;
        runs.searching += 1;
        let key = self.slab.reserve();
        if runs.wakers.len() <= key {
            runs.wakers.resize_with(key + 1, || None);
        }
        Push::Start(key)
    }

    /// What every look at the queue starts with: `finished` tasks of the runner's come off
    /// `pending`; a parked runner that nobody woke stays parked (the poll is spurious, or for its own
    /// tasks); a woken one stops counting as searching; and a runner of a dropped executor ends.
    fn arrive(&mut self, runner: &mut Looking, finished: usize, waker: &Waker) -> Arrived {
        let runs = &mut self.runs;
        runs.pending -= finished;
        if runner.parked {
            match &mut runs.wakers[runner.key] {
                Some(stored) => {
                    if !stored.will_wake(waker) {
                        *stored = waker.clone();
                    }
                    return Arrived::Parked;
                }
                // Woken, and counted as searching by whoever woke it.
                None => {
                    runner.parked = false;
                    runner.searching = true;
                }
            }
        }
        let was_searching = std::mem::take(&mut runner.searching);
        if was_searching {
            runs.searching -= 1;
        }
        if runs.closed {
            runs.runners -= 1;
            return Arrived::Closed;
        }
        Arrived::Looking { was_searching }
    }

    /// Parks the runner: its key in `idle`, its waker stored for whoever wakes it (invariant 4).
    fn park(&mut self, runner: &mut Looking, waker: &Waker) {
        let runs = &mut self.runs;
        runs.wakers[runner.key] = Some(waker.clone());
        runs.idle.push(runner.key);
        runner.parked = true;
    }

    /// A runner looks for work: `finished` of its tasks ended since it last looked, `held` still
    /// wait in its places, and it takes up to `room` tasks: the first is returned, the others it
    /// takes in the same look (invariant 5) go to the back of `batch`.
    pub(crate) fn next(
        &mut self,
        runner: &mut Looking,
        tasks: Holding,
        waker: &Waker,
        polled: &Busy,
        spawn_waiting: bool,
        batch: &mut VecDeque<J>,
    ) -> Next<J> {
        let Holding {
            finished,
            held,
            room,
        } = tasks;
        let was_searching = match self.arrive(runner, finished, waker) {
            // Not woken by a push: it stays parked, unless its own task was the group's last after
            // `wait` found it idle (invariant 6).
            Arrived::Parked => {
                let runs = &mut self.runs;
                if runs.pending == 0 && runs.draining {
                    runs.wakers[runner.key] = None;
                    runs.idle.retain(|&key| key != runner.key);
                    runner.parked = false;
                    runs.runners -= 1;
                    return Next::End(runs.unpark_all());
                }
                return Next::Park;
            }
            Arrived::Closed => return Next::End(Vec::new()),
            Arrived::Looking { was_searching } => was_searching,
        };
        let runs = &mut self.runs;
        if room == 0 {
            // Every place is taken: it waits for its tasks and makes another runner search for the
            // tasks queued (invariant 5).
            let push = match runs.queue.is_empty() {
                true => Push::Nothing,
                false => self.search(runner.limit),
            };
            return Next::Full(push);
        }
        if let Some(job) = runs.queue.pop_front() {
            runner.lingered = false;
            let left = !runs.queue.is_empty();
            // A task that computes holds its runner's thread, and the tasks behind it must not wait
            // for it while a thread is free (invariant 8).
            if left && polled.hand_on_now(runner.threads, runner.last, was_searching) {
                let push = self.search(runner.limit);
                let step_aside = !matches!(push, Push::Nothing);
                return Next::Run(job, push, step_aside);
            }
            // Its last poll was short, so the tasks behind this one likely are too: it takes as
            // many as it has room for under this one lock, rather than one per look. (After a
            // long one, with every thread busy, they stay queued for whichever runner is free
            // first.)
            if runner.last == LastJob::Quick || runner.threads == 1 {
                let more = runs.queue.len().min(room - 1);
                batch.extend(runs.queue.drain(..more));
            }
            return Next::Run(job, Push::Nothing, false);
        }
        if runs.pending == 0 && runs.draining {
            runs.runners -= 1;
            return Next::End(runs.unpark_all());
        }
        if spawn_waiting && finished > 0 && !runner.lingered {
            runner.lingered = true;
            runner.searching = true;
            runs.searching += 1;
            return Next::Linger;
        }
        if held == 0 && runs.idle.len() >= MAX_PARKED {
            runs.runners -= 1;
            return Next::End(Vec::new());
        }
        self.park(runner, waker);
        Next::Park
    }

    /// A runner whose poll held its thread gives the tasks it holds that were woken meanwhile back
    /// to the front of the queue, and reports `finished` tasks of its own, so that a free thread runs
    /// them (invariant 8). A runner is made to search for them unless one already does.
    pub(crate) fn give_back(&mut self, jobs: Vec<J>, finished: usize, limit: usize) -> Push {
        let runs = &mut self.runs;
        runs.pending -= finished;
        for job in jobs.into_iter().rev() {
            runs.queue.push_front(job);
        }
        self.search(limit)
    }

    /// `wait` found the group idle: runners end once no task is pending (invariant 6).
    pub(crate) fn drain(&mut self) -> Vec<Waker> {
        let runs = &mut self.runs;
        runs.draining = true;
        if runs.pending == 0 {
            runs.unpark_all()
        } else {
            Vec::new()
        }
    }

    /// A runner is dropped before it ended by itself (aborted, or its runtime shut down). Tasks still
    /// queued keep a runner coming (invariant 5): a parked one is woken, or, when this was the last
    /// runner and the group was not dropped, they are handed back to be dropped, since no runner is
    /// left to take them (their runtime is shutting down; each reports itself lost).
    pub(crate) fn runner_dropped(&mut self, runner: &Looking, had_jobs: usize) -> Orphans<J> {
        self.leave(runner, had_jobs);
        let runs = &mut self.runs;
        if runs.closed || runs.queue.is_empty() {
            return Orphans::None;
        }
        if runs.runners == 0 {
            let queue = std::mem::take(&mut runs.queue);
            runs.pending -= queue.len();
            return Orphans::Drop(queue);
        }
        if runs.searching == 0
            && let Some(key) = runs.idle.pop()
        {
            runs.searching += 1;
            return Orphans::Wake(
                runs.wakers[key]
                    .take()
                    .expect("a parked runner has a waker"),
            );
        }
        Orphans::None
    }

    /// `had_jobs`: the tasks that end with the runner, still counted in `pending`.
    fn leave(&mut self, runner: &Looking, had_jobs: usize) {
        let runs = &mut self.runs;
        runs.runners -= 1;
        runs.pending -= had_jobs;
        let woken = runner.parked && runs.wakers[runner.key].is_none();
        if runner.searching || woken {
            runs.searching -= 1;
        }
        if runner.parked && !woken {
            runs.idle.retain(|&k| k != runner.key);
            runs.wakers[runner.key] = None;
        }
    }
}

impl<J> Runs<J> {
    /// Wakes every parked runner; each counts as searching until it looks.
    pub(crate) fn unpark_all(&mut self) -> Vec<Waker> {
        let wakers = &mut self.wakers;
        self.searching += self.idle.len();
        (self.idle.drain(..))
            .map(|key| wakers[key].take().expect("a parked runner has a waker"))
            .collect()
    }
}

/// What a runner tells the queue about the tasks it holds, as it looks.
pub(crate) struct Holding {
    /// Ended since it last looked.
    pub(crate) finished: usize,
    /// Still waiting in its places.
    pub(crate) held: usize,
    /// How many tasks it takes at most: its free places, and what is left of its budget.
    pub(crate) room: usize,
}

/// A runner's own part of the hand-off state.
pub(crate) struct Looking {
    pub(crate) key: usize,
    /// The group's limit when the runner started (it changes only while the group is idle).
    pub(crate) limit: usize,
    pub(crate) parked: bool,
    /// Counted in `searching`: started or woken, and has not looked yet. A runner starts searching.
    pub(crate) searching: bool,
    /// It looked once more instead of parking, and has taken no task since.
    pub(crate) lingered: bool,
    /// The worker threads of the runtime it runs on (invariant 8).
    pub(crate) threads: usize,
    /// Whether its latest poll has held its thread long, on a runtime with threads to spare
    /// (invariant 8).
    pub(crate) last: LastJob,
}
