//! bounded-pipeline against the fan-out / fan-in a tokio user writes by hand.
//!
//! - `pipeline/one_stage/*`: 50,000 items through one stage of 8 workers with buffers of 16 on both
//!   sides, trivial work, beside the same shape by hand with tokio `mpsc` and the input receiver behind a
//!   `Mutex`, with `async-channel` (MPMC, no mutex), and `buffer_unordered(8)` over spawned tasks.
//!   `bare_hop` is the floor: each item through one bounded channel to one task.
//! - `pipeline/three_stages/*`: 50,000 items through three stages of 4 workers (buffers 16), beside the
//!   same by hand with `async-channel`. `bare_hop` is the floor: each item through a chain of three
//!   bounded channels, one task at each end of each.
//! - `pipeline/ordered/*`: 50,000 items through one stage of 8 workers (buffers 16) that passes them
//!   on in input order, items that finish at once (`quick`) and items that await once (`await_once`,
//!   `yield_now`): `map_ordered`, beside `map` (what the order costs) and the ordered fan-out a tokio
//!   user writes by hand, `futures::StreamExt::buffered(8)` on one task.
//! - `pipeline/cpu_stage/*` (multi_thread only): 2,000 items of about 50 µs of CPU each through a stage
//!   of 1 and of 2 workers: the stage really runs on both threads.

use std::hint::black_box;
use std::sync::Arc;

use bounded_benches::{burn, on_worker, runtimes};
use bounded_cancel::Context;
use bounded_pipeline::{Output, Pipeline};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use tokio::sync::{Mutex, mpsc};

const ITEMS: u64 = 50_000;
const WORKERS: usize = 8;
const BUFFER: usize = 16;

/// Reads every item off a pipeline's output, as the hand-written consumers below do.
async fn drain(mut out: Output<u64, ()>) -> u64 {
    let mut sum = 0;
    while let Some(n) = out.next().await {
        sum += n.unwrap();
    }
    sum
}

async fn ours_one_stage() -> u64 {
    let out = Pipeline::new(&Context::new())
        .source(0..ITEMS)
        .buffer(BUFFER)
        .map(WORKERS, |_ctx, n| async move { Ok::<_, ()>(black_box(n)) })
        .buffer(BUFFER)
        .output();
    drain(out).await
}

/// The fan-out / fan-in most tokio code has: workers share the input receiver behind a mutex.
async fn mpsc_mutex_one_stage() -> u64 {
    let (in_tx, in_rx) = mpsc::channel::<u64>(BUFFER);
    let (out_tx, mut out_rx) = mpsc::channel::<u64>(BUFFER);
    let in_rx = Arc::new(Mutex::new(in_rx));
    tokio::spawn(async move {
        for n in 0..ITEMS {
            in_tx.send(n).await.unwrap();
        }
    });
    for _ in 0..WORKERS {
        let (in_rx, out_tx) = (in_rx.clone(), out_tx.clone());
        tokio::spawn(async move {
            loop {
                let next = in_rx.lock().await.recv().await;
                let Some(n) = next else { return };
                if out_tx.send(black_box(n)).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(out_tx);
    let mut sum = 0;
    while let Some(n) = out_rx.recv().await {
        sum += n;
    }
    sum
}

async fn async_channel_stages(stages: usize, workers: usize) -> u64 {
    let (tx, mut rx) = async_channel::bounded::<u64>(BUFFER);
    tokio::spawn(async move {
        for n in 0..ITEMS {
            tx.send(n).await.unwrap();
        }
    });
    for _ in 0..stages {
        let (out_tx, out_rx) = async_channel::bounded::<u64>(BUFFER);
        for _ in 0..workers {
            let (rx, out_tx) = (rx.clone(), out_tx.clone());
            tokio::spawn(async move {
                while let Ok(n) = rx.recv().await {
                    if out_tx.send(black_box(n)).await.is_err() {
                        return;
                    }
                }
            });
        }
        rx = out_rx;
    }
    let mut sum = 0;
    while let Ok(n) = rx.recv().await {
        sum += n;
    }
    sum
}

/// The floor: each item crosses `relays + 1` bounded channels in a chain, one task at each end of
/// each (the sender, the relays, the consumer that sums). One channel for one stage, three for three.
async fn bare_hops(relays: usize) -> u64 {
    let (tx, mut rx) = async_channel::bounded::<u64>(BUFFER);
    for _ in 0..relays {
        let (next_tx, next_rx) = async_channel::bounded::<u64>(BUFFER);
        tokio::spawn(async move {
            while let Ok(n) = rx.recv().await {
                if next_tx.send(black_box(n)).await.is_err() {
                    return;
                }
            }
        });
        rx = next_rx;
    }
    let consumer = tokio::spawn(async move {
        let mut sum = 0;
        while let Ok(n) = rx.recv().await {
            sum += black_box(n);
        }
        sum
    });
    for n in 0..ITEMS {
        tx.send(n).await.expect("open");
    }
    drop(tx);
    consumer.await.expect("consumer")
}

async fn buffer_unordered_one_stage() -> u64 {
    futures_util::stream::iter(0..ITEMS)
        .map(|n| tokio::spawn(async move { black_box(n) }))
        .buffer_unordered(WORKERS)
        .fold(0, |sum, n| async move { sum + n.unwrap() })
        .await
}

async fn ours_three_stages() -> u64 {
    let out = Pipeline::new(&Context::new())
        .source(0..ITEMS)
        .buffer(BUFFER)
        .map(4, |_ctx, n| async move { Ok::<_, ()>(black_box(n)) })
        .buffer(BUFFER)
        .map(4, |_ctx, n| async move { Ok(black_box(n)) })
        .buffer(BUFFER)
        .map(4, |_ctx, n| async move { Ok(black_box(n)) })
        .buffer(BUFFER)
        .output();
    drain(out).await
}

fn expected() -> u64 {
    ITEMS * (ITEMS - 1) / 2
}

fn bench_one_stage(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline/one_stage");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);
    for (flavor, rt) in runtimes() {
        assert_eq!(rt.block_on(ours_one_stage()), expected());
        assert_eq!(rt.block_on(mpsc_mutex_one_stage()), expected());
        group.bench_function(BenchmarkId::new("bounded", flavor), |b| {
            b.to_async(&rt).iter(|| on_worker(ours_one_stage()))
        });
        group.bench_function(BenchmarkId::new("mpsc_mutex", flavor), |b| {
            b.to_async(&rt).iter(|| on_worker(mpsc_mutex_one_stage()))
        });
        group.bench_function(BenchmarkId::new("async_channel", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(async_channel_stages(1, WORKERS)))
        });
        group.bench_function(BenchmarkId::new("buffer_unordered_spawn", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(buffer_unordered_one_stage()))
        });
        group.bench_function(BenchmarkId::new("bare_hop", flavor), |b| {
            b.to_async(&rt).iter(|| on_worker(bare_hops(0)))
        });
    }
    group.finish();
}

fn bench_three_stages(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline/three_stages");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);
    for (flavor, rt) in runtimes() {
        assert_eq!(rt.block_on(ours_three_stages()), expected());
        assert_eq!(rt.block_on(bare_hops(2)), expected());
        group.bench_function(BenchmarkId::new("bounded", flavor), |b| {
            b.to_async(&rt).iter(|| on_worker(ours_three_stages()))
        });
        group.bench_function(BenchmarkId::new("async_channel", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(async_channel_stages(3, 4)))
        });
        group.bench_function(BenchmarkId::new("bare_hop", flavor), |b| {
            b.to_async(&rt).iter(|| on_worker(bare_hops(2)))
        });
    }
    group.finish();
}

/// One stage's function: returns at once, or after awaiting once.
async fn step(n: u64, await_once: bool) -> Result<u64, ()> {
    if await_once {
        tokio::task::yield_now().await;
    }
    Ok(black_box(n))
}

async fn ours_ordered(await_once: bool) -> u64 {
    let stage = Pipeline::new(&Context::new())
        .source(0..ITEMS)
        .buffer(BUFFER);
    let mut out = stage
        .map_ordered(WORKERS, move |_ctx, n| step(n, await_once))
        .buffer(BUFFER)
        .output();
    let (mut sum, mut last) = (0, None);
    while let Some(n) = out.next().await {
        let n = n.unwrap();
        assert!(last < Some(n), "in order");
        (sum, last) = (sum + n, Some(n));
    }
    sum
}

async fn ours_unordered(await_once: bool) -> u64 {
    let stage = Pipeline::new(&Context::new())
        .source(0..ITEMS)
        .buffer(BUFFER);
    drain(
        stage
            .map(WORKERS, move |_ctx, n| step(n, await_once))
            .buffer(BUFFER)
            .output(),
    )
    .await
}

/// The ordered fan-out most tokio code has: up to 8 futures at once, polled on one task, results in
/// input order.
async fn buffered(await_once: bool) -> u64 {
    let mut results = futures_util::stream::iter(0..ITEMS)
        .map(|n| step(n, await_once))
        .buffered(WORKERS);
    let mut sum = 0;
    while let Some(n) = results.next().await {
        sum += n.unwrap();
    }
    sum
}

fn bench_ordered(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline/ordered");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);
    for (flavor, rt) in runtimes() {
        for (input, await_once) in [("quick", false), ("await_once", true)] {
            assert_eq!(rt.block_on(ours_ordered(await_once)), expected());
            let id = |f: &str| BenchmarkId::new(f, format!("{input}/{flavor}"));
            group.bench_function(id("map_ordered"), |b| {
                b.to_async(&rt).iter(|| on_worker(ours_ordered(await_once)))
            });
            group.bench_function(id("map"), |b| {
                b.to_async(&rt)
                    .iter(|| on_worker(ours_unordered(await_once)))
            });
            group.bench_function(id("buffered"), |b| {
                b.to_async(&rt).iter(|| on_worker(buffered(await_once)))
            });
        }
    }
    group.finish();
}

const CPU_ITEMS: u64 = 2_000;

async fn cpu_stage(workers: usize) -> u64 {
    Pipeline::new(&Context::new())
        .source(0..CPU_ITEMS)
        .map(workers, |_ctx, n| async move { Ok::<_, ()>(burn(n)) })
        .output()
        .try_collect()
        .await
        .unwrap()
        .into_iter()
        .fold(0, u64::wrapping_add)
}

fn bench_cpu_stage(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline/cpu_stage");
    group.throughput(Throughput::Elements(CPU_ITEMS));
    group.sample_size(10);
    let [(flavor, rt), _] = runtimes();
    for workers in [1, 2] {
        group.bench_function(
            BenchmarkId::new(format!("{workers}_workers"), flavor),
            |b| b.to_async(&rt).iter(|| on_worker(cpu_stage(workers))),
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_one_stage,
    bench_three_stages,
    bench_ordered,
    bench_cpu_stage
);
criterion_main!(benches);
