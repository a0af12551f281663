use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use bounded_cancel::PanicPayload;
use sync_wrapper::SyncWrapper;

use crate::job::Outcome;

/// How a job ended without a value.
///
/// # Examples
///
/// ```
/// use bounded_pool::{JobError, Pool};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder().workers(1).queue(1).build().unwrap();
/// let handle = pool.submit(|_ctx| async { Err::<(), _>("bad input") }).await.unwrap();
/// assert!(matches!(handle.await, Err(JobError::Failed("bad input"))));
/// # }
/// ```
#[non_exhaustive]
pub enum JobError<E> {
    /// The job returned this error.
    Failed(E),
    /// The job panicked with this payload; its worker lives on. [`PanicPayload::message`] reads the
    /// text, [`PanicPayload::into_inner`] gives back the value the job panicked with.
    Panicked(PanicPayload),
    /// The job never ran to its end: it was still queued, or was aborted while running, when the pool was
    /// aborted, dropped, cancelled, or ran out of grace in `shutdown_timeout`. A job that returns an
    /// error after the pool has cancelled its context is `Cancelled` too: the stop is the cause, and the
    /// error (typically "context cancelled") is how the job answered it.
    Cancelled,
}

impl<E> JobError<E> {
    /// The panic message, if the job panicked.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JobError::Panicked(payload) => Some(payload.message()),
            _ => None,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for JobError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(err) => f.debug_tuple("Failed").field(err).finish(),
            JobError::Panicked(payload) => {
                f.debug_tuple("Panicked").field(&payload.message()).finish()
            }
            JobError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for JobError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(err) => write!(f, "job failed: {err}"),
            JobError::Panicked(payload) => write!(f, "job panicked: {}", payload.message()),
            JobError::Cancelled => f.write_str("job cancelled before it finished"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for JobError<E> {}

/// The result of a submitted job: a future of `Result<T, JobError<E>>`.
///
/// Dropping the handle does not cancel the job: it runs to its end, and if it fails or panics, the
/// failure goes to the pool's error hook instead ([`detach`](JobHandle::detach) says so explicitly).
/// A job that already failed when its handle is dropped unread is reported by that drop, so no
/// failure is lost whichever comes first; one the handle returns is not reported again.
#[must_use = "dropping a handle detaches the job; call detach() to say so"]
pub struct JobHandle<T, E> {
    // Only ever reached through `&mut`, so the handle is `Sync` whatever the receiver is.
    rx: SyncWrapper<oneshot::AsyncReceiver<Outcome<T, E>>>,
}

impl<T, E> JobHandle<T, E> {
    pub(crate) fn new(rx: oneshot::AsyncReceiver<Outcome<T, E>>) -> Self {
        JobHandle {
            rx: SyncWrapper::new(rx),
        }
    }

    /// Lets the job run on without anyone awaiting it: its errors and panics go to the pool's error hook.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_pool::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).queue(4).build().unwrap();
    /// pool.submit(|_ctx| async { Ok::<_, String>(()) }).await.unwrap().detach();
    /// pool.shutdown().await;
    /// # }
    /// ```
    pub fn detach(self) {}
}

impl<T, E> Future for JobHandle<T, E> {
    type Output = Result<T, JobError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // A result that is there already spends the caller's tokio budget, as awaiting a finished
        // tokio `JoinHandle` does: a loop over many handles yields every so often.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let rx = Pin::new(self.get_mut().rx.get_mut());
        let outcome = ready!(rx.poll(cx));
        coop.made_progress();
        Poll::Ready(match outcome {
            Ok(Ok(value)) => Ok(value),
            // Claimed here, so not reported to the hook as well.
            Ok(Err(mut failure)) => Err(failure.claim()),
            // A job dropped before it could report (still queued, or aborted) drops its sender.
            Err(_) => Err(JobError::Cancelled),
        })
    }
}

impl<T, E> fmt::Debug for JobHandle<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle").finish_non_exhaustive()
    }
}
