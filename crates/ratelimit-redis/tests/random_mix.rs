//! Replicas mixing every way to take units from one shared bucket (waits, tries, batches, waits
//! given up at random, waits with deadlines, waits whose context is cancelled), each with its own
//! connection, some of them keyed limiters whose key names the same bucket: no window of time is
//! granted more than the quota allows, `burst + (window + late) / interval`, where `late` is how long
//! after its instant a grant may be seen (the reply's trip back and a task's wake-up). Each replica's
//! counters say what its caller saw.
//!
//! These run on real time, because the bucket lives on Redis's clock, with intervals of 40 to 80 ms:
//! long beside `late`, so that one unit granted twice, as a give-back that a later reservation
//! depends on would grant it, is more than the bound allows.

#[path = "../../ratelimit/tests/support/windows.rs"]
mod windows;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::{
    AcquireError, RedisKeyedLimiter, RedisLimiter, RedisMetrics, TryAcquireError,
};
use bounded_testkit::redis_server::RedisServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::time::Instant;
use windows::within_quota_seen_late;

/// How long after its instant a grant may be seen: the reply's trip, tokio's 1 ms timer, and a task
/// woken on a busy machine.
const LATE: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy)]
enum Call {
    Acquire,
    /// Up to the burst: the number is taken modulo the burst, plus one.
    AcquireN(u32),
    TryAcquireN(u32),
    /// A wait dropped after this many tenths of the interval, if not granted by then.
    GiveUpAfter(u32),
    /// A wait of `n` units on a context whose deadline is this many tenths of the interval away.
    Deadline(u32, u32),
    /// A wait of `n` units on a context cancelled after this many tenths of the interval.
    CancelAfter(u32, u32),
    /// A pause of this many tenths of the interval.
    Pause(u32),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        Just(Call::Acquire),
        any::<u32>().prop_map(Call::AcquireN),
        any::<u32>().prop_map(Call::TryAcquireN),
        (0u32..30).prop_map(Call::GiveUpAfter),
        (any::<u32>(), 0u32..30).prop_map(|(n, tenths)| Call::Deadline(n, tenths)),
        (any::<u32>(), 0u32..30).prop_map(|(n, tenths)| Call::CancelAfter(n, tenths)),
        (0u32..20).prop_map(Call::Pause),
    ]
}

/// A replica: a limiter over the bucket by name, or a keyed limiter whose key names the same bucket.
#[derive(Clone)]
enum Replica {
    Plain(RedisLimiter),
    Keyed(RedisKeyedLimiter, &'static str),
}

impl Replica {
    async fn acquire_n(&self, n: u32) -> Result<(), AcquireError> {
        match self {
            Replica::Plain(limiter) => limiter.acquire_n(n).await,
            Replica::Keyed(limiter, key) => limiter.acquire_n(key, n).await,
        }
    }

    async fn acquire_n_with(&self, ctx: &Context, n: u32) -> Result<(), AcquireError> {
        match self {
            Replica::Plain(limiter) => limiter.acquire_n_with(ctx, n).await,
            Replica::Keyed(limiter, key) => limiter.acquire_n_with(ctx, key, n).await,
        }
    }

    async fn try_acquire_n(&self, n: u32) -> Result<(), TryAcquireError> {
        match self {
            Replica::Plain(limiter) => limiter.try_acquire_n(n).await,
            Replica::Keyed(limiter, key) => limiter.try_acquire_n(key, n).await,
        }
    }

    fn metrics(&self) -> RedisMetrics {
        match self {
            Replica::Plain(limiter) => limiter.metrics(),
            Replica::Keyed(limiter, _) => limiter.metrics(),
        }
    }
}

/// What one replica's caller saw, to hold its counters to: units granted, calls refused at once,
/// and waits their context ended (a wait dropped is given back and counted nowhere).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    granted: u64,
    rejected: u64,
    abandoned: u64,
}

/// When each grant was seen, and how many units it took.
type Grants = Arc<Mutex<Vec<(Duration, u32)>>>;

async fn caller(
    replica: Replica,
    calls: Vec<Call>,
    interval: Duration,
    burst: u32,
    start: Instant,
    grants: Grants,
) -> Seen {
    let seen = Mutex::new(Seen::default());
    let granted = |units: u32| {
        grants.lock().unwrap().push((start.elapsed(), units));
        seen.lock().unwrap().granted += u64::from(units);
    };
    let rejected = || seen.lock().unwrap().rejected += 1;
    let tenths = |t: u32| interval * t / 10;
    // With Redis up, a wait ends only by a grant or by its context.
    let ended_by_context = |result: Result<(), AcquireError>, units| match result {
        Ok(()) => granted(units),
        Err(AcquireError::DeadlineTooSoon { .. }) => rejected(),
        Err(err) => {
            assert!(err.cause().is_some(), "{err}");
            seen.lock().unwrap().abandoned += 1;
        }
    };
    for call in calls {
        match call {
            Call::Acquire => {
                replica.acquire_n(1).await.expect("Redis is up");
                granted(1);
            }
            Call::AcquireN(n) => {
                let n = n % burst + 1;
                replica.acquire_n(n).await.expect("within the burst");
                granted(n);
            }
            Call::TryAcquireN(n) => {
                let n = n % burst + 1;
                match replica.try_acquire_n(n).await {
                    Ok(()) => granted(n),
                    Err(err) => {
                        assert!(err.retry_after().is_some(), "{err}");
                        rejected();
                    }
                }
            }
            Call::GiveUpAfter(t) => {
                if let Ok(result) = tokio::time::timeout(tenths(t), replica.acquire_n(1)).await {
                    result.expect("Redis is up");
                    granted(1);
                }
            }
            Call::Deadline(n, t) => {
                let n = n % burst + 1;
                let ctx = Context::new().with_timeout(tenths(t));
                ended_by_context(replica.acquire_n_with(&ctx, n).await, n);
            }
            Call::CancelAfter(n, t) => {
                let n = n % burst + 1;
                let ctx = Context::new();
                let canceller = ctx.clone();
                let wait = tenths(t);
                let cancel = tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    canceller.cancel();
                });
                ended_by_context(replica.acquire_n_with(&ctx, n).await, n);
                cancel.abort();
            }
            Call::Pause(t) => tokio::time::sleep(tenths(t)).await,
        }
    }
    seen.into_inner().unwrap()
}

#[test]
fn no_window_of_time_gets_more_than_the_quota_allows_across_replicas() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = std::cell::Cell::new(0);
    let strategy = (
        40u64..=80,
        1u32..=3,
        proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(call(), 0..8)),
            1..=4,
        ),
    );
    let mut runner = TestRunner::new(Config::with_cases(12));
    let result = runner.run(&strategy, |(interval_ms, burst, callers)| {
        let case = cases.get() + 1;
        cases.set(case);
        let bucket = format!("mix:{case}");
        let interval = Duration::from_millis(interval_ms);
        let quota = Quota::every(interval).burst(burst);
        let grants = Grants::default();
        let seen = grants.clone();
        let server = &server;
        let ran = runtime.block_on(async move {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for (keyed, calls) in callers {
                let conn = server.connect().await;
                // Long enough that a busy machine never makes Redis look unavailable.
                let timeout = Duration::from_secs(2);
                let replica = if keyed {
                    let limiter = RedisKeyedLimiter::builder(conn, "mix", quota)
                        .timeout(timeout)
                        .build()
                        .unwrap();
                    let key: &'static str = format!("{case}").leak();
                    assert_eq!(limiter.bucket(key), bucket);
                    Replica::Keyed(limiter, key)
                } else {
                    let limiter = RedisLimiter::builder(conn, bucket.clone(), quota)
                        .timeout(timeout)
                        .build()
                        .unwrap();
                    Replica::Plain(limiter)
                };
                let task = caller(replica.clone(), calls, interval, burst, start, seen.clone());
                tasks.push((replica, tokio::spawn(task)));
            }
            // No call may hang: every wait ends by a grant or by its context.
            tokio::time::timeout(Duration::from_secs(60), async {
                let mut counts = Vec::new();
                for (replica, task) in tasks {
                    let saw = task.await.unwrap();
                    counts.push((replica.metrics(), saw));
                }
                counts
            })
            .await
        });
        let Ok(counts) = ran else {
            return Err(TestCaseError::fail("a caller was still waiting after 60 s"));
        };
        // Each replica's counters say what its caller saw; nobody is left waiting.
        for (metrics, saw) in counts {
            let counted = Seen {
                granted: metrics.granted,
                rejected: metrics.rejected,
                abandoned: metrics.abandoned,
            };
            prop_assert_eq!(counted, saw, "{:?}", metrics);
            prop_assert_eq!((metrics.waiting, metrics.unavailable), (0, 0));
        }
        let grants = grants.lock().unwrap().clone();
        within_quota_seen_late(grants, interval, burst, LATE).map_err(TestCaseError::fail)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
