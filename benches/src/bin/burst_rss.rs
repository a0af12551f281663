//! Peak memory of a burst: one million submissions (tasks that await once) through a group limited to 8,
//! through a pool of 8 workers with a queue of 16, and, for scale, into a `JoinSet` reaped only at the
//! end, on a multi-thread runtime with 2 workers. Prints `<case>/burst_1m_rss\t<MiB above idle>`, the peak
//! resident set (`VmHWM`) over the resident set before the burst, for `cargo xtask bench`.
//!
//! Linux only (it reads `/proc/self/status`). Run it with `--case group` or `--case pool`; `cargo xtask
//! bench` runs each case in a process of its own, so that one case's peak is not the other's.

use std::time::Duration;

use bounded_group::Group;
use bounded_pool::Pool;

const BURST: usize = 1_000_000;

/// A field of `/proc/self/status` in kibibytes (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

async fn group_burst() {
    let mut group = Group::<()>::new();
    group.set_limit(Some(8)).expect("idle group");
    for _ in 0..BURST {
        group
            .spawn(|_ctx| async {
                tokio::task::yield_now().await;
                Ok(())
            })
            .await
            .expect("admitted");
    }
    group.wait().await.expect("no task fails");
}

/// The naive construction, for scale: a `JoinSet` that is never reaped keeps every finished task until
/// the end.
async fn joinset_burst() {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        set.spawn(async {
            tokio::task::yield_now().await;
        });
    }
    while set.join_next().await.is_some() {}
}

async fn pool_burst() {
    let pool = Pool::builder().workers(8).queue(16).build().expect("valid");
    for _ in 0..BURST {
        pool.submit(|_ctx| async {
            tokio::task::yield_now().await;
            Ok::<_, String>(())
        })
        .await
        .expect("open")
        .detach();
    }
    let report = pool.shutdown().await;
    assert_eq!(report.completed, BURST as u64);
}

fn main() {
    let case = std::env::args()
        .skip_while(|a| a != "--case")
        .nth(1)
        .unwrap_or_else(|| {
            eprintln!("usage: burst_rss --case group|pool|joinset");
            std::process::exit(2);
        });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a runtime");
    // Idle: the runtime up and warm, nothing submitted.
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
    let idle = status_kib("VmRSS");
    match case.as_str() {
        "group" => runtime.block_on(group_burst()),
        "pool" => runtime.block_on(pool_burst()),
        "joinset" => runtime.block_on(joinset_burst()),
        other => panic!("unknown case {other}"),
    }
    let peak = status_kib("VmHWM");
    let above = peak.saturating_sub(idle) as f64 / 1024.0;
    println!("{case}/burst_1m_rss\t{above:.1}");
}
