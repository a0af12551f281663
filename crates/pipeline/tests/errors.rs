//! Fail fast returns the first error as the identical value and stops everything; skip mode reports
//! every error with its index and lets the rest through.

#[path = "support/counting.rs"]
mod counting;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_pipeline::{Pipeline, PipelineError};
use counting::Pulled;

/// An error whose identity can be checked: the same `Arc` comes back, not a copy.
#[derive(Debug, Clone)]
struct Rejected(Arc<str>);

#[tokio::test(start_paused = true)]
async fn the_first_error_comes_back_identical_and_every_stage_stops() {
    let pulled = Pulled::default();
    let first = Rejected(Arc::from("item 100 is malformed"));
    let later = Rejected(Arc::from("a later failure"));
    let (f, l) = (first.clone(), later.clone());
    let result = Pipeline::new(&Context::new())
        .source(pulled.source(1_000_000))
        .map(4, move |_ctx, i| {
            let (first, later) = (f.clone(), l.clone());
            async move {
                if i == 100 {
                    return Err(first);
                }
                if i > 100 && i % 2 == 0 {
                    // Failures that happen after the first must not replace it.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    return Err(later);
                }
                Ok(i)
            }
        })
        .map(2, |_ctx, i| async move { Ok(i) })
        .output()
        .try_collect()
        .await;
    match result {
        Err(PipelineError::Failed {
            index,
            error,
            stage,
        }) => {
            assert_eq!((index, stage.as_str()), (100, "map"));
            assert!(Arc::ptr_eq(&error.0, &first.0), "the identical error value");
        }
        other => panic!("{other:?}"),
    }
    live::assert_none_alive().await;
    let after = pulled.count();
    assert!(
        after < 200,
        "the source stopped soon after the failure: {after} pulled"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pulled.count(), after, "and is never pulled again");
}

#[tokio::test(start_paused = true)]
async fn items_already_through_come_out_before_the_error() {
    let (items, failure) = Pipeline::new(&Context::new())
        .source(0..10u32)
        .map_ordered(1, |_ctx, i| async move {
            if i == 5 { Err("five") } else { Ok(i) }
        })
        .output()
        .collect()
        .await;
    assert_eq!(items, [0, 1, 2, 3, 4]);
    assert!(matches!(
        failure,
        Some(PipelineError::Failed {
            index: 5,
            error: "five",
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn skip_mode_reports_every_error_with_its_index_and_lets_the_rest_through() {
    let skipped = Arc::new(Mutex::new(Vec::new()));
    let log = skipped.clone();
    let out = Pipeline::new(&Context::new())
        .skip_errors(move |index, err: String| log.lock().unwrap().push((index, err)))
        .source(0..1_000u64)
        .map(4, |_ctx, i| async move {
            if i % 7 == 0 {
                Err(format!("{i} divisible by 7"))
            } else {
                Ok(i)
            }
        })
        .map(2, |_ctx, i| async move { Ok(i) })
        .output();
    let mut items = out.try_collect().await.unwrap();
    items.sort();
    assert_eq!(items, (0..1_000).filter(|i| i % 7 != 0).collect::<Vec<_>>());
    let mut skipped = skipped.lock().unwrap().clone();
    skipped.sort();
    let expected: Vec<(u64, String)> = (0..1_000)
        .filter(|i| i % 7 == 0)
        .map(|i| (i, format!("{i} divisible by 7")))
        .collect();
    assert_eq!(skipped, expected);
}

#[tokio::test(start_paused = true)]
async fn skip_mode_counts_errors_per_stage() {
    let out = Pipeline::new(&Context::new())
        .skip_errors(|_, _: &str| {})
        .source(0..10u32)
        .map(1, |_ctx, i| async move {
            if i < 3 { Err("low") } else { Ok(i) }
        })
        .output();
    let mut out = out;
    while futures_util::StreamExt::next(&mut out).await.is_some() {}
    let m = out.metrics();
    assert_eq!((m[1].items_in, m[1].items_out, m[1].errors), (10, 7, 3));
}

#[tokio::test(start_paused = true)]
async fn a_fallible_source_fails_fast_with_the_identical_error_and_its_index() {
    let items = (0..100u32).map(|i| {
        if i == 40 {
            Err(format!("bad record {i}"))
        } else {
            Ok(i)
        }
    });
    let (through, failure) = Pipeline::new(&Context::new())
        .try_source(items)
        .map(2, |_ctx, i| async move { Ok(i * 2) })
        .output()
        .collect()
        .await;
    match failure {
        Some(PipelineError::Failed {
            stage,
            index,
            error,
        }) => {
            assert_eq!(
                (stage.as_str(), index, error.as_str()),
                ("source", 40, "bad record 40")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        through.len() <= 40,
        "nothing after the failing record: {}",
        through.len()
    );
    bounded_cancel::live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_fallible_source_in_skip_mode_reports_each_error_and_lets_the_rest_through() {
    let skipped = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = skipped.clone();
    let items =
        futures_util::stream::iter((0..50u32).map(|i| if i % 10 == 3 { Err(i) } else { Ok(i) }));
    let mut kept = Pipeline::new(&Context::new())
        .skip_errors(move |index, err: u32| seen.lock().unwrap().push((index, err)))
        .try_source_stream(items)
        .output()
        .try_collect()
        .await
        .unwrap();
    kept.sort_unstable();
    assert_eq!(kept.len(), 45);
    let skipped = skipped.lock().unwrap().clone();
    assert_eq!(skipped, [(3, 3), (13, 13), (23, 23), (33, 33), (43, 43)]);
}
