//! The gauges through the StatsD exporter (`metrics-exporter-statsd`), which sends a gauge only when
//! it is set, and drops `increment` and `decrement`: a pool's queue depth and busy workers, and a
//! group's tasks alive, arrive over UDP as the values they are, and return to zero. (One test in
//! this binary: it installs the process's recorder.)

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bounded::group::Group;
use bounded::pool::Pool;
use metrics_exporter_statsd::StatsdBuilder;
use tokio::sync::Notify;

/// Reads the StatsD lines arriving on `socket` for up to 5 s, keeping the last value of each gauge
/// (by its line's name and tags), until `want` holds for them.
fn until(
    socket: &UdpSocket,
    gauges: &mut HashMap<String, f64>,
    want: impl Fn(&HashMap<String, f64>) -> bool,
) {
    let start = Instant::now();
    let mut buf = [0u8; 65_536];
    while !want(gauges) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "gauges read: {gauges:?}"
        );
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        for line in String::from_utf8_lossy(&buf[..n]).lines() {
            // `name:value|g|#tag:value`
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let fields: Vec<&str> = rest.split('|').collect();
            if fields.get(1) != Some(&"g") {
                continue;
            }
            let tags = fields.get(2).copied().unwrap_or("");
            gauges.insert(format!("{name}{tags}"), fields[0].parse().unwrap());
        }
    }
}

#[test]
fn gauges_reach_a_statsd_exporter_as_values() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let recorder = StatsdBuilder::from("127.0.0.1", port)
        .with_buffer_size(1) // each line sent at once
        .build(None)
        .unwrap();
    metrics::set_global_recorder(recorder).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let release = Arc::new(Notify::new());
    let mut gauges = HashMap::new();
    let depth = "bounded_pool_queue_depth#pool:statsd";
    let busy = "bounded_pool_busy_workers#pool:statsd";
    let alive = "bounded_group_tasks_alive#group:statsd";

    // Two workers busy, three jobs queued, three group tasks alive.
    let (pool, group) = rt.block_on(async {
        let pool = Pool::builder()
            .workers(2)
            .queue(8)
            .name("statsd")
            .build()
            .unwrap();
        for _ in 0..5 {
            let release = release.clone();
            pool.submit_detached(move |_ctx| async move {
                release.notified().await;
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .unwrap();
        }
        let group = Group::<std::convert::Infallible>::new().named("statsd");
        for _ in 0..3 {
            let release = release.clone();
            group
                .spawn(move |_ctx| async move {
                    release.notified().await;
                    Ok(())
                })
                .await
                .unwrap();
        }
        (pool, group)
    });
    until(&socket, &mut gauges, |g| {
        g.get(depth) == Some(&3.0) && g.get(busy) == Some(&2.0) && g.get(alive) == Some(&3.0)
    });

    // Everything ends: each gauge is sent back down to zero.
    rt.block_on(async {
        let releasing = tokio::spawn({
            let release = release.clone();
            async move {
                loop {
                    release.notify_waiters();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        group.wait().await.unwrap();
        while pool.metrics().completed < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        releasing.abort();
    });
    until(&socket, &mut gauges, |g| {
        g.get(depth) == Some(&0.0) && g.get(busy) == Some(&0.0) && g.get(alive) == Some(&0.0)
    });
    drop((pool, group));
}
