use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bounded_cancel::Context;

/// Something a group can run as a task: in practice, a closure `FnOnce(Context) -> impl Future<Output = Result<(), E>>`.
///
/// You never implement this; it is implemented for every such closure, and names the bound that
/// [`Spawn`](crate::Spawn) needs.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_group::TaskFn;
///
/// fn takes_task<T: TaskFn<std::io::Error>>(_task: T) {}
/// takes_task(|ctx: Context| async move { ctx.cancelled().await; Ok(()) });
/// ```
pub trait TaskFn<E>: Send + 'static {
    /// The future the task runs.
    type Future: Future<Output = Result<(), E>> + Send + 'static;

    /// Starts the task with the group's context.
    fn start(self, ctx: Context) -> Self::Future;

    /// The task's name, for a panic it raises (and its span): [`Named`] tasks have one.
    fn name(&self) -> Option<Arc<str>> {
        None
    }
}

impl<E, F, Fut> TaskFn<E> for F
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    type Future = Fut;

    fn start(self, ctx: Context) -> Fut {
        self(ctx)
    }
}

/// A task with a name, from [`Group::spawn_named`](crate::Group::spawn_named): a panic it raises says
/// which task it was ([`Panic::task`](crate::Panic::task)), as conc's `Recovered` does.
///
/// # Examples
///
/// ```
/// use bounded_group::{Failure, Group};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let group = Group::<String>::new();
/// group.spawn_named("resize thumbnails", |_ctx| async { panic!("out of memory") }).await.unwrap();
/// let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else { unreachable!() };
/// assert_eq!(panic.task(), Some("resize thumbnails"));
/// # }
/// ```
pub struct Named<F> {
    name: Arc<str>,
    task: F,
}

impl<F> Named<F> {
    pub(crate) fn new(name: Arc<str>, task: F) -> Self {
        Named { name, task }
    }

    pub(crate) fn into_task(self) -> F {
        self.task
    }
}

impl<F> fmt::Debug for Named<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<E, F: TaskFn<E>> TaskFn<E> for Named<F> {
    type Future = F::Future;

    fn start(self, ctx: Context) -> F::Future {
        self.task.start(ctx)
    }

    fn name(&self) -> Option<Arc<str>> {
        Some(self.name.clone())
    }
}

/// A task whose closure or future is large, in a box of its own, and whose future goes into one
/// as soon as the closure makes it: what moves from then on is a box.
pub(crate) struct Boxed<F>(Box<F>);

impl<F> Boxed<F> {
    pub(crate) fn new(task: F) -> Self {
        Boxed(Box::new(task))
    }

    /// The task, out of its box: a refused spawn hands back what it was given.
    pub(crate) fn into_inner(self) -> F {
        *self.0
    }
}

impl<E, F: TaskFn<E>> TaskFn<E> for Boxed<F> {
    type Future = Pin<Box<F::Future>>;

    fn start(self, ctx: Context) -> Self::Future {
        Box::pin(self.0.start(ctx))
    }

    fn name(&self) -> Option<Arc<str>> {
        self.0.name()
    }
}
