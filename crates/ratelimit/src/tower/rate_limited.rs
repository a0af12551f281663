//! [`RateLimited`]: a shedding layer's refusal, as an error or as a gRPC status.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use http::HeaderValue;

use crate::TryAcquireError;

/// A shedding rate limit refused a request: it was not sent to the inner service.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::tower::RateLimited;
/// use std::time::Duration;
///
/// let err = RateLimited::new(Some(Duration::from_millis(1500)));
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
/// assert_eq!(err.retry_after_secs(), Some(2), "rounded up for a Retry-After header");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    retry_after: Option<Duration>,
}

impl RateLimited {
    /// A refusal that can be retried after `retry_after` (`None`: never, the request needs more than
    /// the burst).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimited;
    /// assert_eq!(RateLimited::new(None).retry_after(), None);
    /// ```
    pub fn new(retry_after: Option<Duration>) -> Self {
        RateLimited { retry_after }
    }

    /// How long until the same request would be let through.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimited;
    /// # use std::time::Duration;
    /// assert_eq!(RateLimited::new(Some(Duration::ZERO)).retry_after(), Some(Duration::ZERO));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The retry-after in whole seconds, rounded up (at least 1), as an HTTP `Retry-After` header
    /// carries it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimited;
    /// # use std::time::Duration;
    /// assert_eq!(RateLimited::new(Some(Duration::from_millis(20))).retry_after_secs(), Some(1));
    /// ```
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|wait| {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            secs.max(1)
        })
    }
}

impl RateLimited {
    /// The refusal as a gRPC "trailers-only" response, as the layers' gRPC mode answers it:
    /// `RESOURCE_EXHAUSTED` in the headers, the retry-after in whole milliseconds (rounded up) in
    /// `grpc-retry-pushback-ms`, no body, and the refusal itself in the response's extensions.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::tower::RateLimited;
    /// # use std::time::Duration;
    /// let refused: http::Response<String> =
    ///     RateLimited::new(Some(Duration::from_micros(1500))).grpc_response();
    /// assert_eq!(refused.headers()["grpc-status"], "8");
    /// assert_eq!(refused.headers()["grpc-retry-pushback-ms"], "2");
    /// ```
    pub fn grpc_response<B: Default>(self) -> http::Response<B> {
        let (message, pushback) = match self.retry_after {
            Some(wait) => {
                let ms = wait.as_millis() + u128::from(wait.subsec_nanos() % 1_000_000 > 0);
                let ms = u64::try_from(ms).unwrap_or(u64::MAX);
                ("rate limited: retry after the pushback", Some(ms))
            }
            None => (
                "rate limited: the request needs more units than the burst",
                None,
            ),
        };
        let mut response = grpc_status("8", message, self); // RESOURCE_EXHAUSTED
        if let Some(ms) = pushback {
            let headers = response.headers_mut();
            headers.insert("grpc-retry-pushback-ms", HeaderValue::from(ms));
        }
        response
    }
}

/// A gRPC trailers-only response: `code` and `message` in its headers, `why` in its extensions.
pub(super) fn grpc_status<B: Default, T: Clone + Send + Sync + 'static>(
    code: &'static str,
    message: &'static str,
    why: T,
) -> http::Response<B> {
    let mut response = http::Response::new(B::default());
    response.extensions_mut().insert(why);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static(code));
    headers.insert("grpc-message", HeaderValue::from_static(message));
    response
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after {
            Some(wait) => write!(
                f,
                "rate limited: the request was not sent; retry after {wait:?}"
            ),
            None => f.write_str(
                "rate limited: the request needs more units than the burst and can never be sent",
            ),
        }
    }
}

impl Error for RateLimited {}

impl From<TryAcquireError> for RateLimited {
    fn from(err: TryAcquireError) -> Self {
        RateLimited::new(err.retry_after())
    }
}
