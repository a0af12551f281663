use std::error::Error;
use std::fmt;

use bounded_cancel::{Cause, PanicPayload};

/// How a pipeline ended early, from [`Output`](crate::Output).
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_pipeline::{Pipeline, PipelineError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let result = Pipeline::new(&Context::new())
///     .source(1..=10)
///     .map(2, |_ctx, n: u32| async move { if n == 4 { Err(format!("item {n} is bad")) } else { Ok(n) } })
///     .output()
///     .try_collect()
///     .await;
/// match result {
///     Err(PipelineError::Failed { index, error, .. }) => assert_eq!((index, error.as_str()), (3, "item 4 is bad")),
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
#[non_exhaustive]
pub enum PipelineError<E> {
    /// A stage function returned an error (fail-fast mode): the first one, as the identical value.
    Failed {
        /// The stage's name.
        stage: String,
        /// The item's position in the source, from 0.
        index: u64,
        /// The error.
        error: E,
    },
    /// Code of yours panicked in a stage (its function called or dropped, a `flat_map` iterator
    /// made, advanced or dropped, the source stream pulled or dropped); the pipeline stopped.
    Panicked {
        /// The stage's name.
        stage: String,
        /// The item's position in the source, from 0 (for a source dropped, the number of items it
        /// gave; for a stage function dropped, the number of items its stage took in).
        index: u64,
        /// The panic payload: [`PanicPayload::message`] reads the text, [`PanicPayload::resume`]
        /// re-raises it.
        payload: PanicPayload,
    },
    /// The pipeline's context ended (its parent was cancelled or its deadline passed) before every
    /// stage had run to its end.
    Cancelled(Cause),
    /// A stage was built with 0 workers or a buffer of 0; nothing ran. The text says which and what to do.
    Invalid(String),
    /// A task of the pipeline was dropped before it finished without the pipeline stopping it: the
    /// tokio runtime it ran on shut down. Items in flight were lost with it; the other stages were
    /// stopped.
    Lost {
        /// The stage whose task was lost (empty for the pipeline's own watch task).
        stage: String,
    },
}

impl<E> PipelineError<E> {
    /// The stage function's error, if that is how the pipeline ended.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_pipeline::PipelineError;
    /// let err: PipelineError<&str> = PipelineError::Failed { stage: "fetch".into(), index: 0, error: "404" };
    /// assert_eq!(err.into_error(), Some("404"));
    /// ```
    pub fn into_error(self) -> Option<E> {
        match self {
            PipelineError::Failed { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for PipelineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Failed {
                stage,
                index,
                error,
            } => f
                .debug_struct("Failed")
                .field("stage", stage)
                .field("index", index)
                .field("error", error)
                .finish(),
            PipelineError::Panicked {
                stage,
                index,
                payload,
            } => f
                .debug_struct("Panicked")
                .field("stage", stage)
                .field("index", index)
                .field("message", &payload.message())
                .finish(),
            PipelineError::Cancelled(cause) => f.debug_tuple("Cancelled").field(cause).finish(),
            PipelineError::Invalid(problem) => f.debug_tuple("Invalid").field(problem).finish(),
            PipelineError::Lost { stage } => f.debug_struct("Lost").field("stage", stage).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for PipelineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Failed {
                stage,
                index,
                error,
            } => {
                write!(
                    f,
                    "pipeline stage `{stage}` failed on item {index}: {error}; every stage was stopped"
                )
            }
            PipelineError::Panicked {
                stage,
                index,
                payload,
            } => write!(
                f,
                "pipeline stage `{stage}` panicked on item {index}: {}; every stage was stopped",
                payload.message()
            ),
            PipelineError::Cancelled(cause) => {
                write!(
                    f,
                    "pipeline stopped before every item came through: {cause}"
                )
            }
            PipelineError::Invalid(problem) => write!(f, "pipeline not started: {problem}"),
            PipelineError::Lost { stage } => {
                match stage.as_str() {
                    "" => write!(f, "the pipeline's watch task")?,
                    stage => write!(f, "a task of pipeline stage `{stage}`")?,
                }
                write!(
                    f,
                    " was dropped before it finished: the tokio runtime it ran on shut down; the \
                     items in flight are lost and every stage was stopped (run the pipeline on a \
                     runtime that outlives it)"
                )
            }
        }
    }
}

impl<E: Error + 'static> Error for PipelineError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            // Each is in the message already: the chain goes on below it.
            PipelineError::Failed { error, .. } => error.source(),
            PipelineError::Cancelled(cause) => cause.source(),
            PipelineError::Panicked { .. }
            | PipelineError::Invalid(_)
            | PipelineError::Lost { .. } => None,
        }
    }
}
