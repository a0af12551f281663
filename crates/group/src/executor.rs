//! Where a group's tasks run.
//!
//! A group without a limit makes each task a tokio task. A limited group runs its tasks on *runners*:
//! at most `limit` long-lived tokio tasks, each running one group task at a time, taken from a queue of
//! admitted tasks. A task's code never runs on the spawner either way, and the runtime balances runners
//! as it does any task. A runner that finishes a task takes the next one without a new tokio task, so a
//! busy limited group pays one queue hand-off per task instead of a spawn. A runner with nothing to do
//! parks (it costs no CPU, and a few hundred bytes), up to [`MAX_PARKED`] of them; it ends when more are
//! parked, when `wait` finds the group idle, or when the group is dropped.
//!
//! The group keeps an abort handle per tokio task it started (task or runner), in a slab whose slot is
//! freed when that task ends: memory follows what is alive, not what was ever spawned. Dropping the
//! executor aborts every tokio task still alive and drops the tasks still queued.
//!
//! # Invariants
//!
//! 1. No lock is held across `tokio::spawn`, a waker's `wake`, or the drop of a task (which runs user
//!    code): a slot is reserved before the spawn and filled after it; wakers and tasks leave the lock
//!    first.
//! 2. A slot is `Reserved` from `reserve` until exactly one of `fill` (the spawner stores the handle)
//!    or `finish` (the task ended first) sees it; whichever comes second frees it. So every slot is
//!    freed exactly once, whatever the order, and the slab holds one slot per tokio task alive.
//! 3. A `Running` slot holds the handle of a task that has not ended; `Drop` aborts exactly those. A
//!    task still `Reserved` at drop cannot exist: `submit` borrows the executor until it has filled.
//! 4. Runners: `pending` counts tasks queued or on a runner; `runners` counts runners that have not
//!    decided to end; a runner is *parked* exactly when its key is in `idle` (and its waker stored).
//!    A runner parks or ends only after it found the queue empty, under the lock.
//! 5. Every queued task is taken: a push wakes a parked runner, or starts one while fewer than `limit`
//!    exist, or else finds at least `limit` runners, none of them parked. In that last case, a limited
//!    group's slots (a task holds one from admission to its end, and there are `limit`) leave at most
//!    `limit - queued` tasks running, so at least `queued` runners are between tasks and look at the
//!    queue before they park or end.
//! 6. Once `wait` has found the group idle (`draining`, until the next push), the runner that finds
//!    `pending` at 0 ends and wakes every parked runner, which then ends too: a group that was waited
//!    for and has nothing to do holds no runner.
//!
//! All of it is under one lock, with no atomics of its own: the orderings are the lock's.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};

use bounded_cancel::live::TaskCounter;
use bounded_sync::{Arc, Mutex, MutexGuard};
use tokio::task::AbortHandle;

pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How many tasks a runner runs in one poll before it yields to the runtime, so that a runner fed as
/// fast as it drains never keeps its worker thread from other tasks.
const RUN_BUDGET: usize = 32;

/// The most runners a group keeps parked between tasks; a runner that finds this many parked ends.
pub(crate) const MAX_PARKED: usize = 64;

pub(crate) struct Executor {
    core: Arc<Core<Job, AbortHandle>>,
    counter: TaskCounter,
}

/// What the executor and its tokio tasks share. `J` is a task, `H` an abort handle (both stand-ins in
/// the loom model).
struct Core<J, H> {
    state: Mutex<State<J, H>>,
}

struct State<J, H> {
    slab: Slab<H>,
    runs: Runs<J>,
}

/// Abort handles of the tokio tasks alive. A slot is reserved before its task is spawned and filled
/// after, so that no lock is held across `tokio::spawn` (which may wake another worker).
struct Slab<H> {
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

/// A limited group's queue and runners (invariants 4 to 6).
struct Runs<J> {
    queue: VecDeque<J>,
    pending: usize,
    runners: usize,
    /// Keys of parked runners.
    idle: Vec<usize>,
    /// A parked runner's waker, by its key (the key of its slot in the slab).
    wakers: Vec<Option<Waker>>,
    /// `wait` found the group idle; cleared by the next push (invariant 6).
    draining: bool,
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
        }
    }
}

/// What `submit` does after queueing, once the lock is released.
enum Push {
    Wake(Waker),
    /// Start a runner with this slab key.
    Start(usize),
    /// A runner between tasks will take it (invariant 5).
    Nothing,
}

/// What a runner does next.
enum Next<J> {
    Run(J),
    Park,
    /// End, waking these parked runners so that they end too (invariant 6).
    End(Vec<Waker>),
}

impl<J, H> State<J, H> {
    fn push(&mut self, job: J, limit: usize) -> Push {
        let runs = &mut self.runs;
        runs.queue.push_back(job);
        runs.pending += 1;
        runs.draining = false;
        if let Some(key) = runs.idle.pop() {
            let waker = runs.wakers[key]
                .take()
                .expect("a parked runner has a waker");
            return Push::Wake(waker);
        }
        if runs.runners >= limit {
            return Push::Nothing;
        }
        runs.runners += 1;
        let key = self.slab.reserve();
        if runs.wakers.len() <= key {
            runs.wakers.resize_with(key + 1, || None);
        }
        Push::Start(key)
    }

    /// A runner looks for work: `finished` if it just ended a task, `parked` its own state.
    fn next(&mut self, key: usize, finished: bool, parked: &mut bool, waker: &Waker) -> Next<J> {
        let runs = &mut self.runs;
        if finished {
            runs.pending -= 1;
        }
        if *parked {
            match &mut runs.wakers[key] {
                // Still parked: nobody woke it, this poll is spurious.
                Some(stored) => {
                    if !stored.will_wake(waker) {
                        *stored = waker.clone();
                    }
                    return Next::Park;
                }
                None => *parked = false,
            }
        }
        if let Some(job) = runs.queue.pop_front() {
            return Next::Run(job);
        }
        if runs.pending == 0 && runs.draining {
            runs.runners -= 1;
            return Next::End(runs.unpark_all());
        }
        if runs.idle.len() >= MAX_PARKED {
            runs.runners -= 1;
            return Next::End(Vec::new());
        }
        runs.wakers[key] = Some(waker.clone());
        runs.idle.push(key);
        *parked = true;
        Next::Park
    }

    /// `wait` found the group idle: runners end once no task is pending (invariant 6).
    fn drain(&mut self) -> Vec<Waker> {
        let runs = &mut self.runs;
        runs.draining = true;
        if runs.pending == 0 {
            runs.unpark_all()
        } else {
            Vec::new()
        }
    }

    /// A runner is dropped before it ended by itself (aborted, or its runtime shut down).
    fn runner_dropped(&mut self, key: usize, parked: bool, had_job: bool) {
        let runs = &mut self.runs;
        runs.runners -= 1;
        if had_job {
            runs.pending -= 1;
        }
        if parked {
            runs.idle.retain(|&k| k != key);
            runs.wakers[key] = None;
        }
    }
}

impl<J> Runs<J> {
    fn unpark_all(&mut self) -> Vec<Waker> {
        let wakers = &mut self.wakers;
        (self.idle.drain(..))
            .map(|key| wakers[key].take().expect("a parked runner has a waker"))
            .collect()
    }
}

impl<J, H> Core<J, H> {
    fn new() -> Self {
        Core {
            state: Mutex::new(State {
                slab: Slab::default(),
                runs: Runs::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J, H>> {
        self.state.lock()
    }
}

/// A runner: runs a limited group's tasks one at a time until the group has none (invariants 4 to 6).
struct Runner<J, H> {
    core: Arc<Core<J, H>>,
    key: usize,
    job: Option<J>,
    parked: bool,
    ended: bool,
}

impl<J, H> Runner<J, H> {
    fn new(core: Arc<Core<J, H>>, key: usize) -> Self {
        Runner {
            core,
            key,
            job: None,
            parked: false,
            ended: false,
        }
    }
}

impl<J: Future<Output = ()> + Unpin, H> Future for Runner<J, H> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        for _ in 0..RUN_BUDGET {
            let mut finished = false;
            if let Some(job) = &mut this.job {
                if Pin::new(job).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Dropped here, outside the lock (invariant 1).
                this.job = None;
                finished = true;
            }
            let next = this
                .core
                .lock()
                .next(this.key, finished, &mut this.parked, cx.waker());
            match next {
                Next::Run(job) => this.job = Some(job),
                Next::Park => return Poll::Pending,
                Next::End(parked) => {
                    this.ended = true;
                    parked.into_iter().for_each(Waker::wake);
                    return Poll::Ready(());
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<J, H> Drop for Runner<J, H> {
    fn drop(&mut self) {
        let job = self.job.take();
        let had_job = job.is_some();
        drop(job);
        let mut state = self.core.lock();
        if !self.ended {
            state.runner_dropped(self.key, self.parked, had_job);
        }
        state.slab.finish(self.key);
    }
}

impl Executor {
    pub(crate) fn new() -> Self {
        Executor {
            core: Arc::new(Core::new()),
            counter: TaskCounter::new("group task"),
        }
    }

    /// Runs `job` as a tokio task of its own, or, with a limit, on one of at most `limit` runners.
    pub(crate) fn submit(&self, job: Job, limit: Option<usize>) {
        match limit {
            None => self.spawn(job),
            Some(limit) => {
                let push = self.core.lock().push(job, limit);
                match push {
                    Push::Wake(waker) => waker.wake(),
                    Push::Start(key) => {
                        let runner = Runner::new(self.core.clone(), key);
                        let handle = tokio::spawn(self.counter.track(runner)).abort_handle();
                        self.core.lock().slab.fill(key, handle);
                    }
                    Push::Nothing => {}
                }
            }
        }
    }

    /// The group has no task left (its `wait` saw it): let the runners end (invariant 6).
    pub(crate) fn drain(&self) {
        let parked = self.core.lock().drain();
        parked.into_iter().for_each(Waker::wake);
    }

    fn spawn(&self, job: Job) {
        let key = self.core.lock().slab.reserve();
        let core = self.core.clone();
        let task = self.counter.track(async move {
            job.await;
            core.lock().slab.finish(key);
        });
        let handle = tokio::spawn(task).abort_handle();
        self.core.lock().slab.fill(key, handle);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let mut state = self.core.lock();
        let alive: Vec<AbortHandle> = (state.slab.slots.iter())
            .filter_map(|slot| match slot {
                Slot::Running(handle) => Some(handle.clone()),
                _ => None,
            })
            .collect();
        let queued = std::mem::take(&mut state.runs.queue);
        drop(state);
        // Outside the lock: an abort schedules the task, and a task's drop runs user code (invariant 1).
        alive.iter().for_each(AbortHandle::abort);
        drop(queued);
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::{Core, Next, Push, Runner, Slab, Slot};
    use bounded_sync::atomic::{AtomicUsize, Ordering};
    use bounded_sync::{Arc, Mutex};
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    type TestJob = Pin<Box<dyn Future<Output = ()> + Send>>;

    /// A task that counts its run, after being pending once when `yields`.
    fn job(ran: Arc<AtomicUsize>, yields: bool) -> TestJob {
        let mut pending = yields;
        Box::pin(std::future::poll_fn(move |cx: &mut Context<'_>| {
            if pending {
                pending = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ran.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(())
        }))
    }

    /// A limited group's runners, each on its own thread: two tasks pushed (one pending once) under a
    /// limit of two run exactly once each; once the group drains, every runner ends, and nothing is
    /// left queued, parked or in the slab (invariants 4 to 6).
    #[test]
    fn every_task_runs_once_and_every_runner_ends_after_the_drain() {
        loom::model(|| {
            let core = Arc::new(Core::<TestJob, ()>::new());
            let ran = Arc::new(AtomicUsize::new(0));
            let mut runners = Vec::new();
            for yields in [true, false] {
                let push = core.lock().push(job(ran.clone(), yields), 2);
                match push {
                    Push::Wake(waker) => waker.wake(),
                    Push::Start(key) => {
                        let runner = Runner::new(core.clone(), key);
                        runners.push(loom::thread::spawn(move || loom::future::block_on(runner)));
                        core.lock().slab.fill(key, ());
                    }
                    Push::Nothing => {}
                }
            }
            while core.lock().runs.pending > 0 {
                loom::thread::yield_now();
            }
            let parked = core.lock().drain();
            parked.into_iter().for_each(std::task::Waker::wake);
            for runner in runners {
                runner.join().unwrap();
            }
            assert_eq!(ran.load(Ordering::Relaxed), 2, "each task ran once");
            let state = core.lock();
            assert_eq!(state.runs.runners, 0, "every runner ended");
            assert!(state.runs.queue.is_empty() && state.runs.idle.is_empty());
            assert!(state.slab.slots.iter().all(|s| matches!(s, Slot::Vacant)));
        });
    }

    /// `next` never hands a parked runner work before it was woken: a spurious poll stays parked.
    #[test]
    fn a_spurious_poll_of_a_parked_runner_stays_parked() {
        loom::model(|| {
            let core = Core::<TestJob, ()>::new();
            let mut state = core.lock();
            let key = state.slab.reserve();
            state.runs.wakers.resize_with(key + 1, || None);
            state.runs.runners = 1;
            state.runs.pending = 1; // a task on another runner keeps this one from ending
            let waker = futures_util::task::noop_waker();
            let mut parked = false;
            assert!(matches!(
                state.next(key, false, &mut parked, &waker),
                Next::Park
            ));
            assert!(parked);
            assert!(matches!(
                state.next(key, false, &mut parked, &waker),
                Next::Park
            ));
            assert_eq!(state.runs.idle, [key], "parked once, not twice");
        });
    }

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
