//! The fleet limiter through one local Redis (a private `redis-server` on a Unix socket), beside the
//! check-and-retry loop that redis-cell's `CL.THROTTLE` and the usual hand-written GCRA scripts lead to:
//! a script that only answers "allowed, or retry after", and a caller that sleeps and asks again.
//!
//! - `ratelimit_redis/grant_round_trip/*`: 100 grants one after another under a limit that never
//!   binds: `bounded` `try_acquire` and `acquire`, one hand-written check, and a bare `PING` (the floor:
//!   one round trip).
//! - `ratelimit_redis/contended_200/*`: 16 callers share 200 grants at 2,000 a second (burst 1, so 100 ms
//!   at the limit): `bounded` `acquire` (one reservation and one sleep per grant) against check-and-retry.
//!   The set-up run prints the calls to Redis per grant of each.
//!
//! Without `redis-server` on PATH the bench says so and measures nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::RedisLimiter;
use bounded_testkit::redis_server::RedisServer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::runtime::Runtime;

const SEQUENTIAL: u64 = 100;
const CONTENDED: u64 = 200;
const CALLERS: u64 = 16;

/// The hand-written GCRA check: allowed (and charged) now, or the microseconds to wait.
static CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local t = tonumber(ARGV[1])
local tau = t * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - tau
if allow_at > now then return allow_at - now end
redis.call('SET', KEYS[1], string.format('%.0f', tat + t), 'PX', math.ceil((tat + t - now) / 1000) + 1)
return 0
",
    )
});

/// One hand-written check; `Ok(None)` when allowed, else the wait it was told.
async fn check(conn: &mut ConnectionManager, key: &str, t_us: u64, burst: u32) -> Option<Duration> {
    let wait_us: u64 = CHECK
        .key(key)
        .arg(t_us)
        .arg(burst)
        .invoke_async(conn)
        .await
        .expect("check");
    (wait_us > 0).then(|| Duration::from_micros(wait_us))
}

/// Check, sleep the wait, check again, until allowed; counts every call to Redis.
async fn check_and_retry(conn: &mut ConnectionManager, key: &str, t_us: u64, calls: &AtomicU64) {
    loop {
        calls.fetch_add(1, Ordering::Relaxed);
        match check(conn, key, t_us, 1).await {
            None => return,
            Some(wait) => tokio::time::sleep(wait).await,
        }
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn bench_round_trip(c: &mut Criterion, rt: &Runtime, server: &RedisServer) {
    let conn = rt.block_on(server.connect());
    let never = Quota::per_second(500_000).burst(1_000_000);
    let limiter = RedisLimiter::new(conn.clone(), "bench-round-trip", never).unwrap();
    let mut group = c.benchmark_group("ratelimit_redis/grant_round_trip");
    group.throughput(Throughput::Elements(SEQUENTIAL));
    group.bench_function("bounded_try_acquire", |b| {
        b.to_async(rt).iter(|| async {
            for _ in 0..SEQUENTIAL {
                limiter.try_acquire().await.unwrap();
            }
        })
    });
    group.bench_function("bounded_acquire", |b| {
        b.to_async(rt).iter(|| async {
            for _ in 0..SEQUENTIAL {
                limiter.acquire().await.unwrap();
            }
        })
    });
    group.bench_function("hand_check", |b| {
        b.to_async(rt).iter(|| async {
            let mut conn = conn.clone();
            for _ in 0..SEQUENTIAL {
                assert!(check(&mut conn, "bench-hand", 2, 1_000_000).await.is_none());
            }
        })
    });
    group.bench_function("ping_floor", |b| {
        b.to_async(rt).iter(|| async {
            let mut conn = conn.clone();
            for _ in 0..SEQUENTIAL {
                let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            }
        })
    });
    group.finish();
}

async fn contended_bounded(limiter: &RedisLimiter) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let limiter = limiter.clone();
        tasks.spawn(async move {
            for _ in 0..CONTENDED / CALLERS {
                limiter.acquire().await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

async fn contended_hand(conn: &ConnectionManager, t_us: u64, calls: &Arc<AtomicU64>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let (mut conn, calls) = (conn.clone(), calls.clone());
        tasks.spawn(async move {
            for _ in 0..CONTENDED / CALLERS {
                check_and_retry(&mut conn, "bench-contended-hand", t_us, &calls).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

fn bench_contended(c: &mut Criterion, rt: &Runtime, server: &RedisServer) {
    let conn = rt.block_on(server.connect());
    let quota = Quota::per_second(2_000).burst(1);
    let t_us = 500;
    let limiter = RedisLimiter::new(conn.clone(), "bench-contended", quota).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    // One set-up run of each, to report the calls to Redis per grant.
    rt.block_on(async {
        contended_bounded(&limiter).await;
        contended_hand(&conn, t_us, &calls).await;
    });
    let granted = (CONTENDED / CALLERS) * CALLERS;
    println!(
        "ratelimit_redis/contended_200: calls to Redis per grant: bounded 1.00 (one reservation each), \
         check-and-retry {:.2}",
        calls.swap(0, Ordering::Relaxed) as f64 / granted as f64
    );
    let mut group = c.benchmark_group("ratelimit_redis/contended_200");
    group.throughput(Throughput::Elements(granted));
    group.sample_size(10);
    group.bench_function("bounded_acquire", |b| {
        b.to_async(rt).iter(|| contended_bounded(&limiter))
    });
    group.bench_function("check_and_retry", |b| {
        b.to_async(rt).iter(|| contended_hand(&conn, t_us, &calls))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let server = match RedisServer::try_start() {
        Ok(server) => server,
        Err(err) => {
            eprintln!("ratelimit_redis: nothing was measured: {err}");
            return;
        }
    };
    let rt = runtime();
    bench_round_trip(c, &rt, &server);
    bench_contended(c, &rt, &server);
}

criterion_group!(ratelimit_redis, benches);
criterion_main!(ratelimit_redis);
