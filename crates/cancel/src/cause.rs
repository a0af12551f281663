use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Why a [`Context`](crate::Context) was cancelled.
///
/// The first cause recorded on a context wins: later calls to
/// [`cancel`](crate::Context::cancel) or [`cancel_with`](crate::Context::cancel_with)
/// do not replace it. A context that was cancelled through one of its ancestors reports
/// that ancestor's cause.
///
/// `Cause` is cheap to clone: an error cause is shared behind an [`Arc`], so every clone
/// points at the very value passed to `cancel_with`.
///
/// # Examples
///
/// ```
/// use bounded_cancel::{Cause, Context};
///
/// let ctx = Context::new();
/// ctx.cancel();
/// assert!(matches!(ctx.cause(), Some(Cause::Cancelled)));
/// assert_eq!(ctx.cause().unwrap().to_string(), "context cancelled");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum Cause {
    /// [`Context::cancel`](crate::Context::cancel) was called on this context or an ancestor.
    Cancelled,
    /// The deadline of this context or of an ancestor passed.
    DeadlineExceeded,
    /// [`Context::cancel_with`](crate::Context::cancel_with) was called with this error.
    Error(Arc<dyn Error + Send + Sync + 'static>),
}

impl Cause {
    /// Returns the error passed to `cancel_with`, if that is the cause.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use std::io;
    ///
    /// let ctx = Context::new();
    /// ctx.cancel_with(io::Error::other("disk on fire"));
    /// let cause = ctx.cause().unwrap();
    /// let err = cause.error().unwrap().downcast_ref::<io::Error>().unwrap();
    /// assert_eq!(err.to_string(), "disk on fire");
    /// ```
    pub fn error(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        match self {
            Cause::Error(err) => Some(&**err),
            _ => None,
        }
    }

    /// Returns `true` if the cause is a passed deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Cause;
    ///
    /// assert!(Cause::DeadlineExceeded.is_deadline_exceeded());
    /// assert!(!Cause::Cancelled.is_deadline_exceeded());
    /// ```
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, Cause::DeadlineExceeded)
    }
}

/// Two causes are equal when they are the same kind; two `Error` causes when they hold the very
/// same error, that is, when both are clones of one cause (as every context and wait cancelled by
/// one `cancel_with` reports), not when two errors merely look alike.
///
/// # Examples
///
/// ```
/// use bounded_cancel::{Cause, Context};
///
/// let ctx = Context::new();
/// let child = ctx.child();
/// ctx.cancel_with(std::io::Error::other("backend down"));
/// assert_eq!(child.cause(), ctx.cause());
/// assert_ne!(child.cause(), Some(Cause::Cancelled));
/// assert_eq!(Cause::DeadlineExceeded, Cause::DeadlineExceeded);
/// ```
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Cause::Cancelled, Cause::Cancelled) => true,
            (Cause::DeadlineExceeded, Cause::DeadlineExceeded) => true,
            (Cause::Error(a), Cause::Error(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Cause {}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Cancelled => f.write_str("Cancelled"),
            Cause::DeadlineExceeded => f.write_str("DeadlineExceeded"),
            Cause::Error(err) => f.debug_tuple("Error").field(err).finish(),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Cancelled => f.write_str("context cancelled"),
            Cause::DeadlineExceeded => f.write_str("context deadline exceeded"),
            Cause::Error(err) => write!(f, "context cancelled by error: {err}"),
        }
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            // Its message is in this one's already: the chain goes on below it.
            Cause::Error(err) => err.source(),
            _ => None,
        }
    }
}
