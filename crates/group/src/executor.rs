//! Where a group's tasks run.
//!
//! A group runs its tasks on *runners*: long-lived tokio tasks that take tasks from a queue of
//! admitted tasks; at most `limit` of them with a limit, as many as needed without one. A runner
//! holds up to 64 tasks while they wait, each woken through a waker of its own (invariant 9), and
//! takes the next task instead of waiting for one; on a runtime with several worker threads, a
//! runner whose poll holds its thread while another thread is free hands the tasks behind it to
//! another runner (invariant 8), so tasks that compute spread over the threads as tokio tasks do.
//! A task's code never runs on the spawner. A busy group pays one queue hand-off per task instead
//! of a spawn, and a task that waits costs no poll of its runner of its own. A runner with nothing
//! to do parks (it costs no CPU, and a few hundred bytes), up to [`MAX_PARKED`] of them; it ends
//! when more are parked, when `wait` finds the group idle, or when the group is dropped.
//!
//! An executor belongs to one runtime: its runners and its slot watcher are spawned there, through
//! the runtime's handle, and a group has one executor per runtime that spawns into it
//! (`executors.rs`), so runners only ever take tasks spawned on their own runtime.
//!
//! The group keeps an abort handle per runner, in a slab whose slot is freed when the runner ends.
//! Dropping the executor aborts every runner (a task is dropped at its next await, as with tokio's
//! abort) and drops the tasks still queued.
//!
//! # Invariants
//!
//! 1. No lock is held across `tokio::spawn`, a waker's `wake`, or the drop of a task (which runs user
//!    code): a slot is reserved before the spawn and filled after it; wakers and tasks leave the lock
//!    first.
//! 2. A slot is `Reserved` from `reserve` until exactly one of `fill` (the spawner stores the handle)
//!    or `finish` (the task ended first) sees it; whichever comes second frees it. So every slot is
//!    freed exactly once, whatever the order, and the slab holds one slot per runner alive.
//! 3. A `Running` slot holds the handle of a runner that has not ended; `Drop` aborts exactly those.
//!    A runner started by `submit` cannot be `Reserved` at drop (`submit` borrows the executor until
//!    it has filled), but a runner started by another runner can: so `Drop` also sets `closed`, under the
//!    lock, and a runner that looks after that ends, and wakes the parked ones, which end too.
//! 4. Runners: `pending` counts tasks queued or on a runner; `runners` counts runners that have not
//!    decided to end; a runner is *parked* exactly when its key is in `idle` (and its waker stored).
//!    A runner parks or ends only after it found the queue empty, under the lock.
//! 5. Every queued task is taken. `searching` counts runners woken or started that have not looked at
//!    the queue yet. Whenever a task is queued (a push) and no runner is searching, one is made to:
//!    a parked runner is woken, or one is started while fewer than `limit` exist (always, without a
//!    limit). Otherwise a runner is searching, or `limit` runners exist and none is parked: each is
//!    then in a poll, or woke itself, and looks at the queue before it parks or ends, or holds a task
//!    in each of its 64 places and has made another search (invariant 9). A runner polls each task
//!    it takes once and comes back to the queue, so a run of pushes wakes one runner, not one per
//!    task, and tasks run back to back on it with no hand-over between threads. A runner whose
//!    latest poll was short (or that runs on one worker thread) takes, in one look, as many queued
//!    tasks as it has free places and budget for, and polls them one after another: on a
//!    multi-thread runtime the spawner and the runner then meet on the lock once per batch rather
//!    than once per task. On a runtime with one worker thread, a runner that finds the queue empty
//!    while a spawn waits for a slot (likely the one a task of its own just gave back) looks once
//!    more before it parks: it stays counted as searching and wakes itself, which queues it behind
//!    that spawn, so the task the spawn queues is taken without a park and a wake-up. It does so
//!    once between tasks, so it never spins. (On a multi-thread runtime the spawn sits in the
//!    thread's next-task slot and the runner would queue where the other thread takes it: it
//!    parks.)
//! 6. Once `wait` has found the group idle (`draining`, until the next push), the runner that finds
//!    `pending` at 0 ends and wakes every parked runner, which then ends too: a group that was waited
//!    for and has nothing to do holds no runner.
//! 7. While a spawn waits for a slot, a watcher task waits for the group's context to end and
//!    then closes the slots, which releases every waiting spawn as cancelled. It is started by
//!    the first spawn that has to wait (no group that never waits pays for it), stopped when
//!    `wait` finds the group idle with no spawn waiting (a spawn can wait while the group is
//!    idle: another holds the slot it took but has not admitted its task yet), when the limit
//!    changes, and when the group is dropped, so a group that was waited for holds no task; the
//!    next spawn that waits starts it again. A spawn that starts to wait counts itself, then
//!    reads `watched` (set while a watcher is stored) without the lock; `drain` clears
//!    `watched` before it reads that count, so a spawn it did not count reads `watched` cleared
//!    and takes the lock, where it finds the watcher or starts one. A watcher runs on the
//!    executor's runtime, where the spawns that wait on it run (`executors.rs`), so a runtime
//!    that shuts down takes its watcher with the spawns it would release.
//! 8. A task that never returns `Pending` (it burns CPU) holds its runner's thread until it ends. So
//!    on a multi-thread runtime a runner times each of its polls from its start, with one clock read
//!    per task polled, and counts itself in `polled` while it runs. When a runner takes a task and
//!    leaves others queued, it makes a search at once if fewer of the group's runners are being
//!    polled than the runtime has worker threads and the task may compute: the runner's latest poll
//!    held its thread for [`LONG_POLL`](bounded_sync::busy::LONG_POLL) or more, or the runner was
//!    just woken or started with no short poll before (`Busy::hand_on_now`). Then it yields before it
//!    polls the task (the task waits in its place, marked woken): the runner it woke or started sits
//!    in this thread's next-task slot, which no other thread takes from, and the yield puts this
//!    runner in the thread's queue instead, where the idle thread, which tokio then wakes, takes it.
//!    Likewise, when a poll has held the thread that long and tasks it holds were woken and are not
//!    yet polled, it gives those back to the front of the queue, makes a search for them and yields:
//!    a task that computes after it waited holds back the tasks woken with it only until it returns.
//!    The same holds for the tasks a runner took in one look and has not started: once a poll has
//!    held its thread long while another thread is free, they go back to the front of the queue.
//!    A runner whose polls are short makes no such search (the next task likely is short too, and a
//!    hand-over between threads per task costs more than running them back to back), so quick tasks
//!    and tasks that wait stay on one thread, and a task that computes after them holds back the
//!    tasks behind it only until it returns `Pending` or ends.
//! 9. A runner does not wait for its task: it puts each task it takes in a place of its own
//!    ([`Places`](bounded_sync::places::Places), up to [`PLACES`](bounded_sync::places::PLACES))
//!    and polls it there through that place's waker, and a task that returns `Pending` stays in its
//!    place while the runner takes the next. At each poll the runner
//!    first polls the tasks whose places were woken, then takes queued tasks, up to [`RUN_BUDGET`]
//!    polls in all. So a task that waits costs no poll of its runner of its own: a limited group
//!    whose spawner waits for slots runs a round of `limit` waiting tasks in two polls of one runner,
//!    where a runner per task took two polls per task. The tasks in places stay counted in `pending`
//!    until they end; the runner takes those that ended off as it next looks, under the lock. It
//!    parks whenever the queue is empty, whether or not it holds tasks (so that a push wakes it), and
//!    its tasks' places wake it too; a parked runner polled that way polls the tasks woken and stays
//!    parked, or ends if that was the group's last task after `wait` found it idle (invariant 6).
//!    With every place taken it neither parks nor takes a task, and makes a search for the tasks
//!    queued (invariant 5). It lingers only just after tasks of its own ended, never ends while it
//!    holds a task, and drops the tasks it holds with itself, outside the lock. A task given back
//!    (invariant 8) is polled by the runner that takes it next through a place of that runner; a
//!    waker it kept from its old place now and then wakes that place for nothing.
//! 10. Tasks that wait and then, now and then, compute (one in a hundred for a millisecond, say) all
//!     run on the runner that holds them, one after another on its thread, while the other threads
//!     may be idle: invariant 8 hands on only the tasks woken meanwhile, once such a poll returns.
//!     So on a multi-thread runtime a runner times about one poll of its tasks in
//!     `bounded_sync::slow::SAMPLE_EVERY`, picked at random, and once the long ones fill its time
//!     (`bounded_sync::slow`) it sets `spread`, for good: from then on every runner holds one task
//!     at a time and times no poll, and a runner whose task waits makes another search for the tasks queued (its
//!     places are all taken, invariant 9), so that the group's tasks run on runners of their own,
//!     as many as its limit, side by side on every thread, as tokio tasks do.
//!
//! All of it but the count of runners being polled is under one lock: the orderings are the lock's.

use std::future::Future;
use std::pin::Pin;
use std::task::Waker;

use bounded_cancel::Context;
use bounded_cancel::live::TaskCounter;

use crate::lent::GroupContext;
use crate::runner::Runner;
use crate::state::{Push, Runs, Slab, Slot, State};
use bounded_sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use bounded_sync::busy::Busy;
use bounded_sync::{Arc, Mutex, MutexGuard};
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How many tasks a runner runs in one poll before it yields to the runtime, so that a runner fed as
/// fast as it drains never keeps its worker thread from other tasks.
pub(crate) const RUN_BUDGET: usize = 32;

/// How many tasks a runner on a multi-thread runtime starts before it makes an alias of the group's
/// context to lend the next ones (`lent.rs`): a group of a few tasks makes none.
pub(crate) const LEND_AFTER: usize = 64;

/// The most runners a group keeps parked between tasks; a runner that finds this many parked ends.
pub(crate) const MAX_PARKED: usize = 64;

pub(crate) struct Executor {
    core: Arc<Core<Job, AbortHandle>>,
    /// The runtime its runners and its slot watcher run on (see `executors.rs`).
    runtime: Handle,
}

/// What the executor and its tokio tasks share. `J` is a task, `H` an abort handle (both stand-ins in
/// the loom model).
pub(crate) struct Core<J, H> {
    pub(crate) state: Mutex<State<J, H>>,
    /// Spawns waiting for a slot: while any waits, `drain` leaves the slot watcher running
    /// (invariant 7).
    pub(crate) waiting_spawns: AtomicUsize,
    /// A slot watcher is stored (`runs.watcher`): set and cleared under the lock, read without it by
    /// a spawn that starts to wait (invariant 7).
    pub(crate) watched: AtomicBool,
    /// Runners being polled right now, on a multi-thread runtime: the worker threads this group keeps
    /// busy (invariant 8).
    pub(crate) polled: Busy,
    /// A runner's long polls filled its time: each runner holds one task at a time from then on
    /// (invariant 10).
    pub(crate) spread: AtomicBool,
    /// Starts a runner whose slot is reserved (a tokio task; a thread in the loom model).
    pub(crate) start: Starter<J, H>,
    pub(crate) counter: TaskCounter,
    /// The group's context, which runners on a multi-thread runtime lend their tasks an alias of
    /// (`lent.rs`); `None` in the loom model.
    pub(crate) lend: Option<GroupContext>,
}

type Starter<J, H> = Box<dyn Fn(&Arc<Core<J, H>>, usize, usize) + Send + Sync>;

impl<J, H> Core<J, H> {
    pub(crate) fn new(start: Starter<J, H>, lend: Option<GroupContext>) -> Self {
        Core {
            state: Mutex::new(State {
                slab: Slab::default(),
                runs: Runs::default(),
            }),
            waiting_spawns: AtomicUsize::new(0),
            watched: AtomicBool::new(false),
            polled: Busy::default(),
            spread: AtomicBool::new(false),
            start,
            counter: TaskCounter::new("group task"),
            lend,
        }
    }

    /// Carries out a `Push` outside the lock, for a group limited to `limit`.
    #[inline]
    pub(crate) fn make_search(core: &Arc<Self>, push: Push, limit: usize) {
        match push {
            Push::Wake(waker) => waker.wake(),
            Push::Start(key) => (core.start)(core, key, limit),
            Push::Nothing => {}
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<J, H>> {
        self.state.lock()
    }
}

impl Executor {
    /// An executor whose runners and slot watcher run on `runtime`.
    pub(crate) fn new(runtime: Handle, group: GroupContext) -> Self {
        let on = runtime.clone();
        let start: Starter<Job, AbortHandle> =
            Box::new(move |core, key, limit| start_runner(&on, core, key, limit));
        Executor {
            core: Arc::new(Core::new(start, Some(group))),
            runtime,
        }
    }

    /// Runs `job` on a runner: one of at most `limit` with a limit, with no cap on their number
    /// without one.
    pub(crate) fn submit<F>(&self, job: F, limit: Option<usize>)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let limit = limit.unwrap_or(usize::MAX);
        let push = self.core.lock().push(Box::pin(job), limit);
        Core::make_search(&self.core, push, limit);
    }

    /// The group has no task left (its `wait` saw it): let the runners end (invariant 6), and stop
    /// the slot watcher (invariant 7).
    pub(crate) fn drain(&self) {
        let mut state = self.core.lock();
        let parked = state.drain();
        // SeqCst, `watched` cleared before the count is read: a spawn that starts waiting counts
        // itself and then reads `watched`, so either it is counted here, or it reads `watched`
        // cleared and takes the lock after this, where it starts a new watcher (invariant 7).
        self.core.watched.store(false, Ordering::SeqCst);
        let watcher = match self.core.waiting_spawns.load(Ordering::SeqCst) {
            0 => state.runs.watcher.take(),
            _ => None,
        };
        if state.runs.watcher.is_some() {
            self.core.watched.store(true, Ordering::SeqCst);
        }
        drop(state);
        parked.into_iter().for_each(Waker::wake);
        if let Some(watcher) = watcher {
            watcher.abort();
        }
    }

    /// Makes sure a watcher calls `close` (which closes the slots) when `ctx` ends (invariant 7), for
    /// as long as the returned guard, held by the waiting spawn, lives.
    pub(crate) fn watch_slots(
        &self,
        ctx: &Context,
        close: impl FnOnce() + Send + 'static,
    ) -> WaitingSpawn<'_> {
        // Counted before `watched` is read: see `drain`.
        self.core.waiting_spawns.fetch_add(1, Ordering::SeqCst);
        let waiting = WaitingSpawn(&self.core);
        if self.core.watched.load(Ordering::SeqCst) || self.core.lock().runs.watcher.is_some() {
            return waiting;
        }
        let ctx = ctx.clone();
        let watch = self.core.counter.track(async move {
            ctx.cancelled().await;
            close();
        });
        // Spawned outside the lock, then stored; a second spawner racing here starts a second
        // watcher, which is harmless (both close the same slots) and is stopped with the first.
        let handle = self.runtime.spawn(watch).abort_handle();
        let mut state = self.core.lock();
        match &state.runs.watcher {
            Some(_) => {
                drop(state);
                handle.abort();
            }
            None => {
                state.runs.watcher = Some(handle);
                self.core.watched.store(true, Ordering::SeqCst);
            }
        }
        waiting
    }

    /// Stops the slot watcher, when the slots are replaced (invariant 7).
    pub(crate) fn unwatch_slots(&self) {
        let mut state = self.core.lock();
        let watcher = state.runs.watcher.take();
        self.core.watched.store(false, Ordering::SeqCst);
        drop(state);
        if let Some(watcher) = watcher {
            watcher.abort();
        }
    }
}

/// A spawn waiting for a slot, counted while it waits (invariant 7).
pub(crate) struct WaitingSpawn<'a>(&'a Core<Job, AbortHandle>);

impl Drop for WaitingSpawn<'_> {
    fn drop(&mut self) {
        self.0.waiting_spawns.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts a runner as a tokio task on `runtime`, then stores its abort handle in the slot reserved
/// for it.
fn start_runner(runtime: &Handle, core: &Arc<Core<Job, AbortHandle>>, key: usize, limit: usize) {
    let threads = runtime.metrics().num_workers();
    let runner = Runner::new(core.clone(), key, limit, threads);
    let handle = runtime.spawn(core.counter.track(runner)).abort_handle();
    core.lock().slab.fill(key, handle);
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
        let watcher = state.runs.watcher.take();
        state.runs.closed = true;
        let parked = state.runs.unpark_all();
        drop(state);
        parked.into_iter().for_each(Waker::wake);
        // Outside the lock: an abort schedules the task, and a task's drop runs user code (invariant 1).
        alive.iter().for_each(AbortHandle::abort);
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        drop(queued);
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::{Busy, Core};
    use crate::runner::Runner;
    use crate::state::{Holding, Looking, Next, Slab, Slot};
    use bounded_sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use bounded_sync::busy::LastJob;
    use bounded_sync::{Arc, Mutex};
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    type TestJob = Pin<Box<dyn Future<Output = ()> + Send>>;
    type TestCore = Core<TestJob, ()>;

    type Threads = Arc<Mutex<Vec<loom::thread::JoinHandle<()>>>>;

    /// A core whose runners each start on a thread of their own (the model's `tokio::spawn`).
    fn core() -> (Arc<TestCore>, Threads) {
        let threads = Threads::default();
        let started = threads.clone();
        let start = move |core: &Arc<TestCore>, key: usize, limit: usize| {
            core.lock().slab.fill(key, ());
            let runner = Runner::new(core.clone(), key, limit, 2);
            let thread = loom::thread::spawn(move || loom::future::block_on(runner));
            started.lock().push(thread);
        };
        (Arc::new(Core::new(Box::new(start), None)), threads)
    }

    fn submit(core: &Arc<TestCore>, job: TestJob, limit: usize) {
        let push = core.lock().push(job, limit);
        Core::make_search(core, push, limit);
    }

    /// Drains as `wait` does (at once: the runners end when the last task does), then joins every
    /// runner thread, and checks that nothing is left.
    fn drain_and_settle(core: &Arc<TestCore>, threads: &Threads) {
        let parked = core.lock().drain();
        parked.into_iter().for_each(Waker::wake);
        loop {
            let thread = threads.lock().pop();
            match thread {
                Some(thread) => thread.join().unwrap(),
                None => break,
            }
        }
        let state = core.lock();
        assert_eq!(state.runs.runners, 0, "every runner ended");
        assert!(state.runs.queue.is_empty() && state.runs.idle.is_empty());
        assert_eq!(
            state.runs.searching, 0,
            "a runner still counted as searching"
        );
    }

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

    /// Two tasks (one pending once) under a limit of two, each runner on its own thread: each task
    /// runs exactly once, and once the group drains every runner ends with nothing left queued,
    /// parked or searching (invariants 4 to 6).
    #[test]
    fn every_task_runs_once_and_every_runner_ends_after_the_drain() {
        loom::model(|| {
            let (core, threads) = core();
            let ran = Arc::new(AtomicUsize::new(0));
            submit(&core, job(ran.clone(), true), 2);
            submit(&core, job(ran.clone(), false), 2);
            drain_and_settle(&core, &threads);
            assert_eq!(ran.load(Ordering::Relaxed), 2, "each task ran once");
        });
    }

    /// Three tasks, each pending once, under a limit of two: in the model every poll holds its thread
    /// long, so a runner that takes a task with others queued hands them on (and steps aside), and one
    /// that polled a task while others it holds were woken gives those back (invariant 8). Each task
    /// still runs exactly once, and every runner ends after the drain.
    #[test]
    fn tasks_handed_on_or_given_back_each_run_once() {
        loom::model(|| {
            let (core, threads) = core();
            let ran = Arc::new(AtomicUsize::new(0));
            for _ in 0..3 {
                submit(&core, job(ran.clone(), true), 2);
            }
            drain_and_settle(&core, &threads);
            assert_eq!(ran.load(Ordering::Relaxed), 3, "each task ran once");
        });
    }

    /// Under a limit of two, the first task waits until the second has run: the second must get a
    /// runner of its own even when it was pushed while the first runner was searching (the search is
    /// passed on, invariant 5). Loom reports a deadlock if it does not.
    #[test]
    fn a_task_waiting_for_a_later_sibling_sees_it_run() {
        loom::model(|| {
            let (core, threads) = core();
            let done = Arc::new(AtomicBool::new(false));
            let waiting: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
            let first: TestJob = {
                let (done, waiting) = (done.clone(), waiting.clone());
                Box::pin(std::future::poll_fn(move |cx: &mut Context<'_>| {
                    *waiting.lock() = Some(cx.waker().clone());
                    if done.load(Ordering::Acquire) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                }))
            };
            let second: TestJob = Box::pin(async move {
                done.store(true, Ordering::Release);
                if let Some(waker) = waiting.lock().take() {
                    waker.wake();
                }
            });
            submit(&core, first, 2);
            submit(&core, second, 2);
            drain_and_settle(&core, &threads);
        });
    }

    /// A runner that holds no task and has room for one.
    fn nothing_held() -> Holding {
        Holding {
            finished: 0,
            held: 0,
            room: 1,
        }
    }

    /// `next` never hands a parked runner work before it was woken: a spurious poll stays parked.
    #[test]
    fn a_spurious_poll_of_a_parked_runner_stays_parked() {
        loom::model(|| {
            let (core, _threads) = core();
            let mut state = core.lock();
            let key = state.slab.reserve();
            state.runs.wakers.resize_with(key + 1, || None);
            state.runs.runners = 1;
            state.runs.pending = 1; // a task on another runner keeps this one from ending
            let waker = futures_util::task::noop_waker();
            let mut runner = Looking {
                key,
                limit: 2,
                parked: false,
                searching: false,
                lingered: false,
                threads: 2,
                last: LastJob::Unknown,
            };
            let polled = Busy::default();
            let mut parks = |runner: &mut Looking| {
                let mut batch = VecDeque::new();
                let next = state.next(runner, nothing_held(), &waker, &polled, false, &mut batch);
                matches!(next, Next::Park)
            };
            assert!(parks(&mut runner));
            assert!(runner.parked);
            assert!(parks(&mut runner));
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
