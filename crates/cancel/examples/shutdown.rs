//! A small service that drains on Ctrl-C (or SIGTERM) and reports how each task ended.
//!
//! ```text
//! cargo run -p bounded-cancel --example shutdown            # runs until Ctrl-C
//! cargo run -p bounded-cancel --example shutdown -- --for 3 # triggers itself after 3 s
//! ```
//!
//! An acceptor hands requests to three handlers over a bounded channel. On the trigger the acceptor stops
//! taking requests, the handlers finish the request in hand and the queued ones, the stats task flushes,
//! and a legacy task that never looks at its context is aborted when the grace period runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded_cancel::Shutdown;
use tokio::sync::{Mutex, mpsc};
use tokio::time::sleep;

const GRACE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let run_for = parse_run_for();
    let mut shutdown = Shutdown::new();
    shutdown.on_signals()?;

    let (requests, inbox) = mpsc::channel::<u64>(8);
    let inbox = Arc::new(Mutex::new(inbox));
    let served = Arc::new(AtomicU64::new(0));

    shutdown.spawn("acceptor", |ctx| async move {
        let mut id = 0;
        // Stop accepting on the trigger; dropping the sender lets the handlers drain and end.
        while ctx.run(sleep(Duration::from_millis(50))).await.is_ok() {
            id += 1;
            if requests.send(id).await.is_err() {
                break;
            }
        }
        println!("acceptor: stopped after {id} requests");
        Ok::<_, String>(())
    });

    for n in 0..3 {
        let inbox = inbox.clone();
        let served = served.clone();
        shutdown.spawn(format!("handler {n}"), move |_ctx| async move {
            // Handlers finish everything already accepted: they stop when the channel closes.
            loop {
                let next = inbox.lock().await.recv().await;
                let Some(_request) = next else { break };
                sleep(Duration::from_millis(120)).await;
                served.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, String>(())
        });
    }

    let stats = served.clone();
    shutdown.spawn("stats flusher", |ctx| async move {
        while ctx.run(sleep(Duration::from_secs(1))).await.is_ok() {
            println!("stats: {} served", stats.load(Ordering::Relaxed));
        }
        Err(format!(
            "final flush refused by the collector ({} served)",
            stats.load(Ordering::Relaxed)
        ))
    });

    shutdown.spawn("legacy poller", |_ctx| async {
        // Never checks its context: the grace period is what ends it.
        loop {
            sleep(Duration::from_millis(300)).await;
        }
        #[allow(unreachable_code)]
        Ok::<_, String>(())
    });

    match run_for {
        Some(secs) => {
            println!("serving for {secs} s (or until Ctrl-C)");
            let trigger = shutdown.context().clone();
            tokio::spawn(async move {
                sleep(Duration::from_secs(secs)).await;
                trigger.cancel();
            });
        }
        None => println!("serving; press Ctrl-C to drain and stop"),
    }

    shutdown.context().cancelled().await;
    println!(
        "shutdown triggered ({}); draining for up to {GRACE:?}",
        cause_text(&shutdown)
    );
    let report = shutdown.wait(GRACE).await;
    println!(
        "served {} requests\n{report}",
        served.load(Ordering::Relaxed)
    );
    Ok(())
}

fn cause_text(shutdown: &Shutdown) -> String {
    shutdown
        .context()
        .cause()
        .map(|c| c.to_string())
        .unwrap_or_default()
}

fn parse_run_for() -> Option<u64> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => None,
        [flag, secs] if flag == "--for" => match secs.parse() {
            Ok(secs) => Some(secs),
            Err(_) => exit_usage(&format!("--for takes whole seconds, got {secs:?}")),
        },
        _ => exit_usage("unexpected arguments"),
    }
}

fn exit_usage(why: &str) -> ! {
    eprintln!("{why}\nusage: shutdown [--for SECONDS]");
    std::process::exit(2)
}
