//! Tokio's coop budget: each item read from the output spends the reader's budget, as a receive from
//! a tokio channel does, so a reader whose items are always there (a full last buffer, or stages that
//! keep up on other threads) still lets its thread's other tasks run every so often.

use std::time::Duration;

use bounded_cancel::Context;
use bounded_pipeline::{Output, Pipeline};
use bounded_testkit::{Ticker, block_on_this_thread};
use futures_util::StreamExt;

const ITEMS: u64 = 10_000;

/// A pipeline whose last buffer holds every item, filled before the test reads it.
async fn filled() -> Output<u64, String> {
    let out = Pipeline::new(&Context::new())
        .source(0..ITEMS)
        .map(2, |_ctx, n| async move { Ok::<_, String>(n) })
        .buffer(ITEMS as usize)
        .output();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        out.metrics()[1].items_out,
        ITEMS,
        "the stage has not drained"
    );
    out
}

/// Reading 10,000 items that are all queued lets the thread's other task run about once every 128
/// of them (tokio's budget), where it would not run at all until the output waited.
#[tokio::test(flavor = "current_thread")]
async fn reading_items_that_are_all_there_yields_every_so_often() {
    let mut out = filled().await;
    let ticker = Ticker::start();
    tokio::task::yield_now().await;
    let before = ticker.ticks();
    let (mut read, mut sum) = (0, 0);
    while let Some(item) = out.next().await {
        sum += item.unwrap();
        read += 1;
    }
    assert_eq!((read, sum), (ITEMS, ITEMS * (ITEMS - 1) / 2));
    let during = ticker.ticks() - before;
    assert!(
        (40..=200).contains(&during),
        "the other task ran {during} times while {ITEMS} items were read"
    );
}

/// `try_collect` reads through the same stream, so it yields too; every item still arrives.
#[tokio::test(flavor = "current_thread")]
async fn try_collect_yields_as_it_reads() {
    let out = filled().await;
    let ticker = Ticker::start();
    tokio::task::yield_now().await;
    let before = ticker.ticks();
    let mut items = out.try_collect().await.unwrap();
    items.sort_unstable();
    assert!(items.into_iter().eq(0..ITEMS));
    assert!(ticker.ticks() - before >= 40);
}

/// Inside `tokio::task::unconstrained`, which lifts the budget, the same read runs through: the
/// yields come from tokio's budget, nowhere else.
#[tokio::test(flavor = "current_thread")]
async fn an_unconstrained_reader_does_not_yield() {
    let mut out = filled().await;
    let ticker = Ticker::start();
    tokio::task::yield_now().await;
    let before = ticker.ticks();
    let read = tokio::task::unconstrained(async {
        let mut read = 0;
        while let Some(item) = out.next().await {
            item.unwrap();
            read += 1;
        }
        read
    })
    .await;
    assert_eq!(read, ITEMS);
    assert_eq!(ticker.ticks(), before);
}

/// Read from a thread with no runtime, the output has no budget to spend and still yields every item.
#[test]
fn an_output_read_outside_a_runtime_reads_every_item() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let out = {
        let _entered = runtime.enter();
        Pipeline::new(&Context::new())
            .source(0..ITEMS)
            .map(2, |_ctx, n| async move { Ok::<_, String>(n) })
            .output()
    };
    assert!(tokio::runtime::Handle::try_current().is_err());
    let mut items = block_on_this_thread(out.try_collect()).unwrap();
    items.sort_unstable();
    assert!(items.into_iter().eq(0..ITEMS));
}
