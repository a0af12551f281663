//! Limits: exactly n slots, slots come back, set_limit only when idle, 0 refuses all, never more than n.

#[path = "support/gauge.rs"]
mod gauge;

use std::time::Duration;

use bounded_cancel::Context;
use bounded_group::{Group, SpawnError, TrySpawnError};
use gauge::Gauge;
use tokio::sync::oneshot;
use tokio::time::sleep;

#[tokio::test]
async fn exactly_n_try_spawns_succeed_while_they_run() {
    let mut group = Group::<String>::new();
    group.set_limit(Some(3)).unwrap();
    let mut release = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = oneshot::channel::<()>();
        release.push(tx);
        assert!(
            group
                .try_spawn(move |_ctx| async move {
                    let _ = rx.await;
                    Ok(())
                })
                .is_ok()
        );
    }
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let refused = group.try_spawn(move |_ctx| async move {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    });
    let closure = match refused {
        Ok(()) => panic!("the fourth try_spawn must be refused"),
        Err(refused) => {
            assert!(matches!(refused, TrySpawnError::Full(_)), "{refused:?}");
            assert!(refused.to_string().contains("every slot"), "{refused}");
            refused.into_inner()
        }
    };
    assert_eq!(group.running(), 3);

    // After they finish, the slots are free again, and the handed-back closure still works.
    drop(release);
    group.wait().await.unwrap();
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    assert!(group.try_spawn(closure).is_ok());
    group.wait().await.unwrap();
    assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn set_limit_on_an_idle_group_takes_effect() {
    let mut group = Group::<String>::new();
    group.set_limit(Some(1)).unwrap();
    let long = |_ctx: Context| async {
        sleep(Duration::from_secs(1)).await;
        Ok(())
    };
    assert!(group.try_spawn(long).is_ok());
    assert!(group.try_spawn(long).is_err());
    group.wait().await.unwrap();

    group.set_limit(Some(2)).unwrap();
    assert!(group.try_spawn(long).is_ok());
    assert!(group.try_spawn(long).is_ok());
    assert!(group.try_spawn(long).is_err());
    group.wait().await.unwrap();

    group.set_limit(None).unwrap();
    for _ in 0..100 {
        assert!(group.try_spawn(long).is_ok());
    }
    group.wait().await.unwrap();

    // Down and up again, through no limit and a limit of 0: each limit is exactly what it says.
    for limit in [3, 1, 0, 2, 5, 4] {
        group.set_limit(Some(limit)).unwrap();
        for _ in 0..limit {
            assert!(group.try_spawn(long).is_ok(), "limit {limit}");
        }
        assert!(
            group.try_spawn(long).is_err(),
            "limit {limit}: one too many"
        );
        assert_eq!(group.running(), limit);
        group.wait().await.unwrap();
    }
}

#[tokio::test]
async fn limit_zero_refuses_everything_and_wait_returns_at_once() {
    let mut group = Group::<String>::new();
    group.set_limit(Some(0)).unwrap();
    assert!(group.try_spawn(|_ctx| async { Ok(()) }).is_err());
    let err = group.spawn(|_ctx| async { Ok(()) }).await.unwrap_err();
    assert!(matches!(err, SpawnError::LimitZero(_)));
    assert!(
        err.to_string().contains("set_limit"),
        "the error says what to do: {err}"
    );
    group.wait().await.unwrap();
}

#[tokio::test]
async fn set_limit_while_tasks_run_is_refused() {
    let mut group = Group::<String>::new();
    let (tx, rx) = oneshot::channel::<()>();
    group
        .spawn(|_ctx| async move {
            let _ = rx.await;
            Ok(())
        })
        .await
        .unwrap();
    let err = group.set_limit(Some(1)).unwrap_err();
    assert_eq!(err.running(), 1);
    assert!(err.to_string().contains("while 1 task(s) run"));
    tx.send(()).unwrap();
    group.wait().await.unwrap();
    group.set_limit(Some(1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_never_more_than_the_limit_run_at_once() {
    let mut group = Group::<String>::new();
    group.set_limit(Some(10)).unwrap();
    let gauge = Gauge::default();
    for i in 0..2_000u64 {
        let gauge = gauge.clone();
        group
            .spawn(move |_ctx| async move {
                let _running = gauge.enter();
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                if i % 7 == 0 {
                    tokio::time::sleep(Duration::from_micros(50)).await;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    group.wait().await.unwrap();
    assert_eq!(gauge.now(), 0);
    assert!(gauge.max() <= 10, "saw {} running at once", gauge.max());
    assert!(
        gauge.max() >= 2,
        "the limit should allow real concurrency, saw {}",
        gauge.max()
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_spawners_are_admitted_in_arrival_order() {
    let mut group = Group::<String>::new();
    group.set_limit(Some(1)).unwrap();
    let group = std::sync::Arc::new(group);
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .await
        .unwrap();
    let mut spawners = Vec::new();
    for i in 0..5 {
        let group = group.clone();
        let order = order.clone();
        spawners.push(tokio::spawn(async move {
            group
                .spawn(move |_ctx| async move {
                    order.lock().unwrap().push(i);
                    sleep(Duration::from_millis(10)).await;
                    Ok(())
                })
                .await
                .unwrap();
        }));
        // Let spawner i start waiting before spawner i + 1.
        tokio::task::yield_now().await;
    }
    for s in spawners {
        s.await.unwrap();
    }
    group.wait().await.unwrap();
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_limit_above_the_maximum_is_an_error_and_the_old_limit_stays() {
    use bounded_group::{MAX_LIMIT, ResultGroup, SetLimitError};
    let mut group = Group::<String>::new();
    group.set_limit(Some(1)).unwrap();
    for limit in [MAX_LIMIT + 1, usize::MAX] {
        let err = group.set_limit(Some(limit)).unwrap_err();
        assert_eq!(err, SetLimitError::TooLarge(limit));
        assert!(err.to_string().contains("set_limit(None)"), "{err}");
    }
    let slow = |ctx: Context| async move {
        ctx.cancelled().await;
        Ok(())
    };
    assert!(group.try_spawn(slow).is_ok());
    assert!(group.try_spawn(slow).is_err(), "the limit of 1 still holds");
    group.context().cancel();
    let _ = group.wait().await;

    let mut results = ResultGroup::<u32, String>::new();
    assert_eq!(
        results.set_limit(Some(usize::MAX)),
        Err(SetLimitError::TooLarge(usize::MAX))
    );
    results.set_limit(Some(MAX_LIMIT)).unwrap();
    results.spawn(|_ctx| async { Ok(7) }).await.unwrap();
    assert_eq!(results.wait().await.unwrap(), [7]);
}

#[tokio::test]
async fn limit_and_running_read_back_on_both_group_types() {
    use bounded_group::ResultGroup;
    let mut group = Group::<String>::new();
    assert_eq!(group.limit(), None);
    group.set_limit(Some(0)).unwrap();
    assert_eq!(group.limit(), Some(0));
    assert!(matches!(
        group.try_spawn(|_ctx| async { Ok(()) }),
        Err(TrySpawnError::LimitZero(_))
    ));
    group.set_limit(Some(2)).unwrap();
    assert_eq!(group.limit(), Some(2));

    let mut results = ResultGroup::<u32, String>::new();
    results.set_limit(Some(3)).unwrap();
    assert_eq!(results.limit(), Some(3));
    let (tx, rx) = oneshot::channel::<()>();
    results
        .spawn(move |_ctx| async move {
            let _ = rx.await;
            Ok(1)
        })
        .await
        .unwrap();
    assert_eq!(results.running(), 1);
    drop(tx);
    assert_eq!(results.wait().await.unwrap(), [1]);
}

#[tokio::test]
async fn try_spawn_on_an_ended_group_says_why_with_the_cause() {
    let group = Group::<std::fmt::Error>::with_context(&Context::new());
    group.context().cancel();
    let err = group.try_spawn(|_ctx| async { Ok(()) }).unwrap_err();
    assert!(matches!(err, TrySpawnError::Cancelled { .. }), "{err:?}");
    // A std error: `?` carries it into a Box<dyn Error>.
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(boxed.to_string().contains("task not spawned"));
}

type Boxed = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// A node of a tree of depth `depth` that visits its two children as tasks of the same group, and
/// runs a child in its own task when the group refuses it with `Deadlock`.
fn visit(
    group: std::sync::Arc<Group<String>>,
    gauge: Gauge,
    visited: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    depth: u32,
    nap: Duration,
    as_task: bool,
) -> impl FnOnce(Context) -> Boxed + Send + 'static {
    move |ctx| {
        Box::pin(async move {
            let _running = as_task.then(|| gauge.enter());
            visited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            sleep(nap).await;
            if depth == 0 {
                return Ok(());
            }
            for _ in 0..2 {
                let child = visit(
                    group.clone(),
                    gauge.clone(),
                    visited.clone(),
                    depth - 1,
                    nap,
                    true,
                );
                match group.spawn(child).await {
                    Ok(()) => {}
                    Err(SpawnError::Deadlock(_)) => {
                        let inline = visit(
                            group.clone(),
                            gauge.clone(),
                            visited.clone(),
                            depth - 1,
                            nap,
                            false,
                        );
                        inline(ctx.clone()).await?;
                    }
                    Err(err) => return Err(err.to_string()),
                }
            }
            Ok(())
        })
    }
}

/// Walks a tree of depth 6 (127 nodes) through a group of `limit`, each node a task that spawns its
/// children into the same group and holds its slot while it waits for theirs.
async fn walk_a_tree_through_its_own_group(limit: usize, nap: Duration) {
    let mut group = Group::<String>::new();
    group.set_limit(Some(limit)).unwrap();
    let group = std::sync::Arc::new(group);
    let gauge = Gauge::default();
    let visited = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let root = visit(group.clone(), gauge.clone(), visited.clone(), 6, nap, true);
    group.spawn(root).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(10), group.wait())
        .await
        .expect("tasks that spawn into their own full group never wait for ever");
    assert_eq!(waited, Ok(()));
    assert_eq!(visited.load(std::sync::atomic::Ordering::Relaxed), 127);
    assert!(gauge.max() <= limit, "{} tasks ran at once", gauge.max());
}

#[tokio::test(start_paused = true)]
async fn tasks_that_fill_every_slot_waiting_to_spawn_into_their_group_are_refused() {
    for limit in [1, 2, 4, 8] {
        walk_a_tree_through_its_own_group(limit, Duration::ZERO).await;
        walk_a_tree_through_its_own_group(limit, Duration::from_millis(3)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_tasks_spawning_into_their_own_full_group_on_a_multi_thread_runtime() {
    for round in 0..40 {
        let limit = [1, 2, 3, 8][round % 4];
        walk_a_tree_through_its_own_group(limit, Duration::from_micros(100)).await;
    }
}

/// A group of limit 2 whose first slot is held by a task that sleeps for a second.
async fn a_group_of_two_with_one_task_asleep_for_a_second() -> std::sync::Arc<Group<String>> {
    let mut group = Group::<String>::new();
    group.set_limit(Some(2)).unwrap();
    let group = std::sync::Arc::new(group);
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_secs(1)).await;
            Ok(())
        })
        .await
        .unwrap();
    group
}

/// The refusal comes only when no slot can be freed: a task that waits for a slot while another
/// task of the group runs to its end gets that slot.
#[tokio::test(start_paused = true)]
async fn a_task_spawning_into_its_own_full_group_waits_while_a_slot_can_still_be_freed() {
    let group = a_group_of_two_with_one_task_asleep_for_a_second().await;
    let same = group.clone();
    group
        .spawn(move |_ctx| async move {
            let start = tokio::time::Instant::now();
            same.spawn(|_ctx| async { Ok(()) })
                .await
                .map_err(|err| err.to_string())?;
            assert_eq!(
                start.elapsed(),
                Duration::from_secs(1),
                "it waited for the slot"
            );
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(group.wait().await, Ok(()));
    // One task's spawns waiting side by side hold one slot between them, not one each: the other
    // task still runs, and its end frees a slot for them.
    let group = a_group_of_two_with_one_task_asleep_for_a_second().await;
    let same = group.clone();
    group
        .spawn(move |_ctx| async move {
            let (first, second) = tokio::join!(
                same.spawn(|_ctx| async { Ok(()) }),
                same.spawn(|_ctx| async { Ok(()) })
            );
            first.map_err(|err| err.to_string())?;
            second.map_err(|err| err.to_string())?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(group.wait().await, Ok(()));
    // A limit of 1: the task holds the only slot, so its spawn is refused at once.
    let mut group = Group::<String>::new();
    group.set_limit(Some(1)).unwrap();
    let group = std::sync::Arc::new(group);
    let same = group.clone();
    group
        .spawn(move |_ctx| async move {
            let start = tokio::time::Instant::now();
            let err = same.spawn(|_ctx| async { Ok(()) }).await.unwrap_err();
            assert!(matches!(err, SpawnError::Deadlock(_)), "{err}");
            assert!(err.to_string().contains("try_spawn"), "{err}");
            assert_eq!(start.elapsed(), Duration::ZERO);
            Ok(())
        })
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(10), group.wait()).await;
    assert_eq!(
        waited.expect("the spawn is refused, not left waiting"),
        Ok(())
    );
}
