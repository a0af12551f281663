//! The patterns working together: a small order service that runs, then drains and reports.
//!
//! ```text
//! cargo run -p bounded --example tour             # runs 3 s, or until Ctrl-C, then drains
//! cargo run -p bounded --example tour -- --for 10 # runs 10 s
//! ```
//!
//! - `Shutdown` owns the service's tasks and ends them on Ctrl-C, SIGTERM or the timer.
//! - Each order gets a `Context` with a 150 ms deadline.
//! - A `Group` (`map_with`, limit 3) prices the order's items in parallel; the first failure, or the
//!   deadline, cancels the rest. The pricing backend allows 25 calls a second: a `Limiter` queues the
//!   calls in order, and a call that could not be granted before the order's deadline fails at once.
//! - A `Pool` (2 workers, queue 4) sends the confirmations; when it is full, the order loop waits
//!   (backpressure) instead of piling up work, and gives up when the order's deadline passes.
//! - Every priced order also goes to the ledger: a `Pipeline` (tax on 2 workers, then the ledger write in
//!   order) fed by a bounded channel; it drains when the orders task ends and prints its stage metrics.
//! - On the way out the orders task stops first, the ledger drains, then the mailer drains what it
//!   accepted, within 2 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded::group::MapError;
use bounded::pool::{JobFailure, SubmitError};
use bounded::prelude::*;
use bounded::ratelimit::AcquireError;
use tokio::sync::mpsc;
use tokio::time::sleep;

#[derive(Default)]
struct Stats {
    priced: AtomicU64,
    too_slow: AtomicU64,
    failed: AtomicU64,
    rate_limited: AtomicU64,
    no_room: AtomicU64,
}

/// Why pricing an item failed.
#[derive(Debug)]
enum PriceError {
    /// The backend's rate limit would have kept the call past the order's deadline.
    RateLimited(AcquireError),
    Failed(String),
}

impl std::fmt::Display for PriceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PriceError::RateLimited(err) => err.fmt(f),
            PriceError::Failed(err) => f.write_str(err),
        }
    }
}

/// Prices one item through the rate-limited backend; now and then it is slow (past any deadline) or down.
async fn price(
    ctx: Context,
    backend: Limiter,
    (order, item): (u64, u64),
) -> Result<u64, PriceError> {
    backend
        .acquire_with(&ctx)
        .await
        .map_err(PriceError::RateLimited)?;
    let delay = if (order * 3 + item) % 29 == 0 {
        400
    } else {
        20
    };
    ctx.run(sleep(Duration::from_millis(delay)))
        .await
        .map_err(|cause| PriceError::Failed(cause.to_string()))?;
    if (order * 7 + item) % 31 == 0 {
        return Err(PriceError::Failed(format!(
            "pricing backend down for item {item}"
        )));
    }
    Ok(100 + item)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let run_for = parse_run_for();
    let mut shutdown = Shutdown::new();
    shutdown.on_signals()?;
    let stats = Arc::new(Stats::default());

    let mailer = Arc::new(
        Pool::builder()
            .workers(2)
            .queue(4)
            .name("mailer")
            .error_hook(|failure: JobFailure| println!("  mailer: {failure}"))
            .build()
            .expect("2 workers, queue 4"),
    );

    // The ledger: a two-stage pipeline fed by the orders task through a bounded channel. Its context is
    // its own, not the shutdown's, so that it drains everything sent before the orders task ended.
    let (ledger, mut priced) = mpsc::channel::<(u64, u64)>(8);
    shutdown.spawn("ledger", move |_ctx| async move {
        let orders = futures_util::stream::poll_fn(move |cx| priced.poll_recv(cx));
        let mut out = Pipeline::new(&Context::new())
            .source_stream(orders)
            .map(2, |_ctx, (order, cents): (u64, u64)| async move {
                sleep(Duration::from_millis(5)).await; // the tax service
                Ok::<_, String>((order, cents * 120 / 100))
            })
            .named("tax")
            .map_ordered(1, |_ctx, entry| async move {
                sleep(Duration::from_millis(1)).await; // the ledger write
                Ok(entry)
            })
            .named("ledger write")
            .output();
        let (mut entries, mut total) = (0, 0);
        while let Some(entry) = futures_util::StreamExt::next(&mut out).await {
            let (_order, cents) = entry.map_err(|e| e.to_string())?;
            entries += 1;
            total += cents;
        }
        println!("ledger: {entries} orders, {total} cents with tax");
        out.metrics().iter().for_each(|stage| println!("  {stage}"));
        Ok::<_, String>(())
    });

    let backend = Limiter::new(Quota::per_second(25).burst(2)).expect("25 a second, burst 2");
    let (pool, st, pricing) = (mailer.clone(), stats.clone(), backend.clone());
    shutdown.spawn("orders", move |ctx| async move {
        let mut order = 0;
        while ctx.run(sleep(Duration::from_millis(40))).await.is_ok() {
            order += 1;
            let request = ctx.with_timeout(Duration::from_millis(150));
            let items = (0..4).map(move |item| (order, item));
            let backend = pricing.clone();
            let priced = bounded::group::map_with(&request, items, 3, move |ctx, item| {
                price(ctx, backend.clone(), item)
            });
            let total = match priced.await {
                Ok(prices) if !request.is_cancelled() => prices.iter().sum::<u64>(),
                Err(MapError::Failed(PriceError::RateLimited(_))) => {
                    st.rate_limited.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Ok(_) | Err(_) if request.cause().is_some_and(|c| c.is_deadline_exceeded()) => {
                    st.too_slow.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                _ => {
                    st.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            st.priced.fetch_add(1, Ordering::Relaxed);
            if ledger.send((order, total)).await.is_err() {
                return Err("the ledger stopped early".to_owned());
            }
            let confirm = move |_ctx: Context| async move {
                sleep(Duration::from_millis(300)).await; // slower than orders arrive: the queue fills
                if order % 11 == 0 {
                    return Err(format!("order {order} ({total} cents): mailbox full"));
                }
                Ok(())
            };
            match pool.submit_with(&request, confirm).await {
                Ok(handle) => handle.detach(), // failures go to the error hook
                Err(SubmitError::Cancelled { .. }) => {
                    st.no_room.fetch_add(1, Ordering::Relaxed);
                }
                Err(other) => return Err(other.to_string()),
            }
        }
        Ok(())
    });

    println!("taking orders for {run_for} s (Ctrl-C to stop sooner)");
    let _ = shutdown
        .context()
        .run(sleep(Duration::from_secs(run_for)))
        .await;
    shutdown.trigger();

    let report = shutdown.wait(Duration::from_secs(1)).await;
    let mail = mailer.shutdown_timeout(Duration::from_secs(2)).await;
    println!("\ntasks:\n{report}");
    println!(
        "orders: {} priced, {} past their deadline, {} refused by the rate limit, {} failed pricing, \
         {} found no room in the mailer",
        stats.priced.load(Ordering::Relaxed),
        stats.too_slow.load(Ordering::Relaxed),
        stats.rate_limited.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.no_room.load(Ordering::Relaxed),
    );
    let calls = backend.metrics();
    println!(
        "pricing backend ({}): {} calls granted, {:?} spent waiting in line, {} refused",
        backend.quota(),
        calls.granted,
        calls.total_wait,
        calls.rejected
    );
    println!("mailer: {mail}");
    Ok(())
}

fn parse_run_for() -> u64 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => 3,
        [flag, secs] if flag == "--for" => secs.parse().unwrap_or_else(|_| {
            eprintln!("--for takes whole seconds, got {secs:?}");
            std::process::exit(2)
        }),
        _ => {
            eprintln!("usage: tour [--for SECONDS]");
            std::process::exit(2)
        }
    }
}
