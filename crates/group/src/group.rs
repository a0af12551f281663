use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bounded_cancel::{Cause, Context};
use bounded_sync::runtime::BoxIfLarge;
use bounded_sync::slots::Refused;
use futures_util::FutureExt;

use crate::error::{Failure, SetLimitError, TaskError, TrySpawnError};
use crate::executor::{Executor, WaitingSpawn};
use crate::executors::Executors;
use crate::future::Spawn;
use crate::lent::{GroupContext, lent};
use crate::own::{self, Marked};
use crate::shared::{Policy, Shared};
use crate::task::{Boxed, Named, TaskFn};

/// The highest limit a group takes: 2^61 − 1. A limit that high is no limit in practice;
/// `set_limit(None)` says so directly.
pub const MAX_LIMIT: usize = bounded_sync::slots::MAX_SLOTS;

/// A set of tasks that share a fate: Go's `errgroup.Group` for tokio, with a limit, and panics that are never lost.
///
/// - [`Group::new`] is errgroup's zero value: no limit, and a failing task does not stop its siblings.
/// - [`Group::with_context`] is `errgroup.WithContext`: the group's [`Context`] is a child of yours and is
///   cancelled by the first error or panic, and always once [`wait`](Group::wait) returns.
/// - [`spawn`](Group::spawn) waits for a free slot under a limit ([`set_limit`](Group::set_limit));
///   [`try_spawn`](Group::try_spawn) never waits and hands the closure back.
/// - [`wait`](Group::wait) returns the first error, as the very value the task returned, or re-raises the
///   first panic with its original payload. It can be called again, and from several tasks at once.
///
/// A `Group` keeps nothing per task once the task ends, so a million tasks take no more memory than eight.
/// Dropping a group cancels its context and aborts every task still running. A task dropped by the
/// shutdown of its runtime before it finished counts as a panic ("task dropped before it finished: the
/// runtime it ran on shut down"), so that [`wait`](Group::wait) on another runtime returns.
///
/// # How tasks run
///
/// Each task runs on a tokio task, as with `tokio::spawn`, `JoinSet::spawn` and Go's `g.Go`: `spawn` returns
/// before any of the task's code runs, and none of it runs on the caller. So work a task does before its
/// first await never holds up the spawner, the caller's tracing span and task-locals do not leak into
/// the task (with the `tracing` feature, the task gets a span of its own whose parent is the caller's),
/// and a task that spawns tasks that spawn tasks never nests on the caller's stack.
///
/// Tasks run on *runners*, tokio tasks that take one task after another and hold up to 64 of them
/// while they wait, each woken on its own, so a busy group pays a queue hand-off per task instead
/// of a spawn: at most `limit` runners with a limit (on each runtime that spawns into the group),
/// as many as needed without one. A task never waits behind a busy runner while a slot is free, and
/// on a multi-thread runtime tasks that compute without awaiting still spread over the worker
/// threads. Idle runners park (at most 64) and end once [`wait`](Group::wait) finds the group idle
/// or the group is dropped. Inside a task, `tokio::task::id()` names its runner. A spawn waiting
/// for a slot is released with the context's cause when the group's context ends, through one
/// watcher task per group (and runtime) that the first waiting spawn starts and that ends with the
/// runners. A task runs on the runtime of the task that spawned it, as with `tokio::spawn`: the
/// group keeps runners per runtime, so a group shared by two runtimes never runs one's tasks on the
/// other's runners, and a runtime that shuts down takes only its own tasks with it.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_group::Group;
/// use std::{io, sync::Arc};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // `wait` may be called many times, so it hands out clones: share a non-`Clone` error in an `Arc`.
/// let mut group = Group::<Arc<io::Error>>::with_context(&Context::new());
/// group.set_limit(Some(8)).unwrap();
/// for id in 0..100u32 {
///     group
///         .spawn(move |ctx| async move {
///             if ctx.is_cancelled() {
///                 return Ok(());
///             }
///             if id == 42 { Err(Arc::new(io::Error::other("id 42 is bad"))) } else { Ok(()) }
///         })
///         .await
///         .ok(); // refused once the group has failed: no point starting more
/// }
/// assert_eq!(group.wait().await.unwrap_err().to_string(), "id 42 is bad");
/// # }
/// ```
pub struct Group<E> {
    shared: Arc<Shared<E>>,
    pub(crate) limit: Limit,
    cancel_on_wait: bool,
    executors: Executors,
}

pub(crate) enum Limit {
    Unlimited,
    Zero,
    /// At most this many at once: the slots of the shared state.
    Slots(usize),
}

/// One admitted task: the user's closure, and whether it holds a slot until it ends.
pub(crate) struct Task<F> {
    job: F,
    slot: bool,
}

impl<F> Task<F> {
    pub(crate) fn new(job: F, slot: bool) -> Self {
        Task { job, slot }
    }
}

impl<E> Group<E> {
    /// Creates a group with no limit whose tasks keep running when one of them fails (errgroup's zero value).
    ///
    /// Tasks receive the group's own context, which ends only when the group is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<String>::new();
    /// assert!(group.wait().await.is_ok());
    /// # }
    /// ```
    pub fn new() -> Self {
        let policy = Policy {
            cancel_on_failure: false,
            to_cause: None,
        };
        Group::from_parts(Context::new(), policy, false)
    }

    /// Creates a group whose context is a child of `parent`, cancelled by the first error or panic and
    /// whenever [`wait`](Group::wait) returns (errgroup's `WithContext`).
    ///
    /// The first error becomes the context's cause: [`Cause::Error`](bounded_cancel::Cause::Error) holding
    /// a [`TaskError`](crate::TaskError) with its message. A panic's cause is a
    /// [`TaskPanicked`](crate::TaskPanicked). Any error type that can be displayed works: `String`,
    /// `std::io::Error`, `anyhow::Error`, your own. (The error itself comes back from
    /// [`wait`](Group::wait), or from [`finish`](Group::finish) for a type that is not `Clone`.)
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::with_context(&Context::new());
    /// group.spawn(|_ctx| async { Err(std::fmt::Error) }).await.unwrap();
    /// group.context().cancelled().await; // ended by the error, before anyone waits
    /// assert!(group.wait().await.is_err());
    /// # }
    /// ```
    pub fn with_context(parent: &Context) -> Self
    where
        E: fmt::Display,
    {
        let policy = Policy {
            cancel_on_failure: true,
            to_cause: Some(|err: &E| Arc::new(TaskError::new(err.to_string()))),
        };
        Group::from_parts(parent.child(), policy, true)
    }

    /// A fail-fast group for error types that need not implement `Error`: the context ends with
    /// `Cause::Cancelled` on the first failure.
    pub(crate) fn fail_fast(parent: &Context) -> Self {
        let policy = Policy {
            cancel_on_failure: true,
            to_cause: None,
        };
        Group::from_parts(parent.child(), policy, true)
    }

    fn from_parts(ctx: Context, policy: Policy<E>, cancel_on_wait: bool) -> Self {
        Group {
            shared: Arc::new(Shared::new(ctx, policy)),
            limit: Limit::Unlimited,
            cancel_on_wait,
            executors: Executors::default(),
        }
    }

    /// Names the group: the `group` label of its `bounded_group_tasks_alive` gauge (cargo feature
    /// `metrics`; `"group"` when unnamed). Name it where it is made, before it spawns: once the gauge is
    /// registered its label stays. Without the feature the name is not kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// let fetches = Group::<String>::new().named("fetch");
    /// # drop(fetches);
    /// ```
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub fn named(self, name: impl Into<String>) -> Self {
        #[cfg(feature = "metrics")]
        self.shared.name(&name.into());
        self
    }

    /// Keeps every error, not only the first, for [`wait_all`](Group::wait_all).
    ///
    /// Errors of tasks that ended before this call are not kept beyond the first. The context is still cancelled by the first error when the group was made
    /// with [`with_context`](Group::with_context); make it with [`new`](Group::new) to let every task run.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::new().collect_errors();
    /// for i in 0..3 {
    ///     group.spawn(move |_ctx| async move { Err(i) }).await.unwrap();
    /// }
    /// let mut errors = group.wait_all().await.unwrap_err();
    /// errors.sort();
    /// assert_eq!(errors, [0, 1, 2]);
    /// # }
    /// ```
    pub fn collect_errors(self) -> Self {
        self.shared.collect_errors();
        self
    }

    /// The group's context: every task receives a clone of it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// let group = Group::<std::io::Error>::new();
    /// assert!(!group.context().is_cancelled());
    /// ```
    pub fn context(&self) -> &Context {
        &self.shared.ctx
    }

    /// Sets how many tasks may run at once: `None` for no limit, `Some(0)` to refuse every task.
    ///
    /// # Errors
    ///
    /// [`SetLimitError::Running`] if tasks are running: a limit changes only on an idle group, so that
    /// the number of running tasks never exceeds the limit in force. [`SetLimitError::TooLarge`] above
    /// [`MAX_LIMIT`]. The limit in force is unchanged either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::<std::io::Error>::new();
    /// group.set_limit(Some(2)).unwrap();
    /// let slow = |ctx: bounded_cancel::Context| async move { ctx.cancelled().await; Ok(()) };
    /// assert!(group.try_spawn(slow).is_ok());
    /// assert!(group.try_spawn(slow).is_ok());
    /// assert!(group.try_spawn(slow).is_err()); // both slots taken
    /// # }
    /// ```
    pub fn set_limit(&mut self, limit: Option<usize>) -> Result<(), SetLimitError> {
        if let Some(n) = limit
            && n > MAX_LIMIT
        {
            return Err(SetLimitError::TooLarge(n));
        }
        let running = self.shared.active();
        if running > 0 {
            return Err(SetLimitError::Running(running));
        }
        // The next spawn that waits starts a watcher for the new limit.
        self.executors.all().for_each(Executor::unwatch_slots);
        self.limit = match limit {
            None => Limit::Unlimited,
            Some(0) => Limit::Zero,
            Some(n) => Limit::Slots(n),
        };
        // No task runs and no spawn waits (the group is borrowed mutably), so every slot is free:
        // the free slots become the new limit.
        self.shared.slots.reset(limit.unwrap_or(0));
        Ok(())
    }

    /// The number of tasks admitted and not yet ended.
    ///
    /// A task gives its slot back just before it counts as ended, so under a limit this can exceed the limit
    /// for a moment while a new task takes a freed slot; the number of tasks *running* never does.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// assert_eq!(Group::<std::io::Error>::new().running(), 0);
    /// ```
    pub fn running(&self) -> usize {
        self.shared.active()
    }

    /// The limit in force: `None` for no limit, `Some(0)` when every task is refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// let mut group = Group::<String>::new();
    /// assert_eq!(group.limit(), None);
    /// group.set_limit(Some(8)).unwrap();
    /// assert_eq!(group.limit(), Some(8));
    /// ```
    pub fn limit(&self) -> Option<usize> {
        match &self.limit {
            Limit::Unlimited => None,
            Limit::Zero => Some(0),
            Limit::Slots(n) => Some(*n),
        }
    }

    /// Spawns a task once a slot is free; the task receives the group's context.
    ///
    /// Resolves when the task is admitted, not when it ends. A spawn that finds a free slot (or, without
    /// a limit, needs none) spends the caller's tokio budget, as a send on a tokio channel does: a loop
    /// that only spawns yields to the runtime every so often (inside `tokio::task::unconstrained`,
    /// never), so that the tasks start while it runs instead of piling up behind it.
    ///
    /// A task of a limited group that spawns into that same group (through an `Arc` of it) waits
    /// for a slot while holding its own: once every slot is held by a task waiting that way, none
    /// is ever freed. The spawn that would complete that wait is refused at once with
    /// [`SpawnError::Deadlock`](crate::SpawnError::Deadlock), which hands the closure back so that
    /// the task can run the work itself; while any slot can still be freed, a spawn waits as usual.
    /// [`try_spawn`](Group::try_spawn), or a group of their own, never waits there at all.
    ///
    /// # Errors
    ///
    /// Hands the closure back, unrun, in a [`SpawnError`](crate::SpawnError) if the group's context has ended
    /// (for a [`with_context`](Group::with_context) group: after a failure or after `wait`), or ends while
    /// waiting, if the limit is 0, or if it is called from one of the group's tasks when waiting
    /// would never end (above).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it resolves gives up its place in line, and the closure is
    /// dropped without running.
    ///
    /// # Fairness
    ///
    /// Spawners waiting for a slot are admitted in the order they started waiting.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime, before the task is admitted (the group is left as it was). A
    /// panic inside the task is caught; see [`wait`](Group::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<String>::new();
    /// group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    pub fn spawn<F, Fut>(&self, task: F) -> Spawn<'_, E, F>
    where
        E: Send + 'static,
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        Spawn::new(self, None, task)
    }
    /// [`spawn`](Group::spawn) with a name for the task: a panic it raises carries the name
    /// ([`Panic::task`](crate::Panic::task)), and so does its span with the `tracing` feature.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Group::spawn).
    ///
    /// # Cancel safety
    ///
    /// As [`spawn`](Group::spawn).
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime, as `tokio::spawn` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::{Failure, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<String>::new();
    /// for shard in 0..3 {
    ///     group
    ///         .spawn_named(format!("shard {shard}"), move |_ctx| async move {
    ///             assert!(shard != 2, "shard {shard} is corrupt");
    ///             Ok(())
    ///         })
    ///         .await
    ///         .unwrap();
    /// }
    /// let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else { unreachable!() };
    /// assert_eq!(panic.task(), Some("shard 2"));
    /// # }
    /// ```
    pub fn spawn_named<F, Fut>(&self, name: impl Into<String>, task: F) -> Spawn<'_, E, Named<F>>
    where
        E: Send + 'static,
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        Spawn::new(self, None, Named::new(Arc::from(name.into()), task))
    }

    /// Like [`spawn`](Group::spawn), but the wait for a slot also ends when `ctx` (the caller's) ends.
    ///
    /// # Errors
    ///
    /// As for `spawn`, plus `SpawnError::Cancelled` with `ctx`'s cause when `ctx` ends first.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as `spawn`.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime, as `tokio::spawn` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_group::{Group, SpawnError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::<std::io::Error>::new();
    /// group.set_limit(Some(1)).unwrap();
    /// group.spawn(|ctx| async move { ctx.cancelled().await; Ok(()) }).await.unwrap();
    ///
    /// let request = Context::new();
    /// request.cancel();
    /// let err = group.spawn_with(&request, |_ctx| async { Ok(()) }).await.unwrap_err();
    /// assert!(matches!(err, SpawnError::Cancelled { .. }));
    /// # }
    /// ```
    pub fn spawn_with<'a, F, Fut>(&'a self, ctx: &'a Context, task: F) -> Spawn<'a, E, F>
    where
        E: Send + 'static,
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        Spawn::new(self, Some(ctx), task)
    }

    /// Spawns a task if a slot is free right now; otherwise hands the closure back unrun (errgroup's `TryGo`).
    ///
    /// # Errors
    ///
    /// The closure, if every slot is taken, the limit is 0, or the group's context has ended.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime, as `tokio::spawn` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::<std::io::Error>::new();
    /// group.set_limit(Some(0)).unwrap();
    /// assert!(group.try_spawn(|_ctx| async { Ok(()) }).is_err());
    /// # }
    /// ```
    pub fn try_spawn<F, Fut>(&self, task: F) -> Result<(), TrySpawnError<F>>
    where
        E: Send + 'static,
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.try_admit(task)
    }

    /// [`try_spawn`](Group::try_spawn) with a name for the task, as [`spawn_named`](Group::spawn_named).
    ///
    /// # Errors
    ///
    /// As [`try_spawn`](Group::try_spawn): the closure comes back unrun.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime, as `tokio::spawn` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::<String>::new();
    /// group.set_limit(Some(1)).unwrap();
    /// group.try_spawn_named("first", |ctx| async move { ctx.cancelled().await; Ok(()) }).unwrap();
    /// let refused = group.try_spawn_named("second", |_ctx| async { Ok(()) }).unwrap_err();
    /// let _closure = refused.into_inner(); // the closure, not a wrapper
    /// # }
    /// ```
    pub fn try_spawn_named<F, Fut>(
        &self,
        name: impl Into<String>,
        task: F,
    ) -> Result<(), TrySpawnError<F>>
    where
        E: Send + 'static,
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.try_admit(Named::new(Arc::from(name.into()), task))
            .map_err(|refused| refused.map(Named::into_task))
    }

    /// Admits a task if it may run now. A closure larger than tokio's threshold for boxing a task's
    /// future goes into a box of its own first, as in [`spawn`](Group::spawn), and comes back out
    /// of it if refused.
    pub(crate) fn try_admit<F: TaskFn<E>>(&self, task: F) -> Result<(), TrySpawnError<F>>
    where
        E: Send + 'static,
    {
        if BoxIfLarge::<F>::YES {
            self.try_admit_as_is(Boxed::new(task))
                .map_err(|refused| refused.map(Boxed::into_inner))
        } else {
            self.try_admit_as_is(task)
        }
    }

    fn try_admit_as_is<F: TaskFn<E>>(&self, task: F) -> Result<(), TrySpawnError<F>>
    where
        E: Send + 'static,
    {
        // First, so that a spawn outside a runtime panics before it takes a slot.
        let executor = self.executor();
        if let Some(cause) = self.context().cause() {
            return Err(TrySpawnError::Cancelled { job: task, cause });
        }
        let slot = match &self.limit {
            Limit::Unlimited => false,
            Limit::Zero => return Err(TrySpawnError::LimitZero(task)),
            Limit::Slots(_) => match self.shared.slots.try_take() {
                Ok(()) => true,
                Err(Refused::Full) => return Err(TrySpawnError::Full(task)),
                // Closed by the watcher: the context ended after the check above.
                Err(Refused::Closed) => {
                    let cause = self.context().cause().unwrap_or(Cause::Cancelled);
                    return Err(TrySpawnError::Cancelled { job: task, cause });
                }
            },
        };
        self.admit(executor, Task::new(task, slot));
        Ok(())
    }

    /// The executor of the runtime the caller runs on.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(crate) fn executor(&self) -> &Executor {
        self.executors.here(|| GroupContext {
            ctx: self.shared.ctx.clone(),
            group: Arc::as_ptr(&self.shared).addr(),
        })
    }

    /// Hands an admitted task to `executor`, from [`executor`](Group::executor). A future larger
    /// than tokio's threshold for boxing a task's future is boxed as the closure makes it, as
    /// `tokio::spawn` does: in a debug build each move of it through the task's wrappers would be a
    /// copy on the runner's stack. (A closure that large arrives boxed already, from `Spawn` and
    /// `try_admit`; the check on it here keeps any other way in as safe.)
    pub(crate) fn admit<F>(&self, executor: &Executor, task: Task<F>)
    where
        E: Send + 'static,
        F: TaskFn<E>,
    {
        if BoxIfLarge::<F>::YES || BoxIfLarge::<F::Future>::YES {
            let Task { job, slot } = task;
            self.admit_as_is(executor, Task::new(Boxed::new(job), slot));
        } else {
            self.admit_as_is(executor, task);
        }
    }

    fn admit_as_is<F>(&self, executor: &Executor, task: Task<F>)
    where
        E: Send + 'static,
        F: TaskFn<E>,
    {
        self.shared.admitted();
        let Task { job, slot } = task;
        let name = job.name();
        #[cfg(feature = "tracing")]
        let span = match &name {
            Some(name) => tracing::info_span!(target: "bounded_group", "group task", task = %name),
            None => tracing::info_span!(target: "bounded_group", "group task"),
        };
        let end = TaskEnd {
            shared: self.shared.clone(),
            name,
            slot,
            done: false,
        };
        let job = async move {
            let group = Arc::as_ptr(&end.shared).addr();
            // The alias its runner lends, if it does (see `lent.rs`).
            let ctx = lent(group).unwrap_or_else(|| end.shared.ctx.clone());
            // Each poll marks the thread with the group and the task, so that a `wait` or a `spawn`
            // of the group it calls can tell (see `own.rs`).
            let run = Marked::new(group, async move { job.start(ctx).await });
            let result = AssertUnwindSafe(run).catch_unwind().await;
            end.finish(result);
        };
        // The span current here, where the task is handed over, is its parent wherever it runs.
        #[cfg(feature = "tracing")]
        let job = tracing::Instrument::instrument(job, span);
        // Nothing of the task runs here, on the caller: it is a tokio task from its first step.
        let limit = match &self.limit {
            Limit::Slots(n) => Some(*n),
            _ => None,
        };
        executor.submit(job, limit);
    }

    /// Waits for every task to end, then returns the first error, or re-raises the first panic.
    ///
    /// The error is the value the first failing task returned (cloned for each caller, so `E` is usually an
    /// `Arc` or a small value); errors of tasks that failed later, or that failed because they saw the
    /// context end, never replace it. Calling `wait` again, or from several tasks at once, gives the same
    /// answer. A [`with_context`](Group::with_context) group's context is cancelled when `wait` returns.
    ///
    /// # Panics
    ///
    /// Re-raises (with `resume_unwind`) the first panic of a task, with its original payload; several panics
    /// re-raise exactly one. Use [`wait_and_recover`](Group::wait_and_recover) to get it as a value.
    ///
    /// Panics when awaited by one of the group's own tasks, which it would wait for too, for ever: the
    /// task ends as a panic of the group. A task waits for tasks it spawns through a group of their own.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops this caller's wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::new();
    /// group.spawn(|_ctx| async { Err("first") }).await.unwrap();
    /// assert_eq!(group.wait().await, Err("first"));
    /// assert_eq!(group.wait().await, Err("first"));
    /// # }
    /// ```
    pub async fn wait(&self) -> Result<(), E>
    where
        E: Clone,
    {
        match self.wait_and_recover().await {
            Ok(()) => Ok(()),
            Err(Failure::Error(err)) => Err(err),
            Err(Failure::Panicked(panic)) => panic.resume(),
        }
    }

    /// Like [`wait`](Group::wait), but returns a panic as [`Failure::Panicked`] instead of re-raising it.
    ///
    /// A panic is reported in preference to an error. The first caller to see a panic gets its payload.
    ///
    /// # Panics
    ///
    /// When awaited by one of the group's own tasks, as [`wait`](Group::wait).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as `wait`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::{Failure, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<String>::new();
    /// group.spawn(|_ctx| async { panic!("boom") }).await.unwrap();
    /// let failure = group.wait_and_recover().await.unwrap_err();
    /// assert!(matches!(failure, Failure::Panicked(p) if p.message() == "boom"));
    /// # }
    /// ```
    pub async fn wait_and_recover(&self) -> Result<(), Failure<E>>
    where
        E: Clone,
    {
        self.settle().await;
        self.shared.failure().map_or(Ok(()), Err)
    }

    /// Waits for every task to end and returns every recorded error, in the order they happened.
    ///
    /// Only a group made with [`collect_errors`](Group::collect_errors) records more than the first.
    ///
    /// # Panics
    ///
    /// Re-raises the first panic, and panics when awaited by one of the group's own tasks, as
    /// [`wait`](Group::wait) does.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as `wait`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<&str>::new().collect_errors();
    /// assert_eq!(group.wait_all().await, Ok(()));
    /// # }
    /// ```
    pub async fn wait_all(&self) -> Result<(), Vec<E>>
    where
        E: Clone,
    {
        self.settle().await;
        if let Some(panic) = self.shared.take_panic() {
            panic.resume();
        }
        let errors = self.shared.errors();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Waits for every task to end, then ends a `with_context` group's context.
    ///
    /// Panics when called from one of the group's own tasks, which it would wait for too, for ever.
    pub(crate) async fn settle(&self) {
        if self.calling_task().is_some() {
            panic!(
                "a `Group` was waited for by one of its own tasks: `wait` waits for every task to \
                 end, this one too, so it would never return. To wait for tasks spawned from \
                 inside a task, spawn them into a group of their own and wait for that one"
            );
        }
        self.shared.idle().await;
        self.executors.all().for_each(Executor::drain);
        if self.cancel_on_wait {
            self.shared.ctx.cancel();
        }
    }

    /// Like `wait`, for a group about to be dropped: moves the first error out, so `E` need not be `Clone`.
    /// Waits for every task, consuming the group, and hands back the first error itself: the form of
    /// [`wait`](Group::wait) for error types that are not `Clone` (`std::io::Error`, `anyhow::Error`).
    ///
    /// # Panics
    ///
    /// Re-raises the first panic of a task, with its original payload.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: the group is consumed, so dropping this future drops the group, which aborts its
    /// tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<std::io::Error>::with_context(&Context::new());
    /// group.spawn(|_ctx| async { Err(std::io::Error::other("disk full")) }).await.unwrap();
    /// let err = group.finish().await.unwrap_err();
    /// assert_eq!(err.to_string(), "disk full");
    /// # }
    /// ```
    pub async fn finish(self) -> Result<(), E> {
        self.wait_first().await
    }

    pub(crate) async fn wait_first(self) -> Result<(), E> {
        self.settle().await;
        if let Some(panic) = self.shared.take_panic() {
            panic.resume();
        }
        match self.shared.take_errors().into_iter().next() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// A spawn is about to wait for a slot, on `executor`'s runtime: the slots must close when the
    /// group's context ends.
    pub(crate) fn watch_slots<'a>(&self, executor: &'a Executor) -> WaitingSpawn<'a>
    where
        E: Send + 'static,
    {
        let shared = self.shared.clone();
        executor.watch_slots(self.context(), move || shared.slots.close())
    }

    pub(crate) fn shared(&self) -> &Shared<E> {
        &self.shared
    }

    /// The task of this group the caller runs in, if it runs in one.
    pub(crate) fn calling_task(&self) -> Option<usize> {
        own::task_of(Arc::as_ptr(&self.shared).addr())
    }
}

impl<E> Default for Group<E> {
    fn default() -> Self {
        Group::new()
    }
}

impl<E> Drop for Group<E> {
    fn drop(&mut self) {
        // The tasks the executors' drops abort are not lost: they were dropped with the group.
        self.shared.group_dropped();
        // Tasks see their context end; the executors' drops then abort them.
        self.shared.ctx.cancel();
    }
}

/// A task's end, reported exactly once: by the task as it returns, or by this guard's drop if the
/// task's future is dropped first, so that `wait` never waits for a task that no longer exists.
struct TaskEnd<E> {
    shared: Arc<Shared<E>>,
    name: Option<Arc<str>>,
    /// It holds a slot, given back as it ends.
    slot: bool,
    done: bool,
}

impl<E> TaskEnd<E> {
    fn finish(mut self, result: std::thread::Result<Result<(), E>>) {
        self.done = true;
        // The slot is free before the task counts as ended, so `wait` never returns with a slot held.
        self.give_back_slot();
        self.shared.finish(result, self.name.take());
    }

    fn give_back_slot(&mut self) {
        if std::mem::take(&mut self.slot) {
            self.shared.slots.give_back();
        }
    }
}

impl<E> Drop for TaskEnd<E> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.give_back_slot();
        self.shared.lost(self.name.take());
    }
}

impl<E> fmt::Debug for Group<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = match &self.limit {
            Limit::Unlimited => None,
            Limit::Zero => Some(0),
            Limit::Slots(n) => Some(*n),
        };
        f.debug_struct("Group")
            .field("running", &self.shared.active())
            .field("limit", &limit)
            .field("ctx", &self.shared.ctx)
            .finish()
    }
}
