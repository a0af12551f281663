//! Random groups of tasks that succeed, fail, panic, wait, compute, or give up when the group's
//! context ends: every accepted task runs once, never more than the limit at once; the first error
//! wins and the errors of tasks that saw the context end never replace it; a panic is preferred to
//! an error; `collect_errors` returns every real error in the order they happened; nothing is left
//! alive, whether the group is waited for or dropped at a random moment, and whether or not its
//! runners spread its tasks again as it runs.

#[path = "support/cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "support/paused.rs"]
mod paused;
#[path = "../../pool/tests/support/two_threads.rs"]
mod two_threads;
#[path = "support/wait.rs"]
mod wait;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_group::{Failure, Group};
use paused::paused_runtime;
use proptest::prelude::*;
use two_threads::two_thread_runtime;
use wait::wait;

/// The error of a task that gave up because the group's context ended: noise, never the answer.
const GAVE_UP: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Quick,
    Yields(u8),
    /// Waits this many tens of microseconds (yields that often on two threads), and gives up with
    /// [`GAVE_UP`] if the group's context ends first.
    Watches(u8),
    /// Yields, then computes for 250 µs without awaiting, this many times: on two threads, tasks
    /// whose slow polls make a limited group's runners spread again while it runs.
    Computes(u8),
    Fails,
    Panics,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// `Group::new()`: siblings run on after an error.
    Plain,
    /// `Group::new().collect_errors()`.
    Collect,
    /// `Group::with_context`: the first error or panic cancels the rest.
    FailFast,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        // Panics rare enough that about half the groups have none, and errors decide the answer.
        30 => Just(Kind::Quick),
        25 => (1u8..4).prop_map(Kind::Yields),
        25 => (1u8..30).prop_map(Kind::Watches),
        3 => (1u8..4).prop_map(Kind::Computes),
        6 => Just(Kind::Fails),
        1 => Just(Kind::Panics),
    ]
}

/// Mostly tasks that wait and then compute: enough of them, in a limited group on two threads, that
/// its runners hold many tasks each and then spread them again while it runs.
fn computing_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        30 => (2u8..6).prop_map(Kind::Computes),
        10 => (1u8..4).prop_map(Kind::Yields),
        5 => Just(Kind::Quick),
        5 => (1u8..30).prop_map(Kind::Watches),
        3 => Just(Kind::Fails),
        1 => Just(Kind::Panics),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Plain), Just(Mode::Collect), Just(Mode::FailFast)]
}

#[derive(Default)]
struct Seen {
    started: AtomicU64,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    /// The real errors, in the order their tasks returned them.
    errors: Mutex<Vec<u64>>,
    panics: AtomicU64,
    /// Set once the group has been dropped, and tasks started after that.
    dropped: AtomicBool,
    started_after_drop: AtomicU64,
}

/// Marks a task as no longer running however it ends.
struct Running(Arc<Seen>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn task(id: u64, kind: Kind, paused: bool, ctx: Context, seen: Arc<Seen>) -> Result<(), u64> {
    seen.started.fetch_add(1, Ordering::SeqCst);
    if seen.dropped.load(Ordering::SeqCst) {
        seen.started_after_drop.fetch_add(1, Ordering::SeqCst);
    }
    let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
    seen.most_at_once.fetch_max(now, Ordering::SeqCst);
    let _running = Running(seen.clone());
    match kind {
        Kind::Quick => Ok(()),
        Kind::Yields(n) => {
            for _ in 0..n {
                tokio::task::yield_now().await;
            }
            Ok(())
        }
        Kind::Watches(n) => ctx.run(wait(paused, n)).await.map_err(|_| GAVE_UP),
        Kind::Computes(n) => {
            for _ in 0..n {
                tokio::task::yield_now().await;
                if !paused {
                    cpu::burn(Duration::from_micros(250));
                }
            }
            Ok(())
        }
        Kind::Fails => {
            // Recorded in the same poll that returns it: on one thread, the order the group sees.
            seen.errors.lock().unwrap().push(id);
            Err(id)
        }
        Kind::Panics => {
            seen.panics.fetch_add(1, Ordering::SeqCst);
            panic!("task {id} panicked on purpose");
        }
    }
}

/// What `wait_and_recover` or `wait_all` answered, as one shape.
#[derive(Debug)]
enum Answer {
    Ok,
    Error(u64),
    Errors(Vec<u64>),
    Panicked,
    /// The group was dropped instead of waited for.
    Dropped,
}

async fn run_case(
    mode: Mode,
    limit: Option<usize>,
    plan: Vec<(Kind, bool)>,
    drop_after: Option<u8>,
    paused: bool,
) -> (Answer, Arc<Seen>, u64) {
    let mut group: Group<u64> = match mode {
        Mode::Plain => Group::new(),
        Mode::Collect => Group::new().collect_errors(),
        Mode::FailFast => Group::with_context(&Context::new()),
    };
    group.set_limit(limit).unwrap();
    let group = Arc::new(group);
    let seen = Arc::new(Seen::default());
    let mut accepted = 0;
    for (id, (kind, try_form)) in (0u64..).zip(plan) {
        let seen = seen.clone();
        let job = move |ctx| task(id, kind, paused, ctx, seen);
        let taken = match try_form {
            true => group.try_spawn(job).is_ok(),
            false => group.spawn(job).await.is_ok(),
        };
        accepted += u64::from(taken);
    }
    if let Some(after) = drop_after {
        // Tasks that ignore the context and never end by themselves: only the drop ends them.
        for _ in 0..2 {
            let seen = seen.clone();
            let stubborn = move |_ctx| async move {
                seen.started.fetch_add(1, Ordering::SeqCst);
                seen.running.fetch_add(1, Ordering::SeqCst);
                let _running = Running(seen);
                loop {
                    match paused {
                        true => tokio::time::sleep(Duration::from_secs(3600)).await,
                        false => tokio::task::yield_now().await,
                    }
                }
            };
            accepted += u64::from(group.try_spawn(stubborn).is_ok());
        }
        wait(paused, after).await;
        drop(group);
        seen.dropped.store(true, Ordering::SeqCst);
        live::assert_none_alive().await;
        return (Answer::Dropped, seen, accepted);
    }
    let answer = match mode {
        // `wait_all` re-raises a panic: awaited in a task of its own, so that the panic is a value.
        Mode::Collect => {
            let waiter = group.clone();
            match tokio::spawn(async move { waiter.wait_all().await }).await {
                Err(join) if join.is_panic() => Answer::Panicked,
                Err(join) => panic!("the waiter was cancelled: {join}"),
                Ok(Ok(())) => Answer::Ok,
                Ok(Err(errors)) => Answer::Errors(errors),
            }
        }
        _ => match group.wait_and_recover().await {
            Ok(()) => Answer::Ok,
            Err(Failure::Error(error)) => Answer::Error(error),
            Err(Failure::Panicked(_)) => Answer::Panicked,
            Err(other) => panic!("a new kind of failure: {other}"),
        },
    };
    assert_eq!(group.running(), 0);
    drop(group);
    live::assert_none_alive().await;
    (answer, seen, accepted)
}

/// Runs one case on the paused clock or on two threads, and checks what the group answered against
/// what its tasks did.
fn check(
    mode: Mode,
    limit: Option<usize>,
    plan: Vec<(Kind, bool)>,
    drop_after: Option<u8>,
    paused: bool,
) -> Result<(), TestCaseError> {
    bounded_testkit::quiet_planned_panics();
    let case = run_case(mode, limit, plan, drop_after, paused);
    let (answer, seen, accepted) = match paused {
        true => paused_runtime().block_on(case),
        false => two_thread_runtime().block_on(async { tokio::spawn(case).await.unwrap() }),
    };
    if let Answer::Dropped = answer {
        // Dropped: every task it had is gone, none ran twice, and (on one thread, where nothing
        // runs while the group is dropped) none started afterwards.
        prop_assert_eq!(
            seen.running.load(Ordering::SeqCst),
            0,
            "a task outlived its group"
        );
        prop_assert!(seen.started.load(Ordering::SeqCst) <= accepted);
        if paused {
            prop_assert_eq!(seen.started_after_drop.load(Ordering::SeqCst), 0);
        }
        return Ok(());
    }
    prop_assert_eq!(
        seen.started.load(Ordering::SeqCst),
        accepted,
        "an accepted task never ran"
    );
    if let Some(limit) = limit {
        prop_assert!(seen.most_at_once.load(Ordering::SeqCst) <= limit);
    }
    let errors = seen.errors.lock().unwrap().clone();
    let panics = seen.panics.load(Ordering::SeqCst);
    match answer {
        Answer::Dropped => unreachable!("checked above"),
        Answer::Ok => prop_assert!(errors.is_empty() && panics == 0, "{:?}", errors),
        Answer::Panicked => prop_assert!(panics > 0),
        Answer::Error(error) => {
            prop_assert_eq!(panics, 0, "an error was preferred to a panic");
            prop_assert_ne!(error, GAVE_UP, "a task that gave up replaced the error");
            // On one thread the first error returned is the first recorded; on two, two tasks can
            // return theirs at the same moment.
            match paused {
                true => prop_assert_eq!(Some(&error), errors.first()),
                false => prop_assert!(errors.contains(&error)),
            }
        }
        Answer::Errors(got) => {
            prop_assert_eq!(panics, 0);
            // A plain group's context never ends while it runs, so nobody gives up.
            prop_assert!(!got.contains(&GAVE_UP));
            let mut got = got;
            let mut errors = errors;
            if !paused {
                got.sort_unstable();
                errors.sort_unstable();
            }
            prop_assert_eq!(got, errors);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn first_error_wins_and_every_accepted_task_runs_once_within_the_limit(
        mode in mode(),
        limit in proptest::option::of(1usize..=8),
        plan in proptest::collection::vec((kind(), proptest::bool::weighted(0.2)), 0..120),
        drop_after in proptest::option::weighted(0.25, 0u8..30),
        paused in any::<bool>(),
    ) {
        check(mode, limit, plan, drop_after, paused)?;
    }
}

proptest! {
    // Each case computes for tens of milliseconds.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A limited group whose runners spread its tasks again mid-run keeps every promise too: its
    /// tasks, on two threads, wait and then compute, so that its runners first hold many of them
    /// each and then, once the slow polls fill their time, one at a time.
    #[test]
    fn runners_that_spread_again_keep_the_limit_and_every_answer(
        mode in mode(),
        limit in 2usize..=8,
        plan in proptest::collection::vec((computing_kind(), proptest::bool::weighted(0.2)), 100..300),
        drop_after in proptest::option::weighted(0.25, 0u8..30),
    ) {
        check(mode, Some(limit), plan, drop_after, false)?;
    }
}
