//! Four OS processes, as four replicas, against one Redis at 50 a second for 10 seconds: together they
//! get the rate (plus the burst) within 1 %, and each is served in proportion to what it asks (within
//! 5 %, give or take the burst, which goes to whoever asks first).
//!
//! The parent test runs this same test binary four times, each running only `fleet_replica`, which is
//! ignored when the suite runs and fails if started without a parent.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bounded_cancel::Context;
use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::RedisLimiter;
use bounded_testkit::redis_server::RedisServer;

const RATE: u32 = 50;
const BURST: u32 = 5;
const RUN: Duration = Duration::from_secs(10);
/// Callers per process: each process asks for units in proportion to its callers.
const CALLERS: [u32; 4] = [1, 2, 3, 4];
const ENV: &str = "BOUNDED_FLEET_REPLICA";

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

#[test]
fn four_processes_share_one_rate_within_one_percent() {
    let server = RedisServer::start();
    let start = unix_now() + Duration::from_secs(3);
    let end = start + RUN;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = CALLERS
        .iter()
        .map(|callers| {
            Command::new(&exe)
                .args([
                    "fleet_replica",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(
                    ENV,
                    format!(
                        "{} {} {} {callers}",
                        server.url(),
                        start.as_micros(),
                        end.as_micros()
                    ),
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start a replica process")
        })
        .collect();
    let mut granted = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a replica process failed");
        let stdout = String::from_utf8(out.stdout).unwrap();
        // The test harness prints around the report, sometimes on the same line.
        let report = stdout
            .split("replica granted=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no report from a replica: {stdout}"));
        granted.push(report.parse::<u64>().unwrap());
    }
    let total: u64 = granted.iter().sum();
    // The burst at once, then one unit every 20 ms until the end: 5 + 500.
    let expected = u64::from(BURST) + u64::from(RATE) * RUN.as_secs();
    println!(
        "four replicas at {RATE}/s (burst {BURST}) for {RUN:?}: granted {granted:?}, total {total} of {expected}"
    );
    assert!(total <= expected, "{total} grants: more than {expected}");
    assert!(
        total as f64 >= expected as f64 * 0.99,
        "{total} grants: less than 99 % of {expected}"
    );
    // The rate is shared in proportion to the callers; the burst goes to whichever replica asks
    // first when the run starts (on a busy machine one process wakes a few milliseconds before the
    // others), so a replica may be that much over or under its share.
    let callers: u32 = CALLERS.iter().sum();
    for (got, asked) in granted.iter().zip(CALLERS) {
        let share = total as f64 * f64::from(asked) / f64::from(callers);
        assert!(
            (*got as f64 - share).abs() <= share * 0.05 + 2.0 + f64::from(BURST),
            "a replica with {asked} of {callers} callers got {got} of {total} grants (fair share {share:.1})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "one replica of four_processes_share_one_rate_within_one_percent, which starts it"]
async fn fleet_replica() {
    let spec =
        std::env::var(ENV).expect("started by four_processes_share_one_rate_within_one_percent");
    let parts: Vec<&str> = spec.split(' ').collect();
    let [url, start, end, callers] = parts[..] else {
        panic!("bad {ENV}: {spec}");
    };
    let micros = |s: &str| Duration::from_micros(s.parse().unwrap());
    let (start, end, callers) = (micros(start), micros(end), callers.parse::<u32>().unwrap());
    let conn = redis::Client::open(url)
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let limiter = RedisLimiter::new(conn, "fleet", Quota::per_second(RATE).burst(BURST)).unwrap();
    let now = tokio::time::Instant::now();
    let wall = unix_now();
    let run = Context::new().with_deadline(now + (end - wall));
    tokio::time::sleep_until(now + (start - wall)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (limiter, run) = (limiter.clone(), run.clone());
        tasks.spawn(async move {
            let mut granted = 0u64;
            loop {
                match limiter.acquire_with(&run).await {
                    Ok(()) => granted += 1,
                    Err(err) if err.is_deadline() => return granted,
                    Err(err) => panic!("{err}"),
                }
            }
        });
    }
    let mut granted = 0;
    while let Some(done) = tasks.join_next().await {
        granted += done.unwrap();
    }
    println!("replica granted={granted}");
}
