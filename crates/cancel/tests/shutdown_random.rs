//! Random shutdowns on the paused clock: tasks that finish, fail or panic at their own moment, drain
//! for a while once the shutdown starts, or never end; a trigger at a random moment (or a failure, with
//! `trigger_on_failure`), and a random grace. Each task is reported, by name, as it ended if it ended
//! within the grace and as aborted otherwise; `wait` returns at the trigger plus the grace at the
//! latest, and leaves no task alive.

use std::time::Duration;

use bounded_cancel::{Shutdown, TaskOutcome, live};
use proptest::prelude::*;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
enum Task {
    /// Returns `Ok` after this many milliseconds, whatever the shutdown does.
    Finishes(u8),
    Fails(u8),
    Panics(u8),
    /// Waits for the shutdown, then takes this many milliseconds to return `Ok`.
    Drains(u8),
    /// Never returns.
    Stubborn,
}

fn task() -> impl Strategy<Value = Task> {
    prop_oneof![
        3 => (1u8..40).prop_map(Task::Finishes),
        1 => (1u8..40).prop_map(Task::Fails),
        1 => (1u8..40).prop_map(Task::Panics),
        3 => (0u8..40).prop_map(Task::Drains),
        1 => Just(Task::Stubborn),
    ]
}

fn ms(n: u8) -> u64 {
    u64::from(n)
}

/// When each task ends by itself, given when the shutdown starts (`None`: it never ends by itself).
fn ends_at(task: Task, trigger: Option<u64>) -> Option<u64> {
    match task {
        Task::Finishes(t) | Task::Fails(t) | Task::Panics(t) => Some(ms(t)),
        Task::Drains(d) => trigger.map(|at| at + ms(d)),
        Task::Stubborn => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn each_task_is_reported_as_it_ended_within_the_grace_or_as_aborted(
        tasks in proptest::collection::vec(task(), 1..12),
        trigger in proptest::option::of(0u8..40),
        grace in 0u8..40,
        on_failure in any::<bool>(),
    ) {
        bounded_testkit::quiet_planned_panics();
        // When the shutdown starts: the trigger, or with `trigger_on_failure` the first failure or
        // panic, whichever comes first.
        let first_failure = tasks
            .iter()
            .filter_map(|task| match task {
                Task::Fails(t) | Task::Panics(t) if on_failure => Some(ms(*t)),
                _ => None,
            })
            .min();
        let start = match (trigger.map(ms), first_failure) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Without a start, `wait` waits for every task to end by itself: none may wait for ever.
        prop_assume!(start.is_some() || tasks.iter().all(|t| ends_at(*t, None).is_some()));
        // A task that ends exactly as the grace runs out may be reported either way.
        let deadline = start.map(|at| at + ms(grace));
        prop_assume!(tasks.iter().all(|t| ends_at(*t, start) != deadline || deadline.is_none()));
        // A task ending at the very moment of the trigger sees no shutdown yet, or one: keep them apart.
        prop_assume!(tasks.iter().all(|t| match t {
            Task::Finishes(t) | Task::Fails(t) | Task::Panics(t) => Some(ms(*t)) != start,
            _ => true,
        }));
        let (report, took) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                let began = Instant::now();
                let mut shutdown = match on_failure {
                    true => Shutdown::new().trigger_on_failure(),
                    false => Shutdown::new(),
                };
                for (i, task) in tasks.iter().enumerate() {
                    let task = *task;
                    shutdown.spawn(format!("task {i}"), move |ctx| async move {
                        match task {
                            Task::Finishes(t) => tokio::time::sleep(Duration::from_millis(ms(t))).await,
                            Task::Fails(t) => {
                                tokio::time::sleep(Duration::from_millis(ms(t))).await;
                                return Err(format!("task {i} failed"));
                            }
                            Task::Panics(t) => {
                                tokio::time::sleep(Duration::from_millis(ms(t))).await;
                                panic!("task {i} panicked on purpose");
                            }
                            Task::Drains(d) => {
                                ctx.cancelled().await;
                                tokio::time::sleep(Duration::from_millis(ms(d))).await;
                            }
                            Task::Stubborn => std::future::pending().await,
                        }
                        Ok(())
                    });
                }
                if let Some(at) = trigger {
                    let ctx = shutdown.context().clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms(at))).await;
                        ctx.cancel();
                    });
                }
                let report = shutdown.wait(Duration::from_millis(ms(grace))).await;
                let took = began.elapsed();
                live::assert_none_alive().await;
                (report, took)
            });
        prop_assert_eq!(report.tasks().len(), tasks.len());
        for (i, task) in tasks.iter().enumerate() {
            let ended = ends_at(*task, start).filter(|at| deadline.is_none_or(|d| *at < d));
            let expected = match (ended, task) {
                (None, _) => TaskOutcome::Aborted,
                (Some(_), Task::Fails(_)) => TaskOutcome::Failed(format!("task {i} failed")),
                (Some(_), Task::Panics(_)) => TaskOutcome::Panicked(format!("task {i} panicked on purpose")),
                (Some(_), _) => TaskOutcome::Completed,
            };
            prop_assert_eq!(report.get(&format!("task {i}")), Some(&expected), "task {} ({:?})", i, task);
        }
        if let Some(deadline) = deadline {
            prop_assert!(took <= Duration::from_millis(deadline), "wait took {:?}", took);
        }
    }
}
