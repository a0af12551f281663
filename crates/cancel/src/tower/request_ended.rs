//! [`RequestEnded`]: the error of a request whose context ended first.

use std::error::Error;
use std::fmt;

use crate::Cause;

/// A request's context ended before its response was ready; the handler was dropped.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Cause;
/// use bounded_cancel::tower::RequestEnded;
///
/// let ended = RequestEnded::new(Cause::DeadlineExceeded);
/// assert!(ended.is_deadline());
/// assert!(ended.to_string().contains("deadline"));
/// ```
#[derive(Clone, Debug)]
pub struct RequestEnded {
    cause: Cause,
}

impl RequestEnded {
    /// A request ended by `cause`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Cause;
    /// # use bounded_cancel::tower::RequestEnded;
    /// assert!(!RequestEnded::new(Cause::Cancelled).is_deadline());
    /// ```
    pub fn new(cause: Cause) -> Self {
        RequestEnded { cause }
    }

    /// Why the context ended: its deadline, or the service's context (a shutdown, say).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Cause;
    /// # use bounded_cancel::tower::RequestEnded;
    /// assert!(RequestEnded::new(Cause::Cancelled).cause().error().is_none());
    /// ```
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// Whether the request's deadline ended it (an HTTP service answers `504 Gateway Timeout` or
    /// `408`); otherwise the service's context did (`503 Service Unavailable` while draining).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Cause;
    /// # use bounded_cancel::tower::RequestEnded;
    /// assert!(RequestEnded::new(Cause::DeadlineExceeded).is_deadline());
    /// ```
    pub fn is_deadline(&self) -> bool {
        self.cause.is_deadline_exceeded()
    }
}

impl fmt::Display for RequestEnded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request's context ended before its response was ready: {}",
            self.cause
        )
    }
}

impl Error for RequestEnded {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        // The cause is in the message already: the chain goes on below it.
        self.cause.source()
    }
}
