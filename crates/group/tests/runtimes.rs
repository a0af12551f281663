//! A group whose tasks' runtime shuts down: the tasks are gone with it, so `wait` returns and says
//! so, instead of waiting for tasks that no longer exist. A group whose slot watcher's runtime shuts
//! down: a spawn waiting for a slot is still released when the group's context ends.

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
