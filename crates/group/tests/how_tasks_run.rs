//! A group's task is a tokio task from its first step, as with `tokio::spawn` and Go's `g.Go`: nothing of
//! it runs on the spawner.

use std::future::Future;
use std::pin::Pin;
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

/// A task whose closure carries 64 KiB by value (a buffer moved into a `move` closure) is admitted
/// and runs through `try_spawn`, `spawn`, `spawn_named`, `spawn_with` and a `ResultGroup`, with a
/// limit and without, on both runtimes, at once or after waiting for a slot; one dropped while it
/// waits runs nothing, and one that is refused comes back whole: the group puts
/// such a closure in a box of its own as the spawn is made, where moving it through the spawn's
/// frames overflowed a runner's stack in a debug build. Each way in is a function of its own, as in
/// a service: one function holding every spawn would overflow a debug build's stack by itself.
#[test]
fn a_task_whose_closure_carries_a_large_buffer_runs_on_a_runners_stack() {
    use bounded_group::ResultGroup;
    use bounded_testkit::{LARGE_CLOSURE, carried, reading};
    type Spawned<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
    fn try_spawn(group: &Group<String>) -> Spawned<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            group.try_spawn(move |_ctx| reading(carried, ())).unwrap();
        })
    }
    fn spawn(group: &Group<String>) -> Spawned<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            group.spawn(move |_ctx| reading(carried, ())).await.unwrap();
        })
    }
    fn spawn_named(group: &Group<String>) -> Spawned<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            let task = move |_ctx| reading(carried, ());
            group.spawn_named("large", task).await.unwrap();
        })
    }
    fn spawn_with(group: &Group<String>) -> Spawned<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            let task = move |_ctx| reading(carried, ());
            group.spawn_with(&Context::new(), task).await.unwrap();
        })
    }
    fn result_group(limit: Option<usize>) -> Spawned<'static> {
        Box::pin(async move {
            let mut results = ResultGroup::<u64, String>::new();
            results.set_limit(limit).unwrap();
            let first = *carried::<LARGE_CLOSURE>();
            results.try_spawn(move |_ctx| reading(first, 1)).unwrap();
            let second = *carried::<LARGE_CLOSURE>();
            results.spawn(move |_ctx| reading(second, 2)).await.unwrap();
            assert_eq!(results.wait().await.unwrap(), [1, 2]);
        })
    }
    // Refused by a group whose limit is 0, by `spawn` and then by `try_spawn`, and run by hand: the
    // closure handed back is the one given, its buffer intact.
    fn refused() -> Spawned<'static> {
        Box::pin(async move {
            let mut group = Group::<String>::new();
            group.set_limit(Some(0)).unwrap();
            let carried = *carried::<LARGE_CLOSURE>();
            let task = move |_ctx| reading::<_, _, String>(carried, ());
            let task = group.spawn(task).await.unwrap_err().into_inner();
            let task = group.try_spawn(task).unwrap_err().into_inner();
            task(Context::new()).await.unwrap();
        })
    }
    // Waits for a slot held by another task: once dropped while it waits, which runs nothing, and
    // once until the slot is its own.
    fn in_line() -> Spawned<'static> {
        Box::pin(async move {
            let mut group = Group::<String>::new();
            group.set_limit(Some(1)).unwrap();
            let gate = Context::new();
            let holder = gate.clone();
            group
                .try_spawn(move |_ctx| async move {
                    holder.cancelled().await;
                    Ok(())
                })
                .unwrap();
            let ran = Arc::new(AtomicBool::new(false));
            let dropped = {
                let carried = *carried::<LARGE_CLOSURE>();
                let ran = ran.clone();
                move |_ctx| {
                    ran.store(true, Ordering::SeqCst);
                    reading(carried, ())
                }
            };
            {
                let mut spawn = std::pin::pin!(group.spawn(dropped));
                assert!(
                    bounded_testkit::poll_once(&mut spawn).await.is_pending(),
                    "the slot is held"
                );
            }
            let carried = *carried::<LARGE_CLOSURE>();
            let mut spawn = std::pin::pin!(group.spawn(move |_ctx| reading(carried, ())));
            assert!(
                bounded_testkit::poll_once(&mut spawn).await.is_pending(),
                "the slot is held"
            );
            gate.cancel();
            spawn.await.unwrap();
            group.wait().await.unwrap();
            assert!(
                !ran.load(Ordering::SeqCst),
                "a spawn dropped in line runs nothing"
            );
        })
    }
    bounded_testkit::on_worker_stacks(|| async {
        in_line().await;
        for limit in [None, Some(2)] {
            let mut group = Group::<String>::new();
            group.set_limit(limit).unwrap();
            let ways: [fn(&Group<String>) -> Spawned<'_>; 4] =
                [try_spawn, spawn, spawn_named, spawn_with];
            for way in ways {
                way(&group).await;
            }
            group.wait().await.unwrap();
            result_group(limit).await;
        }
        refused().await;
    });
}

/// A spawn's future is its closure and a few words, whether or not the group would box a larger
/// closure: the caller's task carries it across `spawn(..).await`, and moves it as it is made.
#[tokio::test]
async fn a_spawn_is_its_task_and_a_few_words() {
    let group = Group::<String>::new();
    let words = std::mem::size_of::<usize>();
    let nothing = |_ctx: Context| async { Ok(()) };
    assert!(std::mem::size_of_val(&group.spawn(nothing)) <= 11 * words);
    let request = Context::new();
    assert!(std::mem::size_of_val(&group.spawn_with(&request, nothing)) <= 11 * words);
    group.wait().await.unwrap();
}
