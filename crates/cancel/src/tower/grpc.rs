//! The gRPC side of the context layers: the `grpc-timeout` header, statuses for calls whose context
//! ended, and [`ContextBody`], which keeps a request's context for as long as its response streams.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use sync_wrapper::SyncWrapper;
use tower_service::Service;

use super::{
    BoxError, ClientContext, Ends, Grpc, RequestEnded, ResponseFuture, WithContext, until_ended,
};
use crate::{Cause, Context};

/// A `grpc-timeout` header's value: 1 to 8 ASCII digits, then the unit (gRPC over HTTP/2).
pub(super) fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Eight digits fit in a u64 whatever the unit: at most 99,999,999 hours.
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `timeout` as a `grpc-timeout` header: the smallest unit that holds it in eight digits, rounded up,
/// so that the server never gives the call less time than the client has left.
fn encode_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let (count, unit) = units
        .iter()
        .map(|&(per, unit)| (nanos.div_ceil(per), unit))
        .find(|&(count, _)| count <= MAX)
        .unwrap_or((MAX, 'H'));
    HeaderValue::try_from(format!("{count}{unit}")).expect("digits and a letter")
}

/// Which end of a call a status is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// The gRPC status of a call whose context ended with `cause`: its code and message (printable
/// ASCII without `%`, so sent as written).
fn status(side: Side, cause: &Cause) -> (&'static str, &'static str) {
    match (side, cause.is_deadline_exceeded()) {
        (Side::Server, true) => (
            "4", // DEADLINE_EXCEEDED
            "the request's deadline passed before its response was complete",
        ),
        (Side::Server, false) => (
            "14", // UNAVAILABLE
            "the service stopped serving the request before its response was complete: it is shutting down",
        ),
        (Side::Client, true) => (
            "4", // DEADLINE_EXCEEDED
            "the call's deadline passed before its response was complete",
        ),
        (Side::Client, false) => (
            "1", // CANCELLED
            "the call's context was cancelled before its response was complete",
        ),
    }
}

/// The status of a call ended by `cause`, as the headers (or trailers) that carry it.
fn status_headers(side: Side, cause: &Cause) -> HeaderMap {
    let (code, message) = status(side, cause);
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert("grpc-status", HeaderValue::from_static(code));
    headers.insert("grpc-message", HeaderValue::from_static(message));
    headers
}

/// A "trailers-only" response: the status in the headers and no body, as gRPC answers a call it
/// ends before any message. [`RequestEnded`] is in its extensions.
fn status_response<B>(side: Side, cause: Cause) -> http::Response<ContextBody<B>> {
    let mut response = http::Response::new(ContextBody {
        inner: None,
        watch: None,
    });
    *response.headers_mut() = status_headers(side, &cause);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response.extensions_mut().insert(RequestEnded::new(cause));
    response
}

/// `response`, its body watched by `ends`, unless its head already carries the call's status (a
/// trailers-only response: nothing follows it).
fn watched<B>(
    response: http::Response<B>,
    ends: Ends,
    side: Side,
) -> http::Response<ContextBody<B>> {
    let done = response.headers().contains_key("grpc-status");
    response.map(|body| ContextBody {
        inner: Some(body),
        watch: Some(Watch {
            ended: (!done).then(|| {
                let ctx = ends.context().clone();
                SyncWrapper::new(Box::pin(async move { ctx.cancelled().await }) as Pin<Box<_>>)
            }),
            ends,
            side,
        }),
    })
}

pin_project! {
    /// A gRPC response's body under its call's [`Context`], from the layers' gRPC mode
    /// ([`ContextLayer::grpc`](super::ContextLayer::grpc),
    /// [`ClientContextLayer::grpc`](super::ClientContextLayer::grpc)).
    ///
    /// It passes the response's frames on until the context ends; then it sends no more of them and
    /// ends the stream with trailers carrying the status (`DEADLINE_EXCEEDED`, or `UNAVAILABLE` on
    /// a server whose service is shutting down, `CANCELLED` on a client whose caller cancelled), and
    /// drops the inner body. Trailers that say `OK` after the context ended are replaced the same
    /// way. On a server, the request's context ends when this body ends or is dropped.
    pub struct ContextBody<B> {
        #[pin]
        inner: Option<B>,
        watch: Option<Watch>,
    }
}

/// What a [`ContextBody`] watches.
struct Watch {
    /// Ends the server's request context when the body is done with.
    ends: Ends,
    /// Until the context ends; `None` once the response's status has been sent. (Only polled,
    /// through `&mut`: the body is `Sync` when its inner body is.)
    ended: Option<SyncWrapper<Pin<Box<dyn Future<Output = Cause> + Send>>>>,
    side: Side,
}

impl<B> ContextBody<B> {
    /// The inner body, unless the context ended it (or it was a status without a body).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::tower::ContextBody;
    /// # fn body(body: ContextBody<String>) -> Option<String> {
    /// body.into_inner()
    /// # }
    /// ```
    pub fn into_inner(self) -> Option<B> {
        self.inner
    }
}

impl<B: Body> Body for ContextBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        if let Some(watch) = this.watch.as_mut()
            && let Some(ended) = watch.ended.as_mut()
            && let Poll::Ready(cause) = ended.get_mut().as_mut().poll(cx)
        {
            // The context ended first: the rest of the response is not sent, and the stream ends
            // with why. (On a server the context has ended already; the watch's end is a no-op.)
            let side = watch.side;
            this.inner.set(None);
            *this.watch = None;
            return Poll::Ready(Some(Ok(Frame::trailers(status_headers(side, &cause)))));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        match inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let Some(watch) = this.watch.as_mut().filter(|watch| watch.ended.is_some()) else {
                    return Poll::Ready(Some(Ok(frame)));
                };
                match frame.into_trailers() {
                    Ok(mut trailers) => {
                        // The call's status. An `OK` sent after the context ended comes from a
                        // producer that stopped because it ended: the stream is not whole.
                        let ok = trailers.get("grpc-status").is_none_or(|code| code == "0");
                        if ok && let Some(cause) = watch.ends.context().cause() {
                            trailers.extend(status_headers(watch.side, &cause));
                        }
                        watch.ended = None;
                        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                    }
                    Err(frame) => Poll::Ready(Some(Ok(frame))),
                }
            }
            Poll::Ready(None) => {
                this.inner.set(None);
                *this.watch = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            // The context may end it sooner: no exact size.
            Some(inner) => {
                let mut hint = SizeHint::new();
                if let Some(upper) = inner.size_hint().upper() {
                    hint.set_upper(upper);
                }
                hint
            }
            None => SizeHint::with_exact(0),
        }
    }
}

impl<B> fmt::Debug for ContextBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextBody")
            .field("ended", &self.inner.is_none())
            .field("watching", &self.watch.as_ref().map(|w| w.ends.context()))
            .finish()
    }
}

impl<S, B, RB> Service<http::Request<B>> for WithContext<S, Grpc>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    RB: Send + 'static,
{
    type Response = http::Response<ContextBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let ctx = self.layer.request_context(Some(req.headers()));
        if let Some(cause) = ctx.cause() {
            // Not taking requests (or one out of time on arrival): the handler is not called.
            return Box::pin(std::future::ready(Ok(status_response(Side::Server, cause))));
        }
        req.extensions_mut().insert(ctx.clone());
        let response = self.inner.call(req);
        let ends = Ends::with_response(ctx);
        Box::pin(async move {
            match until_ended(response, ends.context()).await {
                Ok(Ok(response)) => Ok(watched(response, ends, Side::Server)),
                Ok(Err(err)) => Err(err.into()),
                Err(cause) => Ok(status_response(Side::Server, cause)),
            }
        })
    }
}

impl<S, B, RB> Service<http::Request<B>> for ClientContext<S, Grpc>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    RB: Send + 'static,
{
    type Response = http::Response<ContextBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let Some(ctx) = req.extensions().get::<Context>().cloned() else {
            let response = self.inner.call(req);
            return Box::pin(async move {
                let response = response.await.map_err(Into::into)?;
                Ok(response.map(|body| ContextBody {
                    inner: Some(body),
                    watch: None,
                }))
            });
        };
        if let Some(cause) = ctx.cause() {
            return Box::pin(std::future::ready(Ok(status_response(Side::Client, cause))));
        }
        if let Some(left) = ctx.remaining() {
            let sent = req
                .headers()
                .get("grpc-timeout")
                .and_then(|value| parse_timeout(value.as_bytes()));
            if sent.is_none_or(|sent| left < sent) {
                req.headers_mut()
                    .insert("grpc-timeout", encode_timeout(left));
            }
        }
        let response = self.inner.call(req);
        let ends = Ends::watching(ctx);
        Box::pin(async move {
            match until_ended(response, ends.context()).await {
                Ok(Ok(response)) => Ok(watched(response, ends, Side::Client)),
                Ok(Err(err)) => Err(err.into()),
                Err(cause) => Ok(status_response(Side::Client, cause)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{encode_timeout, parse_timeout};
    use std::time::Duration;

    #[test]
    fn grpc_timeouts_are_written_in_the_smallest_unit_that_holds_them_rounded_up() {
        let encode = |d: Duration| encode_timeout(d).to_str().unwrap().to_owned();
        assert_eq!(encode(Duration::ZERO), "0n");
        assert_eq!(encode(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(encode(Duration::from_nanos(100_000_000)), "100000u");
        assert_eq!(
            encode(Duration::from_nanos(100_000_001)),
            "100001u",
            "rounded up"
        );
        assert_eq!(encode(Duration::from_millis(1500)), "1500000u");
        assert_eq!(encode(Duration::from_secs(100)), "100000m");
        assert_eq!(encode(Duration::from_secs(3 * 86_400)), "259200S");
        assert_eq!(encode(Duration::from_secs(100_000_000)), "1666667M");
        assert_eq!(
            encode(Duration::MAX),
            "99999999H",
            "the most the protocol can say"
        );
        for d in [1, 999, 1_000_001, 123_456_789_012, 7_200_000_000_001] {
            let d = Duration::from_nanos(d);
            let back = parse_timeout(encode_timeout(d).as_bytes()).unwrap();
            // Under one unit more, and a unit is chosen only once the one below it (a thousandth
            // or a sixtieth of it) needs more than eight digits.
            assert!(
                back >= d && back - d < d / 100_000 + Duration::from_nanos(1),
                "{d:?}: {back:?}"
            );
        }
    }

    #[test]
    fn grpc_timeouts_parse_as_the_protocol_writes_them() {
        let parse = |s: &str| parse_timeout(s.as_bytes());
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("0n"), Some(Duration::ZERO));
        assert_eq!(
            parse("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600)),
            "the longest the protocol can say"
        );
        for bad in [
            "",
            "m",
            "250",
            "250ms",
            "-1S",
            "+1S",
            "1.5S",
            "1 S",
            "123456789n",
            "1h",
            "1s",
            "١S",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
