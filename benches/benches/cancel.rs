//! bounded-cancel against tokio-util's `CancellationToken`, the type a `Context` stands in for.
//!
//! - `cancel/fanout_10k/*`: cancel one scope with 10,000 tasks parked on it, and join them all.
//!   Only the cancel and the joins are timed; spawning and parking the waiters is set-up. The
//!   waiters are joined as Go's case joins its goroutines (a `sync.WaitGroup`): each counts itself
//!   out, and the last wakes the timing task.
//!   `bare_wake` is the floor: each waiter parked on a oneshot channel of its own, all sent to at
//!   once, so each is woken once with nothing shared.
//! - `cancel/with_timeout/*`: a request's context with a deadline, made and dropped, per request; beside a
//!   child token with a spawned timer task.
//! - `cancel/is_cancelled/*`: the check a loop makes on every turn, on a live root and a live child.
//! - `cancel/run_one_context/*`: 64 tasks each race a future that yields 500 times against one shared
//!   context (`Context::run`), beside the same with tokio-util's `run_until_cancelled` on one shared
//!   token; `bare` polls the futures with no race, the floor. Per poll.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bounded_benches::{on_worker, runtimes, timed_runtimes};
use bounded_cancel::Context;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const WAITERS: usize = 10_000;

/// Parks `WAITERS` tasks on `park`, then times `fire` until every waiter has woken and counted
/// itself out. The waiters are joined as Go's case joins its goroutines: a count each takes down,
/// and one wake-up of the timing task when the last is done (awaiting each waiter's `JoinHandle` in
/// turn would time up to one more wake-up per waiter, of the timing task). Their `JoinHandle`s are
/// awaited after the clock stops, so no waiter outlives its iteration.
async fn fanout<P, Fut>(park: P, fire: impl FnOnce()) -> Duration
where
    P: Fn() -> Fut,
    Fut: std::future::Future + Send + 'static,
{
    let parked = Arc::new(AtomicUsize::new(0));
    let left = Arc::new(AtomicUsize::new(WAITERS));
    let all_woken = Arc::new(Notify::new());
    let mut tasks = Vec::with_capacity(WAITERS);
    for _ in 0..WAITERS {
        let wait = park();
        let parked = parked.clone();
        let left = left.clone();
        let all_woken = all_woken.clone();
        tasks.push(tokio::spawn(async move {
            parked.fetch_add(1, Ordering::Relaxed);
            wait.await;
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                all_woken.notify_one();
            }
        }));
    }
    while parked.load(Ordering::Relaxed) < WAITERS {
        tokio::task::yield_now().await;
    }
    tokio::task::yield_now().await;
    let start = Instant::now();
    fire();
    all_woken.notified().await;
    let elapsed = start.elapsed();
    assert_eq!(left.load(Ordering::Acquire), 0, "every waiter woke");
    for task in tasks {
        task.await.expect("waiter");
    }
    elapsed
}

fn bench_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("cancel/fanout_10k");
    group.throughput(Throughput::Elements(WAITERS as u64));
    group.sample_size(20);
    for (flavor, rt) in runtimes() {
        group.bench_function(BenchmarkId::new("bounded_context", flavor), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let ctx = Context::new();
                        let waiters = ctx.clone();
                        total += fanout(
                            move || {
                                let ctx = waiters.clone();
                                async move {
                                    ctx.cancelled().await;
                                }
                            },
                            || {
                                ctx.cancel();
                            },
                        )
                        .await;
                    }
                    total
                })
            })
        });
        group.bench_function(BenchmarkId::new("tokio_util_token", flavor), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let token = CancellationToken::new();
                        let waiters = token.clone();
                        total +=
                            fanout(move || waiters.clone().cancelled_owned(), || token.cancel())
                                .await;
                    }
                    total
                })
            })
        });
        group.bench_function(BenchmarkId::new("bare_wake", flavor), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let senders = Arc::new(std::sync::Mutex::new(Vec::with_capacity(WAITERS)));
                        let fire = senders.clone();
                        total += fanout(
                            move || {
                                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                                senders.lock().unwrap().push(tx);
                                async move {
                                    let _ = rx.await;
                                }
                            },
                            move || {
                                for tx in fire.lock().unwrap().drain(..) {
                                    let _ = tx.send(());
                                }
                            },
                        )
                        .await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

fn bench_is_cancelled(c: &mut Criterion) {
    let mut group = c.benchmark_group("cancel/is_cancelled");
    group.throughput(Throughput::Elements(1));
    let root = Context::new();
    let child = root.child();
    let root_token = CancellationToken::new();
    let child_token = root_token.child_token();
    group.bench_function("bounded_context/root", |b| {
        b.iter(|| black_box(&root).is_cancelled())
    });
    group.bench_function("tokio_util_token/root", |b| {
        b.iter(|| black_box(&root_token).is_cancelled())
    });
    group.bench_function("bounded_context/child", |b| {
        b.iter(|| black_box(&child).is_cancelled())
    });
    group.bench_function("tokio_util_token/child", |b| {
        b.iter(|| black_box(&child_token).is_cancelled())
    });
    group.finish();
}

/// A request's context with a deadline, made and dropped a thousand times: what a service pays per
/// request for `with_timeout`. The hand-written tokio baseline is the usual one: a child token and a
/// spawned task that cancels it when the timeout passes, aborted when the request ends.
fn bench_with_timeout(c: &mut Criterion) {
    const REQUESTS: u64 = 1_000;
    let mut group = c.benchmark_group("cancel/with_timeout");
    group.throughput(Throughput::Elements(REQUESTS));
    for (flavor, rt) in timed_runtimes() {
        let root = Context::new();
        group.bench_function(BenchmarkId::new("bounded_context", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..REQUESTS {
                    let request = root.with_timeout(Duration::from_secs(1));
                    assert!(!black_box(&request).is_cancelled());
                }
            })
        });
        let root_token = CancellationToken::new();
        group.bench_function(BenchmarkId::new("token_and_timer_task", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..REQUESTS {
                    let request = root_token.child_token();
                    let timer = tokio::spawn({
                        let request = request.clone();
                        async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            request.cancel();
                        }
                    });
                    assert!(!black_box(&request).is_cancelled());
                    timer.abort();
                }
            })
        });
    }
    group.finish();
}

/// Many tasks racing busy futures against one context: what every poll of a `run` costs.
fn bench_run_one_context(c: &mut Criterion) {
    const TASKS: usize = 64;
    const POLLS: usize = 500;
    async fn yields() {
        for _ in 0..POLLS {
            tokio::task::yield_now().await;
        }
    }
    /// Spawns `TASKS` tasks of `task()` and times them to the last.
    async fn timed<F, Fut>(task: F) -> Duration
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS).map(|_| tokio::spawn(task())).collect();
        for task in tasks {
            task.await.expect("task");
        }
        start.elapsed()
    }
    let mut group = c.benchmark_group("cancel/run_one_context");
    group.throughput(Throughput::Elements((TASKS * POLLS) as u64));
    for (flavor, rt) in runtimes() {
        group.bench_function(BenchmarkId::new("bounded_context", flavor), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(async move {
                    let ctx = Context::new();
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += timed(|| {
                            let ctx = ctx.clone();
                            async move { ctx.run(yields()).await.expect("live") }
                        })
                        .await;
                    }
                    total
                })
            })
        });
        group.bench_function(BenchmarkId::new("tokio_util_token", flavor), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(async move {
                    let token = CancellationToken::new();
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += timed(|| {
                            let token = token.clone();
                            async move { token.run_until_cancelled(yields()).await.expect("live") }
                        })
                        .await;
                    }
                    total
                })
            })
        });
        group.bench_function(BenchmarkId::new("bare", flavor), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += timed(yields).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_fanout,
    bench_is_cancelled,
    bench_with_timeout,
    bench_run_one_context
);
criterion_main!(benches);
