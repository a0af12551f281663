//! A service team's starting point: an axum HTTP service with `bounded` in its tower stack.
//!
//! ```sh
//! cargo run -p bounded --example service                 # on 127.0.0.1:3000
//! cargo run -p bounded --example service -- --port 0     # any free port
//! ```
//!
//! - `GET /work?ms=N` does N ms of downstream work under the request's own context (a child of the
//!   service's shutdown, with a deadline: `--timeout-ms`, 1000 by default), then queues a receipt on a
//!   bounded `Pool` for background sending.
//! - A fair `Limiter` (`--rate`, 20 a second, burst 5) sheds what is over the rate at once: `429` with
//!   `Retry-After`. A request past its deadline answers `504`; during the drain, `503`.
//! - `GET /metrics` is Prometheus text: the limiter's and the pool's counters, gauges and histograms.
//! - Logs and spans go to stdout; a pool job's events carry the request's span.
//! - Ctrl-C drains: the server stops taking connections, requests in flight have `--drain-ms` (2000) to
//!   answer before their contexts end (then they answer 503), and the report lists each of them with how
//!   it ended. A second Ctrl-C aborts.
//!
//! Try it: `curl -i localhost:3000/work?ms=50`, `curl localhost:3000/metrics`, or a burst with
//! `for i in $(seq 30); do curl -s -o /dev/null -w '%{http_code}\n' localhost:3000/work & done`.

mod app;

use std::time::Duration;

use app::{App, Config};
use bounded::cancel::Shutdown;
use tokio::net::TcpListener;

const USAGE: &str = "\
usage: cargo run -p bounded --example service -- [--port N] [--rate N] [--burst N] [--timeout-ms N]

  --port N         port on 127.0.0.1 (default 3000; 0 picks a free one)
  --rate N         requests a second, all clients together (default 20)
  --burst N        requests at once after a quiet spell (default 5)
  --timeout-ms N   each request's deadline (default 1000)
  --drain-ms N     how long requests in flight may go on after Ctrl-C (default 2000)";

fn parse() -> Result<(u16, Config), String> {
    let (mut port, mut config) = (3000u16, Config::default());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} takes a whole number, not `{value}`"))
        };
        match flag.as_str() {
            "--port" => {
                port = u16::try_from(number()?).map_err(|_| "--port takes 0 to 65535".to_owned())?
            }
            "--rate" => config.rate = u32::try_from(number()?).unwrap_or(u32::MAX),
            "--burst" => config.burst = u32::try_from(number()?).unwrap_or(u32::MAX),
            "--timeout-ms" => config.timeout = Duration::from_millis(number()?),
            "--drain-ms" => config.drain = Duration::from_millis(number()?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((port, config))
}

/// The shutdown's grace: the requests' drain plus time to answer.
fn config_grace() -> Duration {
    Duration::from_secs(10)
}

#[tokio::main]
async fn main() {
    let (port, config) = match parse() {
        Ok(parsed) => parsed,
        Err(err) if err.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(err) => {
            eprintln!("{err}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    // Said in words (a port already taken, say), not as a debug dump.
    if let Err(err) = run(port, config).await {
        eprintln!("service: {err}");
        std::process::exit(1);
    }
}

async fn run(port: u16, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();

    let mut shutdown = Shutdown::new();
    shutdown.on_signals()?;
    let app = App::new(config, &shutdown);
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|err| format!("cannot listen on 127.0.0.1:{port}: {err}"))?;
    println!(
        "listening on http://{} (Ctrl-C drains)",
        listener.local_addr()?
    );
    let (requests, receipts) = (app.requests.clone(), app.receipts.clone());
    let drain = app.clone();
    shutdown.spawn("http server", move |_ctx| app.serve(listener));
    shutdown.spawn("request drain", move |ctx| async move {
        ctx.cancelled().await;
        drain.drain().await;
        Ok::<_, std::convert::Infallible>(())
    });

    shutdown.context().cancelled().await;
    let in_flight = requests.in_flight();
    println!("draining: {} request(s) in flight", in_flight.len());
    let report = shutdown.wait(config_grace()).await;
    for (n, seen) in in_flight {
        let now = requests.get(n).unwrap_or(seen);
        match (now.status, now.took) {
            (Some(status), Some(took)) => {
                println!("  request {n} {}: {status} after {took:?}", now.path)
            }
            _ if now.gone() => println!(
                "  request {n} {}: no answer (its client closed the connection)",
                now.path
            ),
            _ => println!(
                "  request {n} {}: no answer (stopped with the server)",
                now.path
            ),
        }
    }
    let pool = receipts.shutdown_timeout(Duration::from_secs(2)).await;
    println!("{report}\nreceipts: {pool}");
    Ok(())
}
