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

/// A task whose future keeps 1 MiB across an await, half a worker thread's stack, runs through
/// `try_spawn`, `spawn`, `spawn_named`, `spawn_with`, a `ResultGroup`, `map` and `for_each`, with a
/// limit and without, on both runtimes: the group boxes such a future on its own, as `tokio::spawn`
/// does, where moving it through the task's wrappers would overflow the runner's stack in a debug
/// build.
#[test]
fn a_task_with_a_large_future_runs_on_a_runners_stack() {
    bounded_testkit::on_worker_stacks(|| async {
        let large = bounded_testkit::large_future::<(), String>;
        for limit in [None, Some(2)] {
            let mut group = Group::<String>::new();
            group.set_limit(limit).unwrap();
            // `try_spawn` first, while the group has room under its limit.
            group.try_spawn(move |_ctx| large(())).unwrap();
            group.spawn(move |_ctx| large(())).await.unwrap();
            group
                .spawn_named("large", move |_ctx| large(()))
                .await
                .unwrap();
            group
                .spawn_with(&Context::new(), move |_ctx| large(()))
                .await
                .unwrap();
            group.wait().await.unwrap();
            let mut results = bounded_group::ResultGroup::<u64, String>::new();
            results.set_limit(limit).unwrap();
            results
                .try_spawn(|_ctx| bounded_testkit::large_future(1))
                .unwrap();
            results
                .spawn(|_ctx| bounded_testkit::large_future(2))
                .await
                .unwrap();
            assert_eq!(results.wait().await.unwrap(), [1, 2]);
        }
        let large = |_ctx, n: u64| bounded_testkit::large_future::<_, String>(n);
        let mapped = bounded_group::map(0..4, 2, large).await.unwrap();
        assert_eq!(mapped, [0, 1, 2, 3]);
        let each = |_ctx, _n: u64| bounded_testkit::large_future::<_, String>(());
        bounded_group::for_each(0..4, 2, each).await.unwrap();
    });
}
