//! tower middleware over a [`Limiter`](crate::Limiter) and a [`KeyedLimiter`](crate::KeyedLimiter)
//! (feature `tower`).
//!
//! [`RateLimitLayer`] puts a limiter in front of a tower `Service` of HTTP or gRPC requests
//! (`http::Request<B>`, as axum, tonic and hyper serve them): every request takes one unit. Unlike
//! tower's own `RateLimit`, the service is `Clone` (clones share the limiter), and waiting callers
//! are served in the order they called with one wake-up per grant (no herd). A request waits for
//! its unit in its response future, not in `poll_ready`: the wait is part of the response, so what
//! bounds the response bounds the wait. With a
//! [`ContextLayer`](bounded_cancel::tower::ContextLayer) before this layer in the `ServiceBuilder`,
//! each request carries its `Context`, and the wait follows
//! [`Limiter::acquire_with`](crate::Limiter::acquire_with)'s rules: a request whose deadline comes
//! before its unit would is refused at once with
//! [`AcquireError::DeadlineTooSoon`](crate::AcquireError::DeadlineTooSoon) and takes nothing (an
//! HTTP service answers `504`), and one still waiting when the service drains ends then, its place
//! in line (or a unit granted to it and not yet used) given back. tower's `RateLimit` waits in
//! `poll_ready`, before `call`, where no timeout reaches. [`RateLimitLayer::shed`] answers at once
//! instead of waiting: the response future fails with [`RateLimited`], which carries the
//! retry-after an HTTP service turns into `429 Too Many Requests` and a `Retry-After` header.
//!
//! [`KeyedRateLimitLayer`] does the same per key (a tenant, a user, a client address), with the key
//! taken from each request by a closure.
//!
//! For a gRPC server (tonic's), [`RateLimitLayer::grpc`] and [`KeyedRateLimitLayer::grpc`] answer a
//! refused request with the status gRPC clients expect, `RESOURCE_EXHAUSTED` with the retry-after in a
//! `grpc-retry-pushback-ms` header, instead of the error [`RateLimited`] (and a deadline that comes
//! before the unit with `DEADLINE_EXCEEDED`, a request whose context ended otherwise with
//! `UNAVAILABLE`): a gRPC server that gets an error from its middleware resets the stream, which
//! clients read as `INTERNAL`.
//!
//! # Examples
//!
//! ```
//! use bounded_ratelimit::tower::RateLimitLayer;
//! use bounded_ratelimit::{Limiter, Quota};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limiter = Limiter::new(Quota::per_second(100).burst(10)).unwrap();
//! let mut svc = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(limiter))
//!     .service_fn(|req: http::Request<&'static str>| async move {
//!         Ok::<_, std::convert::Infallible>(req.body().len())
//!     });
//! let len = svc.ready().await.unwrap().call(http::Request::new("hello")).await.unwrap();
//! assert_eq!(len, 5);
//! # }
//! ```

use std::error::Error;

pub use bounded_cancel::tower::{Grpc, Http};

mod future;
mod keyed_layer;
mod keyed_service;
mod layer;
mod rate_limited;
mod service;

pub use future::{KeyedResponseFuture, ResponseFuture};
pub use keyed_layer::KeyedRateLimitLayer;
pub use keyed_service::KeyedRateLimit;
pub use layer::RateLimitLayer;
pub use rate_limited::RateLimited;
pub use service::RateLimit;

/// The error type of the rate-limit services: the inner service's error, or [`RateLimited`].
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;
