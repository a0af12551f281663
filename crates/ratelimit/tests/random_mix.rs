//! Callers mixing every way to take units (waits, tries, batches, waits given up at random, waits
//! with deadlines, reservations acted on or cancelled), on the paused clock: no window of time is
//! granted more than the quota allows, `burst + (window + 1 ms) / interval` (a waiter is granted as
//! of the instant it conformed, up to one tick of tokio's 1 ms timer before it is seen), and the
//! limiter's counters say what the callers saw. The bound holds for each key of a keyed limiter that
//! remembers fewer keys than its callers use.

#[path = "../../group/tests/support/paused.rs"]
mod paused;
#[path = "support/windows.rs"]
mod windows;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_ratelimit::{AcquireError, KeyedLimiter, Limiter, Quota};
use paused::paused_runtime;
use proptest::prelude::*;
use tokio::time::Instant;
use windows::within_quota;

#[derive(Debug, Clone, Copy)]
enum Call {
    Acquire,
    /// Up to the burst: the number is taken modulo the burst, plus one.
    AcquireN(u32),
    TryAcquire,
    TryAcquireN(u32),
    /// A wait dropped after this many microseconds, if not granted by then.
    GiveUpAfter(u32),
    /// A wait of `n` units on a context whose deadline is this many microseconds away.
    Deadline(u32, u32),
    /// A reservation acted on at its instant (`true`) or cancelled after this many microseconds.
    Reserve(bool, u32),
    Pause(u32),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        Just(Call::Acquire),
        any::<u32>().prop_map(Call::AcquireN),
        Just(Call::TryAcquire),
        any::<u32>().prop_map(Call::TryAcquireN),
        (0u32..60_000).prop_map(Call::GiveUpAfter),
        // A deadline of 0 µs now and then: a context that has ended before the wait begins.
        (
            any::<u32>(),
            prop_oneof![1 => Just(0u32), 9 => 0u32..60_000]
        )
            .prop_map(|(n, us)| Call::Deadline(n, us)),
        (any::<bool>(), 0u32..60_000).prop_map(|(act, us)| Call::Reserve(act, us)),
        (0u32..40_000).prop_map(Call::Pause),
    ]
}

/// When each grant was seen, and how many units it took.
type Grants = Arc<Mutex<Vec<(Duration, u32)>>>;

/// What the callers saw, to hold the limiter's counters to: units granted, calls refused at once,
/// and waits that left the line without a grant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    granted: u64,
    rejected: u64,
    abandoned: u64,
}

async fn caller(
    limiter: Limiter,
    calls: Vec<Call>,
    start: Instant,
    grants: Grants,
    seen: Arc<Mutex<Seen>>,
) {
    let burst = limiter.quota().count();
    let granted = |units| {
        grants.lock().unwrap().push((start.elapsed(), units));
        seen.lock().unwrap().granted += u64::from(units);
    };
    let rejected = || seen.lock().unwrap().rejected += 1;
    let abandoned = || seen.lock().unwrap().abandoned += 1;
    let micros = |us| Duration::from_micros(u64::from(us));
    for call in calls {
        match call {
            Call::Acquire => {
                limiter.acquire().await;
                granted(1);
            }
            Call::AcquireN(n) => {
                let n = n % burst + 1;
                limiter.acquire_n(n).await.expect("within the burst");
                granted(n);
            }
            Call::TryAcquire => match limiter.try_acquire() {
                Ok(()) => granted(1),
                Err(_) => rejected(),
            },
            Call::TryAcquireN(n) => {
                let n = n % burst + 1;
                match limiter.try_acquire_n(n) {
                    Ok(()) => granted(n),
                    Err(_) => rejected(),
                }
            }
            Call::GiveUpAfter(us) => {
                match tokio::time::timeout(micros(us), limiter.acquire()).await {
                    Ok(()) => granted(1),
                    Err(_) => abandoned(),
                }
            }
            Call::Deadline(n, us) => {
                let n = n % burst + 1;
                let ctx = Context::new().with_timeout(micros(us));
                match limiter.acquire_n_with(&ctx, n).await {
                    Ok(()) => granted(n),
                    Err(AcquireError::DeadlineTooSoon { .. }) => rejected(),
                    Err(_) => abandoned(),
                }
            }
            Call::Reserve(act, us) => {
                let in_line = limiter.metrics().waiting;
                let mut reservation = limiter.reserve();
                // Nothing else runs in between on this runtime's one thread.
                let queued = limiter.metrics().waiting > in_line;
                if act {
                    reservation
                        .ready()
                        .await
                        .expect("one unit is within the burst");
                    granted(1);
                } else {
                    // One that joined the line leaves it (counted as abandoned, whether or not
                    // its turn came meanwhile); units granted at once are given back uncounted.
                    tokio::time::sleep(micros(us)).await;
                    if queued {
                        abandoned();
                    }
                    reservation.cancel();
                }
            }
            Call::Pause(us) => tokio::time::sleep(micros(us)).await,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_window_of_time_gets_more_than_the_quota_allows(
        interval_ms in 1u64..20,
        burst in 1u32..=6,
        callers in proptest::collection::vec(proptest::collection::vec(call(), 0..40), 1..=6),
    ) {
        let interval = Duration::from_millis(interval_ms);
        let grants = Grants::default();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (g, s) = (grants.clone(), seen.clone());
        let metrics = paused_runtime().block_on(async move {
            let limiter = Limiter::new(Quota::every(interval).burst(burst)).unwrap();
            let start = Instant::now();
            let tasks: Vec<_> = callers
                .into_iter()
                .map(|calls| tokio::spawn(caller(limiter.clone(), calls, start, g.clone(), s.clone())))
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            limiter.metrics()
        });
        // The counters say what the callers saw, and nobody is left in line.
        let counted = Seen { granted: metrics.granted, rejected: metrics.rejected, abandoned: metrics.abandoned };
        prop_assert_eq!(counted, *seen.lock().unwrap(), "{:?}", metrics);
        prop_assert_eq!(metrics.waiting, 0);
        let grants = grants.lock().unwrap().clone();
        if let Err(over) = within_quota(grants, interval, burst) {
            prop_assert!(false, "{}", over);
        }
    }

    #[test]
    fn no_key_is_granted_more_than_the_quota_allows_while_keys_are_forgotten(
        interval_ms in 1u64..20,
        burst in 1u32..=4,
        max_keys in 1usize..=4,
        callers in proptest::collection::vec(
            proptest::collection::vec((0u8..6, keyed_call()), 0..40),
            1..=6,
        ),
    ) {
        let interval = Duration::from_millis(interval_ms);
        let grants = KeyedGrants::default();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (g, s) = (grants.clone(), seen.clone());
        let metrics = paused_runtime().block_on(async move {
            let quota = Quota::every(interval).burst(burst);
            let limiter = KeyedLimiter::new(quota, max_keys).unwrap();
            let start = Instant::now();
            let tasks: Vec<_> = callers
                .into_iter()
                .map(|calls| tokio::spawn(keyed_caller(limiter.clone(), calls, start, g.clone(), s.clone())))
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            limiter.metrics()
        });
        let saw = *seen.lock().unwrap();
        let counted = Seen { granted: metrics.granted, rejected: metrics.rejected, abandoned: metrics.abandoned };
        prop_assert_eq!(counted, saw, "{:?}", metrics);
        prop_assert_eq!(metrics.waiting, 0);
        prop_assert!(metrics.keys <= max_keys, "{:?}", metrics);
        for key in 0..6 {
            let of_key: Vec<_> = grants
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _, _)| *k == key)
                .map(|(_, at, n)| (*at, *n))
                .collect();
            if let Err(over) = within_quota(of_key, interval, burst) {
                prop_assert!(false, "key {}: {}", key, over);
            }
        }
    }
}

/// The calls a keyed limiter offers (it has no reservations).
fn keyed_call() -> impl Strategy<Value = Call> {
    call().prop_filter("a keyed limiter has no reservations", |c| {
        !matches!(c, Call::Reserve(..))
    })
}

/// When each grant was seen, for which key, and how many units it took.
type KeyedGrants = Arc<Mutex<Vec<(u8, Duration, u32)>>>;

async fn keyed_caller(
    limiter: KeyedLimiter<u8>,
    calls: Vec<(u8, Call)>,
    start: Instant,
    grants: KeyedGrants,
    seen: Arc<Mutex<Seen>>,
) {
    let burst = limiter.quota().count();
    let micros = |us| Duration::from_micros(u64::from(us));
    let rejected = || seen.lock().unwrap().rejected += 1;
    let abandoned = || seen.lock().unwrap().abandoned += 1;
    for (key, call) in calls {
        let granted = |units| {
            grants.lock().unwrap().push((key, start.elapsed(), units));
            seen.lock().unwrap().granted += u64::from(units);
        };
        match call {
            Call::Acquire => {
                limiter.acquire(&key).await;
                granted(1);
            }
            Call::AcquireN(n) => {
                let n = n % burst + 1;
                limiter.acquire_n(&key, n).await.expect("within the burst");
                granted(n);
            }
            Call::TryAcquire => match limiter.try_acquire(&key) {
                Ok(()) => granted(1),
                Err(_) => rejected(),
            },
            Call::TryAcquireN(n) => {
                let n = n % burst + 1;
                match limiter.try_acquire_n(&key, n) {
                    Ok(()) => granted(n),
                    Err(_) => rejected(),
                }
            }
            Call::GiveUpAfter(us) => {
                // Given up only while it sleeps: a unit free now is granted in the first poll.
                match tokio::time::timeout(micros(us), limiter.acquire(&key)).await {
                    Ok(()) => granted(1),
                    Err(_) => abandoned(),
                }
            }
            Call::Deadline(n, us) => {
                let n = n % burst + 1;
                let ctx = Context::new().with_timeout(micros(us));
                match limiter.acquire_n_with(&ctx, &key, n).await {
                    Ok(()) => granted(n),
                    Err(AcquireError::DeadlineTooSoon { .. }) => rejected(),
                    Err(_) => abandoned(),
                }
            }
            Call::Reserve(..) => unreachable!("filtered out"),
            Call::Pause(us) => tokio::time::sleep(micros(us)).await,
        }
    }
}
