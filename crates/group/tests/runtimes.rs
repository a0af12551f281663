//! A group whose tasks' runtime shuts down: the tasks are gone with it, so `wait` returns and says
//! so, instead of waiting for tasks that no longer exist. A group whose slot watcher's runtime shuts
//! down: a spawn waiting for a slot is still released when the group's context ends. A group spawned
//! into from several runtimes: each task runs on the runtime it was spawned from, so no task waits
//! for another runtime to be driven, or is lost when another shuts down.

#[path = "support/gauge.rs"]
#[allow(dead_code)]
mod gauge;

use std::sync::Arc;
use std::time::Duration;

use bounded_cancel::Context;
use bounded_group::{Failure, Group, SpawnError};
use futures_util::FutureExt;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

const LOST: &str = "task dropped before it finished: the runtime it ran on shut down";

fn runtimes() -> (Runtime, Runtime) {
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (first, second)
}

/// With and without a limit (tasks of their own, and tasks on runners, one of them still queued):
/// `wait_and_recover` on another runtime reports the loss as a panic naming the task, and `wait`
/// re-raises it.
#[test]
fn waiting_on_a_group_whose_runtime_shut_down_reports_the_lost_tasks() {
    // Each case many times: under a limit, the second task is sometimes still queued for a runner
    // when the runtime shuts down, and sometimes running.
    for limit in [None, Some(2)].repeat(20) {
        let (first, second) = runtimes();
        let mut group = Group::<String>::new();
        group.set_limit(limit).unwrap();
        first.block_on(async {
            group
                .spawn_named("stuck", |ctx| async move {
                    ctx.cancelled().await;
                    Ok(())
                })
                .await
                .unwrap();
            group
                .spawn(|ctx| async move {
                    ctx.cancelled().await;
                    Ok(())
                })
                .await
                .unwrap();
            tokio::task::yield_now().await;
        });
        drop(first);
        second.block_on(async {
            let failure = tokio::time::timeout(Duration::from_secs(10), group.wait_and_recover())
                .await
                .expect("wait returns once the tasks are gone")
                .unwrap_err();
            let Failure::Panicked(panic) = failure else {
                panic!("a lost task is reported as a panic, not {failure:?}");
            };
            assert_eq!(panic.message(), LOST);
            assert_eq!(group.running(), 0);
            let raised = std::panic::AssertUnwindSafe(group.wait())
                .catch_unwind()
                .await
                .unwrap_err();
            // The payload went to the first wait; this one re-raises with the same message inside.
            let message = bounded_cancel::panic_message(&*raised);
            assert!(message.contains(LOST), "limit {limit:?}: {message}");
        });
    }
}

/// A limited group on `home` whose one slot is held by a task that ignores cancellation, and whose
/// slot watcher was started on `other` by a spawn that waited there and gave up.
fn full_group_watched_from(home: &Runtime, other: &Runtime) -> Arc<Group<String>> {
    let mut group = Group::<String>::with_context(&Context::new());
    group.set_limit(Some(1)).unwrap();
    home.block_on(async {
        group
            .spawn(|_ctx| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .await
            .unwrap();
    });
    other.block_on(async {
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            group.spawn(|_ctx| async { Ok(()) }),
        )
        .await;
        assert!(gave_up.is_err(), "the spawn waited for the slot");
    });
    Arc::new(group)
}

/// Cancels the group's context in 50 ms and expects `waiting` released at once with the cause.
async fn released_by_the_context(group: &Group<String>, waiting: JoinHandle<bool>) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    group.context().cancel();
    let released = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the group's context ending released the waiting spawn");
    assert!(released.unwrap(), "released as cancelled");
}

/// Drops the group: the watcher started again and the task holding the slot end with it.
async fn assert_nothing_left(group: Arc<Group<String>>) {
    drop(Arc::into_inner(group).expect("the waiting spawn's task has ended"));
    bounded_cancel::live::settle(Duration::from_secs(1))
        .await
        .expect("no task of the group is left");
}

/// A spawn on `group` that waits for the slot: `true` once refused as cancelled.
fn waiting_spawn(group: &Arc<Group<String>>) -> JoinHandle<bool> {
    let group = group.clone();
    tokio::spawn(async move {
        matches!(
            group.spawn(|_ctx| async { Ok(()) }).await,
            Err(SpawnError::Cancelled { .. })
        )
    })
}

#[test]
fn a_spawn_that_waits_after_the_slot_watchers_runtime_shut_down_is_still_released() {
    let (home, other) = runtimes();
    let group = full_group_watched_from(&home, &other);
    drop(other); // and the watcher with it
    home.block_on(async {
        let waiting = waiting_spawn(&group);
        released_by_the_context(&group, waiting).await;
        assert_nothing_left(group).await;
    });
}

#[test]
fn a_spawn_waiting_as_the_slot_watchers_runtime_shuts_down_is_still_released() {
    let (home, other) = runtimes();
    let group = full_group_watched_from(&home, &other);
    home.block_on(async {
        let waiting = waiting_spawn(&group);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "in line, under the watcher on the other runtime"
        );
        // The watcher goes while this spawn waits.
        tokio::task::spawn_blocking(move || drop(other))
            .await
            .unwrap();
        released_by_the_context(&group, waiting).await;
        assert_nothing_left(group).await;
    });
}

fn multi_thread(threads: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
}

fn limited(limit: Option<usize>) -> Arc<Group<String>> {
    let mut group = Group::<String>::new();
    group.set_limit(limit).unwrap();
    Arc::new(group)
}

/// Spawns `n` quick tasks from the runtime `block_on` runs, and lets its runners park there.
fn park_runners_on(runtime: &Runtime, group: &Group<String>, n: usize) {
    runtime.block_on(async {
        for _ in 0..n {
            group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
}

/// A group spawned into from two runtimes runs each task on the runtime it was spawned from, as
/// `tokio::spawn` does: runners parked on a current_thread runtime that nobody drives hold up none
/// of the tasks spawned on the other.
#[test]
fn each_task_runs_on_the_runtime_it_was_spawned_from() {
    for limit in [None, Some(4)] {
        let idle = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let busy = multi_thread(2);
        let group = limited(limit);
        park_runners_on(&idle, &group, 4);
        let ran_on = busy.block_on(async {
            let ran_on = Arc::new(std::sync::Mutex::new(Vec::new()));
            for _ in 0..8 {
                let ran_on = ran_on.clone();
                group
                    .spawn(move |_ctx| async move {
                        tokio::task::yield_now().await;
                        ran_on
                            .lock()
                            .unwrap()
                            .push(tokio::runtime::Handle::current().id());
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            tokio::time::timeout(Duration::from_secs(5), group.wait())
                .await
                .expect("no task waits for the runtime nobody drives")
                .unwrap();
            Arc::into_inner(ran_on).unwrap().into_inner().unwrap()
        });
        assert_eq!(ran_on, vec![busy.handle().id(); 8], "limit {limit:?}");
        // The runners parked on `idle` end with it, and those on `busy` with the group.
        drop(idle);
        busy.block_on(assert_nothing_left(group));
    }
}

/// Tasks spawned from one runtime are not lost when another runtime that spawned into the same
/// group, and whose runners are parked, shuts down while they run; and their runners are counted
/// among the live tasks of the runtime they run on.
#[test]
fn another_runtime_shutting_down_loses_none_of_this_runtimes_tasks() {
    for limit in [None, Some(4)].repeat(5) {
        let (first, second) = (multi_thread(1), multi_thread(1));
        let group = limited(limit);
        park_runners_on(&first, &group, 4);
        let (release, released) = tokio::sync::watch::channel(false);
        second.block_on(async {
            for _ in 0..4 {
                let mut released = released.clone();
                group
                    .spawn(move |_ctx| async move {
                        released.wait_for(|go| *go).await.unwrap();
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            // Counted where they run, so this runtime's leak checks see them.
            let names = bounded_cancel::live::names();
            assert!(
                names.iter().any(|name| name.starts_with("group task")),
                "{names:?}"
            );
        });
        drop(first);
        second.block_on(async {
            release.send(true).unwrap();
            let outcome = tokio::time::timeout(Duration::from_secs(5), group.wait_and_recover())
                .await
                .expect("every task ends");
            assert!(outcome.is_ok(), "limit {limit:?}: {outcome:?}");
            assert_nothing_left(group).await;
        });
    }
}

/// A group outlives many runtimes that spawned into it, one after another: each one's tasks run
/// there, and the group waits, and is dropped, on the last.
#[test]
fn a_group_spawned_into_from_many_runtimes_in_turn_runs_every_task() {
    let group = limited(Some(2));
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..50 {
        let runtime = multi_thread(1);
        runtime.block_on(async {
            for _ in 0..3 {
                let ran = ran.clone();
                group
                    .spawn(move |_ctx| async move {
                        tokio::task::yield_now().await;
                        ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            group.wait().await.unwrap();
        });
    }
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 150);
    multi_thread(1).block_on(async {
        group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
        group.wait().await.unwrap();
        assert_nothing_left(group).await;
    });
}

/// Dropping a group aborts its tasks on every runtime that spawned into it, whichever runtime drops
/// it: none is left on either.
#[test]
fn dropping_a_group_aborts_its_tasks_on_every_runtime() {
    for limit in [None, Some(4)] {
        let (first, second) = (multi_thread(1), multi_thread(1));
        let group = limited(limit);
        for runtime in [&first, &second] {
            runtime.block_on(async {
                for _ in 0..2 {
                    group
                        .spawn(|_ctx| async {
                            // Ignores its context: only an abort ends it.
                            std::future::pending::<()>().await;
                            Ok(())
                        })
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            });
        }
        assert_eq!(group.running(), 4);
        second.block_on(async { drop(Arc::into_inner(group).unwrap()) });
        for runtime in [&first, &second] {
            runtime.block_on(async {
                bounded_cancel::live::settle(Duration::from_secs(5))
                    .await
                    .expect("no task of the group is left on this runtime");
            });
        }
    }
}

/// Outside any runtime, a spawn panics before it admits the task, with a message that says what to
/// do, as `tokio::spawn` panics there; the group is left as it was.
#[test]
fn a_spawn_outside_any_runtime_panics_and_leaves_the_group_as_it_was() {
    for limit in [None, Some(2)] {
        let group = limited(limit);
        let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            futures_util::FutureExt::now_or_never(group.spawn(|_ctx| async { Ok(()) }))
        }));
        let message = bounded_cancel::panic_message(&*spawned.unwrap_err()).to_owned();
        assert!(
            message.starts_with("a group task was spawned outside a tokio runtime"),
            "limit {limit:?}: {message}"
        );
        let tried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group.try_spawn(|_ctx| async { Ok(()) })
        }));
        assert!(tried.is_err(), "limit {limit:?}");
        assert_eq!(group.running(), 0, "limit {limit:?}");
        multi_thread(1).block_on(async {
            group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
            group.wait().await.unwrap();
        });
    }
}

/// Two multi-thread runtimes spawn into one limited group at once, from two tasks each: the limit
/// holds across them, every task runs once, on the runtime that spawned it, and nothing is left.
#[test]
fn stress_two_runtimes_spawning_at_once_share_the_limit() {
    const EACH: usize = 500;
    for round in 0..10 {
        let runtimes = [multi_thread(2), multi_thread(2)];
        let group = limited(Some(8));
        let gauge = gauge::Gauge::default();
        let strays = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let spawners: Vec<_> = (runtimes.iter())
            .flat_map(|runtime| {
                let id = runtime.handle().id();
                (0..2).map(move |_| id).zip([runtime, runtime])
            })
            .map(|(id, runtime)| {
                let (group, gauge, strays) = (group.clone(), gauge.clone(), strays.clone());
                runtime.spawn(async move {
                    for _ in 0..EACH {
                        let (gauge, strays) = (gauge.clone(), strays.clone());
                        group
                            .spawn(move |_ctx| async move {
                                let _running = gauge.enter();
                                tokio::task::yield_now().await;
                                if tokio::runtime::Handle::current().id() != id {
                                    strays.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                }
                                Ok(())
                            })
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        runtimes[round % 2].block_on(async {
            for spawner in spawners {
                spawner.await.unwrap();
            }
            tokio::time::timeout(Duration::from_secs(10), group.wait())
                .await
                .expect("every task ends")
                .unwrap();
        });
        assert!(gauge.max() <= 8, "round {round}: {} at once", gauge.max());
        assert_eq!(
            strays.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "round {round}"
        );
        assert_eq!(gauge.now(), 0);
        let [first, second] = runtimes;
        drop(first);
        second.block_on(assert_nothing_left(group));
    }
}
