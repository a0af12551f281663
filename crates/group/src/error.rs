use std::any::Any;
use std::fmt;
use std::panic;
use std::sync::Arc;

use bounded_cancel::{Cause, PanicPayload};

/// Why [`Group::spawn`](crate::Group::spawn) handed a task back without running it.
///
/// The closure is inside, unrun: take it out with [`into_inner`](SpawnError::into_inner).
///
/// # Examples
///
/// ```
/// use bounded_group::{Group, SpawnError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut group = Group::<std::io::Error>::new();
/// group.set_limit(Some(0)).unwrap();
/// let err = group.spawn(|_ctx| async { Ok(()) }).await.unwrap_err();
/// assert!(matches!(err, SpawnError::LimitZero(_)));
/// let _task = err.into_inner();
/// # }
/// ```
#[non_exhaustive]
pub enum SpawnError<F> {
    /// The group's context, or the caller's, ended before a slot was free (or was already over).
    Cancelled {
        /// The task, unrun.
        job: F,
        /// Why the context ended.
        cause: Cause,
    },
    /// The group's limit is 0, which refuses every task.
    LimitZero(F),
    /// Called from one of the group's own tasks, which holds its slot while it waits for another,
    /// when every slot is held by a task of the group waiting so: none of them could ever end, and
    /// the wait would never end either. Run the work in the calling task, spawn it into a group of
    /// its own, or use [`try_spawn`](crate::Group::try_spawn) from inside the group's tasks.
    Deadlock(F),
}

impl<F> SpawnError<F> {
    pub(crate) fn map<G>(self, f: impl FnOnce(F) -> G) -> SpawnError<G> {
        match self {
            SpawnError::Cancelled { job, cause } => SpawnError::Cancelled { job: f(job), cause },
            SpawnError::LimitZero(job) => SpawnError::LimitZero(f(job)),
            SpawnError::Deadlock(job) => SpawnError::Deadlock(f(job)),
        }
    }

    /// Returns the task that was not run.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::<String>::new();
    /// group.set_limit(Some(0)).unwrap();
    /// let task = group.spawn(|_ctx| async { Ok(()) }).await.unwrap_err().into_inner();
    /// group.set_limit(Some(1)).unwrap();
    /// group.spawn(task).await.unwrap(); // the same closure, run now
    /// # }
    /// ```
    pub fn into_inner(self) -> F {
        match self {
            SpawnError::Cancelled { job, .. }
            | SpawnError::LimitZero(job)
            | SpawnError::Deadlock(job) => job,
        }
    }
}

impl<F> fmt::Debug for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Cancelled { cause, .. } => f
                .debug_struct("Cancelled")
                .field("cause", cause)
                .finish_non_exhaustive(),
            SpawnError::LimitZero(_) => f.write_str("LimitZero(..)"),
            SpawnError::Deadlock(_) => f.write_str("Deadlock(..)"),
        }
    }
}

impl<F> fmt::Display for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Cancelled { cause, .. } => write!(
                f,
                "task not spawned: {cause}; the task did not run and is returned inside this error"
            ),
            SpawnError::LimitZero(_) => f.write_str(
                "task not spawned: the group's limit is 0, which refuses every task; \
                 raise it with set_limit while the group is idle",
            ),
            SpawnError::Deadlock(_) => f.write_str(
                "task not spawned: every slot of the group is held by one of its tasks waiting, \
                 as this one would, to spawn into it, so no slot could ever be freed; run the work \
                 in this task, spawn it into a group of its own, or use try_spawn inside the \
                 group's tasks",
            ),
        }
    }
}

impl<F> std::error::Error for SpawnError<F> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The cause is in the message already: the chain goes on below it.
            SpawnError::Cancelled { cause, .. } => cause.source(),
            SpawnError::LimitZero(_) | SpawnError::Deadlock(_) => None,
        }
    }
}

/// Why [`try_spawn`](crate::Group::try_spawn) did not start a task; the closure is inside, unrun.
///
/// # Examples
///
/// ```
/// use bounded_group::{Group, TrySpawnError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut group = Group::<String>::new();
/// group.set_limit(Some(1))?;
/// let wait = |ctx: bounded_cancel::Context| async move { ctx.cancelled().await; Ok(()) };
/// group.try_spawn(wait)?; // `?` works: the error is a std error
/// let err = group.try_spawn(wait).unwrap_err();
/// assert!(matches!(err, TrySpawnError::Full(_)));
/// let _closure = err.into_inner(); // run it later
/// # group.context().cancel();
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
pub enum TrySpawnError<F> {
    /// Every slot under the limit is taken; `spawn` would wait for one.
    Full(F),
    /// The group's limit is 0, which refuses every task.
    LimitZero(F),
    /// The group's context has ended (after a failure, or after `wait` for a `with_context` group).
    Cancelled {
        /// The task, unrun.
        job: F,
        /// Why the context ended.
        cause: Cause,
    },
}

impl<F> TrySpawnError<F> {
    /// Returns the task that was not run.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::<String>::new();
    /// group.set_limit(Some(0)).unwrap();
    /// let task = group.try_spawn(|_ctx| async { Ok(()) }).unwrap_err().into_inner();
    /// group.set_limit(None).unwrap();
    /// group.try_spawn(task).unwrap();
    /// # }
    /// ```
    pub fn into_inner(self) -> F {
        match self {
            TrySpawnError::Full(job)
            | TrySpawnError::LimitZero(job)
            | TrySpawnError::Cancelled { job, .. } => job,
        }
    }

    pub(crate) fn map<G>(self, f: impl FnOnce(F) -> G) -> TrySpawnError<G> {
        match self {
            TrySpawnError::Full(job) => TrySpawnError::Full(f(job)),
            TrySpawnError::LimitZero(job) => TrySpawnError::LimitZero(f(job)),
            TrySpawnError::Cancelled { job, cause } => {
                TrySpawnError::Cancelled { job: f(job), cause }
            }
        }
    }
}

impl<F> fmt::Debug for TrySpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySpawnError::Full(_) => f.write_str("Full(..)"),
            TrySpawnError::LimitZero(_) => f.write_str("LimitZero(..)"),
            TrySpawnError::Cancelled { cause, .. } => f
                .debug_struct("Cancelled")
                .field("cause", cause)
                .finish_non_exhaustive(),
        }
    }
}

impl<F> fmt::Display for TrySpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySpawnError::Full(_) => f.write_str(
                "task not spawned: every slot under the group's limit is taken; \
                 retry later or use spawn to wait for one",
            ),
            TrySpawnError::LimitZero(_) => f.write_str(
                "task not spawned: the group's limit is 0, which refuses every task; \
                 raise it with set_limit while the group is idle",
            ),
            TrySpawnError::Cancelled { cause, .. } => write!(
                f,
                "task not spawned: {cause}; the task did not run and is returned inside this error"
            ),
        }
    }
}

impl<F> std::error::Error for TrySpawnError<F> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The cause is in the message already: the chain goes on below it.
            TrySpawnError::Cancelled { cause, .. } => cause.source(),
            TrySpawnError::Full(_) | TrySpawnError::LimitZero(_) => None,
        }
    }
}

/// [`Group::set_limit`](crate::Group::set_limit) was called while tasks were running.
///
/// # Examples
///
/// ```
/// use bounded_group::Group;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut group = Group::<std::io::Error>::new();
/// group.spawn(|ctx| async move { ctx.cancelled().await; Ok(()) }).await.unwrap();
/// let err = group.set_limit(Some(4)).unwrap_err();
/// assert_eq!(err.running(), 1);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetLimitError {
    /// Tasks were running (this many): a limit changes only on an idle group.
    Running(usize),
    /// The limit was above [`MAX_LIMIT`](crate::MAX_LIMIT) (this one).
    TooLarge(usize),
}

impl SetLimitError {
    /// How many tasks were running when the change was refused (0 for a limit that is too large).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::Group;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::<String>::new();
    /// for _ in 0..2 {
    ///     group.spawn(|ctx| async move { ctx.cancelled().await; Ok(()) }).await.unwrap();
    /// }
    /// assert_eq!(group.set_limit(None).unwrap_err().running(), 2);
    /// # }
    /// ```
    pub fn running(&self) -> usize {
        match self {
            SetLimitError::Running(running) => *running,
            SetLimitError::TooLarge(_) => 0,
        }
    }
}

impl fmt::Display for SetLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetLimitError::Running(running) => write!(
                f,
                "cannot change the group's limit while {running} task(s) run; await wait() first, then set the limit"
            ),
            SetLimitError::TooLarge(limit) => write!(
                f,
                "a group's limit is at most {}, got {limit}; for no limit at all, use set_limit(None)",
                crate::MAX_LIMIT
            ),
        }
    }
}

impl std::error::Error for SetLimitError {}

/// A panic caught in a group's task, as returned by [`Group::wait_and_recover`](crate::Group::wait_and_recover).
///
/// The original payload goes to the first caller that recovers the panic; later callers get the message only.
///
/// # Examples
///
/// ```
/// use bounded_group::{Failure, Group};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let group = Group::<String>::new();
/// group.spawn(|_ctx| async { panic!("bad index") }).await.unwrap();
/// let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else { unreachable!() };
/// assert_eq!(panic.message(), "bad index");
/// assert_eq!(*panic.into_payload().unwrap().downcast::<&str>().unwrap(), "bad index");
/// # }
/// ```
pub struct Panic {
    message: Arc<str>,
    /// `Sync`, so that a `Failure` goes into `Box<dyn Error + Send + Sync>` and `anyhow::Error`.
    payload: Option<PanicPayload>,
    backtrace: Option<Arc<std::backtrace::Backtrace>>,
    task: Option<Arc<str>>,
}

impl Panic {
    pub(crate) fn new(
        message: Arc<str>,
        payload: Option<Box<dyn Any + Send>>,
        backtrace: Option<Arc<std::backtrace::Backtrace>>,
        task: Option<Arc<str>>,
    ) -> Self {
        Panic {
            message,
            payload: payload.map(PanicPayload::new),
            backtrace,
            task,
        }
    }

    /// The name of the task that panicked, when it was spawned with
    /// [`spawn_named`](crate::Group::spawn_named); `None` for an unnamed task.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::{Failure, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<String>::new();
    /// group.spawn_named("billing export", |_ctx| async { panic!("no account") }).await.unwrap();
    /// let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else { unreachable!() };
    /// assert_eq!(panic.task(), Some("billing export"));
    /// assert_eq!(panic.to_string(), "task `billing export` panicked: no account");
    /// # }
    /// ```
    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }

    /// Where the panic happened: a backtrace taken when it was raised, if
    /// [`capture_panic_backtraces`](bounded_cancel::capture_panic_backtraces) was called and backtraces
    /// are enabled (`RUST_BACKTRACE`); `None` otherwise. Every caller that recovers the panic sees it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::{Failure, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// bounded_cancel::capture_panic_backtraces();
    /// let group = Group::<String>::new();
    /// group.spawn(|_ctx| async { panic!("bad index") }).await.unwrap();
    /// let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else { unreachable!() };
    /// if let Some(backtrace) = panic.backtrace() {
    ///     eprintln!("{backtrace}");
    /// }
    /// # }
    /// ```
    pub fn backtrace(&self) -> Option<&std::backtrace::Backtrace> {
        self.backtrace.as_deref()
    }

    /// Moves the payload out into a new `Panic`, leaving the message behind for later callers.
    pub(crate) fn take(&mut self) -> Panic {
        Panic {
            message: self.message.clone(),
            payload: self.payload.take(),
            backtrace: self.backtrace.clone(),
            task: self.task.clone(),
        }
    }

    /// The panic message (`"panic payload is not a string"` for other payloads).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::{Failure, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<String>::new();
    /// group.spawn(|_ctx| async { std::panic::panic_any(7u8) }).await.unwrap();
    /// let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else { unreachable!() };
    /// assert_eq!(panic.message(), "panic payload is not a string");
    /// # }
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The payload the task panicked with; `None` if an earlier wait already took it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::{Failure, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<String>::new();
    /// group.spawn(|_ctx| async { panic!("once") }).await.unwrap();
    /// let Err(Failure::Panicked(first)) = group.wait_and_recover().await else { unreachable!() };
    /// let Err(Failure::Panicked(second)) = group.wait_and_recover().await else { unreachable!() };
    /// assert!(first.into_payload().is_some());
    /// assert!(second.into_payload().is_none()); // the payload went to the first caller
    /// # }
    /// ```
    pub fn into_payload(self) -> Option<Box<dyn Any + Send>> {
        self.payload.map(PanicPayload::into_inner)
    }

    /// Re-raises the panic on the current thread, with the original payload where there is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::{Failure, Group};
    /// use futures_util::FutureExt;
    /// use std::panic::AssertUnwindSafe;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<String>::new();
    /// group.spawn(|_ctx| async { std::panic::panic_any(3u8) }).await.unwrap();
    /// let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else { unreachable!() };
    /// let payload = std::panic::catch_unwind(AssertUnwindSafe(|| panic.resume())).unwrap_err();
    /// assert_eq!(payload.downcast_ref::<u8>(), Some(&3));
    /// # }
    /// ```
    pub fn resume(self) -> ! {
        match self.payload {
            Some(payload) => payload.resume(),
            None => panic::resume_unwind(Box::new(format!(
                "a task of this group panicked: {} (the original payload went to an earlier wait)",
                self.message
            ))),
        }
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panic")
            .field("message", &self.message)
            .field("task", &self.task)
            .field("has_payload", &self.payload.is_some())
            .field("has_backtrace", &self.backtrace.is_some())
            .finish()
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.task {
            Some(task) => write!(f, "task `{task}` panicked: {}", self.message),
            None => write!(f, "a task panicked: {}", self.message),
        }
    }
}

impl std::error::Error for Panic {}

/// How a group failed, as returned by the `*_and_recover` waits: an error or a caught panic.
///
/// A panic is reported in preference to an error: it is a bug, and it must not be lost behind one.
///
/// # Examples
///
/// ```
/// use bounded_group::{Failure, Group};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let group = Group::new();
/// group.spawn(|_ctx| async { Err("no route") }).await.unwrap();
/// assert!(matches!(group.wait_and_recover().await, Err(Failure::Error("no route"))));
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure<E> {
    /// The first error a task returned.
    Error(E),
    /// The first panic of a task.
    Panicked(Panic),
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(err) => err.fmt(f),
            Failure::Panicked(panic) => panic.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Failure<E> {}

/// The cause of a group's context when one of its tasks panicked.
///
/// # Examples
///
/// ```
/// use bounded_group::{Group, TaskPanicked};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = bounded_cancel::Context::new();
/// let group = Group::<std::fmt::Error>::with_context(&ctx);
/// group.spawn(|_ctx| async { panic!("oops") }).await.unwrap();
/// group.context().cancelled().await;
/// let cause = group.context().cause().unwrap();
/// let panicked = cause.error().unwrap().downcast_ref::<TaskPanicked>().unwrap();
/// assert_eq!(panicked.message(), "oops");
/// # let _ = group.wait_and_recover().await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TaskPanicked {
    message: Arc<str>,
}

impl TaskPanicked {
    pub(crate) fn new(message: Arc<str>) -> Self {
        TaskPanicked { message }
    }

    /// The panic message.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_group::{Group, TaskPanicked};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<std::fmt::Error>::with_context(&Context::new());
    /// group.spawn(|_ctx| async { panic!("bad state") }).await.unwrap();
    /// let cause = group.context().cancelled().await;
    /// let panicked = cause.error().unwrap().downcast_ref::<TaskPanicked>().unwrap();
    /// assert_eq!(panicked.message(), "bad state");
    /// # let _ = group.wait_and_recover().await;
    /// # }
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a task of the group panicked: {}", self.message)
    }
}

impl std::error::Error for TaskPanicked {}

/// The cause of a group's context when one of its tasks returned an error: its message. The error
/// itself comes back from `wait` (or `finish`).
///
/// # Examples
///
/// ```
/// use bounded_group::{Group, TaskError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = bounded_cancel::Context::new();
/// let group = Group::<String>::with_context(&ctx);
/// group.spawn(|_ctx| async { Err("no route to db".to_owned()) }).await.unwrap();
/// let cause = group.context().cancelled().await;
/// let failed = cause.error().unwrap().downcast_ref::<TaskError>().unwrap();
/// assert_eq!(failed.message(), "no route to db");
/// assert_eq!(group.wait().await, Err("no route to db".to_owned()));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TaskError {
    message: Arc<str>,
}

impl TaskError {
    pub(crate) fn new(message: String) -> Self {
        TaskError {
            message: message.into(),
        }
    }

    /// The failing task's error, as text.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_group::{Group, TaskError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = Group::<String>::with_context(&bounded_cancel::Context::new());
    /// group.spawn(|_ctx| async { Err("boom".to_owned()) }).await.unwrap();
    /// let cause = group.context().cancelled().await;
    /// assert_eq!(cause.error().unwrap().downcast_ref::<TaskError>().unwrap().message(), "boom");
    /// # }
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a task of the group failed: {}", self.message)
    }
}

impl std::error::Error for TaskError {}

/// Why [`map`](crate::map), [`for_each`](crate::for_each), [`map_results`](crate::map_results) or
/// their `_with` forms did not run every item to its end.
///
/// `Ok` from those helpers means every item ran; an item that did not run is always one of these
/// errors, never a shorter result.
///
/// # Examples
///
/// ```
/// use bounded_group::MapError;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = bounded_group::map([1, 2], 0, |_ctx, n: u32| async move { Ok::<_, String>(n) })
///     .await
///     .unwrap_err();
/// assert!(matches!(err, MapError::InvalidLimit(0)));
/// assert!(err.to_string().contains("at least 1"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MapError<E> {
    /// The first error a call returned, identical; the other calls saw their context cancelled.
    Failed(E),
    /// The limit was 0 (nothing could ever run) or above [`MAX_LIMIT`](crate::MAX_LIMIT); nothing ran.
    InvalidLimit(usize),
    /// The caller's context (of a `_with` form) ended before every item had started: the items not
    /// yet started never ran, and the calls running saw their context end. Holds the context's cause.
    /// A call's own error, if one returned one, is reported as [`Failed`](MapError::Failed) instead.
    Cancelled(Cause),
}

impl<E> MapError<E> {
    /// The error a call returned, if that is what ended the run.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::MapError;
    ///
    /// assert_eq!(MapError::Failed("down").into_error(), Some("down"));
    /// assert_eq!(MapError::<&str>::InvalidLimit(0).into_error(), None);
    /// ```
    pub fn into_error(self) -> Option<E> {
        match self {
            MapError::Failed(err) => Some(err),
            MapError::InvalidLimit(_) | MapError::Cancelled(_) => None,
        }
    }

    pub(crate) fn check(limit: usize) -> Result<usize, Self> {
        if limit == 0 || limit > crate::MAX_LIMIT {
            return Err(MapError::InvalidLimit(limit));
        }
        Ok(limit)
    }
}

impl<E: fmt::Display> fmt::Display for MapError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Failed(err) => err.fmt(f),
            MapError::InvalidLimit(0) => f.write_str(
                "a limit of 0 lets nothing run; give map or for_each a limit of at least 1",
            ),
            MapError::InvalidLimit(limit) => write!(
                f,
                "a limit of {limit} is above the most a group takes ({}); any limit above the number \
                 of items runs them all at once",
                crate::MAX_LIMIT
            ),
            MapError::Cancelled(cause) => write!(
                f,
                "stopped before every item started ({cause}); the items not started did not run"
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for MapError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Each is in the message already: the chain goes on below it.
            MapError::Failed(err) => err.source(),
            MapError::InvalidLimit(_) => None,
            MapError::Cancelled(cause) => cause.source(),
        }
    }
}
