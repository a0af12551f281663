//! Random trees of contexts, grown, cancelled (with and without an error) and timed out at random
//! moments on the paused clock: at every step, each context's cause, its deadline and what `cancel`
//! returns are what a model of the rules says (the first cause wins; a child ends with its parent,
//! and its deadline is the earlier of its own and its parent's), and every wait on a context ends
//! exactly when it does, with its cause.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::{Cause, Context};
use proptest::prelude::*;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A child of the context at this index (taken modulo the contexts there are).
    Child(usize),
    /// A child whose deadline is this many milliseconds and a half away.
    WithTimeout(usize, u8),
    Cancel(usize),
    /// `cancel_with` an error carrying the step's number.
    CancelWith(usize),
    /// A task waits for the context to end.
    Wait(usize),
    /// One millisecond passes.
    Tick,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => any::<usize>().prop_map(Step::Child),
        3 => (any::<usize>(), 0u8..12).prop_map(|(i, ms)| Step::WithTimeout(i, ms)),
        1 => any::<usize>().prop_map(Step::Cancel),
        1 => any::<usize>().prop_map(Step::CancelWith),
        2 => any::<usize>().prop_map(Step::Wait),
        4 => Just(Step::Tick),
    ]
}

/// A cause as the model and the test compare it: an error is told apart by its message.
#[derive(Debug, Clone, PartialEq)]
enum Ended {
    Cancelled,
    DeadlineExceeded,
    Error(String),
}

fn ended(cause: &Cause) -> Ended {
    match cause {
        Cause::Cancelled => Ended::Cancelled,
        Cause::DeadlineExceeded => Ended::DeadlineExceeded,
        Cause::Error(err) => Ended::Error(err.to_string()),
        other => panic!("a new cause: {other:?}"),
    }
}

/// What the rules say about one context.
struct Model {
    parent: Option<usize>,
    /// The earlier of its own deadline and its parent's.
    deadline: Option<Instant>,
    ended: Option<Ended>,
}

/// Ends, in tree order (parents first), every context whose deadline has passed or whose parent has
/// ended, with the first cause.
fn settle(models: &mut [Model], now: Instant) {
    for i in 0..models.len() {
        if models[i].ended.is_some() {
            continue;
        }
        let inherited = models[i].parent.and_then(|p| models[p].ended.clone());
        models[i].ended = match inherited {
            Some(cause) => Some(cause),
            None => models[i]
                .deadline
                .filter(|deadline| *deadline <= now)
                .map(|_| Ended::DeadlineExceeded),
        };
    }
}

/// A wait for a context's end, and what it saw.
type Seen = Arc<Mutex<Option<Ended>>>;

async fn run(steps: Vec<Step>) {
    let root = Context::new();
    let mut contexts = vec![root];
    let mut models = vec![Model {
        parent: None,
        deadline: None,
        ended: None,
    }];
    let mut waits: Vec<(usize, Seen)> = Vec::new();
    for (number, step) in steps.into_iter().enumerate() {
        let now = Instant::now();
        match step {
            Step::Child(i) | Step::WithTimeout(i, _) => {
                let parent = i % contexts.len();
                let (child, own) = match step {
                    Step::WithTimeout(_, ms) => {
                        let timeout = Duration::from_micros(1_000 * u64::from(ms) + 500);
                        (contexts[parent].with_timeout(timeout), Some(now + timeout))
                    }
                    _ => (contexts[parent].child(), None),
                };
                let inherited = models[parent].deadline;
                let deadline = match (own, inherited) {
                    (Some(own), Some(inherited)) => Some(own.min(inherited)),
                    (own, inherited) => own.or(inherited),
                };
                contexts.push(child);
                models.push(Model {
                    parent: Some(parent),
                    deadline,
                    ended: None,
                });
            }
            Step::Cancel(i) | Step::CancelWith(i) => {
                let i = i % contexts.len();
                let live = models[i].ended.is_none();
                let (returned, cause) = match step {
                    Step::Cancel(_) => (contexts[i].cancel(), Ended::Cancelled),
                    _ => {
                        let message = format!("error of step {number}");
                        let err = std::io::Error::other(message.clone());
                        (contexts[i].cancel_with(err), Ended::Error(message))
                    }
                };
                assert_eq!(
                    returned, live,
                    "step {number}: cancel's answer for context {i}"
                );
                if live {
                    models[i].ended = Some(cause);
                }
            }
            Step::Wait(i) => {
                let i = i % contexts.len();
                let seen = Seen::default();
                let (ctx, into) = (contexts[i].clone(), seen.clone());
                tokio::spawn(async move {
                    let cause = ctx.cancelled().await;
                    *into.lock().unwrap() = Some(ended(&cause));
                });
                waits.push((i, seen));
            }
            Step::Tick => tokio::time::advance(Duration::from_millis(1)).await,
        }
        settle(&mut models, Instant::now());
        // Let the waits that should have ended see it.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        for (i, (ctx, model)) in contexts.iter().zip(&models).enumerate() {
            let what = format!("step {number}: context {i}");
            assert_eq!(ctx.cause().as_ref().map(ended), model.ended, "{what}");
            assert_eq!(ctx.is_cancelled(), model.ended.is_some(), "{what}");
            assert_eq!(ctx.deadline(), model.deadline, "{what}");
        }
        for (i, seen) in &waits {
            let seen = seen.lock().unwrap().clone();
            assert_eq!(
                seen, models[*i].ended,
                "step {number}: a wait on context {i}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_context_ends_when_and_how_the_rules_say(
        steps in proptest::collection::vec(step(), 0..80),
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(run(steps));
    }
}
