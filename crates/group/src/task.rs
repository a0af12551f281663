use std::future::Future;

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
