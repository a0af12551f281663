use std::fmt;
use std::num::NonZeroUsize;

use bounded_cancel::Cause;

/// Why [`submit`](crate::Pool::submit) or [`submit_with`](crate::Pool::submit_with) did not take a job.
///
/// The job is inside, unrun: take it out with [`into_inner`](SubmitError::into_inner).
///
/// # Examples
///
/// ```
/// use bounded_pool::{Pool, SubmitError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder().workers(1).queue(1).build().unwrap();
/// pool.close();
/// let err = pool.submit(|_ctx| async { Ok::<_, String>(1) }).await.unwrap_err();
/// assert!(matches!(err, SubmitError::Closed(_)));
/// let _job = err.into_inner();
/// # }
/// ```
#[non_exhaustive]
pub enum SubmitError<J> {
    /// The pool was closed (or shut down, or aborted) before the job found room.
    Closed(J),
    /// The caller's context, or the pool's, ended before the job found room.
    Cancelled {
        /// The job, unrun.
        job: J,
        /// Why the context ended.
        cause: Cause,
    },
    /// Called from one of the pool's own jobs, which holds its worker while it waits for room,
    /// with the queue full and every worker running a job that waits so: none of them could ever
    /// take a job, and the wait would never end. Run the work in the calling job, or use
    /// [`try_submit`](crate::Pool::try_submit) from inside the pool's jobs.
    Deadlock(J),
}

impl<J> SubmitError<J> {
    /// Returns the job that was not taken.
    pub fn into_inner(self) -> J {
        match self {
            SubmitError::Closed(job)
            | SubmitError::Cancelled { job, .. }
            | SubmitError::Deadlock(job) => job,
        }
    }

    /// The same refusal of the job `f` makes of this one.
    pub(crate) fn map<K>(self, f: impl FnOnce(J) -> K) -> SubmitError<K> {
        match self {
            SubmitError::Closed(job) => SubmitError::Closed(f(job)),
            SubmitError::Cancelled { job, cause } => SubmitError::Cancelled { job: f(job), cause },
            SubmitError::Deadlock(job) => SubmitError::Deadlock(f(job)),
        }
    }
}

impl<J> fmt::Debug for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Closed(_) => f.write_str("Closed(..)"),
            SubmitError::Cancelled { cause, .. } => f
                .debug_struct("Cancelled")
                .field("cause", cause)
                .finish_non_exhaustive(),
            SubmitError::Deadlock(_) => f.write_str("Deadlock(..)"),
        }
    }
}

impl<J> fmt::Display for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Closed(_) => f.write_str(
                "job not submitted: the pool is closed; the job did not run and is returned inside this error",
            ),
            SubmitError::Cancelled { cause, .. } => write!(
                f,
                "job not submitted: {cause} while waiting for room in the queue; \
                 the job did not run and is returned inside this error"
            ),
            SubmitError::Deadlock(_) => f.write_str(
                "job not submitted: the queue is full and every worker runs a job waiting, as \
                 this one would, to submit to the same pool, so no worker could ever take a job; \
                 run the work in this job, or use try_submit inside the pool's jobs",
            ),
        }
    }
}

impl<J> std::error::Error for SubmitError<J> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The cause is in the message already: the chain goes on below it.
            SubmitError::Cancelled { cause, .. } => cause.source(),
            SubmitError::Closed(_) | SubmitError::Deadlock(_) => None,
        }
    }
}

/// Why [`try_submit`](crate::Pool::try_submit) did not take a job; it never waits.
///
/// # Examples
///
/// ```
/// use bounded_pool::{Pool, TrySubmitError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder().workers(1).queue(1).build().unwrap();
/// pool.close();
/// let err = pool.try_submit(|_ctx| async { Ok::<_, String>(()) }).unwrap_err();
/// assert!(matches!(err, TrySubmitError::Closed(_)));
/// # }
/// ```
#[non_exhaustive]
pub enum TrySubmitError<J> {
    /// The queue is full: try again later, or `submit` to wait for room.
    Full(J),
    /// The pool no longer takes jobs.
    Closed(J),
}

impl<J> TrySubmitError<J> {
    /// Returns the job that was not taken.
    pub fn into_inner(self) -> J {
        match self {
            TrySubmitError::Full(job) | TrySubmitError::Closed(job) => job,
        }
    }

    /// The same refusal of the job `f` makes of this one.
    pub(crate) fn map<K>(self, f: impl FnOnce(J) -> K) -> TrySubmitError<K> {
        match self {
            TrySubmitError::Full(job) => TrySubmitError::Full(f(job)),
            TrySubmitError::Closed(job) => TrySubmitError::Closed(f(job)),
        }
    }
}

impl<J> fmt::Debug for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => f.write_str("Full(..)"),
            TrySubmitError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<J> fmt::Display for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => f.write_str(
                "job not submitted: the pool's queue is full; retry later or use submit to wait for room",
            ),
            TrySubmitError::Closed(_) => f.write_str("job not submitted: the pool is closed"),
        }
    }
}

impl<J> std::error::Error for TrySubmitError<J> {}

/// A pool builder was given a setting that could never work.
///
/// # Examples
///
/// ```
/// use bounded_pool::{BuildError, Pool};
///
/// let err = Pool::builder().workers(0).build().unwrap_err();
/// assert_eq!(err, BuildError::ZeroWorkers);
/// assert!(err.to_string().contains("at least 1"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `workers(0)`: no job could ever run.
    ZeroWorkers,
    /// `queue(0)`: no job could ever be handed to a worker.
    ZeroQueue,
    /// More workers than [`MAX_WORKERS`](crate::MAX_WORKERS).
    TooManyWorkers,
    /// A queue longer than [`MAX_QUEUE`](crate::MAX_QUEUE).
    QueueTooLong,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => {
                f.write_str("a pool needs at least 1 worker: with 0 no job could ever run")
            }
            BuildError::ZeroQueue => f.write_str(
                "a pool needs a queue of at least 1: with 0 no job could ever reach a worker",
            ),
            BuildError::TooManyWorkers => write!(
                f,
                "a pool takes at most {} workers; for more concurrency than that, run several pools",
                crate::MAX_WORKERS
            ),
            BuildError::QueueTooLong => write!(
                f,
                "a pool's queue holds at most {} jobs; a queue's memory follows what it holds, so \
                 a smaller bound costs nothing",
                crate::MAX_QUEUE
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// [`resize`](crate::Pool::resize) was asked for something it cannot do.
///
/// # Examples
///
/// ```
/// use bounded_pool::{Pool, ResizeError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder().build().unwrap();
/// assert_eq!(pool.resize(0), Err(ResizeError::ZeroWorkers));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResizeError {
    /// `resize(0)`: use `close` or `shutdown` to stop a pool.
    ZeroWorkers,
    /// The pool is closed: it no longer starts workers.
    Closed,
    /// More workers than [`MAX_WORKERS`](crate::MAX_WORKERS).
    TooManyWorkers,
}

impl ResizeError {
    pub(crate) fn check(n: usize) -> Result<NonZeroUsize, ResizeError> {
        if n > crate::MAX_WORKERS {
            return Err(ResizeError::TooManyWorkers);
        }
        NonZeroUsize::new(n).ok_or(ResizeError::ZeroWorkers)
    }
}

impl fmt::Display for ResizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResizeError::ZeroWorkers => {
                f.write_str("cannot resize a pool to 0 workers; use close or shutdown to stop it")
            }
            ResizeError::Closed => f.write_str("cannot resize a closed pool"),
            ResizeError::TooManyWorkers => write!(
                f,
                "cannot resize a pool above {} workers; for more concurrency, run several pools",
                crate::MAX_WORKERS
            ),
        }
    }
}

impl std::error::Error for ResizeError {}
