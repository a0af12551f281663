//! bounded-ratelimit against governor, the crate whose GCRA it follows.
//!
//! - `ratelimit/try_acquire_unlimited/*`: 1,000 `try_acquire` under a quota that never limits, beside
//!   governor's `check()` on its default clock (quanta) and on a clock that reads tokio's `Instant`, which
//!   separates the cost of the clock from the cost of the limiter. The limiter is built outside the
//!   runtime and first used inside it, as a service that builds its limiters before its runtime does, so
//!   it reads the CPU's counter. `counter_read` is the floor: one read of that counter per call, as
//!   `bounded` makes it; `tokio_clock_read` is one read of tokio's clock, what a limiter on a paused
//!   clock pays.
//! - `ratelimit/acquire_uncontended/*`: 1,000 `acquire().await` that never wait, beside governor's
//!   `until_ready().await`.
//! - `ratelimit/waiters_200/*`: 200 tasks each taking 10 units at 20,000/s with a burst of 100 (5 ms of
//!   units, above tokio's 1 ms timer resolution), so they queue; beside 200 tasks on governor's `until_ready`. The set-up run prints wake-ups per grant
//!   (polls of the waiting futures beyond their first, per unit granted) for both.

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bounded_benches::timed_runtimes;
use bounded_ratelimit::{Limiter, Quota};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use governor::clock::Clock;
use governor::nanos::Nanos;

const CALLS: u64 = 1_000;
const WAITERS: usize = 200;
const UNITS_EACH: usize = 10;

/// A governor clock reading tokio's `Instant`, as a limiter driven by tokio time must.
#[derive(Clone, Debug)]
struct TokioClock {
    origin: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

fn never_limits() -> (Quota, governor::Quota) {
    let rate = 1_000_000_000; // one unit per nanosecond: far faster than any caller here
    (
        Quota::per_second(rate),
        governor::Quota::per_second(NonZeroU32::new(rate).unwrap()),
    )
}

fn bench_try_acquire(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit/try_acquire_unlimited");
    group.throughput(Throughput::Elements(CALLS));
    let (ours, theirs) = never_limits();
    for (flavor, rt) in timed_runtimes() {
        let limiter = Limiter::new(ours).unwrap();
        group.bench_function(BenchmarkId::new("bounded", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..CALLS {
                    black_box(limiter.try_acquire()).unwrap();
                }
            })
        });
        let governor = governor::RateLimiter::direct(theirs);
        group.bench_function(BenchmarkId::new("governor_check", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..CALLS {
                    black_box(governor.check()).unwrap();
                }
            })
        });
        let counter = quanta::Clock::new();
        let origin = counter.raw();
        group.bench_function(BenchmarkId::new("counter_read", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..CALLS {
                    black_box(counter.delta_as_nanos(origin, counter.raw()));
                }
            })
        });
        group.bench_function(BenchmarkId::new("tokio_clock_read", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..CALLS {
                    black_box(tokio::time::Instant::now());
                }
            })
        });
        let clock = rt.block_on(async {
            TokioClock {
                origin: tokio::time::Instant::now(),
            }
        });
        let governor_tokio = governor::RateLimiter::direct_with_clock(theirs, clock);
        group.bench_function(
            BenchmarkId::new("governor_check_tokio_clock", flavor),
            |b| {
                b.to_async(&rt).iter(|| async {
                    for _ in 0..CALLS {
                        black_box(governor_tokio.check()).unwrap();
                    }
                })
            },
        );
    }
    group.finish();
}

fn bench_acquire(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit/acquire_uncontended");
    group.throughput(Throughput::Elements(CALLS));
    let (ours, theirs) = never_limits();
    for (flavor, rt) in timed_runtimes() {
        let limiter = Limiter::new(ours).unwrap();
        group.bench_function(BenchmarkId::new("bounded", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..CALLS {
                    limiter.acquire().await;
                }
            })
        });
        let governor = governor::RateLimiter::direct(theirs);
        group.bench_function(BenchmarkId::new("governor_until_ready", flavor), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..CALLS {
                    governor.until_ready().await;
                }
            })
        });
    }
    group.finish();
}

/// Counts polls of the wrapped future.
struct CountPolls<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

fn waiter_quota() -> (Quota, governor::Quota) {
    let (rate, burst) = (20_000, 100);
    (
        Quota::per_second(rate).burst(burst),
        governor::Quota::per_second(NonZeroU32::new(rate).unwrap())
            .allow_burst(NonZeroU32::new(burst).unwrap()),
    )
}

/// Runs 200 tasks taking 10 units each through `take`; returns polls beyond the first per grant.
async fn two_hundred<T, Fut>(take: T) -> f64
where
    T: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let polls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(WAITERS);
    for _ in 0..WAITERS {
        let (take, polls) = (take.clone(), polls.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..UNITS_EACH {
                CountPolls {
                    inner: Box::pin(take()),
                    polls: polls.clone(),
                }
                .await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("waiter");
    }
    let grants = (WAITERS * UNITS_EACH) as f64;
    (polls.load(Ordering::Relaxed) as f64 - grants) / grants
}

fn bench_waiters(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit/waiters_200");
    group.throughput(Throughput::Elements((WAITERS * UNITS_EACH) as u64));
    group.sample_size(10);
    let (ours, theirs) = waiter_quota();
    for (flavor, rt) in timed_runtimes() {
        let ours_take = move || {
            let limiter = Limiter::new(ours).unwrap();
            move || {
                let limiter = limiter.clone();
                async move { limiter.acquire().await }
            }
        };
        let theirs_take = move || {
            let limiter = Arc::new(governor::RateLimiter::direct(theirs));
            move || {
                let limiter = limiter.clone();
                async move { limiter.until_ready().await }
            }
        };
        let ours_wakes = rt.block_on(two_hundred(ours_take()));
        let theirs_wakes = rt.block_on(two_hundred(theirs_take()));
        println!(
            "ratelimit/waiters_200/{flavor}: wake-ups per grant: bounded {ours_wakes:.3}, governor {theirs_wakes:.3}"
        );
        group.bench_function(BenchmarkId::new("bounded", flavor), |b| {
            b.to_async(&rt).iter(|| two_hundred(ours_take()))
        });
        group.bench_function(BenchmarkId::new("governor_until_ready", flavor), |b| {
            b.to_async(&rt).iter(|| two_hundred(theirs_take()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_try_acquire, bench_acquire, bench_waiters);
criterion_main!(benches);
