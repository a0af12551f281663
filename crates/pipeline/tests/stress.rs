//! Random pipelines under random faults on a multi-thread runtime: exactly once, or the right failure,
//! and nothing left running, every time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bounded_cancel::{Context, live};
use bounded_pipeline::{Pipeline, PipelineError, Stage};
use futures_util::StreamExt;

/// A small deterministic generator, so that a failing round can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    ErrorAt(u64),
    PanicAt(u64),
    DropAfter(usize),
    CancelAfter(usize),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Map,
    Ordered,
    Filter,
}

/// The stage function shared by every kind: fails or panics on the faulty item, yields now and then.
async fn step(i: u64, fault: Fault, calls: Arc<AtomicU64>) -> Result<u64, String> {
    calls.fetch_add(1, Ordering::Relaxed);
    if i.is_multiple_of(7) {
        tokio::task::yield_now().await;
    }
    match fault {
        Fault::ErrorAt(k) if k == i => Err(format!("item {i} failed")),
        Fault::PanicAt(k) if k == i => panic!("item {i} panicked"),
        _ => Ok(i),
    }
}

fn add_stage(
    stage: Stage<u64, String>,
    kind: Kind,
    workers: usize,
    fault: Fault,
    calls: &Arc<AtomicU64>,
) -> Stage<u64, String> {
    let calls = calls.clone();
    match kind {
        Kind::Map => stage.map(workers, move |_ctx, i| step(i, fault, calls.clone())),
        Kind::Ordered => stage.map_ordered(workers, move |_ctx, i| step(i, fault, calls.clone())),
        Kind::Filter => stage.filter_map(workers, move |_ctx, i| {
            let calls = calls.clone();
            async move {
                step(i, fault, calls)
                    .await
                    .map(|i| (i % 3 != 0).then_some(i))
            }
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_random_pipelines_deliver_exactly_once_or_their_first_failure() {
    // `STRESS_SEED=<n>` replays or varies the rounds; the default keeps CI deterministic.
    let seed = std::env::var("STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15u64);
    let mut rng = Rng(seed | 1);
    for round in 0..300 {
        let n = 1 + rng.below(1_500);
        let kinds: Vec<Kind> = (0..1 + rng.below(4))
            .map(|_| [Kind::Map, Kind::Ordered, Kind::Filter][rng.below(3) as usize])
            .collect();
        let fault = match rng.below(5) {
            0 => Fault::ErrorAt(rng.below(n)),
            1 => Fault::PanicAt(rng.below(n)),
            2 => Fault::DropAfter(rng.below(n / 2) as usize),
            3 => Fault::CancelAfter(rng.below(n / 2) as usize),
            _ => Fault::None,
        };
        // A faulty item that a filter upstream drops never reaches the faulty stage function: only
        // faults on items every stage sees are checked for.
        let fault = match fault {
            Fault::ErrorAt(k) | Fault::PanicAt(k)
                if k % 3 == 0 && kinds.contains(&Kind::Filter) =>
            {
                Fault::None
            }
            other => other,
        };
        let parent = Context::new();
        let calls = Arc::new(AtomicU64::new(0));
        let mut stage = Pipeline::new(&parent)
            .source(0..n)
            .buffer(1 + rng.below(8) as usize);
        for kind in &kinds {
            let workers = 1 + rng.below(6) as usize;
            stage =
                add_stage(stage, *kind, workers, fault, &calls).buffer(1 + rng.below(8) as usize);
        }
        let context =
            format!("seed {seed}, round {round}: n {n}, stages {kinds:?}, fault {fault:?}");
        let mut out = stage.output();
        let mut items = Vec::new();
        let mut end = None;
        loop {
            match fault {
                Fault::DropAfter(m) if items.len() == m => break,
                Fault::CancelAfter(m) if items.len() == m && !parent.is_cancelled() => {
                    parent.cancel();
                }
                _ => {}
            }
            // A lost wake-up fails here with the round, instead of hanging the test run.
            let next = tokio::time::timeout(std::time::Duration::from_secs(30), out.next()).await;
            match next.unwrap_or_else(|_| panic!("{context}: nothing came out for 30 s")) {
                Some(Ok(i)) => items.push(i),
                Some(Err(e)) => end = Some(e),
                None => break,
            }
        }
        drop(out);
        let expected: Vec<u64> = (0..n)
            .filter(|i| !kinds.contains(&Kind::Filter) || i % 3 != 0)
            .collect();
        match fault {
            Fault::None => {
                assert!(end.is_none(), "{context}: {end:?}");
                if kinds.iter().all(|k| *k == Kind::Ordered) {
                    assert!(items == expected, "{context}: out of order");
                }
                items.sort_unstable();
                assert!(items == expected, "{context}: not exactly once");
            }
            Fault::ErrorAt(k) => match end {
                Some(PipelineError::Failed { index, .. }) => assert_eq!(index, k, "{context}"),
                other => panic!("{context}: {other:?}"),
            },
            Fault::PanicAt(k) => match end {
                Some(PipelineError::Panicked { index, .. }) => assert_eq!(index, k, "{context}"),
                other => panic!("{context}: {other:?}"),
            },
            Fault::DropAfter(m) => assert_eq!(items.len(), m, "{context}"),
            Fault::CancelAfter(m) => {
                assert!(items.len() >= m, "{context}");
                assert!(
                    matches!(end, Some(PipelineError::Cancelled(_))),
                    "{context}: {end:?}"
                );
            }
        }
        if !matches!(fault, Fault::None) {
            let mut unique = items.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                unique.len(),
                items.len(),
                "{context}: an item came out twice"
            );
        }
        if let Err(still) = live::settle(std::time::Duration::from_secs(5)).await {
            panic!("{context}: {still}");
        }
    }
}
