//! The HTTP service of the `service` example: axum with `bounded`'s tower layers, a pool for background
//! work, metrics in Prometheus text, and a drain that reports every request in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bounded::cancel::tower::{ContextLayer, RequestEnded};
use bounded::cancel::{Cause, Context, Shutdown};
use bounded::pool::Pool;
use bounded::ratelimit::tower::{RateLimitLayer, RateLimited};
use bounded::ratelimit::{Limiter, Quota};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceBuilder;

/// What the service is told at start.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Requests a second the service takes, all clients together.
    pub(crate) rate: u32,
    /// Requests at once after a quiet spell.
    pub(crate) burst: u32,
    /// How long one request may take.
    pub(crate) timeout: Duration,
    /// How long requests in flight may go on once the drain begins, before they are told to stop.
    pub(crate) drain: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rate: 20,
            burst: 5,
            timeout: Duration::from_secs(1),
            drain: Duration::from_secs(2),
        }
    }
}

/// A request seen by the service: what it asked for, and how it ended.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) started: Instant,
    pub(crate) status: Option<StatusCode>,
    /// How long it took to answer, or to end without an answer.
    pub(crate) took: Option<Duration>,
}

impl Seen {
    /// The client closed its connection before the answer: the server dropped the request's work.
    pub(crate) fn gone(&self) -> bool {
        self.took.is_some() && self.status.is_none()
    }
}

/// Every request, by number, while it is in flight and after.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    next: AtomicU64,
    seen: Mutex<BTreeMap<u64, Seen>>,
    /// Told each time a request ends: answered, or gone with its connection.
    ended: tokio::sync::Notify,
}

impl Requests {
    /// The requests that have not ended yet: neither answered nor dropped with their connection.
    pub(crate) fn in_flight(&self) -> Vec<(u64, Seen)> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(_, s)| s.took.is_none())
            .map(|(n, s)| (*n, s.clone()))
            .collect()
    }

    /// Request `n` as seen now.
    pub(crate) fn get(&self, n: u64) -> Option<Seen> {
        self.seen.lock().unwrap().get(&n).cloned()
    }
}

/// The service's shared parts.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) shutdown_ctx: Context,
    /// The parent of every request's context: ended by the drain once its time is up.
    pub(crate) requests_ctx: Context,
    pub(crate) limiter: Limiter,
    pub(crate) receipts: Arc<Pool>,
    pub(crate) metrics: PrometheusHandle,
    pub(crate) requests: Arc<Requests>,
    pub(crate) config: Config,
}

impl App {
    /// Builds the limiter and the pool under a Prometheus recorder of the app's own, so that their
    /// metrics land on its `/metrics` page.
    /// The pool is shut down by its owner after the requests' drain, so requests in flight can still
    /// queue their receipts.
    pub(crate) fn new(config: Config, shutdown: &Shutdown) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        let (limiter, receipts) = metrics::with_local_recorder(&recorder, || {
            // Named here, under this recorder: the name registers the limiter's metrics.
            let limiter = Limiter::new(Quota::per_second(config.rate).burst(config.burst))
                .expect("a rate and a burst above 0")
                .named("api");
            let receipts = Pool::builder()
                .name("receipts")
                .workers(4)
                .queue(64)
                .build()
                .expect("4 workers and a queue of 64");
            (limiter, Arc::new(receipts))
        });
        App {
            shutdown_ctx: shutdown.context().clone(),
            requests_ctx: Context::new(),
            limiter,
            receipts,
            metrics,
            requests: Arc::default(),
            config,
        }
    }

    /// The routes: `/work` behind the rate limit and the per-request context, `/metrics` beside them.
    pub(crate) fn router(&self) -> Router {
        let limited = ServiceBuilder::new()
            .layer(HandleErrorLayer::new(answer_error))
            .layer(RateLimitLayer::shed(self.limiter.clone()))
            .layer(ContextLayer::new(&self.requests_ctx).timeout(self.config.timeout));
        Router::new()
            .route("/work", get(work))
            .layer(limited)
            .route("/metrics", get(metrics_page))
            .layer(middleware::from_fn_with_state(self.clone(), track))
            .with_state(self.clone())
    }

    /// The drain of the requests in flight, once the shutdown began: they have `config.drain` to
    /// answer, then their contexts end (they answer 503 at their next await).
    pub(crate) async fn drain(self) {
        let deadline = Instant::now() + self.config.drain;
        loop {
            let ended = self.requests.ended.notified();
            if self.requests.in_flight().is_empty() {
                break;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        self.requests_ctx.cancel();
    }

    /// Serves on `listener` until the shutdown's context ends, then stops taking connections and waits
    /// for those open to finish (the drain sees that every request in flight answers).
    pub(crate) async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let ctx = self.shutdown_ctx.clone();
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                ctx.cancelled().await;
            })
            .await
    }
}

/// One request's work: `?ms=N` milliseconds of downstream calls (10 by default) under the request's
/// context, then a receipt for the pool to send in the background.
async fn work(State(app): State<App>, request: Request) -> Result<&'static str, StatusCode> {
    let ctx = request
        .extensions()
        .get::<Context>()
        .cloned()
        .expect("set by ContextLayer");
    let ms = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
        .and_then(|ms| ms.parse::<u64>().ok())
        .unwrap_or(10)
        .min(60_000);
    tracing::info!(ms, "working");
    match ctx.run(tokio::time::sleep(Duration::from_millis(ms))).await {
        Ok(()) => {}
        Err(Cause::DeadlineExceeded) => return Err(StatusCode::GATEWAY_TIMEOUT),
        Err(_) => return Err(StatusCode::SERVICE_UNAVAILABLE),
    }
    // Background work: queued if there is room, refused (and said so) if not: the queue never grows.
    let queued = app.receipts.try_submit(|_ctx| async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        tracing::info!("receipt sent");
        Ok::<_, String>(())
    });
    match queued {
        Ok(receipt) => drop(receipt), // detached: its failure goes to the pool's error hook
        Err(_) => return Err(StatusCode::SERVICE_UNAVAILABLE),
    }
    Ok("done\n")
}

async fn metrics_page(State(app): State<App>) -> String {
    app.metrics.render()
}

/// Turns the layers' errors into answers: 429 with `Retry-After` when shedding, 504 when the
/// request's deadline passed, 503 while draining.
async fn answer_error(err: tower::BoxError) -> Response {
    if let Some(limited) = err.downcast_ref::<RateLimited>() {
        let mut response = (StatusCode::TOO_MANY_REQUESTS, "rate limited\n").into_response();
        if let Some(secs) = limited.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return response;
    }
    if let Some(ended) = err.downcast_ref::<RequestEnded>() {
        return if ended.is_deadline() {
            (StatusCode::GATEWAY_TIMEOUT, "deadline exceeded\n").into_response()
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
        };
    }
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response()
}

/// Numbers each request, runs it in a `request` span (the pool's jobs and the limiter's waits become its
/// children), and records how it ended for the drain's report.
async fn track(State(app): State<App>, request: Request, next: Next) -> Response {
    let n = app.requests.next.fetch_add(1, Ordering::Relaxed);
    let path = request.uri().to_string();
    app.requests.seen.lock().unwrap().insert(
        n,
        Seen {
            path: path.clone(),
            started: Instant::now(),
            status: None,
            took: None,
        },
    );
    let span = tracing::info_span!("request", n, method = %request.method(), path = %path);
    // A client that closes its connection first makes the server drop this future at its await: the
    // guard then records the request as gone, so that the drain does not wait for it.
    let ending = Ending {
        requests: &app.requests,
        n,
        status: None,
    };
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.in_scope(|| tracing::info!(status = response.status().as_u16(), "answered"));
    ending.answered(response.status());
    response
}

/// Records how request `n` ended when dropped: answered with `status`, or gone without an answer.
struct Ending<'a> {
    requests: &'a Requests,
    n: u64,
    status: Option<StatusCode>,
}

impl Ending<'_> {
    fn answered(mut self, status: StatusCode) {
        self.status = Some(status);
    }
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        if let Some(seen) = self.requests.seen.lock().unwrap().get_mut(&self.n) {
            seen.status = self.status;
            seen.took = Some(seen.started.elapsed());
        }
        self.requests.ended.notify_waiters();
    }
}
