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
//!   deadline, cancels the rest.
//! - A `Pool` (2 workers, queue 4) sends the confirmations; when it is full, the order loop waits
//!   (backpressure) instead of piling up work, and gives up when the order's deadline passes.
//! - On the way out the orders task stops first, then the mailer drains what it accepted, within 2 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded::pool::{JobFailure, SubmitError};
use bounded::prelude::*;
use tokio::time::sleep;

#[derive(Default)]
struct Stats {
    priced: AtomicU64,
    too_slow: AtomicU64,
    failed: AtomicU64,
    no_room: AtomicU64,
}

/// Prices one item; now and then its backend is slow (past any deadline) or down.
async fn price(ctx: Context, (order, item): (u64, u64)) -> Result<u64, String> {
    let delay = if (order * 3 + item) % 29 == 0 {
        400
    } else {
        20
    };
    ctx.run(sleep(Duration::from_millis(delay)))
        .await
        .map_err(|cause| cause.to_string())?;
    if (order * 7 + item) % 31 == 0 {
        return Err(format!("pricing backend down for item {item}"));
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

    let (pool, st) = (mailer.clone(), stats.clone());
    shutdown.spawn("orders", move |ctx| async move {
        let mut order = 0;
        while ctx.run(sleep(Duration::from_millis(40))).await.is_ok() {
            order += 1;
            let request = ctx.with_timeout(Duration::from_millis(150));
            let items = (0..4).map(move |item| (order, item));
            let total = match bounded::group::map_with(&request, items, 3, price).await {
                Ok(prices) if !request.is_cancelled() => prices.iter().sum::<u64>(),
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
        "orders: {} priced, {} past their deadline, {} failed pricing, {} found no room in the mailer",
        stats.priced.load(Ordering::Relaxed),
        stats.too_slow.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.no_room.load(Ordering::Relaxed),
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
