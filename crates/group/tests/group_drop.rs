//! Dropping a group aborts its tasks: the live-task check passes right after.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_group::{Group, ResultGroup};

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_group_with_running_tasks_aborts_them() {
    let group = Group::<String>::new();
    let ctx = group.context().clone();
    let dropped = Arc::new(AtomicBool::new(false));
    for _ in 0..100 {
        let guard = SetOnDrop(dropped.clone());
        group
            .spawn(move |_ctx| async move {
                let _guard = guard;
                std::future::pending::<()>().await;
                Ok(())
            })
            .await
            .unwrap();
    }
    tokio::task::yield_now().await;
    assert!(
        !live::names().is_empty(),
        "the group tracks its waiting tasks"
    );
    drop(group);
    assert!(ctx.is_cancelled(), "tasks see their context end");
    live::assert_none_alive().await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the tasks' futures were dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_result_group_aborts_its_tasks_on_a_multi_thread_runtime() {
    let mut group = ResultGroup::<u32, std::fmt::Error>::with_context(&Context::new());
    group.set_limit(Some(4)).unwrap();
    for _ in 0..4 {
        group
            .spawn(|_ctx| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(1)
            })
            .await
            .unwrap();
    }
    drop(group);
    live::assert_none_alive().await;
}

#[tokio::test]
async fn a_group_that_never_spawned_starts_no_task() {
    let group = Group::<String>::new();
    group.wait().await.unwrap();
    assert!(live::names().is_empty());
}

/// Tasks spawned and not yet started when the group is dropped never run a step, and are gone.
#[tokio::test(flavor = "current_thread")]
async fn tasks_not_yet_started_when_the_group_drops_never_run() {
    let group = Group::<String>::new();
    let ran = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    for _ in 0..100 {
        let (ran, guard) = (ran.clone(), SetOnDrop(dropped.clone()));
        group
            .spawn(move |_ctx| async move {
                let _guard = guard;
                ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await
            .unwrap();
    }
    drop(group);
    live::assert_none_alive().await;
    assert!(!ran.load(Ordering::SeqCst), "a task ran after the drop");
    assert!(dropped.load(Ordering::SeqCst), "the tasks were dropped");
}

/// On the multi-thread runtime, a group dropped at any point of its tasks' lives (not started,
/// running, waiting) leaves nothing alive, many times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_a_dropped_groups_tasks_all_end() {
    for round in 0..200u32 {
        let mut group = Group::<String>::new();
        if round % 2 == 1 {
            group.set_limit(Some(1 + round as usize % 4)).unwrap();
        }
        for i in 0..20u32 {
            let spawned = group.try_spawn(move |_ctx| async move {
                if (i + round) % 3 == 0 {
                    std::future::pending::<()>().await;
                }
                tokio::task::yield_now().await;
                Ok(())
            });
            if spawned.is_err() {
                break; // the limited group is full: drop it now
            }
        }
        if round % 5 == 0 {
            tokio::task::yield_now().await;
        }
        drop(group);
    }
    live::settle(Duration::from_secs(10)).await.unwrap();
}
