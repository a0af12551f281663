//! bounded-group against the `JoinSet` and `TaskTracker` code it replaces: 200k trivial tasks per iteration.
//!
//! - `group/limit_8/*`: at most eight at once. Baselines take a `Semaphore::acquire_owned` permit before each
//!   spawn, into a `JoinSet` (reaping finished tasks as they go, so memory stays flat) or a `TaskTracker`.
//! - `group/limit_8_yield/*`: as `limit_8`, but every task yields once, so none finishes on its first
//!   poll: this is the path of tasks that wait (on I/O, a timer), which bounded-group hands to its drivers.
//! - `group/unlimited/*`: no limit. Baselines are `JoinSet::spawn` + `join_next` and `TaskTracker::spawn` + `wait`.
//! - `group/unlimited_yield/*`: as `unlimited`, with tasks that yield once.
//! - `group/cpu_limit_8/*` (multi_thread only): 2,000 tasks of about 50 µs of CPU each, at most 8 at
//!   once; `one_task` does the same work on one task, one after another: a group that spreads its
//!   tasks over both threads takes about half its time.
//! - `*/bare_spawn/*`: the floor, a bare `tokio::spawn` per task (no limit) and a countdown.

use std::sync::Arc;

use std::hint::black_box;

use bounded_benches::{burn, on_worker, runtimes};
use bounded_group::Group;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

const TASKS: usize = 200_000;

async fn bounded_group(limit: Option<usize>, yields: bool) {
    let mut group = Group::<()>::new();
    group.set_limit(limit).expect("idle group");
    for _ in 0..TASKS {
        group
            .spawn(move |_ctx| async move {
                if yields {
                    tokio::task::yield_now().await;
                }
                Ok(())
            })
            .await
            .expect("admitted");
    }
    group.wait().await.expect("no task fails");
}

async fn joinset_semaphore(limit: usize, yields: bool) {
    let sem = Arc::new(Semaphore::new(limit));
    let mut set = JoinSet::new();
    for _ in 0..TASKS {
        let permit = sem.clone().acquire_owned().await.expect("open");
        set.spawn(async move {
            if yields {
                tokio::task::yield_now().await;
            }
            drop(permit);
            Ok::<(), ()>(())
        });
        while let Some(done) = set.try_join_next() {
            done.expect("no panic").expect("no error");
        }
    }
    while let Some(done) = set.join_next().await {
        done.expect("no panic").expect("no error");
    }
}

async fn tracker_semaphore(limit: usize, yields: bool) {
    let sem = Arc::new(Semaphore::new(limit));
    let tracker = TaskTracker::new();
    for _ in 0..TASKS {
        let permit = sem.clone().acquire_owned().await.expect("open");
        tracker.spawn(async move {
            if yields {
                tokio::task::yield_now().await;
            }
            drop(permit)
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// The floor: a bare `tokio::spawn` per task, its handle dropped, the last task to end waking the
/// spawner. No limit, no error, no panic caught, no abort on drop: what any group pays at least.
async fn bare_spawn(yields: bool) {
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(TASKS));
    let done = Arc::new(tokio::sync::Notify::new());
    for _ in 0..TASKS {
        let (left, done) = (left.clone(), done.clone());
        drop(tokio::spawn(async move {
            if yields {
                tokio::task::yield_now().await;
            }
            if left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                done.notify_one();
            }
        }));
    }
    done.notified().await;
}

async fn joinset(yields: bool) {
    let mut set = JoinSet::new();
    for _ in 0..TASKS {
        set.spawn(async move {
            if yields {
                tokio::task::yield_now().await;
            }
            Ok::<(), ()>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done.expect("no panic").expect("no error");
    }
}

async fn tracker(yields: bool) {
    let tracker = TaskTracker::new();
    for _ in 0..TASKS {
        tracker.spawn(async move {
            if yields {
                tokio::task::yield_now().await;
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

const CPU_TASKS: usize = 2_000;

/// `CPU_TASKS` tasks of about 50 µs of CPU each, at most 8 at once.
async fn bounded_group_cpu() {
    let mut group = Group::<()>::new();
    group.set_limit(Some(8)).expect("idle group");
    for _ in 0..CPU_TASKS {
        group
            .spawn(|_ctx| async {
                black_box(burn(7));
                Ok(())
            })
            .await
            .expect("admitted");
    }
    group.wait().await.expect("no task fails");
}

async fn tracker_semaphore_cpu() {
    let sem = Arc::new(Semaphore::new(8));
    let tracker = TaskTracker::new();
    for _ in 0..CPU_TASKS {
        let permit = sem.clone().acquire_owned().await.expect("open");
        tracker.spawn(async move {
            black_box(burn(7));
            drop(permit)
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// The same work on the caller's task, one after another: what a group that kept its tasks on one
/// thread would cost.
async fn one_task_cpu() {
    for _ in 0..CPU_TASKS {
        black_box(burn(7));
    }
}

fn bench_cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("group/cpu_limit_8");
    group.throughput(Throughput::Elements(CPU_TASKS as u64));
    group.sample_size(10);
    let [(flavor, rt), _] = runtimes();
    group.bench_function(BenchmarkId::new("bounded_group", flavor), |b| {
        b.to_async(&rt).iter(|| on_worker(bounded_group_cpu()))
    });
    group.bench_function(BenchmarkId::new("tasktracker_semaphore", flavor), |b| {
        b.to_async(&rt).iter(|| on_worker(tracker_semaphore_cpu()))
    });
    group.bench_function(BenchmarkId::new("one_task", flavor), |b| {
        b.to_async(&rt).iter(|| on_worker(one_task_cpu()))
    });
    group.finish();
}

fn bench_limit_8(c: &mut Criterion) {
    let mut group = c.benchmark_group("group/limit_8");
    group.throughput(Throughput::Elements(TASKS as u64));
    group.sample_size(10);
    for (flavor, rt) in runtimes() {
        group.bench_function(BenchmarkId::new("bounded_group", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(bounded_group(Some(8), false)))
        });
        group.bench_function(BenchmarkId::new("joinset_semaphore", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(joinset_semaphore(8, false)))
        });
        group.bench_function(BenchmarkId::new("tasktracker_semaphore", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(tracker_semaphore(8, false)))
        });
        group.bench_function(BenchmarkId::new("bare_spawn", flavor), |b| {
            b.to_async(&rt).iter(|| on_worker(bare_spawn(false)))
        });
    }
    group.finish();
}

fn bench_limit_8_yield(c: &mut Criterion) {
    let mut group = c.benchmark_group("group/limit_8_yield");
    group.throughput(Throughput::Elements(TASKS as u64));
    group.sample_size(10);
    for (flavor, rt) in runtimes() {
        group.bench_function(BenchmarkId::new("bounded_group", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(bounded_group(Some(8), true)))
        });
        group.bench_function(BenchmarkId::new("joinset_semaphore", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(joinset_semaphore(8, true)))
        });
        group.bench_function(BenchmarkId::new("tasktracker_semaphore", flavor), |b| {
            b.to_async(&rt)
                .iter(|| on_worker(tracker_semaphore(8, true)))
        });
        group.bench_function(BenchmarkId::new("bare_spawn", flavor), |b| {
            b.to_async(&rt).iter(|| on_worker(bare_spawn(true)))
        });
    }
    group.finish();
}

fn bench_unlimited(c: &mut Criterion) {
    for (name, yields) in [("group/unlimited", false), ("group/unlimited_yield", true)] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(TASKS as u64));
        group.sample_size(10);
        for (flavor, rt) in runtimes() {
            group.bench_function(BenchmarkId::new("bounded_group", flavor), |b| {
                b.to_async(&rt)
                    .iter(|| on_worker(bounded_group(None, yields)))
            });
            group.bench_function(BenchmarkId::new("joinset", flavor), |b| {
                b.to_async(&rt).iter(|| on_worker(joinset(yields)))
            });
            group.bench_function(BenchmarkId::new("tasktracker", flavor), |b| {
                b.to_async(&rt).iter(|| on_worker(tracker(yields)))
            });
            group.bench_function(BenchmarkId::new("bare_spawn", flavor), |b| {
                b.to_async(&rt).iter(|| on_worker(bare_spawn(yields)))
            });
        }
        group.finish();
    }
}

criterion_group!(
    benches,
    bench_limit_8,
    bench_limit_8_yield,
    bench_unlimited,
    bench_cpu
);
criterion_main!(benches);
