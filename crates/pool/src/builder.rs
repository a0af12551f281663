use std::fmt;

use bounded_cancel::Context;

use crate::error::BuildError;
use crate::failure::{Hook, JobFailure, default_hook};
use crate::inner::Inner;
use crate::pool::Pool;

/// Configures a [`Pool`]; made by [`Pool::builder`].
///
/// Defaults: one worker per available CPU, a queue twice as long as the worker count (Go pools'
/// `size*2`), a fresh root context, and an error hook that emits a `tracing` error event.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_pool::Pool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Context::new();
/// let pool = Pool::builder().workers(4).queue(8).context(&app).name("mailer").build().unwrap();
/// assert_eq!(pool.workers(), 4);
/// # }
/// ```
pub struct PoolBuilder {
    workers: Option<usize>,
    queue: Option<usize>,
    ctx: Option<Context>,
    hook: Hook,
    name: String,
}

impl PoolBuilder {
    pub(crate) fn new() -> Self {
        PoolBuilder {
            workers: None,
            queue: None,
            ctx: None,
            hook: default_hook(),
            name: "pool".to_owned(),
        }
    }

    /// How many jobs run at once (0 and more than [`MAX_WORKERS`](crate::MAX_WORKERS) are refused by
    /// [`build`](PoolBuilder::build)).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// How many accepted jobs may wait for a worker; past that, `submit` waits (0 and more than
    /// [`MAX_QUEUE`](crate::MAX_QUEUE) are refused). The queue's memory follows the jobs it holds, not
    /// this bound. The places of jobs a worker takes as a run are freed when it comes back to the
    /// queue (see the crate docs), so the queue never holds more than this, and for the length of a
    /// run can take a few jobs fewer.
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = Some(capacity);
        self
    }

    /// The parent of the pool's context: cancelling it aborts the pool.
    pub fn context(mut self, ctx: &Context) -> Self {
        self.ctx = Some(ctx.clone());
        self
    }

    /// Where failures of jobs nobody awaits go (their handle was dropped or detached). Called once per
    /// failure: by the worker when the handle was gone as the job ended, or as the handle is dropped
    /// when the failure was waiting in it (on the task that drops it, even after the pool is gone). A
    /// panic in the hook is caught there.
    pub fn error_hook<H>(mut self, hook: H) -> Self
    where
        H: Fn(JobFailure) + Send + Sync + 'static,
    {
        self.hook = std::sync::Arc::new(hook);
        self
    }

    /// The name the pool's workers carry in live-task reports (`"<name> worker"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the pool's workers.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for zero workers or a zero queue, more workers than
    /// [`MAX_WORKERS`](crate::MAX_WORKERS), or a queue longer than [`MAX_QUEUE`](crate::MAX_QUEUE).
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime.
    pub fn build(self) -> Result<Pool, BuildError> {
        let workers = match self.workers {
            Some(0) => return Err(BuildError::ZeroWorkers),
            Some(n) if n > crate::MAX_WORKERS => return Err(BuildError::TooManyWorkers),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let queue = match self.queue {
            Some(0) => return Err(BuildError::ZeroQueue),
            Some(n) if n > crate::MAX_QUEUE => return Err(BuildError::QueueTooLong),
            Some(n) => n,
            None => workers * 2,
        };
        let ctx = self.ctx.unwrap_or_default();
        Ok(Pool::new(Inner::start(
            workers, queue, &ctx, self.hook, self.name,
        )))
    }
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("workers", &self.workers)
            .field("queue", &self.queue)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
