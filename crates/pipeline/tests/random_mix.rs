//! Random chains of every kind of stage (`map`, `map_ordered`, `filter_map`, `flat_map`, `buffer`),
//! on the paused clock and on two threads, fail-fast or skipping errors: what comes out is exactly
//! what running the stages one item at a time gives (in order, when every stage keeps order), or the
//! failure of the one faulty item, with its index in the source; nothing is left running, and after
//! a clean run each stage's counters match the items it took and passed on. The same holds for long
//! runs in which some items compute, so that stages sharing a task spread again mid-run.

#[path = "../../group/tests/support/cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "../../group/tests/support/paused.rs"]
mod paused;
#[path = "../../pool/tests/support/two_threads.rs"]
mod two_threads;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_pipeline::{Pipeline, PipelineError, Stage};
use futures_util::StreamExt;
use paused::paused_runtime;
use proptest::prelude::*;
use two_threads::two_thread_runtime;

/// Marks the second item a `flat_map` makes of one: it passes the later stages unchanged.
const COPY: u64 = 1 << 40;

#[derive(Debug, Clone, Copy)]
enum Op {
    Map(usize),
    Ordered(usize),
    /// Drops the items that divide by the number.
    Filter(usize, u64),
    /// Makes two items (the item and its copy) of each original item that divides by the number.
    Flat(usize, u64),
    Buffer(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    ErrorAt(usize, u64),
    PanicAt(usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..=4).prop_map(Op::Map),
        (1usize..=4).prop_map(Op::Ordered),
        (1usize..=4, 2u64..7).prop_map(|(w, p)| Op::Filter(w, p)),
        (1usize..=4, 2u64..7).prop_map(|(w, q)| Op::Flat(w, q)),
        (1usize..=12).prop_map(Op::Buffer),
    ]
}

/// The stages run one item at a time, with the faulty item, if any, dropped at its stage (as skip
/// mode drops it).
fn one_at_a_time(ops: &[Op], n: u64, dropped: Option<(usize, u64)>) -> Vec<u64> {
    let mut items: Vec<u64> = (0..n).collect();
    for (at, op) in ops.iter().enumerate() {
        if let Some((stage, item)) = dropped
            && stage == at
        {
            items.retain(|i| *i != item);
        }
        items = match *op {
            Op::Filter(_, p) => items.into_iter().filter(|i| i % p != 0).collect(),
            Op::Flat(_, q) => items
                .into_iter()
                .flat_map(|i| match i % q == 0 && i & COPY == 0 {
                    true => vec![i, i | COPY],
                    false => vec![i],
                })
                .collect(),
            _ => items,
        };
    }
    items
}

/// How the stage functions spend their time on an item.
#[derive(Debug, Clone, Copy)]
struct Pace {
    paused: bool,
    /// On two threads, one item in 8 (those with `i % 8 == 3`) computes for 250 µs after a yield:
    /// enough, over a long run, that stages sharing a task spread again.
    computes: bool,
}

async fn pause(i: u64, pace: Pace) {
    match i % 5 {
        0 => tokio::task::yield_now().await,
        1 if pace.paused => tokio::time::sleep(Duration::from_micros(i % 300)).await,
        _ => {}
    }
    if pace.computes && !pace.paused && i % 8 == 3 {
        tokio::task::yield_now().await;
        cpu::burn(Duration::from_micros(250));
    }
}

/// What a stage function does with item `i` at stage `at`: fails or panics if it is the faulty one.
fn check(at: usize, i: u64, fault: Fault) -> Result<(), u64> {
    match fault {
        Fault::ErrorAt(stage, item) if stage == at && i == item => Err(i),
        Fault::PanicAt(stage, item) if stage == at && i == item => {
            panic!("item {i} panicked on purpose")
        }
        _ => Ok(()),
    }
}

fn add(stage: Stage<u64, u64>, at: usize, op: Op, fault: Fault, pace: Pace) -> Stage<u64, u64> {
    match op {
        Op::Map(w) => stage.map(w, move |_ctx, i| async move {
            pause(i, pace).await;
            check(at, i, fault).map(|()| i)
        }),
        Op::Ordered(w) => stage.map_ordered(w, move |_ctx, i| async move {
            pause(i, pace).await;
            check(at, i, fault).map(|()| i)
        }),
        Op::Filter(w, p) => stage.filter_map(w, move |_ctx, i| async move {
            pause(i, pace).await;
            check(at, i, fault).map(|()| (i % p != 0).then_some(i))
        }),
        Op::Flat(w, q) => stage.flat_map(w, move |_ctx, i| async move {
            pause(i, pace).await;
            check(at, i, fault).map(|()| match i % q == 0 && i & COPY == 0 {
                true => vec![i, i | COPY],
                false => vec![i],
            })
        }),
        Op::Buffer(capacity) => stage.buffer(capacity),
    }
}

fn case() -> impl Strategy<Value = (u64, Vec<Op>, Fault)> {
    case_of(0u64..300)
}

fn case_of(items: std::ops::Range<u64>) -> impl Strategy<Value = (u64, Vec<Op>, Fault)> {
    (items, proptest::collection::vec(op(), 1..=4)).prop_flat_map(|(n, ops)| {
        let stages = ops.len();
        let fault = prop_oneof![
            2 => Just(Fault::None),
            1 => (0..stages, 0..n.max(1)).prop_map(|(s, i)| Fault::ErrorAt(s, i)),
            1 => (0..stages, 0..n.max(1)).prop_map(|(s, i)| Fault::PanicAt(s, i)),
        ];
        (Just(n), Just(ops), fault)
    })
}

/// Runs one chain and checks what came out against one item at a time.
fn run_and_check(
    (n, ops, fault): (u64, Vec<Op>, Fault),
    skip: bool,
    pace: Pace,
    drop_after: Option<usize>,
) -> Result<(), TestCaseError> {
    bounded_testkit::quiet_planned_panics();
    // A fault at a `buffer` (no function), or on an item filtered out before it, never happens.
    let reached = |stage: usize, item: u64| {
        !matches!(ops[stage], Op::Buffer(_))
            && one_at_a_time(&ops[..stage], n, None).contains(&item)
    };
    let fault = match fault {
        Fault::ErrorAt(s, i) | Fault::PanicAt(s, i) if !reached(s, i) => Fault::None,
        other => other,
    };
    let skipped = Arc::new(AtomicU64::new(0));
    let run = {
        let (ops, skipped) = (ops.clone(), skipped.clone());
        async move {
            let mut pipeline = Pipeline::<u64>::new(&Context::new());
            if skip {
                pipeline = pipeline.skip_errors(move |index, error| {
                    assert_eq!(index, error, "the skipped item's index in the source");
                    skipped.fetch_add(1, Ordering::SeqCst);
                });
            }
            let mut stage = pipeline.source(0..n);
            for (at, op) in ops.into_iter().enumerate() {
                stage = add(stage, at, op, fault, pace);
            }
            let mut output = stage.output();
            let metrics = output.metrics_handle();
            if let Some(after) = drop_after {
                // Read a few items, then drop the output: every stage stops, nothing is left.
                for _ in 0..after {
                    if output.next().await.is_none() {
                        break;
                    }
                }
                drop(output);
                live::assert_none_alive().await;
                return None;
            }
            let out = output.collect().await;
            live::assert_none_alive().await;
            Some((out, metrics.snapshot()))
        }
    };
    let ran = match pace.paused {
        true => paused_runtime().block_on(run),
        false => two_thread_runtime().block_on(async { tokio::spawn(run).await.unwrap() }),
    };
    let Some(((items, failure), metrics)) = ran else {
        return Ok(());
    };
    let keeps_order = ops.iter().all(|op| {
        matches!(
            op,
            Op::Ordered(_) | Op::Buffer(_) | Op::Filter(1, _) | Op::Flat(1, _)
        )
    });
    // A run that ends cleanly leaves each stage's counters at what one item at a time gives.
    let dropped = match fault {
        Fault::ErrorAt(stage, item) if skip => Some((stage, item)),
        Fault::None => Some((usize::MAX, u64::MAX)),
        _ => None,
    };
    if let Some(dropped) = dropped {
        let dropped = Some(dropped);
        let counted: Vec<_> = metrics
            .iter()
            .map(|m| (m.items_in, m.items_out, m.queued, m.busy, m.errors))
            .collect();
        let mut expected = vec![(n, n, 0, 0, 0)];
        for (at, op) in ops.iter().enumerate() {
            if matches!(op, Op::Buffer(_)) {
                continue;
            }
            let taken = one_at_a_time(&ops[..at], n, dropped).len() as u64;
            let passed = one_at_a_time(&ops[..=at], n, dropped).len() as u64;
            let errors = u64::from(matches!(fault, Fault::ErrorAt(stage, _) if stage == at));
            expected.push((taken, passed, 0, 0, errors));
        }
        prop_assert_eq!(counted, expected, "{:?}", metrics);
    }
    match fault {
        Fault::ErrorAt(stage, item) if skip => {
            prop_assert!(failure.is_none(), "{:?}", failure);
            prop_assert_eq!(skipped.load(Ordering::SeqCst), 1);
            let mut expected = one_at_a_time(&ops, n, Some((stage, item)));
            let mut items = items;
            if !keeps_order {
                items.sort_unstable();
                expected.sort_unstable();
            }
            prop_assert_eq!(items, expected);
        }
        Fault::None => {
            prop_assert!(failure.is_none(), "{:?}", failure);
            let mut expected = one_at_a_time(&ops, n, None);
            let mut items = items;
            if !keeps_order {
                items.sort_unstable();
                expected.sort_unstable();
            }
            prop_assert_eq!(items, expected);
        }
        Fault::ErrorAt(_, item) => match failure {
            Some(PipelineError::Failed { index, error, .. }) => {
                prop_assert_eq!((index, error), (item, item));
            }
            other => prop_assert!(false, "expected the error of item {}: {:?}", item, other),
        },
        Fault::PanicAt(_, item) => match failure {
            Some(PipelineError::Panicked { index, .. }) => prop_assert_eq!(index, item),
            other => prop_assert!(false, "expected the panic of item {}: {:?}", item, other),
        },
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_chains_deliver_what_one_at_a_time_gives_or_the_faulty_items_failure(
        case in case(),
        skip in any::<bool>(),
        paused in any::<bool>(),
        drop_after in proptest::option::weighted(0.2, 0usize..40),
    ) {
        run_and_check(case, skip, Pace { paused, computes: false }, drop_after)?;
    }
}

proptest! {
    // Each case computes for tens of milliseconds.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same on two threads with long runs of items, one in 8 computing for a while: stages that
    /// share a task spread again mid-run, whatever fails, panics or drops the output meanwhile.
    #[test]
    fn chains_whose_stages_spread_again_mid_run_deliver_the_same(
        case in case_of(400..1600),
        skip in any::<bool>(),
        drop_after in proptest::option::weighted(0.2, 0usize..400),
    ) {
        run_and_check(case, skip, Pace { paused: false, computes: true }, drop_after)?;
    }
}
