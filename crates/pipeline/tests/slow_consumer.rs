//! A slow consumer cannot starve work in flight: stages are tasks, not futures inside the consumer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_pipeline::Pipeline;
use futures_util::StreamExt;

const MS: Duration = Duration::from_millis(1);

/// Work of one to five 2 ms steps that must finish within 50 ms; counts the times it did not.
async fn work_with_timeout(i: u64, timeouts: Arc<AtomicUsize>) -> u64 {
    let steps = async {
        for _ in 0..=(i % 5) {
            tokio::time::sleep(2 * MS).await;
        }
    };
    if tokio::time::timeout(50 * MS, steps).await.is_err() {
        timeouts.fetch_add(1, Ordering::SeqCst);
    }
    i
}

#[tokio::test(start_paused = true)]
async fn work_holding_a_timeout_completes_while_the_consumer_is_slow() {
    let timeouts = Arc::new(AtomicUsize::new(0));
    let t = timeouts.clone();
    let mut out = Pipeline::new(&Context::new())
        .source(0..64u64)
        .map(8, move |_ctx, i| {
            let t = t.clone();
            async move { Ok::<_, String>(work_with_timeout(i, t).await) }
        })
        .output();
    let mut count = 0;
    while let Some(item) = out.next().await {
        item.unwrap();
        count += 1;
        tokio::time::sleep(100 * MS).await; // a slow consumer
    }
    assert_eq!(count, 64);
    assert_eq!(timeouts.load(Ordering::SeqCst), 0, "no work timed out");
}

/// The control: the same work through `buffered(8)` times out, because its futures are only polled
/// while the consumer polls the stream. If this ever stops failing, the test above proves nothing.
#[tokio::test(start_paused = true)]
async fn the_same_work_in_a_buffered_stream_times_out() {
    let timeouts = Arc::new(AtomicUsize::new(0));
    let t = timeouts.clone();
    let mut stream = futures_util::stream::iter(0..64u64)
        .map(move |i| work_with_timeout(i, t.clone()))
        .buffered(8);
    while stream.next().await.is_some() {
        tokio::time::sleep(100 * MS).await;
    }
    assert!(
        timeouts.load(Ordering::SeqCst) > 0,
        "buffered streams starve work in flight"
    );
}
