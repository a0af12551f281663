use std::fmt;
use std::sync::Arc;

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
