//! Several replicas of a service share one rate limit through Redis, and a live line each second shows
//! what each replica got and what the fleet got together.
//!
//! ```sh
//! cargo run -p bounded --example fleet                       # starts its own redis-server
//! cargo run -p bounded --example fleet -- --redis redis://127.0.0.1:6379/ --replicas 6 --rate 100
//! ```
//!
//! Each replica has its own connection and its own `RedisLimiter` over the key `bounded-fleet-example`,
//! and as many callers as its number (replica 1 has one caller, replica 4 has four), each calling
//! `acquire_with` in a loop. The fleet gets the rate, whatever the number of replicas, and each replica
//! gets a share in proportion to its callers: grants are made in the order the calls reach Redis.
//! Ctrl-C ends the run early.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded::cancel::{Context, Shutdown};
use bounded::group::Group;
use bounded::ratelimit::Quota;
use bounded_ratelimit_redis::RedisLimiter;
use bounded_testkit::redis_server::RedisServer;

const USAGE: &str = "\
usage: cargo run -p bounded --example fleet -- [--replicas N] [--rate PER_SECOND] [--burst N] [--for SECONDS] [--redis URL]

  --replicas N      replicas sharing the limit (default 4)
  --rate N          the fleet's limit, units a second (default 50)
  --burst N         units the fleet may take at once after a quiet spell (default 5)
  --for SECONDS     how long to run (default 10)
  --redis URL       a Redis to use; without it, a private redis-server is started and stopped";

struct Args {
    replicas: u32,
    rate: u32,
    burst: u32,
    run_for: Duration,
    redis: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        replicas: 4,
        rate: 50,
        burst: 5,
        run_for: Duration::from_secs(10),
        redis: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} takes a whole number above 0, not `{value}`"))
        };
        match flag.as_str() {
            "--replicas" => args.replicas = number()?.min(64),
            "--rate" => args.rate = number()?,
            "--burst" => args.burst = number()?,
            "--for" => args.run_for = Duration::from_secs(u64::from(number()?)),
            "--redis" => args.redis = Some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse() {
        Ok(args) => args,
        Err(err) if err.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(err) => {
            eprintln!("{err}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    // Said in words (a quota too fast for the bucket, a Redis that cannot be reached), not as a
    // debug dump.
    if let Err(err) = run(args).await {
        eprintln!("fleet: {err}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // Without --redis, a private redis-server on a Unix socket, stopped on the way out.
    let (_server, url) = match &args.redis {
        Some(url) => (None, url.clone()),
        None => {
            let server = RedisServer::try_start()?;
            let url = server.url();
            (Some(server), url)
        }
    };
    let quota = Quota::per_second(args.rate).burst(args.burst);
    println!(
        "{} replicas share {quota} through {url}, for {:?} (Ctrl-C ends it early)",
        args.replicas, args.run_for
    );

    let mut shutdown = Shutdown::new();
    shutdown.on_signals()?;
    let run = shutdown.context().with_timeout(args.run_for);
    let counts: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.replicas).map(|_| AtomicU64::new(0)).collect());
    let client = redis::Client::open(url.as_str())?;
    for replica in 0..args.replicas {
        let conn = client
            .get_connection_manager()
            .await
            .map_err(|err| format!("cannot reach Redis at {url}: {err}"))?;
        let limiter = RedisLimiter::new(conn, "bounded-fleet-example", quota)?;
        let (run, counts) = (run.clone(), counts.clone());
        shutdown.spawn(format!("replica {}", replica + 1), move |_ctx| async move {
            replica_calls(&run, limiter, replica, counts).await
        });
    }

    let start = tokio::time::Instant::now();
    let mut ticks =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last: Vec<u64> = vec![0; args.replicas as usize];
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = run.cancelled() => break,
        }
        let now: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let per_replica: Vec<u64> = now.iter().zip(&last).map(|(n, l)| n - l).collect();
        let fleet: u64 = per_replica.iter().sum();
        println!(
            "{:>3}s  fleet {fleet:>5}/s (limit {})  replicas {per_replica:?}",
            start.elapsed().as_secs(),
            args.rate
        );
        last = now;
    }
    let report = shutdown.wait(Duration::from_secs(2)).await;
    let totals: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = totals.iter().sum();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "granted {total} in {secs:.1} s: {:.1} a second with a burst of {} (limit {}); per replica {totals:?}",
        total as f64 / secs,
        args.burst,
        args.rate
    );
    println!("{report}");
    Ok(())
}

/// One replica: `replica + 1` callers, each taking units until the run ends.
async fn replica_calls(
    run: &Context,
    limiter: RedisLimiter,
    replica: u32,
    counts: Arc<Vec<AtomicU64>>,
) -> Result<(), String> {
    let callers = Group::<String>::new();
    for _ in 0..=replica {
        let (limiter, counts, run) = (limiter.clone(), counts.clone(), run.clone());
        let spawned = callers
            .spawn(move |_ctx| async move {
                loop {
                    match limiter.acquire_with(&run).await {
                        Ok(()) => counts[replica as usize].fetch_add(1, Ordering::Relaxed),
                        Err(err) if err.cause().is_some() || err.is_deadline() => return Ok(()),
                        Err(err) => return Err(err.to_string()),
                    };
                }
            })
            .await;
        spawned.map_err(|e| e.to_string())?;
    }
    callers.wait().await
}
