//! `ResultGroup`: values in submission order under random delays and limits; every error in all-errors mode.

#[path = "support/paused.rs"]
mod paused;

#[path = "support/gauge.rs"]
#[allow(dead_code)]
mod gauge;

use paused::paused_runtime;
use std::sync::Arc;
use std::time::Duration;

use bounded_group::{ResultGroup, SpawnError};
use gauge::Gauge;
use proptest::prelude::*;
use tokio::time::sleep;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn values_come_back_in_submission_order(
        delays in prop::collection::vec(0u64..50, 0..60),
        limit in prop::option::of(1usize..8),
    ) {
        let out = paused_runtime().block_on(async {
            let mut group = ResultGroup::<usize, String>::new();
            group.set_limit(limit).unwrap();
            let gauge = Gauge::default();
            for (i, delay) in delays.iter().copied().enumerate() {
                let gauge = gauge.clone();
                group.spawn(move |_ctx| async move {
                    let _running = gauge.enter();
                    sleep(Duration::from_millis(delay)).await;
                    Ok(i)
                }).await.unwrap();
            }
            let values = group.wait().await.unwrap();
            (values, gauge.max())
        });
        prop_assert_eq!(out.0, (0..delays.len()).collect::<Vec<_>>());
        if let Some(limit) = limit {
            prop_assert!(out.1 <= limit);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn failed_tasks_values_are_dropped_and_the_first_error_returned() {
    let group = ResultGroup::<Arc<u32>, &str>::new();
    let kept = Arc::new(1);
    let probe = Arc::downgrade(&kept);
    group
        .spawn(move |_ctx| async move { Ok(kept) })
        .await
        .unwrap();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_millis(10)).await;
            Err("second fails")
        })
        .await
        .unwrap();
    assert_eq!(group.wait().await.unwrap_err(), "second fails");
    assert!(
        probe.upgrade().is_none(),
        "values of a failed group are dropped, not leaked"
    );
}

#[tokio::test(start_paused = true)]
async fn all_errors_mode_returns_every_error_each_reachable() {
    #[derive(Debug, PartialEq)]
    struct Failed(usize);
    let group = ResultGroup::<usize, Failed>::new().collect_errors();
    for i in 0..6 {
        group
            .spawn(move |_ctx| async move {
                sleep(Duration::from_millis(60 - 10 * i as u64)).await;
                if i % 2 == 1 { Err(Failed(i)) } else { Ok(i) }
            })
            .await
            .unwrap();
    }
    let errors = group.wait_all().await.unwrap_err();
    // In the order they happened (the later-submitted ones slept less).
    assert_eq!(errors, [Failed(5), Failed(3), Failed(1)]);
}

#[tokio::test]
async fn a_refused_spawn_hands_back_the_original_closure_and_leaves_no_gap() {
    let mut group = ResultGroup::<u32, String>::new();
    group.set_limit(Some(0)).unwrap();
    let err = group.spawn(|_ctx| async { Ok(1) }).await.unwrap_err();
    assert!(matches!(err, SpawnError::LimitZero(_)));
    let closure = err.into_inner();
    group.set_limit(Some(1)).unwrap();
    group.spawn(|_ctx| async { Ok(0) }).await.unwrap();
    group.spawn(closure).await.unwrap();
    assert_eq!(group.wait().await.unwrap(), [0, 1]);
}
