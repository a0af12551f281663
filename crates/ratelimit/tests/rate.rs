//! The rate itself: grant instants on the paused clock, the window bound, and agreement with governor.

#[path = "../../group/tests/support/paused.rs"]
mod paused;

use paused::paused_runtime;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_ratelimit::{Limiter, Quota, TryAcquireError};
use proptest::prelude::*;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn a_thousand_acquires_at_100_per_second_with_burst_10_end_at_9_9_seconds() {
    let limiter = Limiter::new(Quota::per_second(100).burst(10)).unwrap();
    let start = Instant::now();
    let mut grants = Vec::new();
    for _ in 0..1000 {
        limiter.acquire().await;
        grants.push(start.elapsed());
    }
    assert!(
        grants[..10].iter().all(Duration::is_zero),
        "the first 10 are immediate: {:?}",
        &grants[..11]
    );
    assert_eq!(grants[10], 10 * MS);
    let last = grants[999];
    assert!(
        last >= Duration::from_millis(9900) && last <= Duration::from_millis(9901),
        "ended at {last:?}"
    );
    bounded_cancel::live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_acquires_end_at_the_same_instant() {
    let limiter = Limiter::new(Quota::per_second(100).burst(10)).unwrap();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let limiter = limiter.clone();
        tasks.spawn(async move {
            limiter.acquire().await;
            start.elapsed()
        });
    }
    let mut grants = tasks.join_all().await;
    grants.sort();
    assert_eq!(grants.iter().filter(|g| g.is_zero()).count(), 10);
    assert_eq!(grants[999], Duration::from_millis(9900));
    let m = limiter.metrics();
    assert_eq!((m.granted, m.waiting), (1000, 0));
    bounded_cancel::live::assert_none_alive().await;
}

#[derive(Clone, Debug)]
enum Arrival {
    /// Let this much time pass.
    Pause(u64),
    /// A `try_acquire_n` now.
    Try(u32),
    /// A task that waits for n units.
    Wait(u32),
}

fn arrival(burst: u32) -> impl Strategy<Value = Arrival> {
    prop_oneof![
        (0u64..40_000).prop_map(Arrival::Pause),
        (1..=burst).prop_map(Arrival::Try),
        (1..=burst).prop_map(Arrival::Wait),
    ]
}

fn case() -> impl Strategy<Value = (u32, u32, Vec<Arrival>)> {
    (1u32..=500, 1u32..=20).prop_flat_map(|(rate, burst)| {
        (
            Just(rate),
            Just(burst),
            proptest::collection::vec(arrival(burst), 1..80),
        )
    })
}

/// Every closed window [a, b] between two grants holds at most rate × (b − a + 1 ms) + burst units:
/// waiters are granted by a timer of tokio's 1 ms resolution, so those that fall due within one tick
/// are delivered together at it.
fn check_windows(
    rate: u32,
    burst: u32,
    mut grants: Vec<(Duration, u32)>,
) -> Result<(), TestCaseError> {
    grants.sort();
    for i in 0..grants.len() {
        let mut units = 0u64;
        for j in i..grants.len() {
            units += u64::from(grants[j].1);
            let span = (grants[j].0 - grants[i].0).as_secs_f64();
            let allowed = f64::from(rate) * (span + 0.001) + f64::from(burst);
            prop_assert!(
                units as f64 <= allowed + 1e-6,
                "{units} units in {span} s at {rate}/s burst {burst}: allowed {allowed}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn no_window_grants_more_than_rate_times_length_plus_burst((rate, burst, arrivals) in case()) {
        let grants = paused_runtime().block_on(async move {
            let limiter = Limiter::new(Quota::per_second(rate).burst(burst)).unwrap();
            let start = Instant::now();
            let grants = Arc::new(Mutex::new(Vec::new()));
            let mut tasks = tokio::task::JoinSet::new();
            for a in arrivals {
                match a {
                    Arrival::Pause(micros) => tokio::time::sleep(Duration::from_micros(micros)).await,
                    Arrival::Try(n) => {
                        if let Ok(()) = limiter.try_acquire_n(n) {
                            grants.lock().unwrap().push((start.elapsed(), n));
                        }
                    }
                    Arrival::Wait(n) => {
                        let (limiter, grants) = (limiter.clone(), grants.clone());
                        tasks.spawn(async move {
                            limiter.acquire_n(n).await.unwrap();
                            grants.lock().unwrap().push((start.elapsed(), n));
                        });
                        tokio::task::yield_now().await;
                    }
                }
            }
            tasks.join_all().await;
            Arc::try_unwrap(grants).unwrap().into_inner().unwrap()
        });
        check_windows(rate, burst, grants)?;
    }

    #[test]
    fn try_acquire_decides_as_governor_does(
        period_us in 1u64..100_000,
        burst in 1u32..=20,
        steps in proptest::collection::vec((0u64..200_000, 1u32..=25), 1..200),
    ) {
        use governor::clock::FakeRelativeClock;
        let gov_quota = governor::Quota::with_period(Duration::from_micros(period_us))
            .unwrap()
            .allow_burst(std::num::NonZeroU32::new(burst).unwrap());
        let clock = FakeRelativeClock::default();
        let gov = governor::RateLimiter::direct_with_clock(gov_quota, clock.clone());
        paused_runtime().block_on(async move {
            let ours = Limiter::new(Quota::from(gov_quota)).unwrap();
            for (pause_us, n) in steps {
                let pause = Duration::from_micros(pause_us);
                tokio::time::advance(pause).await;
                clock.advance(pause);
                let theirs = gov.check_n(std::num::NonZeroU32::new(n).unwrap());
                match (ours.try_acquire_n(n), theirs) {
                    (Err(TryAcquireError::InsufficientCapacity(_)), Err(_)) | (Ok(()), Ok(Ok(()))) => {}
                    (Err(TryAcquireError::RetryAfter(retry)), Ok(Err(not_until))) => {
                        use governor::clock::Clock;
                        prop_assert_eq!(retry.wait(), not_until.wait_time_from(clock.now()));
                    }
                    (ours, theirs) => prop_assert!(false, "n = {}: ours {:?}, governor {:?}", n, ours, theirs),
                }
            }
            Ok(())
        })?;
    }
}
