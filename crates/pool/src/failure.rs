use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::JobError;

/// A failure nobody awaited: what the pool's error hook receives for a job whose handle was dropped.
///
/// # Examples
///
/// ```
/// use bounded_pool::{JobFailure, Pool};
/// use std::sync::{Arc, Mutex};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let pool = Pool::builder()
///     .workers(1)
///     .queue(4)
///     .error_hook(move |failure: JobFailure| log.lock().unwrap().push(failure.to_string()))
///     .build()
///     .unwrap();
/// pool.submit(|_ctx| async { Err::<(), _>("smtp refused") }).await.unwrap().detach();
/// pool.shutdown().await;
/// assert_eq!(*seen.lock().unwrap(), ["job failed: smtp refused"]);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobFailure {
    /// The job returned an error; this is its text.
    Failed(String),
    /// The job panicked; this is the panic message.
    Panicked(String),
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobFailure::Failed(text) => write!(f, "job failed: {text}"),
            JobFailure::Panicked(text) => write!(f, "job panicked: {text}"),
        }
    }
}

pub(crate) type Hook = Arc<dyn Fn(JobFailure) + Send + Sync>;

/// The default hook: one `tracing` error event per failure, so nothing fails silently.
pub(crate) fn default_hook() -> Hook {
    Arc::new(|failure: JobFailure| {
        tracing::error!(target: "bounded_pool", %failure, "a detached pool job failed");
    })
}

/// A job's failure on its way to its handle, or to nobody. If it is dropped unclaimed (no handle
/// was left when the job ended, or the handle was dropped after the job ended without anyone
/// awaiting it), it goes to the pool's error hook as it is dropped: so every failure is either
/// returned by a handle or reported, exactly once, whenever the handle is dropped.
pub(crate) struct Unclaimed<E> {
    /// Taken by [`claim`](Unclaimed::claim); what is still here when dropped goes to the hook.
    error: Option<JobError<E>>,
    /// The hook, for a failure or a panic; none for a cancelled job, which is never reported.
    hook: Option<Hook>,
    /// The error's text, as the hook receives it.
    render: fn(&E) -> String,
}

impl<E: fmt::Display> Unclaimed<E> {
    /// Boxed, so that what every job sends its handle stays one word beside its value; made only
    /// for a job that did not succeed.
    #[cold]
    #[inline(never)]
    pub(crate) fn new(error: JobError<E>, hook: &Hook) -> Box<Self> {
        let hook = (!matches!(error, JobError::Cancelled)).then(|| hook.clone());
        Box::new(Unclaimed {
            error: Some(error),
            hook,
            render: E::to_string,
        })
    }
}

impl<E> Unclaimed<E> {
    /// The failure, for the handle that awaited it: no longer reported to the hook.
    pub(crate) fn claim(&mut self) -> JobError<E> {
        self.error.take().unwrap_or(JobError::Cancelled)
    }

    #[cold]
    #[inline(never)]
    fn report(&mut self) {
        let (Some(error), Some(hook)) = (self.error.take(), &self.hook) else {
            return;
        };
        let render = self.render;
        // A panicking hook (or error text) must not take the worker, or the dropping task, with it.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let failure = match error {
                JobError::Failed(err) => JobFailure::Failed(render(&err)),
                JobError::Panicked(payload) => JobFailure::Panicked(payload.message().to_owned()),
                JobError::Cancelled => return,
            };
            hook(failure);
        }));
    }
}

impl<E> Drop for Unclaimed<E> {
    fn drop(&mut self) {
        if self.error.is_some() {
            self.report();
        }
    }
}
