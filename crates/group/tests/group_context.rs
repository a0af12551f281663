//! `with_context`: the derived context ends on the first failure and after `wait`; noise never wins;
//! a spawner waiting for a slot is released when the context ends or when it is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bounded_cancel::{Cause, Context};
use bounded_group::{Group, SpawnError};
use tokio::time::{Instant, sleep};

/// A multi-thread runtime of two workers, with its time driver, for the tests that race its threads.
fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a multi-thread runtime")
}

#[derive(Debug, Clone, PartialEq)]
enum Failure {
    Real(&'static str),
    Cancelled,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Failure {}

#[tokio::test(start_paused = true)]
async fn first_error_cancels_the_context_before_anyone_waits() {
    let group = Group::with_context(&Context::new());
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_millis(10)).await;
            Err(Failure::Real("disk full"))
        })
        .await
        .unwrap();
    let cause = group.context().cancelled().await;
    let failed = cause
        .error()
        .and_then(|e| e.downcast_ref::<bounded_group::TaskError>())
        .map(|e| e.message().to_owned());
    assert_eq!(
        failed.as_deref(),
        Some("Real(\"disk full\")"),
        "the cause carries the error's message"
    );
    assert_eq!(group.wait().await, Err(Failure::Real("disk full")));
}

#[tokio::test]
async fn context_is_cancelled_once_wait_returns_even_with_no_tasks() {
    let group = Group::<Failure>::with_context(&Context::new());
    assert!(!group.context().is_cancelled());
    group.wait().await.unwrap();
    assert!(matches!(group.context().cause(), Some(Cause::Cancelled)));
}

#[tokio::test]
async fn a_parent_cancel_reaches_the_group_but_not_the_reverse() {
    let parent = Context::new();
    let group = Group::<Failure>::with_context(&parent);
    group
        .spawn(|_ctx| async { Err(Failure::Real("x")) })
        .await
        .unwrap();
    let _ = group.wait().await;
    assert!(!parent.is_cancelled());

    let parent = Context::new();
    let group = Group::<Failure>::with_context(&parent);
    parent.cancel();
    assert!(group.context().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn cancellation_noise_never_hides_the_real_error() {
    let group = Group::with_context(&Context::new());
    for _ in 0..10 {
        // These fail only because they saw the context end.
        group
            .spawn(|ctx| async move {
                ctx.cancelled().await;
                Err(Failure::Cancelled)
            })
            .await
            .unwrap();
    }
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_millis(5)).await;
            Err(Failure::Real("upstream 503"))
        })
        .await
        .unwrap();
    assert_eq!(group.wait().await, Err(Failure::Real("upstream 503")));
}

#[tokio::test(start_paused = true)]
async fn a_failed_group_refuses_new_tasks_and_hands_them_back() {
    let group = Group::with_context(&Context::new());
    group
        .spawn(|_ctx| async { Err(Failure::Real("x")) })
        .await
        .unwrap();
    group.context().cancelled().await;
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let err = group
        .spawn(move |_ctx| async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::Cancelled { .. }));
    assert!(err.to_string().contains("did not run"));
    drop(err.into_inner());
    assert!(group.try_spawn(|_ctx| async { Ok(()) }).is_err());
    let _ = group.wait().await;
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_spawn_stops_promptly_when_the_group_fails() {
    let mut group = Group::with_context(&Context::new());
    group.set_limit(Some(1)).unwrap();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_secs(1)).await;
            Err(Failure::Real("slot holder failed"))
        })
        .await
        .unwrap();
    // The slot frees and the context ends at the same instant; the context wins, so nothing more starts.
    let start = Instant::now();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let err = group
        .spawn(move |_ctx| async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    assert!(matches!(err, SpawnError::Cancelled { .. }));
    let _ = group.wait().await;
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_spawner_is_never_deadlocked_by_a_task_that_ignores_the_context_end() {
    // The slot holder fails through a sibling and then keeps its slot forever; the spawner must still return.
    let mut group = Group::with_context(&Context::new());
    group.set_limit(Some(2)).unwrap();
    group
        .spawn(|_ctx| async {
            std::future::pending::<()>().await;
            Ok(())
        })
        .await
        .unwrap();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_millis(10)).await;
            Err(Failure::Real("sibling failed"))
        })
        .await
        .unwrap();
    // Both slots are taken until the failure; then one frees, but the context has ended: refused.
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        group.spawn(|_ctx| async { Ok(()) }),
    )
    .await
    .expect("the spawner must not hang")
    .unwrap_err();
    assert!(matches!(
        err,
        SpawnError::Cancelled {
            cause: Cause::Error(_),
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_spawn_runs_nothing_and_frees_its_place() {
    let mut group = Group::<Failure>::new();
    group.set_limit(Some(1)).unwrap();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_secs(1)).await;
            Ok(())
        })
        .await
        .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let waiting = group.spawn(move |_ctx| async move {
        flag.store(true, Ordering::SeqCst);
        Ok(())
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), waiting)
            .await
            .is_err()
    );
    // The next spawner is admitted as soon as the slot frees: the dropped one held no place.
    let start = Instant::now();
    group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_millis(900));
    group.wait().await.unwrap();
    assert!(
        !ran.load(Ordering::SeqCst),
        "a dropped spawn must never run its closure"
    );
    assert_eq!(group.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn spawn_with_ends_the_wait_with_the_callers_cause() {
    let mut group = Group::<Failure>::new();
    group.set_limit(Some(1)).unwrap();
    group
        .spawn(|ctx| async move {
            ctx.cancelled().await;
            Ok(())
        })
        .await
        .unwrap();
    let request = Context::new().with_timeout(Duration::from_millis(250));
    let start = Instant::now();
    let err = group
        .spawn_with(&request, |_ctx| async { Ok(()) })
        .await
        .unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_millis(250));
    assert!(matches!(
        err,
        SpawnError::Cancelled {
            cause: Cause::DeadlineExceeded,
            ..
        }
    ));
    assert!(
        !group.context().is_cancelled(),
        "the caller's deadline is not the group's"
    );
}

#[test]
fn a_parents_cause_stays_the_groups_cause_whatever_its_tasks_answer_on_a_multi_thread_runtime() {
    for _ in 0..200 {
        let runtime = multi_thread_runtime();
        runtime.block_on(async {
            let parent = Context::new();
            let group = Group::<Failure>::with_context(&parent);
            for _ in 0..4 {
                group
                    .spawn(|ctx| async move {
                        ctx.cancelled().await;
                        Err(Failure::Cancelled)
                    })
                    .await
                    .unwrap();
            }
            parent.cancel_with(std::io::Error::other("service draining"));
            // No task failed before the parent ended the group: the tasks' answers are all that is left
            // to return (errgroup's rule), and the group's cause is still the parent's.
            assert_eq!(group.wait().await, Err(Failure::Cancelled));
            let cause = group.context().cause().unwrap();
            assert_eq!(cause.error().unwrap().to_string(), "service draining");
        });
    }
}

#[tokio::test(start_paused = true)]
async fn with_context_takes_the_errors_people_use() {
    // String: displayable, cloneable.
    let strings = Group::<String>::with_context(&Context::new());
    strings
        .spawn(|_ctx| async { Err("no route".to_owned()) })
        .await
        .unwrap();
    assert_eq!(strings.wait().await, Err("no route".to_owned()));

    // std::io::Error: not Clone, so `finish` hands back the error itself.
    let io = Group::<std::io::Error>::with_context(&Context::new());
    io.spawn(|ctx| async move {
        ctx.cancelled().await;
        Ok(())
    })
    .await
    .unwrap();
    io.spawn(|_ctx| async { Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no file")) })
        .await
        .unwrap();
    let cause = io.context().cancelled().await;
    assert!(cause.to_string().contains("no file"), "{cause}");
    let err = io.finish().await.unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::NotFound,
        "the very error, not a copy of its text"
    );

    // anyhow::Error, and a boxed dynamic error: neither is Clone.
    let any = Group::<anyhow::Error>::with_context(&Context::new());
    any.spawn(|_ctx| async { Err(anyhow::anyhow!("quota exceeded")) })
        .await
        .unwrap();
    assert_eq!(
        any.finish().await.unwrap_err().to_string(),
        "quota exceeded"
    );
    let boxed = Group::<Box<dyn std::error::Error + Send + Sync>>::with_context(&Context::new());
    boxed
        .spawn(|_ctx| async { Err("dynamic".into()) })
        .await
        .unwrap();
    assert_eq!(boxed.finish().await.unwrap_err().to_string(), "dynamic");
}

/// A spawn waiting for a slot ends with the parent's cause when the parent is cancelled, though no
/// task of the group failed.
#[tokio::test(start_paused = true)]
async fn a_waiting_spawn_ends_with_the_parents_cause() {
    let parent = Context::new();
    let mut group = Group::<Failure>::with_context(&parent);
    group.set_limit(Some(1)).unwrap();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await
        .unwrap();
    let canceller = {
        let parent = parent.clone();
        tokio::spawn(async move {
            sleep(Duration::from_secs(1)).await;
            parent.cancel_with(Failure::Real("shutting down"));
        })
    };
    let start = Instant::now();
    let err = group.spawn(|_ctx| async { Ok(()) }).await.unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    let SpawnError::Cancelled { cause, .. } = err else {
        panic!("expected Cancelled, got {err:?}")
    };
    let failure = cause.error().and_then(|e| e.downcast_ref::<Failure>());
    assert_eq!(failure, Some(&Failure::Real("shutting down")), "{cause:?}");
    canceller.await.unwrap();
}

/// The slots a spawn waits on are the group's current ones: after `set_limit` replaced them, a waiting
/// spawn is still released when the context ends.
#[tokio::test(start_paused = true)]
async fn a_spawn_waiting_on_new_slots_after_set_limit_is_released_by_the_context() {
    let parent = Context::new();
    let mut group = Group::<Failure>::with_context(&parent);
    group.set_limit(Some(1)).unwrap();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_secs(1)).await;
            Ok(())
        })
        .await
        .unwrap();
    // Waits for the first slot (and so watches the first slots), then gets it.
    group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
    while group.running() > 0 {
        tokio::task::yield_now().await;
    }
    group.set_limit(Some(1)).unwrap(); // new slots, without a `wait` in between
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await
        .unwrap();
    let canceller = {
        let parent = parent.clone();
        tokio::spawn(async move {
            sleep(Duration::from_secs(1)).await;
            parent.cancel();
        })
    };
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        group.spawn(|_ctx| async { Ok(()) }),
    )
    .await
    .expect("the context's end releases the wait");
    assert!(matches!(waited, Err(SpawnError::Cancelled { .. })));
    canceller.await.unwrap();
}

/// Spawners racing for three slots on a multi-thread runtime while one task fails partway: every
/// spawner waiting when the context ends is released (none hangs), no spawner has a task admitted
/// after one of its spawns was refused, every admitted task runs, never more than three run at once,
/// and the first error wins.
#[test]
fn spawners_waiting_when_a_failure_ends_the_context_are_all_released_on_a_multi_thread_runtime() {
    use std::sync::atomic::AtomicUsize;
    for seed in 0..30usize {
        let runtime = multi_thread_runtime();
        runtime.block_on(async {
            let mut group = Group::<Failure>::with_context(&Context::new());
            group.set_limit(Some(3)).unwrap();
            let group = Arc::new(group);
            let (running, peak, ran) = (
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
            );
            // A task of the first spawner fails. Every spawner makes 1,000 spawns, and that one goes
            // on until the failure refuses it, however long the failing task takes to be polled
            // again: a worker thread the machine takes away for milliseconds holds up the task
            // queued on it while the other thread admits hundreds more.
            let fail_at = 20 + seed * 5;
            let spawners: Vec<_> = (0..4)
                .map(|s| {
                    let (group, running, peak, ran) =
                        (group.clone(), running.clone(), peak.clone(), ran.clone());
                    tokio::spawn(async move {
                        let (mut admitted, mut refused) = (0usize, false);
                        for i in 0.. {
                            if i >= 1_000 && (s != 0 || refused) {
                                break;
                            }
                            let failing = s == 0 && i == fail_at;
                            let (running, peak, ran) = (running.clone(), peak.clone(), ran.clone());
                            let task = move |_ctx: Context| async move {
                                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                                peak.fetch_max(now, Ordering::SeqCst);
                                ran.fetch_add(1, Ordering::SeqCst);
                                tokio::task::yield_now().await;
                                running.fetch_sub(1, Ordering::SeqCst);
                                if failing {
                                    return Err(Failure::Real("task failed"));
                                }
                                Ok(())
                            };
                            match group.spawn(task).await {
                                Ok(()) => {
                                    assert!(!refused, "admitted after the end refused one");
                                    admitted += 1;
                                }
                                Err(SpawnError::Cancelled { .. }) => refused = true,
                                Err(other) => panic!("unexpected {other:?}"),
                            }
                        }
                        (admitted, refused)
                    })
                })
                .collect();
            let mut admitted = 0;
            for (s, spawner) in spawners.into_iter().enumerate() {
                let (n, refused) = tokio::time::timeout(Duration::from_secs(30), spawner)
                    .await
                    .expect("a waiting spawn is released when the context ends")
                    .unwrap();
                assert!(
                    s != 0 || refused,
                    "the failing task's spawner meets the end"
                );
                admitted += n;
            }
            assert_eq!(group.wait().await, Err(Failure::Real("task failed")));
            assert_eq!(
                ran.load(Ordering::SeqCst),
                admitted,
                "every admitted task ran"
            );
            assert!(peak.load(Ordering::SeqCst) <= 3, "the limit held");
        });
    }
}

/// On a group limited to 1: a task that sleeps a second, a spawn that waits for its slot (which
/// starts the slot watcher), then `wait` (which stops it).
async fn wait_for_a_slot_then_for_the_group(group: &Group<Failure>) {
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_secs(1)).await;
            Ok(())
        })
        .await
        .unwrap();
    group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
    group.wait().await.unwrap();
}

/// The task that closes the slots for waiting spawns is gone once `wait` finds the group idle (the
/// group still alive, its context still live), and once the group is dropped after a spawn waited.
#[tokio::test(start_paused = true)]
async fn the_slot_watcher_is_gone_after_wait_and_after_drop() {
    let mut group = Group::<Failure>::new();
    group.set_limit(Some(1)).unwrap();
    wait_for_a_slot_then_for_the_group(&group).await;
    assert!(!group.context().is_cancelled());
    bounded_cancel::live::assert_none_alive().await;

    let mut group = Group::<Failure>::new();
    group.set_limit(Some(1)).unwrap();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await
        .unwrap();
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut waiting = Box::pin(group.spawn(|_ctx| async { Ok(()) }));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    drop(waiting);
    drop(group);
    bounded_cancel::live::assert_none_alive().await;
}

/// After `wait` found the group idle and stopped the slot watcher, the next spawn that waits starts
/// a new one: the group's context ending still releases it, as cancelled, with nothing run.
#[tokio::test(start_paused = true)]
async fn a_spawn_that_waits_after_a_wait_is_still_released_when_the_context_ends() {
    let mut group = Group::<Failure>::new();
    group.set_limit(Some(1)).unwrap();
    for _round in 0..3 {
        wait_for_a_slot_then_for_the_group(&group).await;
    }
    group.spawn(|_ctx| std::future::pending()).await.unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let waiting = group.spawn({
        let ran = ran.clone();
        move |_ctx| async move {
            ran.store(true, Ordering::SeqCst);
            Ok(())
        }
    });
    let cancel = async {
        sleep(Duration::from_secs(5)).await;
        group.context().cancel();
    };
    let (spawned, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(waiting, cancel)
    })
    .await
    .expect("the waiting spawn is released when the context ends");
    assert!(matches!(spawned, Err(SpawnError::Cancelled { .. })));
    assert!(!ran.load(Ordering::SeqCst));
}

/// On a multi-thread runtime, a runner that has started a run of tasks hands the next ones an alias
/// of the group's context (counted apart, to keep the spawner and the runners off one cache line).
/// Every task, early or late, must still have the group's context in full: its deadline, the end the
/// group's parent brings, and a cancel of its own that ends the group's context and so every sibling.
#[test]
fn tasks_late_in_a_long_run_have_the_groups_context_in_full_on_a_multi_thread_runtime() {
    use std::sync::atomic::AtomicUsize;
    let runtime = multi_thread_runtime();
    runtime.block_on(async {
        for round in 0..10 {
            let parent = Context::new().with_timeout(Duration::from_secs(3600));
            let group = Group::<Failure>::with_context(&parent);
            let deadline = group.context().deadline();
            assert!(deadline.is_some());
            // Quick tasks, enough for every runner to lend an alias to the later ones; all run
            // before anything ends the context.
            let (ran, amiss) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            for _ in 0..2_000 {
                let (ran, amiss) = (ran.clone(), amiss.clone());
                group
                    .spawn(move |ctx| async move {
                        if ctx.deadline() != deadline || ctx.is_cancelled() {
                            amiss.fetch_add(1, Ordering::SeqCst);
                        }
                        ran.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            while ran.load(Ordering::SeqCst) < 2_000 {
                tokio::task::yield_now().await;
            }
            assert_eq!(
                amiss.load(Ordering::SeqCst),
                0,
                "round {round}: a task's context differs"
            );
            let ended = Arc::new(AtomicUsize::new(0));
            for _ in 0..500 {
                let ended = ended.clone();
                group
                    .spawn(move |ctx| async move {
                        if ctx.cancelled().await == Cause::Cancelled {
                            ended.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            if round % 2 == 0 {
                // A task cancels its own context: the group's ends, and every sibling sees it.
                group
                    .spawn(|ctx| async move {
                        assert!(ctx.cancel(), "the task's cancel ends the group's context");
                        Ok(())
                    })
                    .await
                    .unwrap();
            } else {
                // The parent ends: every task sees it.
                parent.cancel();
            }
            let waited = tokio::time::timeout(Duration::from_secs(10), group.wait()).await;
            assert_eq!(waited, Ok(Ok(())), "round {round}: the tasks saw the end");
            assert_eq!(ended.load(Ordering::SeqCst), 500);
            assert_eq!(group.context().cause(), Some(Cause::Cancelled));
            assert_eq!(
                parent.is_cancelled(),
                round % 2 == 1,
                "the parent is not the group's to end"
            );
        }
    });
}
