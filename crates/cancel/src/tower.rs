//! tower middleware that runs each request under a [`Context`] (feature `tower`).
//!
//! [`ContextLayer`] gives every HTTP request (`http::Request<B>`, as axum, hyper and tonic use) its own
//! context: a child of the service's context (a [`Shutdown`](crate::Shutdown)'s, typically) with the
//! request's own deadline (the layer's [`timeout`](ContextLayer::timeout), or, for gRPC, the client's
//! own, whichever comes first). The context is put in the request's extensions, so a handler takes
//! it (`Extension<Context>` in axum) and passes it to everything it waits on. In plain HTTP mode, the
//! response future ends when the context does, with [`RequestEnded`] carrying the cause: the
//! deadline passed, or the service began to drain. The handler's future is
//! dropped then, so its work stops at its next await; a handler that answers as its context ends
//! (with a partial result, say) has its answer sent, since the response wins a tie. A request that
//! arrives after the service's context ended is answered with `RequestEnded` without calling the
//! handler. And the context ends when the response is ready, or when the server drops the response
//! future unfinished (its client closed the connection), as a Go `http.Server` request's does, so
//! work the handler left running under it stops too. "Ready" is the response's head: a streaming body
//! is sent after it, so in plain HTTP mode a body that must keep working should not wait on the
//! request's context (gRPC mode keeps the context for the whole response).
//!
//! [`ClientContextLayer`] is the client's side: a request sent with a context in its extensions is given
//! up when that context ends, and, for gRPC, carries the time it has left to the server.
//!
//! Both layers speak plain HTTP by default ([`Http`]): a request whose context ends before its response
//! ends with the error [`RequestEnded`]. Their gRPC mode ([`ContextLayer::grpc`],
//! [`ClientContextLayer::grpc`]) speaks as Go's gRPC does: the deadline travels in `grpc-timeout`, an
//! ended call is answered with a gRPC status (`DEADLINE_EXCEEDED`, `UNAVAILABLE`, `CANCELLED`) that
//! clients read as such rather than as a broken stream, and a request's context lasts until its whole
//! response, a stream included, has been sent.
//!
//! # Examples
//!
//! ```
//! use bounded_cancel::tower::{ContextLayer, RequestEnded};
//! use bounded_cancel::{Context, Shutdown};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let shutdown = Shutdown::new();
//! let svc = ServiceBuilder::new()
//!     .layer(ContextLayer::new(shutdown.context()).timeout(Duration::from_millis(100)))
//!     .service_fn(|req: http::Request<()>| async move {
//!         let ctx = req.extensions().get::<Context>().expect("set by the layer").clone();
//!         if req.uri().path() == "/partial" {
//!             // A handler that watches its context can still answer when the deadline comes.
//!             let done = ctx.run(tokio::time::sleep(Duration::from_secs(5))).await;
//!             return Ok::<_, std::convert::Infallible>(if done.is_ok() { "all" } else { "partial" });
//!         }
//!         tokio::time::sleep(Duration::from_secs(5)).await; // one that does not is cut short
//!         Ok("all")
//!     });
//! let err = svc.clone().oneshot(http::Request::new(())).await.unwrap_err();
//! assert!(err.downcast_ref::<RequestEnded>().unwrap().is_deadline());
//! let partial = http::Request::builder().uri("/partial").body(()).unwrap();
//! assert_eq!(svc.oneshot(partial).await.unwrap(), "partial");
//! # }
//! ```

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::{Cause, Context};

/// The error type of [`WithContext`]: the inner service's error, or [`RequestEnded`].
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// The response future of [`WithContext`]: the inner response, or [`RequestEnded`].
pub type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

mod client_layer;
mod client_service;
mod grpc;
mod layer;
mod request_ended;
mod service;

pub use client_layer::ClientContextLayer;
pub use client_service::ClientContext;
pub use grpc::ContextBody;
pub use layer::ContextLayer;
pub use request_ended::RequestEnded;
pub use service::WithContext;

/// Plain HTTP, the protocol `bounded`'s tower layers speak by default: a request a layer ends or
/// refuses ends with an error ([`RequestEnded`] here, `RateLimited` from the rate-limit layers), for
/// the service to answer as it sees fit (`504`, `503`, `429`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Http;

/// gRPC, from each layer's `grpc()` ([`ContextLayer::grpc`], [`ClientContextLayer::grpc`], and the
/// rate-limit layers'): a call a layer ends or refuses is answered with the gRPC status clients read
/// as such (`DEADLINE_EXCEEDED`, `UNAVAILABLE`, `CANCELLED`, `RESOURCE_EXHAUSTED`) rather than an
/// error, which a gRPC server would turn into a reset stream. The context layers also carry
/// deadlines in the `grpc-timeout` header and keep a request's context for its whole response, a
/// stream included.
#[derive(Clone, Copy, Debug, Default)]
pub struct Grpc;

/// The response, or the cause if `ctx` ends first; the response wins a tie.
async fn until_ended<F: Future>(response: F, ctx: &Context) -> Result<F::Output, Cause> {
    tokio::select! {
        biased;
        response = response => Ok(response),
        cause = ctx.cancelled() => Err(cause),
    }
}

/// A request's context, ended when this is dropped if it is the server's (the client's context is
/// the caller's, and only watched).
struct Ends {
    ctx: Context,
    server: bool,
}

impl Ends {
    /// The server's context of a request: it ends with its response.
    fn with_response(ctx: Context) -> Self {
        Ends { ctx, server: true }
    }

    /// A caller's context: watched, never ended here.
    fn watching(ctx: Context) -> Self {
        Ends { ctx, server: false }
    }

    fn context(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for Ends {
    fn drop(&mut self) {
        if self.server {
            self.ctx.cancel();
        }
    }
}

impl fmt::Debug for Ends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ends")
            .field("ctx", &self.ctx)
            .field("server", &self.server)
            .finish()
    }
}
