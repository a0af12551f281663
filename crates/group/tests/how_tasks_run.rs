//! A group's task is a tokio task from its first step, as with `tokio::spawn` and Go's `g.Go`: nothing of
//! it runs on the spawner.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bounded_cancel::Context;
use bounded_group::Group;

tokio::task_local! {
    static REQUEST: u32;
}

#[tokio::test(flavor = "current_thread")]
async fn spawn_returns_before_the_task_runs_any_code() {
    let group = Group::<String>::new();
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    group
        .spawn(move |_ctx| {
            // Runs when the closure is called, before the task's first await.
            flag.store(true, Ordering::SeqCst);
            async { Ok(()) }
        })
        .await
        .unwrap();
    assert!(
        !started.load(Ordering::SeqCst),
        "the task's first step ran on the spawner"
    );
    group.wait().await.unwrap();
    assert!(started.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "current_thread")]
async fn the_spawners_task_locals_do_not_leak_into_the_task() {
    let group = Group::<String>::new();
    let seen = Arc::new(std::sync::Mutex::new(None));
    REQUEST
        .scope(7, async {
            let seen = seen.clone();
            group
                .spawn(move |_ctx| async move {
                    *seen.lock().unwrap() = Some(REQUEST.try_with(|r| *r).ok());
                    Ok(())
                })
                .await
                .unwrap();
        })
        .await;
    group.wait().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some(None),
        "the task saw the spawner's task-local"
    );
}

/// Each level spawns the next before its first await; run on the spawner, the levels would nest on
/// one stack and overflow it.
fn descend(
    group: Arc<Group<String>>,
    depth: u32,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> {
    Box::pin(async move {
        if depth > 0 {
            let next = group.clone();
            group
                .spawn(move |_ctx: Context| descend(next, depth - 1))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_spawn_tasks_never_nest_on_one_stack() {
    let group = Arc::new(Group::<String>::new());
    let root = group.clone();
    group
        .spawn(move |_ctx| descend(root, 20_000))
        .await
        .unwrap();
    group.wait().await.unwrap();
}
