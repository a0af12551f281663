use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bounded_sync::Mutex;
use bounded_sync::runtime::BoxIfLarge;
use std::task::{Context as TaskContext, Poll, ready};

use bounded_cancel::Context;

use crate::error::{Failure, SetLimitError, SpawnError, TrySpawnError};
use crate::{Group, Spawn, TaskFn};

/// A [`Group`] whose tasks return values, handed back in submission order.
///
/// This is the common Go `Fanout` without the shared `results` slice: each task's value lands in the slot
/// of its [`spawn`](ResultGroup::spawn) call, whatever order the tasks finish in. Values of failed tasks are
/// dropped. Everything else (limits, contexts, first error, panics) is [`Group`]'s. Unlike a `Group`, a
/// `ResultGroup` keeps one slot per task until [`wait`](ResultGroup::wait), which consumes it.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_group::ResultGroup;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut group = ResultGroup::<u64, std::fmt::Error>::with_context(&Context::new());
/// group.set_limit(Some(4)).unwrap();
/// for id in [30u64, 10, 20] {
///     group.spawn(move |_ctx| async move {
///         tokio::time::sleep(Duration::from_millis(id)).await;
///         Ok(id * 2)
///     }).await.unwrap();
/// }
/// assert_eq!(group.wait().await.unwrap(), [60, 20, 40]);
/// # }
/// ```
pub struct ResultGroup<T, E> {
    group: Group<E>,
    results: Arc<Mutex<Vec<Option<T>>>>,
}

/// A task of a `ResultGroup`: the user's closure and the slot its value goes to.
pub(crate) struct Indexed<F, T> {
    task: F,
    slot: usize,
    results: Arc<Mutex<Vec<Option<T>>>>,
}

impl<F, T, E, Fut> TaskFn<E> for Indexed<F, T>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: 'static,
{
    type Future = Pin<Box<dyn Future<Output = Result<(), E>> + Send + 'static>>;

    fn start(self, ctx: Context) -> Self::Future {
        let Indexed {
            task,
            slot,
            results,
        } = self;
        // A large future is boxed as the closure makes it, as `Group::admit` does for a task's own.
        if BoxIfLarge::<Fut>::YES {
            return Box::pin(filling(move |ctx| Box::pin(task(ctx)), ctx, slot, results));
        }
        Box::pin(filling(task, ctx, slot, results))
    }
}

/// Runs `task` and puts its value in its slot.
async fn filling<F, Fut, T, E>(
    task: F,
    ctx: Context,
    slot: usize,
    results: Arc<Mutex<Vec<Option<T>>>>,
) -> Result<(), E>
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let value = task(ctx).await?;
    results.lock()[slot] = Some(value);
    Ok(())
}

impl<T, E> ResultGroup<T, E> {
    /// Creates a result group with no limit whose tasks keep running when one fails, like [`Group::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = ResultGroup::<u8, std::io::Error>::new();
    /// assert!(group.wait().await.unwrap().is_empty());
    /// # }
    /// ```
    pub fn new() -> Self {
        ResultGroup::from_group(Group::new())
    }

    /// Creates a result group whose context is a child of `parent`, cancelled by the first failure, like
    /// [`Group::with_context`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_group::ResultGroup;
    ///
    /// let group = ResultGroup::<u8, std::fmt::Error>::with_context(&Context::new());
    /// assert!(!group.context().is_cancelled());
    /// ```
    pub fn with_context(parent: &Context) -> Self
    where
        E: std::fmt::Display,
    {
        ResultGroup::from_group(Group::with_context(parent))
    }

    pub(crate) fn from_group(group: Group<E>) -> Self {
        ResultGroup {
            group,
            results: Arc::default(),
        }
    }

    /// Keeps every error, for [`wait_all`](ResultGroup::wait_all); see [`Group::collect_errors`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// let group = ResultGroup::<u8, String>::new().collect_errors();
    /// # drop(group);
    /// ```
    pub fn collect_errors(self) -> Self {
        ResultGroup::from_group(self.group.collect_errors())
    }

    /// Names the group's gauge; see [`Group::named`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// let lookups = ResultGroup::<u8, String>::new().named("lookup");
    /// # drop(lookups);
    /// ```
    pub fn named(self, name: impl Into<String>) -> Self {
        ResultGroup::from_group(self.group.named(name))
    }

    /// The group's context; see [`Group::context`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// let group = ResultGroup::<u8, String>::new();
    /// assert!(!group.context().is_cancelled());
    /// ```
    pub fn context(&self) -> &Context {
        self.group.context()
    }

    /// Sets how many tasks may run at once; see [`Group::set_limit`].
    ///
    /// # Errors
    ///
    /// As [`Group::set_limit`]: [`SetLimitError::Running`] while tasks are running,
    /// [`SetLimitError::TooLarge`] above [`MAX_LIMIT`](crate::MAX_LIMIT).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// let mut group = ResultGroup::<u8, String>::new();
    /// group.set_limit(Some(8)).unwrap();
    /// ```
    pub fn set_limit(&mut self, limit: Option<usize>) -> Result<(), SetLimitError> {
        self.group.set_limit(limit)
    }

    /// The limit in force: `None` for no limit, `Some(0)` when every task is refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// let mut group = ResultGroup::<u8, String>::new();
    /// group.set_limit(Some(4)).unwrap();
    /// assert_eq!(group.limit(), Some(4));
    /// ```
    pub fn limit(&self) -> Option<usize> {
        self.group.limit()
    }

    /// The number of tasks admitted and not yet ended (see [`Group::running`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = ResultGroup::<u8, String>::new();
    /// group.spawn(|ctx| async move { ctx.cancelled().await; Ok(1) }).await.unwrap();
    /// assert_eq!(group.running(), 1);
    /// # group.context().cancel();
    /// # }
    /// ```
    pub fn running(&self) -> usize {
        self.group.running()
    }

    fn indexed<F>(&self, task: F) -> Indexed<F, T> {
        let mut results = self.results.lock();
        results.push(None);
        Indexed {
            task,
            slot: results.len() - 1,
            results: self.results.clone(),
        }
    }

    /// Spawns a task once a slot is free; its value takes the next place in the output.
    ///
    /// The place is fixed by the order of `spawn` calls. A spawn that is dropped or refused leaves no gap.
    ///
    /// # Errors
    ///
    /// As [`Group::spawn`]: the closure comes back unrun in a [`SpawnError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives up its place in line and its closure never runs.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime, as `tokio::spawn` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = ResultGroup::<_, std::io::Error>::new();
    /// group.spawn(|_ctx| async { Ok("a") }).await.unwrap();
    /// group.spawn(|_ctx| async { Ok("b") }).await.unwrap();
    /// assert_eq!(group.wait().await.unwrap(), ["a", "b"]);
    /// # }
    /// ```
    pub fn spawn<F, Fut>(&self, task: F) -> ResultSpawn<'_, T, E, F>
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        ResultSpawn {
            inner: Spawn::new(&self.group, None, self.indexed(task)),
        }
    }

    /// Like [`spawn`](ResultGroup::spawn), but the wait for a slot also ends when `ctx` ends.
    ///
    /// # Errors
    ///
    /// As [`Group::spawn_with`].
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
    /// use bounded_group::ResultGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = ResultGroup::<_, std::io::Error>::new();
    /// group.spawn_with(&Context::new(), |_ctx| async { Ok(1) }).await.unwrap();
    /// assert_eq!(group.wait().await.unwrap(), [1]);
    /// # }
    /// ```
    pub fn spawn_with<'a, F, Fut>(&'a self, ctx: &'a Context, task: F) -> ResultSpawn<'a, T, E, F>
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        ResultSpawn {
            inner: Spawn::new(&self.group, Some(ctx), self.indexed(task)),
        }
    }

    /// Spawns a task if a slot is free now; otherwise hands the closure back unrun.
    ///
    /// # Errors
    ///
    /// The closure, if no slot is free, the limit is 0, or the group's context has ended.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime, as `tokio::spawn` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = ResultGroup::<_, std::io::Error>::new();
    /// assert!(group.try_spawn(|_ctx| async { Ok(5) }).is_ok());
    /// assert_eq!(group.wait().await.unwrap(), [5]);
    /// # }
    /// ```
    pub fn try_spawn<F, Fut>(&self, task: F) -> Result<(), TrySpawnError<F>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.group
            .try_admit(self.indexed(task))
            .map_err(|refused| refused.map(|indexed| indexed.task))
    }

    /// Waits for every task, then returns their values in submission order, or the first error.
    ///
    /// # Panics
    ///
    /// Re-raises the first panic of a task, with its original payload.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: the group is consumed, so dropping this future drops the group, which aborts its tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = ResultGroup::<u8, _>::new();
    /// group.spawn(|_ctx| async { Err("nope") }).await.unwrap();
    /// assert_eq!(group.wait().await, Err("nope"));
    /// # }
    /// ```
    pub async fn wait(self) -> Result<Vec<T>, E> {
        match self.wait_and_recover().await {
            Ok(values) => Ok(values),
            Err(Failure::Error(err)) => Err(err),
            Err(Failure::Panicked(panic)) => panic.resume(),
        }
    }

    /// Like [`wait`](ResultGroup::wait), but returns a panic as [`Failure::Panicked`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, as `wait`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::{Failure, ResultGroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = ResultGroup::<u8, String>::new();
    /// group.spawn(|_ctx| async { panic!("bad") }).await.unwrap();
    /// assert!(matches!(group.wait_and_recover().await, Err(Failure::Panicked(_))));
    /// # }
    /// ```
    pub async fn wait_and_recover(self) -> Result<Vec<T>, Failure<E>> {
        self.group.settle().await;
        let shared = self.group.shared();
        if let Some(panic) = shared.take_panic() {
            return Err(Failure::Panicked(panic));
        }
        match shared.take_errors().into_iter().next() {
            Some(err) => Err(Failure::Error(err)),
            None => Ok(self.values()),
        }
    }

    /// Waits for every task, then returns the values, or every recorded error in the order they happened.
    ///
    /// # Panics
    ///
    /// Re-raises the first panic of a task.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, as `wait`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_group::ResultGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = ResultGroup::<u8, u8>::new().collect_errors();
    /// group.spawn(|_ctx| async { Err(1) }).await.unwrap();
    /// group.spawn(|_ctx| async { Ok(2) }).await.unwrap();
    /// assert_eq!(group.wait_all().await, Err(vec![1]));
    /// # }
    /// ```
    pub async fn wait_all(self) -> Result<Vec<T>, Vec<E>> {
        self.group.settle().await;
        let shared = self.group.shared();
        if let Some(panic) = shared.take_panic() {
            panic.resume();
        }
        let errors = shared.take_errors();
        if errors.is_empty() {
            Ok(self.values())
        } else {
            Err(errors)
        }
    }

    fn values(&self) -> Vec<T> {
        std::mem::take(&mut *self.results.lock())
            .into_iter()
            .flatten()
            .collect()
    }
}

impl<T, E> Default for ResultGroup<T, E> {
    fn default() -> Self {
        ResultGroup::new()
    }
}

impl<T, E> fmt::Debug for ResultGroup<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultGroup")
            .field("group", &self.group)
            .field("slots", &self.results.lock().len())
            .finish()
    }
}

/// Future returned by [`ResultGroup::spawn`]: resolves once the task is admitted.
///
/// # Examples
///
/// ```
/// use bounded_group::ResultGroup;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let group = ResultGroup::<u8, String>::new();
/// let spawn = group.spawn(|_ctx| async { Ok(1) });
/// spawn.await.unwrap();
/// assert_eq!(group.wait().await.unwrap(), [1]);
/// # }
/// ```
#[must_use = "futures do nothing unless polled; the task is not spawned until this is awaited"]
pub struct ResultSpawn<'a, T, E, F> {
    inner: Spawn<'a, E, Indexed<F, T>>,
}

impl<T, E, F, Fut> Future for ResultSpawn<'_, T, E, F>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Output = Result<(), SpawnError<F>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let result = ready!(Pin::new(&mut self.inner).poll(cx));
        Poll::Ready(result.map_err(|err| err.map(|indexed| indexed.task)))
    }
}

impl<T, E, F> fmt::Debug for ResultSpawn<'_, T, E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultSpawn")
            .field("inner", &self.inner)
            .finish()
    }
}
