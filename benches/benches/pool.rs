//! bounded-pool against the common Go pool written plainly in tokio, and against an `async-channel` pool.
//!
//! Each pool gets its jobs the way its users write them. A hand-written pool sends one type through
//! its channel, so its jobs are boxed closures returning boxed futures, as the Go pattern's `Job` is
//! (one allocation a job here, the future's: a closure that captures nothing is boxed without one).
//! `Pool::submit` takes the closure itself, and keeps it and the future it returns in one allocation
//! of its own; its jobs here are `async fn` items with the same body. `bounded_pool_boxed_detached`
//! submits the baselines' boxed jobs instead: the price of the box for a user who has one already.
//!
//! - `pool/w8_q16/*`, `pool/w2_q4/*`, `pool/w1_q2/*`: start a pool, submit 50,000 trivial jobs, then
//!   close it and wait for the workers. `bounded_pool_detached` submits with `submit_detached` instead
//!   (no handle, no result channel). Baselines: N tasks sharing a tokio `mpsc::Receiver` behind a
//!   `tokio::sync::Mutex` (the common Go pool in Rust), and N tasks sharing an `async_channel::Receiver`.
//! - `pool/w8_q16_yield/*`: the same with jobs that await once (`yield_now`), as jobs waiting on I/O do,
//!   beside the `async-channel` pool.
//! - `*/bare_hop/*` in `w8_q16` and `w8_q16_yield`: the floor, each boxed job through one bounded
//!   channel to one task that runs it.
//! - `*/async_channel_results/*` and `*/bare_hop_results/*` in `w8_q16` and `w8_q16_yield`: the same
//!   two, each job handing its result back through a tokio `oneshot` (whose receiver the submitter
//!   drops at once, as `bounded_pool` detaches each handle): what a pool whose jobs have results
//!   costs written by hand, and its floor, beside `bounded_pool`.
//! - `pool/cpu_w8_q16/*` (multi_thread only): 2,000 jobs of about 50 µs of CPU each, submitted
//!   detached, beside the `async-channel` pool; `bare_hop` runs them all on one task, one after
//!   another: a pool that spreads them over both threads takes about half its time.
//! - `pool/try_submit/*`: 50,000 `try_submit` into a queue with room for all of them, beside tokio
//!   `mpsc::Sender::try_send` of the boxed jobs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bounded_benches::{burn, on_worker, runtimes};
use bounded_cancel::Context;
use bounded_pool::Pool;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::{Mutex, mpsc, oneshot};

const JOBS: usize = 50_000;

type Job =
    Box<dyn FnOnce(Context) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send>;

fn job() -> Job {
    Box::new(|ctx| Box::pin(quick(ctx)))
}

/// A job that computes for about 50 µs without awaiting.
fn cpu_job() -> Job {
    Box::new(|ctx| Box::pin(computing(ctx)))
}

/// A job that awaits once, as a job waiting on I/O does.
fn yielding_job() -> Job {
    Box::new(|ctx| Box::pin(yielding(ctx)))
}

/// The body of [`job`] as a user of `Pool` writes it: no box.
async fn quick(_ctx: Context) -> Result<(), String> {
    Ok(())
}

/// The body of [`yielding_job`] as a user of `Pool` writes it.
async fn yielding(_ctx: Context) -> Result<(), String> {
    tokio::task::yield_now().await;
    Ok(())
}

/// The body of [`cpu_job`] as a user of `Pool` writes it.
async fn computing(_ctx: Context) -> Result<(), String> {
    std::hint::black_box(burn(7));
    Ok(())
}

async fn bounded_pool(workers: usize, queue: usize) {
    bounded_pool_of(workers, queue, || quick).await
}

/// Submits `JOBS` jobs made by `make` with `submit` and detaches each handle.
async fn bounded_pool_of<J, Fut>(workers: usize, queue: usize, make: impl Fn() -> J)
where
    J: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let pool = Pool::builder()
        .workers(workers)
        .queue(queue)
        .build()
        .expect("valid");
    for _ in 0..JOBS {
        pool.submit(make()).await.expect("open").detach();
    }
    let report = pool.shutdown().await;
    assert_eq!(report.completed, JOBS as u64);
}

/// As `bounded_pool_of`, with `submit_detached`: no handle, so no result channel.
async fn bounded_pool_detached_of<J, Fut>(workers: usize, queue: usize, make: impl Fn() -> J)
where
    J: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    bounded_pool_detached_n(workers, queue, JOBS, make).await
}

async fn bounded_pool_detached_n<J, Fut>(
    workers: usize,
    queue: usize,
    jobs: usize,
    make: impl Fn() -> J,
) where
    J: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let pool = Pool::builder()
        .workers(workers)
        .queue(queue)
        .build()
        .expect("valid");
    for _ in 0..jobs {
        pool.submit_detached(make()).await.expect("open");
    }
    let report = pool.shutdown().await;
    assert_eq!(report.completed, jobs as u64);
}

async fn mpsc_mutex(workers: usize, queue: usize) {
    let (tx, rx) = mpsc::channel::<Job>(queue);
    let rx = Arc::new(Mutex::new(rx));
    let ctx = Context::new();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (rx, ctx) = (rx.clone(), ctx.clone());
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(job) = next else { break };
                    let _ = job(ctx.clone()).await;
                }
            })
        })
        .collect();
    for _ in 0..JOBS {
        tx.send(job()).await.expect("open");
    }
    drop(tx);
    for handle in handles {
        handle.await.expect("worker");
    }
}

/// The floor: each job crosses one bounded channel to one task that runs it. No result, no slot, no
/// catch of a panic, one consumer: the hand-off any pool pays at least.
async fn bare_hop(queue: usize, job: fn() -> Job) {
    bare_hop_n(queue, JOBS, job).await
}

async fn bare_hop_n(queue: usize, jobs: usize, job: fn() -> Job) {
    let (tx, rx) = async_channel::bounded::<Job>(queue);
    let ctx = Context::new();
    let consumer = tokio::spawn(async move {
        while let Ok(job) = rx.recv().await {
            let _ = job(ctx.clone()).await;
        }
    });
    for _ in 0..jobs {
        tx.send(job()).await.expect("open");
    }
    drop(tx);
    consumer.await.expect("consumer");
}

async fn async_channel_pool(workers: usize, queue: usize) {
    async_channel_pool_of(workers, queue, job).await
}

async fn async_channel_pool_of(workers: usize, queue: usize, job: fn() -> Job) {
    async_channel_pool_n(workers, queue, JOBS, job).await
}

async fn async_channel_pool_n(workers: usize, queue: usize, jobs: usize, job: fn() -> Job) {
    let (tx, rx) = async_channel::bounded::<Job>(queue);
    let ctx = Context::new();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (rx, ctx) = (rx.clone(), ctx.clone());
            tokio::spawn(async move {
                while let Ok(job) = rx.recv().await {
                    let _ = job(ctx.clone()).await;
                }
            })
        })
        .collect();
    for _ in 0..jobs {
        tx.send(job()).await.expect("open");
    }
    drop(tx);
    for handle in handles {
        handle.await.expect("worker");
    }
}

/// A job and where its result goes, as a hand-written pool that returns each job's result sends it.
type WithResult = (Job, oneshot::Sender<Result<(), String>>);

/// The `async-channel` pool handing each job's result back through a tokio `oneshot`, as users
/// hand-write a pool whose jobs have results: the hand-written counterpart of `Pool::submit`. The
/// submitter drops each receiver at once, as `bounded_pool` detaches each handle.
async fn async_channel_results(workers: usize, queue: usize, job: fn() -> Job) {
    let (tx, rx) = async_channel::bounded::<WithResult>(queue);
    let ctx = Context::new();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (rx, ctx) = (rx.clone(), ctx.clone());
            tokio::spawn(async move {
                while let Ok((job, result)) = rx.recv().await {
                    let _ = result.send(job(ctx.clone()).await);
                }
            })
        })
        .collect();
    for _ in 0..JOBS {
        let (result, receiver) = oneshot::channel();
        drop(receiver);
        tx.send((job(), result)).await.expect("open");
    }
    drop(tx);
    for handle in handles {
        handle.await.expect("worker");
    }
}

/// The floor of a job with a result: [`bare_hop`], each job handing its result through a tokio
/// `oneshot` whose receiver the submitter dropped at once.
async fn bare_hop_results(queue: usize, job: fn() -> Job) {
    let (tx, rx) = async_channel::bounded::<WithResult>(queue);
    let ctx = Context::new();
    let consumer = tokio::spawn(async move {
        while let Ok((job, result)) = rx.recv().await {
            let _ = result.send(job(ctx.clone()).await);
        }
    });
    for _ in 0..JOBS {
        let (result, receiver) = oneshot::channel();
        drop(receiver);
        tx.send((job(), result)).await.expect("open");
    }
    drop(tx);
    consumer.await.expect("consumer");
}

fn bench_per_job(c: &mut Criterion) {
    for (workers, queue) in [(8, 16), (2, 4), (1, 2)] {
        let mut group = c.benchmark_group(format!("pool/w{workers}_q{queue}"));
        group.throughput(Throughput::Elements(JOBS as u64));
        group.sample_size(10);
        for (flavor, rt) in runtimes() {
            group.bench_function(BenchmarkId::new("bounded_pool", flavor), |b| {
                b.to_async(&rt)
                    .iter(|| on_worker(bounded_pool(workers, queue)))
            });
            group.bench_function(BenchmarkId::new("bounded_pool_detached", flavor), |b| {
                b.to_async(&rt)
                    .iter(|| on_worker(bounded_pool_detached_of(workers, queue, || quick)))
            });
            if workers == 8 {
                group.bench_function(
                    BenchmarkId::new("bounded_pool_boxed_detached", flavor),
                    |b| {
                        b.to_async(&rt)
                            .iter(|| on_worker(bounded_pool_detached_of(workers, queue, job)))
                    },
                );
            }
            group.bench_function(BenchmarkId::new("mpsc_mutex", flavor), |b| {
                b.to_async(&rt)
                    .iter(|| on_worker(mpsc_mutex(workers, queue)))
            });
            group.bench_function(BenchmarkId::new("async_channel", flavor), |b| {
                b.to_async(&rt)
                    .iter(|| on_worker(async_channel_pool(workers, queue)))
            });
            group.bench_function(BenchmarkId::new("bare_hop", flavor), |b| {
                b.to_async(&rt).iter(|| on_worker(bare_hop(queue, job)))
            });
            if workers == 8 {
                group.bench_function(BenchmarkId::new("async_channel_results", flavor), |b| {
                    b.to_async(&rt)
                        .iter(|| on_worker(async_channel_results(workers, queue, job)))
                });
                group.bench_function(BenchmarkId::new("bare_hop_results", flavor), |b| {
                    b.to_async(&rt)
                        .iter(|| on_worker(bare_hop_results(queue, job)))
                });
            }
        }
        group.finish();
    }
}

fn bench_yielding_jobs(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/w8_q16_yield");
    group.throughput(Throughput::Elements(JOBS as u64));
    group.sample_size(10);
    for (flavor, rt) in runtimes() {
        group.bench_function(BenchmarkId::new("bounded_pool", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(bounded_pool_of(8, 16, || yielding)))
        });
        group.bench_function(BenchmarkId::new("bounded_pool_detached", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(bounded_pool_detached_of(8, 16, || yielding)))
        });
        group.bench_function(
            BenchmarkId::new("bounded_pool_boxed_detached", flavor),
            |b| {
                b.to_async(&rt)
                    .iter(|| on_worker(bounded_pool_detached_of(8, 16, yielding_job)))
            },
        );
        group.bench_function(BenchmarkId::new("async_channel", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(async_channel_pool_of(8, 16, yielding_job)))
        });
        group.bench_function(BenchmarkId::new("bare_hop", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(bare_hop(16, yielding_job)))
        });
        group.bench_function(BenchmarkId::new("async_channel_results", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(async_channel_results(8, 16, yielding_job)))
        });
        group.bench_function(BenchmarkId::new("bare_hop_results", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(bare_hop_results(16, yielding_job)))
        });
    }
    group.finish();
}

const CPU_JOBS: usize = 2_000;

fn bench_cpu_jobs(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/cpu_w8_q16");
    group.throughput(Throughput::Elements(CPU_JOBS as u64));
    group.sample_size(10);
    let [(flavor, rt), _] = runtimes();
    group.bench_function(BenchmarkId::new("bounded_pool_detached", flavor), |b| {
        b.to_async(&rt)
            .iter(|| on_worker(bounded_pool_detached_n(8, 16, CPU_JOBS, || computing)))
    });
    group.bench_function(BenchmarkId::new("async_channel", flavor), |b| {
        b.to_async(&rt)
            .iter(|| on_worker(async_channel_pool_n(8, 16, CPU_JOBS, cpu_job)))
    });
    group.bench_function(BenchmarkId::new("bare_hop", flavor), |b| {
        b.to_async(&rt)
            .iter(|| on_worker(bare_hop_n(16, CPU_JOBS, cpu_job)))
    });
    group.finish();
}

fn bench_try_submit(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/try_submit");
    group.throughput(Throughput::Elements(JOBS as u64));
    group.sample_size(10);
    for (flavor, rt) in runtimes() {
        group.bench_function(BenchmarkId::new("bounded_pool", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                let pool = Pool::builder()
                    .workers(1)
                    .queue(JOBS)
                    .build()
                    .expect("valid");
                for _ in 0..JOBS {
                    pool.try_submit(quick).expect("room").detach();
                }
                pool.abort();
            })
        });
        group.bench_function(BenchmarkId::new("mpsc_try_send", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                let (tx, rx) = mpsc::channel::<Job>(JOBS);
                for _ in 0..JOBS {
                    if tx.try_send(job()).is_err() {
                        panic!("room");
                    }
                }
                drop(rx);
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_per_job,
    bench_yielding_jobs,
    bench_cpu_jobs,
    bench_try_submit
);
criterion_main!(benches);
