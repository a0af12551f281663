//! tower middleware over a fleet limiter (feature `tower`): one limit for every replica of an HTTP or
//! gRPC service, in its `ServiceBuilder`.
//!
//! [`RedisRateLimitLayer`] takes one unit of a [`RedisLimiter`] per request, and
//! [`RedisKeyedRateLimitLayer`] one unit of a [`RedisKeyedLimiter`]'s bucket for the request's key (a
//! tenant, a user, a client address), taken from the request by a closure. Either waits for the unit
//! ([`new`](RedisRateLimitLayer::new): grants in the order Redis took the requests, across the fleet,
//! one sleep each) or refuses a request over the rate at once ([`shed`](RedisRateLimitLayer::shed):
//! one round trip, and [`RateLimited`] with the time after which the same request would be let
//! through).
//!
//! A grant needs a round trip to Redis, so the unit is taken in the response future, and the inner
//! service is cloned into each response future, as tower's `Buffer` and axum's router do. A waiting
//! request that carries a [`Context`] in its extensions (from `bounded_cancel::tower::ContextLayer`)
//! waits under it: a grant that would come after the request's deadline is refused at once, without
//! taking anything, instead of sleeping until the deadline first, and a wait its context ends gives
//! its place back.
//!
//! What a refused request gets:
//!
//! | why | plain HTTP (the default): the error | gRPC mode ([`grpc`](RedisRateLimitLayer::grpc)): the status |
//! | --- | --- | --- |
//! | over the rate (shedding) | [`RateLimited`], with `retry_after()` | `RESOURCE_EXHAUSTED`, with `grpc-retry-pushback-ms` |
//! | the grant would come after the request's deadline, or the deadline passed | [`AcquireError`] (`is_deadline()`) | `DEADLINE_EXCEEDED` |
//! | the request's context ended otherwise (the service is draining) | [`AcquireError::Cancelled`] | `UNAVAILABLE` |
//! | Redis could not be asked, under [`OnUnavailable::Refuse`](crate::OnUnavailable) | [`Unavailable`] (shedding), [`AcquireError::Unavailable`] (waiting) | `UNAVAILABLE` |
//!
//! In gRPC mode the refusal is a response, not an error: a gRPC server (tonic's) that gets an error
//! from its middleware resets the stream, which clients read as `INTERNAL`.
//!
//! # Examples
//!
//! ```no_run
//! use bounded_ratelimit::Quota;
//! use bounded_ratelimit_redis::tower::{RateLimited, RedisKeyedRateLimitLayer, RedisRateLimitLayer};
//! use bounded_ratelimit_redis::{RedisKeyedLimiter, RedisLimiter};
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = redis::Client::open("redis://127.0.0.1/")?.get_connection_manager().await?;
//! let partner = RedisLimiter::new(conn.clone(), "partner-api", Quota::per_second(50))?;
//! let tenants = RedisKeyedLimiter::new(conn, "tenant", Quota::per_second(5))?;
//! let svc = ServiceBuilder::new()
//!     // Each tenant's requests over its rate are refused at once...
//!     .layer(RedisKeyedRateLimitLayer::shed(tenants, |req: &http::Request<()>| {
//!         req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or("anonymous").to_owned()
//!     }))
//!     // ...and the rest wait their turn for the partner's fleet-wide limit.
//!     .layer(RedisRateLimitLayer::new(partner))
//!     .service_fn(|_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>("sent") });
//! # let _ = svc;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;

use bounded_cancel::Context;
use http::HeaderValue;
use tower_service::Service;

pub use bounded_cancel::tower::{Grpc, Http};
pub use bounded_ratelimit::tower::{BoxError, RateLimited};

use crate::{AcquireError, RedisKeyedLimiter, RedisLimiter, TryAcquireError, Unavailable};

/// The response future of the fleet limiter's services.
pub type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

mod keyed_layer;
mod keyed_service;
mod layer;
mod service;

pub use keyed_layer::RedisKeyedRateLimitLayer;
pub use keyed_service::RedisKeyedRateLimit;
pub use layer::RedisRateLimitLayer;
pub use service::RedisRateLimit;

/// Where a request's unit comes from.
enum Bucket {
    One(RedisLimiter),
    Keyed(RedisKeyedLimiter, String),
}

/// Why a request was not let through.
enum Refusal {
    /// Over the rate, when shedding.
    Limited(RateLimited),
    /// Redis could not be asked, under the refuse policy, when shedding.
    Unavailable(Unavailable),
    /// A wait that did not end in a grant.
    Wait(AcquireError),
}

/// The inner service's answer to `req` once the request has its unit, or why it has none.
async fn admitted<S, B>(
    mut inner: S,
    req: http::Request<B>,
    bucket: Bucket,
    shed: bool,
) -> Result<Result<S::Response, BoxError>, Refusal>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    let ctx = req.extensions().get::<Context>().cloned();
    if shed {
        let taken = match &bucket {
            Bucket::One(limiter) => limiter.try_acquire().await,
            Bucket::Keyed(limiter, key) => limiter.try_acquire(key).await,
        };
        taken.map_err(|err| match err {
            TryAcquireError::Unavailable(err) => Refusal::Unavailable(err),
            other => Refusal::Limited(RateLimited::new(other.retry_after())),
        })?;
    } else {
        let granted = match (&bucket, &ctx) {
            (Bucket::One(limiter), Some(ctx)) => limiter.acquire_with(ctx).await,
            (Bucket::One(limiter), None) => limiter.acquire().await,
            (Bucket::Keyed(limiter, key), Some(ctx)) => limiter.acquire_with(ctx, key).await,
            (Bucket::Keyed(limiter, key), None) => limiter.acquire(key).await,
        };
        granted.map_err(Refusal::Wait)?;
    }
    // Made ready only now, so a request waiting for its unit holds no readiness of the inner service
    // (a concurrency limit's permit, say) that the requests already granted need.
    let answered = async {
        std::future::poll_fn(|cx| inner.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        inner.call(req).await.map_err(Into::into)
    };
    Ok(answered.await)
}

impl Refusal {
    /// The refusal as the services' error.
    fn into_error(self) -> BoxError {
        match self {
            Refusal::Limited(err) => Box::new(err),
            Refusal::Unavailable(err) => Box::new(err),
            Refusal::Wait(err) => Box::new(err),
        }
    }

    /// The refusal as a gRPC "trailers-only" response: the status in the headers, no body.
    fn into_grpc<B: Default>(self) -> http::Response<B> {
        let (code, message) = match &self {
            Refusal::Limited(limited) => return limited.grpc_response(),
            Refusal::Unavailable(_) | Refusal::Wait(AcquireError::Unavailable(_)) => (
                "14", // UNAVAILABLE
                "the fleet rate limit could not ask Redis and refuses meanwhile",
            ),
            Refusal::Wait(err) if err.is_deadline() => (
                "4", // DEADLINE_EXCEEDED
                "the fleet rate limit would grant this request only after its deadline",
            ),
            Refusal::Wait(AcquireError::InsufficientCapacity(_)) => (
                "8", // RESOURCE_EXHAUSTED
                "the request needs more units than the fleet rate limit's burst",
            ),
            Refusal::Wait(_) => (
                "14",
                "the request's context ended while it waited for the fleet rate limit: the service is shutting down",
            ),
        };
        let mut response = http::Response::new(B::default());
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from_static(code));
        headers.insert("grpc-message", HeaderValue::from_static(message));
        response
    }
}
