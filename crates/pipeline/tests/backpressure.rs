//! With a stalled consumer, the source is pulled no further than the stages' workers and buffers hold.

#[path = "support/counting.rs"]
mod counting;

use std::time::Duration;

use bounded_cancel::Context;
use bounded_pipeline::Pipeline;
use counting::Pulled;

#[tokio::test(start_paused = true)]
async fn a_stalled_consumer_bounds_what_is_pulled_from_the_source() {
    let pulled = Pulled::default();
    let out = Pipeline::new(&Context::new())
        .source(pulled.source(u64::MAX))
        .buffer(7)
        .map(3, |_ctx, i| async move { Ok::<_, String>(i) })
        .buffer(5)
        .map_ordered(2, |_ctx, i| async move { Ok(i) })
        .buffer(4)
        .filter_map(1, |_ctx, i| async move { Ok(Some(i)) })
        .buffer(6)
        .output();
    // The source's buffer of 7; map: 3 workers + 5; map_ordered: 2 workers + its window of 2 × 2 + 4;
    // filter_map: 1 worker + 6; and 1 for the output's hand.
    pulled_within(&pulled, 7 + (3 + 5) + (2 + 2 * 2 + 4) + (1 + 6) + 1).await;
    drop(out);
}

/// Lets the pipeline run while nobody reads its output, then checks what the source gave: no more
/// than `bound`, and nothing more after a second wait.
async fn pulled_within(pulled: &Pulled, bound: u64) {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let count = pulled.count();
    assert!(count <= bound, "{count} pulled, bound {bound}");
    // A blocked producer waits for a run of free places (up to half a link) rather than one, so the
    // links fill to within a run of their size: more than half of the bound, never more than all of it.
    assert!(
        count > bound / 2,
        "the buffers did fill: {count} of {bound}"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(pulled.count(), count, "and then nothing more");
}

/// The same with items that wait before they finish, as calls to a service do: a worker then takes
/// one item and reserves one place downstream at a time, and frees an item's place with its next
/// take; none of that lets it pull past the bound.
#[tokio::test(start_paused = true)]
async fn a_stalled_consumer_bounds_what_is_pulled_when_items_wait() {
    let pulled = Pulled::default();
    let out = Pipeline::new(&Context::new())
        .source(pulled.source(u64::MAX))
        .buffer(7)
        .map(3, |_ctx, i| async move {
            tokio::task::yield_now().await;
            Ok::<_, String>(i)
        })
        .buffer(5)
        .flat_map(2, |_ctx, i| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(Some(i))
        })
        .buffer(4)
        .output();
    // The source's buffer of 7; map: 3 workers + 5; flat_map: 2 workers + 4; 1 for the output's hand.
    pulled_within(&pulled, 7 + (3 + 5) + (2 + 4) + 1).await;
    drop(out);
}
