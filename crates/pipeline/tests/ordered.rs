//! `map_ordered` keeps source order under any delays, and its reorder buffer is bounded.

#[path = "../../group/tests/support/paused.rs"]
mod paused;

#[path = "support/counting.rs"]
mod counting;

#[path = "../../pool/tests/support/two_threads.rs"]
mod two_threads;

use paused::paused_runtime;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use two_threads::two_thread_runtime;

use bounded_cancel::Context;
use bounded_pipeline::Pipeline;
use counting::Pulled;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn map_ordered_preserves_source_order_under_random_delays(
        delays in proptest::collection::vec(0u64..50, 1..80),
        workers in 1usize..=8,
        buffer in 1usize..=8,
    ) {
        let n = delays.len() as u64;
        let delays = Arc::new(delays);
        let out = paused_runtime().block_on(async move {
            Pipeline::new(&Context::new())
                .source(0..n)
                .buffer(buffer)
                .map_ordered(workers, move |_ctx, i| {
                    let delay = Duration::from_millis(delays[i as usize]);
                    async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, String>(i)
                    }
                })
                .buffer(buffer)
                .output()
                .try_collect()
                .await
        });
        prop_assert_eq!(out.unwrap(), (0..n).collect::<Vec<_>>());
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_head_stops_intake_once_the_reorder_window_is_full() {
    const WORKERS: u64 = 4;
    let pulled = Pulled::default();
    let started = Arc::new(AtomicU64::new(0));
    let s = started.clone();
    let out = Pipeline::new(&Context::new())
        .source(pulled.source(1_000))
        .buffer(8)
        .map_ordered(WORKERS as usize, move |_ctx, i| {
            s.fetch_add(1, Ordering::SeqCst);
            async move {
                if i == 0 {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Ok::<_, String>(i)
            }
        })
        .output();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The head is still running: at most 2 × workers items taken, the rest wait upstream.
    assert_eq!(
        started.load(Ordering::SeqCst),
        2 * WORKERS,
        "intake stopped at the window"
    );
    assert_eq!(out.metrics()[1].items_in, 2 * WORKERS);
    // The link into the stage holds 8 + WORKERS (queued, or in the workers' hands: only the head's is),
    // so the source filled it and stopped.
    assert_eq!(pulled.count(), 2 * WORKERS + (8 + WORKERS - 1));
    let items = out.try_collect().await.unwrap();
    assert_eq!(items, (0..1_000).collect::<Vec<_>>());
}

/// Items that arrive one at a time, each after the stage's input ran dry: every `map_ordered` worker
/// waits on the empty input, and each arrival must still wake one of them.
#[tokio::test(start_paused = true)]
async fn a_worker_waiting_on_an_empty_input_is_woken_by_each_arrival() {
    use futures_util::StreamExt;
    let trickle = futures_util::stream::iter(0..20u64).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        i
    });
    let out = Pipeline::new(&Context::new())
        .source_stream(trickle)
        .map_ordered(3, |_ctx, i| async move { Ok::<_, String>(i) })
        .output()
        .try_collect();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await;
    let out = out.expect("every item came out: no worker was left waiting");
    assert_eq!(out.unwrap(), (0..20).collect::<Vec<_>>());
}

/// Eight workers on two threads take items at the same moments: an item's place in the order is
/// fixed as it leaves the input, under the input's lock, so the output keeps input order every
/// time, whichever worker finishes first.
#[test]
fn order_holds_while_workers_on_two_threads_take_at_once() {
    const ITEMS: u64 = 5_000;
    let runtime = two_thread_runtime();
    for round in 0..30 {
        let out = runtime.block_on(async {
            Pipeline::new(&Context::new())
                .source(0..ITEMS)
                .buffer(16)
                .map_ordered(8, |_ctx, i| async move {
                    if i % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                    Ok::<_, String>(i)
                })
                .output()
                .try_collect()
                .await
        });
        assert!(
            out.unwrap() == (0..ITEMS).collect::<Vec<_>>(),
            "round {round}: out of order"
        );
    }
}

/// Items the stage drops (their errors skipped with `skip_errors`) still take their turn in the
/// order: the ones after them come out, in order, and none waits for an item that will never come.
/// Eight workers on two threads, every third item fails, many times.
#[test]
fn dropped_items_leave_no_gap_in_the_order() {
    const ITEMS: u64 = 3_000;
    let runtime = two_thread_runtime();
    let expected: Vec<u64> = (0..ITEMS).filter(|i| i % 3 != 0).collect();
    for round in 0..20 {
        let skipped = Arc::new(AtomicU64::new(0));
        let counted = skipped.clone();
        let out = runtime.block_on(async move {
            let run = Pipeline::new(&Context::new())
                .skip_errors(move |_index, _err: String| {
                    counted.fetch_add(1, Ordering::SeqCst);
                })
                .source(0..ITEMS)
                .buffer(16)
                .map_ordered(8, |_ctx, i| async move {
                    if i % 2 == 0 {
                        tokio::task::yield_now().await;
                    }
                    if i % 3 == 0 {
                        return Err(format!("item {i} failed"));
                    }
                    Ok(i)
                })
                .output()
                .try_collect();
            tokio::time::timeout(Duration::from_secs(30), run).await
        });
        let out = out.expect("no item waited for a dropped one");
        assert!(out.unwrap() == expected, "round {round}: out of order");
        let dropped = ITEMS - expected.len() as u64;
        assert_eq!(skipped.load(Ordering::SeqCst), dropped, "round {round}");
    }
}
