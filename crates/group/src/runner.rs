//! A runner: a tokio task that takes a group's tasks from the queue and polls them in places of
//! its own. The invariants cited are the executor's (`executor.rs`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};

use bounded_cancel::Context;

use crate::executor::{Core, LEND_AFTER, RUN_BUDGET};
use crate::lent::Lending;
use crate::state::{Holding, Looking, Next, Orphans};
use bounded_sync::Arc;
use bounded_sync::atomic::Ordering;
use bounded_sync::busy::{LastJob, Stamp};
use bounded_sync::places::{PLACES, Places};
use bounded_sync::slow::{LongPolls, Picker, SAMPLE_EVERY};

/// A runner: runs a group's tasks, holding up to [`PLACES`] of them while they wait, until the group
/// has none (invariants 4 to 6, 8 and 9).
pub(crate) struct Runner<J, H> {
    core: Arc<Core<J, H>>,
    own: RunnerState<J>,
}

/// What a runner holds besides the core.
struct RunnerState<J> {
    looking: Looking,
    ended: bool,
    /// The tasks it holds while they wait (invariant 9); made at its first poll.
    hold: Option<Hold<J>>,
    /// The alias of the group's context it lends the tasks it starts (`lent.rs`), made once it has
    /// started [`LEND_AFTER`] tasks on a multi-thread runtime.
    alias: Option<Context>,
}

/// A runner's tasks (invariant 9): each in a place of its own, woken through that place's waker.
struct Hold<J> {
    places: Places,
    tasks: Vec<Option<J>>,
    free: Vec<usize>,
    /// Tasks that ended and are not yet taken off `pending`.
    unreported: usize,
    /// Tasks started in its places, counted up to [`LEND_AFTER`].
    started: usize,
    /// Tasks taken with the one being started, not yet in a place: empty between polls.
    batch: VecDeque<J>,
    /// On a multi-thread runtime, picks the polls of its tasks it times, and weighs the long ones
    /// (invariant 10).
    picker: Option<Picker>,
    long_polls: LongPolls,
}

impl<J> Hold<J> {
    /// The tasks in its places.
    fn held(&self) -> usize {
        self.tasks.len() - self.free.len()
    }

    /// What it reports as it looks, with `budget` polls left; the tasks that ended are reported
    /// once. Once the group has `spread`, it holds one task at a time, and times none of their
    /// polls again (invariant 10).
    fn report(&mut self, budget: usize, spread: bool) -> Holding {
        // Its free places: those given back, and those never made.
        let room = match spread {
            true => {
                self.picker = None;
                usize::from(self.held() == 0)
            }
            false => self.free.len() + (PLACES - self.tasks.len()),
        };
        Holding {
            finished: std::mem::take(&mut self.unreported),
            held: self.held(),
            room: room.min(budget),
        }
    }

    /// Puts a task in a free place (there is one), and returns the place.
    fn put(&mut self, job: J) -> usize {
        let place = match self.free.pop() {
            Some(place) => place,
            None => {
                self.tasks.push(None);
                self.tasks.len() - 1
            }
        };
        self.tasks[place] = Some(job);
        place
    }

    /// Takes the tasks out of these places, in order, and frees the places.
    fn take_out(&mut self, mut places: u64) -> Vec<J> {
        let mut jobs = Vec::new();
        while places != 0 {
            let place = places.trailing_zeros() as usize;
            places &= places - 1;
            if let Some(job) = self.tasks[place].take() {
                self.free.push(place);
                jobs.push(job);
            }
        }
        jobs
    }
}

impl<J: Future<Output = ()> + Unpin> Hold<J> {
    /// For a runner on a runtime of `threads` worker threads.
    fn new(threads: usize) -> Self {
        Hold {
            places: Places::new(),
            tasks: Vec::new(),
            free: Vec::new(),
            unreported: 0,
            started: 0,
            batch: VecDeque::new(),
            picker: (threads > 1).then(|| Picker::new(SAMPLE_EVERY)),
            long_polls: LongPolls::new(SAMPLE_EVERY),
        }
    }

    /// Puts a task in a free place, and polls it there: whether the runner's long polls now fill
    /// its time (invariant 10).
    fn start(&mut self, job: J) -> bool {
        self.started = (self.started + 1).min(LEND_AFTER);
        let place = self.put(job);
        self.poll(place)
    }

    /// Polls the task in `place`, if any, through the place's waker; frees the place if it ended.
    /// Whether the runner's long polls now fill its time, if this poll was one it timed (invariant
    /// 10).
    fn poll(&mut self, place: usize) -> bool {
        let Some(job) = &mut self.tasks[place] else {
            // Woken by a waker an earlier task of the place kept.
            return false;
        };
        let waker = self.places.waker(place);
        let timed = self
            .picker
            .as_mut()
            .is_some_and(Picker::pick)
            .then(Stamp::now);
        let ready = Pin::new(job)
            .poll(&mut TaskContext::from_waker(waker))
            .is_ready();
        let filled = timed.is_some_and(|start| self.long_polls.count(start, start.elapsed().1));
        if ready {
            // Dropped here, outside the lock (invariant 1).
            self.tasks[place] = None;
            self.free.push(place);
            self.unreported += 1;
        }
        filled
    }
}

impl<J, H> Runner<J, H> {
    pub(crate) fn new(core: Arc<Core<J, H>>, key: usize, limit: usize, threads: usize) -> Self {
        Runner {
            core,
            own: RunnerState {
                looking: Looking {
                    key,
                    limit,
                    parked: false,
                    searching: true,
                    lingered: false,
                    threads,
                    last: LastJob::Unknown,
                },
                ended: false,
                hold: None,
                alias: None,
            },
        }
    }
}

impl<J: Future<Output = ()> + Unpin, H> Future for Runner<J, H> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let Runner { core, own } = self.get_mut();
        if own.looking.threads == 1 {
            return own.run(core, cx);
        }
        // Counted while it is polled, on a runtime with threads to spare (invariant 8).
        let _polled = core.polled.enter();
        own.run(core, cx)
    }
}

impl<J: Future<Output = ()> + Unpin> RunnerState<J> {
    /// Runs tasks (invariant 9): first the tasks of its places that were woken, then the tasks
    /// queued meanwhile, each polled as it is taken, until the queue is empty or it has polled
    /// [`RUN_BUDGET`] tasks in this poll. With threads to spare, a poll that holds its thread long
    /// hands the rest on (invariant 8).
    fn run<H>(&mut self, core: &Arc<Core<J, H>>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let hold = self
            .hold
            .get_or_insert_with(|| Hold::new(self.looking.threads));
        let looking = &mut self.looking;
        // On a multi-thread runtime, a runner that has started a run of tasks lends them an alias
        // of its own of the group's context while it is polled (`lent.rs`).
        if self.alias.is_none() && looking.threads > 1 && hold.started == LEND_AFTER {
            self.alias = core.lend.as_ref().map(|group| group.ctx.alias());
        }
        let _lending = match (&self.alias, &core.lend) {
            (Some(alias), Some(group)) => Some(Lending::new(group.group, alias.clone())),
            _ => None,
        };
        let limit = looking.limit;
        let start = (looking.threads > 1).then(Stamp::now);
        let mut budget = RUN_BUDGET;
        let mut woken = hold.places.take(cx.waker());
        while woken != 0 {
            if budget == 0 {
                hold.places.put_back(woken);
                break;
            }
            budget -= 1;
            let place = woken.trailing_zeros() as usize;
            woken &= woken - 1;
            if hold.poll(place) {
                core.spread.store(true, Ordering::Relaxed);
            }
            let Some(start) = start else { continue };
            looking.last = start.since();
            if woken != 0 && held_long(looking, core) {
                // Its thread is taken and another is free: the tasks woken meanwhile go back to
                // the queue, for a runner there, and this one steps aside (invariant 8).
                let jobs = hold.take_out(woken);
                return give_back(core, hold, jobs, limit, cx);
            }
        }
        loop {
            if budget == 0 {
                // Out of budget: it yields, as a task that waits does, and looks again at its next
                // poll; the tasks that ended meanwhile are reported now.
                let finished = std::mem::take(&mut hold.unreported);
                core.lock().runs.pending -= finished;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // With one worker thread only (invariant 5).
            let spawn_waiting =
                looking.threads == 1 && core.waiting_spawns.load(Ordering::Relaxed) > 0;
            let spread = core.spread.load(Ordering::Relaxed);
            let next = core.lock().next(
                looking,
                hold.report(budget, spread),
                cx.waker(),
                &core.polled,
                spawn_waiting,
                &mut hold.batch,
            );
            match next {
                Next::Run(job, push, step_aside) => {
                    budget -= 1;
                    Core::make_search(core, push, limit);
                    if step_aside {
                        // The runner just woken or started sits in this thread's next-task slot,
                        // which no other thread takes from: yielding puts this runner in the
                        // thread's queue instead, where an idle thread takes it (invariant 8). The
                        // task is polled when it is back.
                        let place = hold.put(job);
                        hold.places.put_back(1 << place);
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    if hold.start(job) {
                        core.spread.store(true, Ordering::Relaxed);
                    }
                    if let Some(start) = start {
                        looking.last = start.since();
                    }
                    // The tasks taken with it, each polled in turn; should a poll hold the thread
                    // long while another is free, those not started go back to the queue for a
                    // runner there, as woken ones do (invariant 8).
                    while let Some(job) = hold.batch.pop_front() {
                        if held_long(looking, core) {
                            let jobs = std::iter::once(job).chain(hold.batch.drain(..)).collect();
                            return give_back(core, hold, jobs, limit, cx);
                        }
                        budget -= 1;
                        if hold.start(job) {
                            core.spread.store(true, Ordering::Relaxed);
                        }
                        if let Some(start) = start {
                            looking.last = start.since();
                        }
                    }
                }
                Next::Full(push) => {
                    Core::make_search(core, push, limit);
                    return Poll::Pending;
                }
                Next::Park => return Poll::Pending,
                Next::Linger => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Next::End(parked) => {
                    self.ended = true;
                    parked.into_iter().for_each(Waker::wake);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// Whether the runner's poll has held its thread long while another thread is free (invariant 8;
/// never on one worker thread, where polls are not timed).
fn held_long<J, H>(looking: &Looking, core: &Core<J, H>) -> bool {
    looking.last == LastJob::Long && core.polled.now() < looking.threads
}

/// Gives `jobs`, which the runner holds and has not polled since, back to the front of the queue
/// with the count of its tasks that ended, makes a search for them, and yields (invariant 8).
fn give_back<J, H>(
    core: &Arc<Core<J, H>>,
    hold: &mut Hold<J>,
    jobs: Vec<J>,
    limit: usize,
    cx: &mut TaskContext<'_>,
) -> Poll<()> {
    let finished = std::mem::take(&mut hold.unreported);
    let push = core.lock().give_back(jobs, finished, limit);
    Core::make_search(core, push, limit);
    cx.waker().wake_by_ref();
    Poll::Pending
}

impl<J, H> Drop for Runner<J, H> {
    fn drop(&mut self) {
        let own = &mut self.own;
        let hold = own.hold.take();
        let had_jobs = hold
            .as_ref()
            .map_or(0, |hold| hold.held() + hold.unreported + hold.batch.len());
        // Dropped outside the lock (invariant 1).
        drop(hold);
        let mut state = self.core.lock();
        let orphans = match own.ended {
            false => state.runner_dropped(&own.looking, had_jobs),
            true => Orphans::None,
        };
        state.slab.finish(own.looking.key);
        drop(state);
        // Outside the lock (invariant 1).
        match orphans {
            Orphans::None => {}
            Orphans::Wake(waker) => waker.wake(),
            Orphans::Drop(queue) => drop(queue),
        }
    }
}
