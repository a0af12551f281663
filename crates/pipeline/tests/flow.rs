//! Every item comes out exactly once, and the output ends cleanly when the source ends.

use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_pipeline::{Pipeline, PipelineError};
use futures_util::StreamExt;

const N: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_comes_out_exactly_once() {
    let mut out = Pipeline::new(&Context::new())
        .source(0..N)
        .map(4, |_ctx, n| async move {
            tokio::task::yield_now().await;
            Ok::<_, String>(n * 3)
        })
        .buffer(3)
        .map(3, |_ctx, n| async move { Ok(n + 1) })
        .output();
    let mut seen = vec![0u32; N as usize];
    while let Some(item) = out.next().await {
        let n = item.expect("no stage fails");
        seen[((n - 1) / 3) as usize] += 1;
    }
    assert!(out.next().await.is_none(), "the output stays ended");
    assert!(
        seen.iter().all(|&times| times == 1),
        "every item exactly once"
    );
    let metrics = out.metrics();
    assert_eq!(
        metrics
            .iter()
            .map(|m| (m.items_in, m.items_out))
            .collect::<Vec<_>>(),
        [(N, N); 3]
    );
    // An output read to its end holds no task, even before it is dropped.
    live::assert_none_alive().await;
    drop(out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_map_passes_on_exactly_the_items_it_keeps() {
    let out = Pipeline::new(&Context::new())
        .source(0..N)
        .filter_map(3, |_ctx, n| async move {
            Ok::<_, String>((n % 3 == 0).then_some(n))
        })
        .named("thirds")
        .map_ordered(2, |_ctx, n| async move { Ok(n) })
        .output();
    assert_eq!(out.metrics()[1].name, "thirds");
    let (mut items, failure) = out.collect().await;
    assert!(failure.is_none(), "{failure:?}");
    // `filter_map` is unordered, so compare as sets of exactly-once items.
    items.sort();
    assert!(
        items == (0..N).filter(|n| n % 3 == 0).collect::<Vec<_>>(),
        "each kept item exactly once"
    );
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn metrics_count_in_and_out_per_stage() {
    let out = Pipeline::new(&Context::new())
        .source(0..100u64)
        .filter_map(2, |_ctx, n| async move {
            Ok::<_, String>((n < 40).then_some(n))
        })
        .output();
    let metrics_before = out.metrics();
    assert_eq!(metrics_before.len(), 2);
    let mut out = out;
    let mut count = 0;
    while let Some(item) = out.next().await {
        item.unwrap();
        count += 1;
    }
    assert_eq!(count, 40);
    let m = out.metrics();
    assert_eq!((m[0].items_in, m[0].items_out), (100, 100));
    assert_eq!(
        (m[1].items_in, m[1].items_out, m[1].busy, m[1].queued),
        (100, 40, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_blocked_on_room_downstream_is_not_busy() {
    // Nobody reads the output: both workers fill the buffer after them and wait for room.
    let out = Pipeline::new(&Context::new())
        .source(0..100u64)
        .map(2, |_ctx, n| async move { Ok::<_, String>(n) })
        .buffer(1)
        .output();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let m = out.metrics();
    assert!(m[1].items_in > 0, "the workers took items: {m:?}");
    assert!(m[1].items_in < 100, "the workers are blocked: {m:?}");
    assert_eq!(m[1].busy, 0, "a worker waiting for room is not busy: {m:?}");
}

#[tokio::test(start_paused = true)]
async fn a_source_waiting_for_room_has_told_every_item_it_pulled() {
    // The one worker holds its item forever: the source fills the link (a buffer of 4 and the one item
    // in the worker's hands) and waits for room.
    let out = Pipeline::new(&Context::new())
        .source(0..100u64)
        .buffer(4)
        .map(1, |_ctx, n| async move {
            std::future::pending::<()>().await;
            Ok::<_, String>(n)
        })
        .output();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let m = out.metrics();
    assert_eq!(
        (m[0].items_in, m[0].items_out, m[1].items_in),
        (5, 5, 1),
        "{m:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_source_ends_the_output_at_once() {
    let out = Pipeline::new(&Context::new())
        .source(Vec::<u8>::new())
        .map(2, |_ctx, n| async move { Ok::<_, String>(n) })
        .output();
    let result: Result<Vec<u8>, PipelineError<String>> = out.try_collect().await;
    assert_eq!(result.unwrap(), Vec::<u8>::new());
    tokio::time::sleep(Duration::from_millis(1)).await;
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_stream_source_that_goes_quiet_delivers_every_item() {
    // Items trickle in every 10 ms, so the source waits on its stream between them.
    let trickle = futures_util::stream::unfold(0u64, |n| async move {
        if n == 50 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        Some((n, n + 1))
    });
    let out = Pipeline::new(&Context::new())
        .source_stream(trickle)
        .map_ordered(2, |_ctx, n| async move { Ok::<_, String>(n) })
        .output();
    assert_eq!(
        out.try_collect().await.unwrap(),
        (0..50).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_stream_is_reported_and_stops_the_pipeline() {
    let bad = futures_util::stream::iter(0..10u64).map(|n| {
        assert!(n != 4, "the source broke at {n}");
        n
    });
    let err = Pipeline::new(&Context::new())
        .source_stream(bad)
        .map(2, |_ctx, n| async move { Ok::<_, String>(n) })
        .output()
        .try_collect()
        .await
        .unwrap_err();
    match err {
        PipelineError::Panicked {
            stage,
            index,
            payload,
        } => {
            assert_eq!((stage.as_str(), index), ("source", 4));
            assert_eq!(payload.message(), "the source broke at 4");
        }
        other => panic!("{other:?}"),
    }
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_metrics_handle_reads_the_final_figures_after_the_output_is_collected() {
    let output = Pipeline::new(&Context::new())
        .source(0..1_000u32)
        .filter_map(3, |_ctx, n| async move {
            Ok::<_, String>((n % 4 == 0).then_some(n))
        })
        .named("quarter")
        .output();
    let metrics = output.metrics_handle();
    let watcher = metrics.clone();
    let kept = output.try_collect().await.unwrap();
    assert_eq!(kept.len(), 250);
    let stages = metrics.snapshot();
    assert_eq!(stages.len(), 2);
    assert_eq!(
        (stages[0].items_out, stages[1].items_in, stages[1].items_out),
        (1_000, 1_000, 250)
    );
    assert_eq!(
        watcher.snapshot(),
        stages,
        "every clone reads the same counters"
    );
    bounded_cancel::live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn flat_map_passes_on_every_item_each_call_yields_exactly_once() {
    let mut out = Pipeline::new(&Context::new())
        .source(0..200u64)
        .flat_map(4, |_ctx, n| async move {
            // n yields n items: 0 yields none.
            Ok::<_, String>((0..n).map(move |k| n * 1_000 + k))
        })
        .map(2, |_ctx, v| async move { Ok(v) })
        .output()
        .try_collect()
        .await
        .unwrap();
    out.sort_unstable();
    let mut expected: Vec<u64> = (0..200u64)
        .flat_map(|n| (0..n).map(move |k| n * 1_000 + k))
        .collect();
    expected.sort_unstable();
    assert_eq!(out, expected);
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn flat_map_waits_for_room_between_the_items_one_call_yields() {
    let mut out = Pipeline::new(&Context::new())
        .source([1_000_000u64])
        .flat_map(1, |_ctx, n| async move { Ok::<_, String>(0..n) })
        .buffer(4)
        .output();
    for expected in 0..10 {
        assert_eq!(out.next().await.unwrap().unwrap(), expected);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let metrics = out.metrics();
    // The stage passed on only what its output link holds, not the million items its call yields.
    assert!(metrics[1].items_out <= 10 + 4 + 1 + 16, "{:?}", metrics[1]);
    drop(out);
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_inside_a_flat_map_iterator_ends_the_pipeline_with_its_payload() {
    let err = Pipeline::new(&Context::new())
        .source(0..10u32)
        .flat_map(2, |_ctx, n| async move {
            Ok::<_, String>((0..3).map(move |k| {
                assert!(!(n == 4 && k == 1), "iterator broke on {n}");
                n * 10 + k
            }))
        })
        .named("expand")
        .output()
        .try_collect()
        .await
        .unwrap_err();
    match err {
        PipelineError::Panicked {
            stage,
            index,
            payload,
        } => {
            assert_eq!((stage.as_str(), index), ("expand", 4));
            assert_eq!(payload.message(), "iterator broke on 4");
        }
        other => panic!("{other:?}"),
    }
    live::assert_none_alive().await;
}

/// The output is a `FusedStream`: terminated once it has yielded `None`, not before, and after a
/// failure only once the `Err` that says why has been read.
#[tokio::test(start_paused = true)]
async fn the_output_is_terminated_once_it_has_yielded_none() {
    use futures_util::stream::FusedStream;

    let mut out = Pipeline::new(&Context::new())
        .source(0..2u8)
        .map(1, |_ctx, n| async move { Ok::<_, String>(n) })
        .output();
    assert!(!out.is_terminated());
    assert_eq!(out.next().await.unwrap().unwrap(), 0);
    assert_eq!(out.next().await.unwrap().unwrap(), 1);
    assert!(!out.is_terminated());
    assert!(out.next().await.is_none());
    assert!(out.is_terminated());
    assert!(out.next().await.is_none());

    let mut failed = Pipeline::new(&Context::new())
        .source(0..2u8)
        .map(1, |_ctx, _n| async move { Err::<u8, _>("bad") })
        .output();
    assert!(matches!(
        failed.next().await,
        Some(Err(PipelineError::Failed { .. }))
    ));
    assert!(!failed.is_terminated());
    assert!(failed.next().await.is_none());
    assert!(failed.is_terminated());
}

/// A stage function whose futures keep 1 MiB across an await, half a worker thread's stack, runs in
/// every kind of stage, on both runtimes: the pipeline boxes such a future as it is made, as
/// `tokio::spawn` does, where moving it through a worker's wrappers would overflow the worker's
/// stack in a debug build.
#[test]
fn stage_functions_with_large_futures_run_on_a_workers_stack() {
    bounded_testkit::on_worker_stacks(|| async {
        use bounded_testkit::large_future as large;
        let out = Pipeline::<String>::new(&Context::new())
            .source(0..8u64)
            .map(2, |_ctx, n| large(n))
            .filter_map(2, |_ctx, n| large(Some(n)))
            .flat_map(2, |_ctx, n| large(vec![n]))
            .map_ordered(2, |_ctx, n| large(n))
            .output()
            .try_collect()
            .await;
        let mut out: Vec<u64> = out.unwrap();
        out.sort_unstable();
        assert_eq!(out, (0..8).collect::<Vec<_>>());
    });
}
