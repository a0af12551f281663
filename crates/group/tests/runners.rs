//! A group runs its tasks on runner tasks that take one task after another (at most `limit` of
//! them with a limit), instead of a tokio task per group task. These tests hold it to what a task
//! of its own promises: nothing runs on the spawner, nothing leaks between tasks, no task waits
//! behind another that could run, tasks that compute spread over the threads, and nothing of the
//! group is left once it was waited for or dropped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::live;
use bounded_group::Group;
use tokio::sync::oneshot;

#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/gauge.rs"]
#[allow(dead_code)]
mod gauge;

use cpu::{burn, spin_until_all_started};
use gauge::Gauge;

tokio::task_local! {
    static REQUEST: u32;
}

fn limited(limit: usize) -> Group<String> {
    let mut group = Group::new();
    group.set_limit(Some(limit)).unwrap();
    group
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_group_runs_its_tasks_on_at_most_limit_tokio_tasks() {
    let group = limited(4);
    let ids = Arc::new(Mutex::new(HashSet::new()));
    for _ in 0..2_000 {
        let ids = ids.clone();
        group
            .spawn(move |_ctx| async move {
                ids.lock().unwrap().insert(tokio::task::id());
                tokio::task::yield_now().await;
                Ok(())
            })
            .await
            .unwrap();
    }
    group.wait().await.unwrap();
    let used = ids.lock().unwrap().len();
    assert!(
        (1..=4).contains(&used),
        "2,000 tasks ran on {used} tokio tasks"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_limited_groups_task_runs_none_of_its_code_on_the_spawner_nor_sees_its_task_locals() {
    let group = limited(2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    REQUEST
        .scope(7, async {
            for _ in 0..3 {
                let seen = seen.clone();
                group
                    .spawn(move |_ctx| {
                        seen.lock().unwrap().push(REQUEST.try_with(|r| *r).ok());
                        async { Ok(()) }
                    })
                    .await
                    .unwrap();
            }
            // Two admitted at once, the third once a runner freed a slot: none ran here.
            assert!(seen.lock().unwrap().len() < 3, "a task ran on the spawner");
        })
        .await;
    group.wait().await.unwrap();
    assert_eq!(*seen.lock().unwrap(), [None, None, None]);
}

/// With a limit of 2, a task that waits for a later sibling must see that sibling run: the runner
/// of the first task is busy, so the second needs a runner of its own.
#[tokio::test(flavor = "current_thread")]
async fn a_task_waiting_for_a_later_sibling_never_blocks_it() {
    let group = limited(2);
    for _ in 0..100 {
        let (tx, rx) = oneshot::channel::<()>();
        group
            .spawn(move |_ctx| async move { rx.await.map_err(|e| e.to_string()) })
            .await
            .unwrap();
        group
            .spawn(move |_ctx| async move {
                tx.send(()).unwrap();
                Ok(())
            })
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), group.wait())
        .await
        .expect("every task ran")
        .unwrap();
}

/// Rounds of `limit` tasks that can only end together (a barrier of `limit`): each round needs every
/// runner. From the second round on, the runners are parked after tasks that waited, and take the
/// next with the search handed on as they take it rather than when the task waits.
#[tokio::test(start_paused = true)]
async fn tasks_that_wait_for_each_other_all_run_at_once_round_after_round() {
    let group = limited(4);
    let ended = Arc::new(AtomicUsize::new(0));
    for round in 1..=3 {
        let barrier = Arc::new(tokio::sync::Barrier::new(4));
        for _ in 0..4 {
            let (barrier, ended) = (barrier.clone(), ended.clone());
            group
                .spawn(move |_ctx| async move {
                    barrier.wait().await;
                    ended.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
                .unwrap();
        }
        // Polled on the paused clock, so a deadlock (a task queued while a runner stays parked)
        // fires the timeout at once instead of hanging; `wait` is left for the end, since it lets
        // the runners end.
        tokio::time::timeout(Duration::from_secs(60), async {
            while ended.load(Ordering::SeqCst) < 4 * round {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("round {round}: the tasks never all ran at once"));
    }
    group.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_group_is_alive_after_wait_or_drop() {
    for limit in [Some(8), None] {
        nothing_is_alive_after_wait_or_drop(limit).await;
    }
}

async fn nothing_is_alive_after_wait_or_drop(limit: Option<usize>) {
    let mut group = Group::<String>::new();
    group.set_limit(limit).unwrap();
    for _ in 0..500 {
        group
            .spawn(|_ctx| async {
                tokio::task::yield_now().await;
                Ok(())
            })
            .await
            .unwrap();
    }
    group.wait().await.unwrap();
    // The group still exists, but was waited for: its runners end.
    live::settle(Duration::from_secs(5)).await.unwrap();

    // Spawned again after the wait, and dropped with runners parked and tasks running.
    let (tx, rx) = oneshot::channel::<()>();
    group
        .spawn(move |_ctx| async move {
            let _ = rx.await;
            Ok(())
        })
        .await
        .unwrap();
    for _ in 0..20 {
        group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
    }
    tokio::task::yield_now().await;
    drop(group);
    live::settle(Duration::from_secs(5)).await.unwrap();
    assert!(tx.is_closed(), "the running task was aborted by the drop");
}

/// Without a limit, every task can wait at once: 300 tasks that can only end together (a barrier of
/// 300) all run, on as many runners; once they ended, at most 64 runners stay parked, and none after
/// `wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlimited_group_runs_every_waiting_task_at_once() {
    let group = Group::<String>::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(300));
    for _ in 0..300 {
        let barrier = barrier.clone();
        group
            .spawn(move |_ctx| async move {
                barrier.wait().await;
                Ok(())
            })
            .await
            .unwrap();
    }
    while group.running() > 0 {
        tokio::time::timeout(Duration::from_secs(10), tokio::task::yield_now())
            .await
            .expect("the 300 tasks never all ran at once");
    }
    // A runner ends when it finds 64 parked: wait for the last ones to reach the queue (a loaded
    // machine can take a while to poll them), for up to 10 seconds.
    let runners = || -> usize {
        live::names()
            .iter()
            .filter_map(|name| match name.strip_prefix("group task") {
                Some("") => Some(1),
                Some(more) => more
                    .trim()
                    .strip_prefix("(x")?
                    .strip_suffix(')')?
                    .parse()
                    .ok(),
                None => None,
            })
            .sum()
    };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while runners() > 64 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let left = runners();
    assert!(
        (1..=64).contains(&left),
        "{left} runners left after the tasks ended"
    );
    group.wait().await.unwrap();
    live::settle(Duration::from_secs(5)).await.unwrap();
}

/// A task that counts itself in `started` as it runs, and finishes at once.
fn counted(
    started: &Arc<AtomicUsize>,
) -> impl FnOnce(bounded_cancel::Context) -> std::future::Ready<Result<(), String>> + Send + 'static
{
    let started = started.clone();
    move |_ctx| {
        started.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

/// Spawns 10,000 counted tasks in a loop that awaits nothing but the spawns, and returns the most
/// of them that were ever waiting to start behind it; then checks that every one ran.
async fn most_unstarted_behind_a_spawn_loop(group: Group<String>) -> usize {
    let started = Arc::new(AtomicUsize::new(0));
    let mut most_unstarted = 0;
    for spawned in 1..=10_000 {
        group.spawn(counted(&started)).await.unwrap();
        most_unstarted = most_unstarted.max(spawned - started.load(Ordering::Relaxed));
    }
    group.wait().await.unwrap();
    assert_eq!(started.load(Ordering::Relaxed), 10_000);
    most_unstarted
}

/// Without a limit a spawn never waits, so it spends the spawner's tokio budget instead: a loop
/// that only spawns yields every so often, and on one thread the tasks start while it still spawns
/// rather than piling up, all 10,000 unstarted, until it awaits something else.
#[tokio::test(flavor = "current_thread")]
async fn an_unlimited_spawn_loop_yields_so_that_tasks_start_along_the_way() {
    let most_unstarted = most_unstarted_behind_a_spawn_loop(Group::new()).await;
    assert!(
        most_unstarted <= 1_000,
        "{most_unstarted} tasks were waiting to start behind the spawn loop"
    );
}

/// Under a limit, a spawn that finds a free slot spends the budget too: a high limit does not let a
/// spawn loop pile up its tasks unstarted either.
#[tokio::test(flavor = "current_thread")]
async fn a_spawn_loop_under_a_high_limit_yields_too() {
    let most_unstarted = most_unstarted_behind_a_spawn_loop(limited(100_000)).await;
    assert!(
        most_unstarted <= 1_000,
        "{most_unstarted} tasks were waiting to start behind the spawn loop"
    );
}

/// A spawn that yields because the budget ran out has taken nothing: dropped then, its task never
/// runs, and the group waits only for the tasks it admitted.
#[tokio::test(flavor = "current_thread")]
async fn a_spawn_dropped_while_it_yields_for_the_budget_runs_nothing() {
    let group = Group::<String>::new();
    let started = Arc::new(AtomicUsize::new(0));
    let mut admitted = 0;
    loop {
        let mut next = std::pin::pin!(group.spawn(counted(&started)));
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(next.as_mut().poll(cx))).await;
        match polled {
            std::task::Poll::Ready(admission) => {
                admission.unwrap();
                admitted += 1;
            }
            // Out of budget: this spawn is dropped here, unadmitted.
            std::task::Poll::Pending => break,
        }
        assert!(admitted <= 1_000, "the budget never ran out");
    }
    assert!(admitted > 0);
    group.wait().await.unwrap();
    assert_eq!(started.load(Ordering::Relaxed), admitted);
}

/// Inside `tokio::task::unconstrained`, which lifts the budget, a spawn loop runs through: the
/// yields come from tokio's budget, nowhere else.
#[tokio::test(flavor = "current_thread")]
async fn an_unconstrained_spawn_loop_does_not_yield() {
    let group = Group::<String>::new();
    let started = Arc::new(AtomicUsize::new(0));
    tokio::task::unconstrained(async {
        for _ in 0..1_000 {
            group.spawn(counted(&started)).await.unwrap();
        }
    })
    .await;
    assert_eq!(started.load(Ordering::Relaxed), 0);
    group.wait().await.unwrap();
    assert_eq!(started.load(Ordering::Relaxed), 1_000);
}

/// Many runs on the multi-thread runtime: tasks spawn siblings from inside the group and yield at
/// random points; each runs exactly once, and never more than the limit at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_every_task_runs_once_within_the_limit() {
    stress_rounds().await;
}

/// The same on one worker thread, where a runner looks once more for a waiting spawn's task before
/// it parks; under small limits and one of 100.
#[tokio::test(flavor = "current_thread")]
async fn stress_every_task_runs_once_within_the_limit_on_one_thread() {
    stress_rounds().await;
}

/// And on a multi-thread runtime with one worker, which runs the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn stress_every_task_runs_once_within_the_limit_on_one_worker() {
    stress_rounds().await;
}

async fn stress_rounds() {
    const TASKS: u64 = 80;
    for round in 0..240u64 {
        let limit = [1, 2, 3, 4, 5, 100][(round % 6) as usize];
        let group = Arc::new(limited(limit));
        let running = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(Mutex::new(Vec::new()));
        for i in 0..TASKS {
            let (group2, running, ran) = (group.clone(), running.clone(), ran.clone());
            group
                .spawn(move |_ctx| async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= limit, "{now} running, limit {limit}");
                    if (i + round) % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                    ran.lock().unwrap().push(i);
                    running.fetch_sub(1, Ordering::SeqCst);
                    if i % 7 == 0 {
                        // A child from inside the group, if a slot is free now.
                        let ran = ran.clone();
                        let _ = group2.try_spawn(move |_ctx| async move {
                            ran.lock().unwrap().push(1_000 + i);
                            Ok(())
                        });
                    }
                    Ok(())
                })
                .await
                .unwrap();
        }
        group.wait().await.unwrap();
        let mut ran = ran.lock().unwrap().clone();
        ran.sort_unstable();
        let parents: Vec<u64> = ran.iter().copied().filter(|&i| i < 1_000).collect();
        assert_eq!(parents, (0..TASKS).collect::<Vec<_>>(), "round {round}");
        let children = ran.len() - parents.len();
        assert!(children <= 12, "round {round}: a child ran twice");
    }
    live::settle(Duration::from_secs(5)).await.unwrap();
}

/// Many runs on the multi-thread runtime of tasks that compute for 0 to 18 µs between their waits,
/// which makes runners hand queued tasks on and give the tasks they hold back to the queue, and that
/// each wait for the one spawned before it, so that most wakes come from another runner: each task
/// runs exactly once, never more than the limit at once, and nothing is left alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_tasks_that_compute_between_waits_run_once_within_the_limit() {
    const TASKS: usize = 48;
    for round in 0..60usize {
        let limit = [Some(2), Some(8), None][round % 3];
        let mut group = Group::<String>::new();
        group.set_limit(limit).unwrap();
        let gauge = Gauge::default();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let mut previous: Option<oneshot::Receiver<()>> = None;
        for i in 0..TASKS {
            let (done, next) = oneshot::channel::<()>();
            let wait_for = previous.replace(next);
            let (gauge, ran) = (gauge.clone(), ran.clone());
            group
                .spawn(move |_ctx| async move {
                    let _running = gauge.enter();
                    let micros = |step: usize| ((i * 7 + step * 13 + round) % 4) as u64 * 6;
                    burn(Duration::from_micros(micros(0)));
                    tokio::task::yield_now().await;
                    burn(Duration::from_micros(micros(1)));
                    if let Some(wait_for) = wait_for {
                        // The task before it ended (or was dropped with its sender).
                        let _ = wait_for.await;
                    }
                    burn(Duration::from_micros(micros(2)));
                    ran.lock().unwrap().push(i);
                    let _ = done.send(());
                    Ok(())
                })
                .await
                .unwrap();
        }
        tokio::time::timeout(Duration::from_secs(20), group.wait())
            .await
            .unwrap_or_else(|_| panic!("round {round}: a task never ran"))
            .unwrap();
        let mut ran = ran.lock().unwrap().clone();
        ran.sort_unstable();
        assert_eq!(ran, (0..TASKS).collect::<Vec<_>>(), "round {round}");
        if let Some(limit) = limit {
            assert!(
                gauge.max() <= limit,
                "round {round}: {} tasks ran at once under a limit of {limit}",
                gauge.max()
            );
        }
    }
    live::settle(Duration::from_secs(5)).await.unwrap();
}

/// Tasks that burn CPU without awaiting run on both worker threads at once, as tokio tasks of their
/// own do: a runner busy with one never holds back the tasks queued behind it, with a limit or
/// without. Tokio itself does not promise this (now and then it leaves a task in the queue of a
/// thread that is busy), so a few rounds may miss; a runner that kept the second task behind the
/// first misses every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_bound_tasks_run_on_both_worker_threads_at_once() {
    for limit in [Some(2), Some(8), None] {
        let mut together = 0;
        for _ in 0..20 {
            let mut group = Group::<String>::new();
            group.set_limit(limit).unwrap();
            let started = Arc::new(AtomicUsize::new(0));
            let met = Arc::new(AtomicUsize::new(0));
            for _ in 0..2 {
                let (started, met) = (started.clone(), met.clone());
                group
                    .spawn(move |_ctx| async move {
                        if spin_until_all_started(&started, 2) {
                            met.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            group.wait().await.unwrap();
            together += usize::from(met.load(Ordering::SeqCst) == 2);
        }
        assert!(
            together >= 15,
            "limit {limit:?}: two CPU-bound tasks ran at once in only {together} rounds of 20"
        );
    }
}

/// Runners that have run a long stream of tasks finishing at once run the next ones back to back on
/// their thread; when those start computing, the ones queued behind them still spread to the other
/// thread (after the first, which shows it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_bound_tasks_after_quick_ones_still_spread() {
    for limit in [Some(32), None] {
        let mut group = Group::<String>::new();
        group.set_limit(limit).unwrap();
        for _ in 0..2_000 {
            group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
        }
        // Every runner parked again, each after quick tasks.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let gauge = Gauge::default();
        // Spawned at once (each finds a slot free, so no spawn waits and no runner runs until the
        // caller awaits `wait`).
        for _ in 0..16 {
            let gauge = gauge.clone();
            group
                .spawn(move |_ctx| async move {
                    let _running = gauge.enter();
                    burn(Duration::from_millis(2));
                    Ok(())
                })
                .await
                .unwrap();
        }
        group.wait().await.unwrap();
        assert_eq!(
            gauge.max(),
            2,
            "limit {limit:?}: 16 tasks of 2 ms each never ran on both threads at once"
        );
    }
}

/// A runner holds the tasks it took while they wait. When they are woken together and each then
/// computes, the first to hold the thread long makes the runner give the others back, so that they
/// run on the other thread as tokio tasks of their own would, instead of one after another on the
/// runner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_tasks_one_runner_holds_that_then_compute_spread_over_both_threads() {
    for limit in [Some(8), None] {
        let mut group = Group::<String>::new();
        group.set_limit(limit).unwrap();
        let gauge = Gauge::default();
        let (go, gate) = tokio::sync::watch::channel(false);
        let (waiting, mut waits) = tokio::sync::mpsc::unbounded_channel();
        let mut runners = HashSet::new();
        for _ in 0..8 {
            let (gauge, mut gate, waiting) = (gauge.clone(), gate.clone(), waiting.clone());
            group
                .spawn(move |_ctx| async move {
                    waiting.send(tokio::task::id()).unwrap();
                    gate.wait_for(|&go| go).await.unwrap();
                    let _running = gauge.enter();
                    burn(Duration::from_millis(2));
                    Ok(())
                })
                .await
                .unwrap();
            runners.insert(waits.recv().await.unwrap());
            // Its runner parks again before the next task is spawned, and takes that one too.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            runners.len(),
            1,
            "limit {limit:?}: the eight waiting tasks are held by one runner"
        );
        go.send(true).unwrap();
        group.wait().await.unwrap();
        assert_eq!(
            gauge.max(),
            2,
            "limit {limit:?}: eight tasks of 2 ms each, woken together, never ran on both threads at once"
        );
    }
}

/// A limited group whose tasks each wait once and then, one in a hundred, compute for 1 ms: the
/// runner that holds them would run every one on its thread while the other sits idle (the one
/// that computes returns before its siblings are woken, so none is handed on). The runner sees
/// its long polls fill its time, and from then on each runner holds one task: two of the tasks
/// that compute run at once. Only the tasks from the 2,000th on are watched, well after the
/// runner has taken to holding them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_group_whose_waiting_tasks_now_and_then_compute_spreads_them() {
    // Spawned from a task of the runtime, as a service's handler does: the runner's wake-ups then
    // stay on its thread.
    tokio::spawn(spawn_tasks_that_now_and_then_compute())
        .await
        .unwrap();
}

async fn spawn_tasks_that_now_and_then_compute() {
    let group = limited(8);
    let gauge = Gauge::default();
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    for n in 0u64.. {
        if gauge.max() >= 2 || std::time::Instant::now() > give_up {
            break;
        }
        let gauge = gauge.clone();
        group
            .spawn(move |_ctx| async move {
                tokio::task::yield_now().await;
                if n % 100 == 99 {
                    let _computing = (n >= 2_000).then(|| gauge.enter());
                    burn(Duration::from_millis(1));
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    group.wait().await.unwrap();
    assert_eq!(gauge.max(), 2, "two tasks that compute ran at once");
    // The runners started for one task each end with the group's last task.
    drop(group);
    live::assert_none_alive().await;
}

/// On current_thread, a runner that finds nothing queued while a spawn waits for a slot looks once
/// more before it parks, expecting that spawn's task. It must look only once: here the spawn is
/// handed the slot but its caller does not poll it for a while, and the runtime must still go idle
/// (a runner looking again and again would keep it busy, and the paused clock would never move).
#[test]
fn a_runner_looks_again_for_a_waiting_spawns_task_only_once() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let group = limited(1);
            let (release, gate) = oneshot::channel::<()>();
            group
                .spawn(move |_ctx| async move {
                    let _ = gate.await;
                    Ok(())
                })
                .await
                .unwrap();
            let waiting = group.spawn(|_ctx| async { Ok(()) });
            tokio::pin!(waiting);
            let first_poll = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(waiting.as_mut().poll(cx).is_pending())
            });
            assert!(first_poll.await, "the only slot is held: the spawn waits");
            // The first task ends; its slot goes to the waiting spawn, left unpolled meanwhile.
            release.send(()).unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            waiting.await.unwrap();
            group.wait().await.unwrap();
        });
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the runtime never went idle: a runner kept looking for the spawn's task");
}

/// On one worker thread, a runner holds every task it takes while the task waits, and polls each
/// again only when it is woken: rounds of tasks that can only end together (a barrier) all wait on
/// one tokio task, where a runner per task would have needed as many as the barrier.
#[tokio::test(flavor = "current_thread")]
async fn on_one_thread_tasks_that_wait_share_one_runner() {
    for (limit, tasks) in [(Some(8), 8), (None, 64)] {
        let mut group = Group::<String>::new();
        group.set_limit(limit).unwrap();
        let ids = Arc::new(Mutex::new(HashSet::new()));
        for _round in 0..3 {
            spawn_on_a_barrier(&group, tasks, &ids).await;
        }
        tokio::time::timeout(Duration::from_secs(10), group.wait())
            .await
            .expect("every round ran")
            .unwrap();
        let used = ids.lock().unwrap().len();
        assert_eq!(
            used, 1,
            "limit {limit:?}: {tasks} waiting tasks ran on {used} tokio tasks"
        );
    }
}

/// Spawns `tasks` tasks that can only end together, on one barrier; each records in `ids` the tokio
/// task it runs on, before and after it waits.
async fn spawn_on_a_barrier(
    group: &Group<String>,
    tasks: usize,
    ids: &Arc<Mutex<HashSet<tokio::task::Id>>>,
) {
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    for _ in 0..tasks {
        let (barrier, ids) = (barrier.clone(), ids.clone());
        group
            .spawn(move |_ctx| async move {
                ids.lock().unwrap().insert(tokio::task::id());
                barrier.wait().await;
                ids.lock().unwrap().insert(tokio::task::id());
                Ok(())
            })
            .await
            .unwrap();
    }
}

/// A runner holds at most 64 waiting tasks: on one worker thread, 300 tasks that can only end
/// together still all run at once, the ones past each runner's 64 handed to another runner.
#[tokio::test(flavor = "current_thread")]
async fn on_one_thread_more_waiting_tasks_than_a_runner_holds_all_run_at_once() {
    let group = Group::<String>::new();
    let ids = Arc::new(Mutex::new(HashSet::new()));
    spawn_on_a_barrier(&group, 300, &ids).await;
    tokio::time::timeout(Duration::from_secs(10), group.wait())
        .await
        .expect("the 300 tasks never all ran at once")
        .unwrap();
    let used = ids.lock().unwrap().len();
    assert!(
        (5..=10).contains(&used),
        "300 waiting tasks ran on {used} runners (64 tasks each at most)"
    );
    live::settle(Duration::from_secs(5)).await.unwrap();
}

/// Tasks woken from another OS thread, in any order, all run: each task's wake reaches its runner,
/// whether the runner is being polled, parked, or holding other tasks; on current_thread, and on
/// multi-thread runtimes of one and two workers.
#[test]
fn tasks_woken_from_another_thread_all_run() {
    let runtimes: [fn() -> tokio::runtime::Runtime; 3] = [
        || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
        },
        || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap()
        },
        || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap()
        },
    ];
    for (flavour, runtime) in runtimes.into_iter().enumerate() {
        tasks_woken_from_another_thread_all_run_on(flavour, runtime);
    }
}

fn tasks_woken_from_another_thread_all_run_on(
    flavour: usize,
    runtime: fn() -> tokio::runtime::Runtime,
) {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = runtime();
        for round in 0..20 {
            rt.block_on(async {
                let mut group = Group::<String>::new();
                group.set_limit((round % 2 == 0).then_some(16)).unwrap();
                // The other thread holds back a few senders and sends the oldest it holds as each
                // new one comes, so that wakes come while tasks start, out of the order they started.
                let (to_thread, senders) = std::sync::mpsc::channel::<oneshot::Sender<()>>();
                let sender = std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for tx in senders {
                        held.push(tx);
                        if held.len() > 4 {
                            held.swap_remove(0).send(()).unwrap();
                        }
                    }
                    for tx in held.into_iter().rev() {
                        tx.send(()).unwrap();
                    }
                });
                for _ in 0..100 {
                    let (tx, rx) = oneshot::channel::<()>();
                    to_thread.send(tx).unwrap();
                    group
                        .spawn(move |_ctx| async move { rx.await.map_err(|e| e.to_string()) })
                        .await
                        .unwrap();
                }
                drop(to_thread);
                group.wait().await.unwrap();
                sender.join().unwrap();
            });
        }
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!("runtime {flavour}: a task woken from another thread never ran")
        });
}

/// A task's waker outlives the task: waking it after the task ended, and after another task took
/// its place, polls at most an empty place or a task that was not woken, which carries on waiting.
#[tokio::test(flavor = "current_thread")]
async fn on_one_thread_a_waker_kept_by_an_ended_task_wakes_nothing_amiss() {
    let group = limited(1);
    let kept: Arc<Mutex<Option<std::task::Waker>>> = Arc::default();
    let keep = kept.clone();
    group
        .spawn(move |_ctx| async move {
            std::future::poll_fn(|cx| {
                *keep.lock().unwrap() = Some(cx.waker().clone());
                std::task::Poll::Ready(())
            })
            .await;
            Ok(())
        })
        .await
        .unwrap();
    // The task ends; its place is empty.
    while group.running() > 0 {
        tokio::task::yield_now().await;
    }
    let stale = kept
        .lock()
        .unwrap()
        .take()
        .expect("the task kept its waker");
    stale.wake_by_ref();
    tokio::task::yield_now().await;
    // The next task takes the same place and waits to be told.
    let (tx, rx) = oneshot::channel::<()>();
    let done = Arc::new(AtomicUsize::new(0));
    let ended = done.clone();
    group
        .spawn(move |_ctx| async move {
            rx.await.map_err(|e| e.to_string())?;
            ended.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap();
    for _ in 0..3 {
        stale.wake_by_ref();
        tokio::task::yield_now().await;
    }
    assert_eq!(
        done.load(Ordering::SeqCst),
        0,
        "woken by a stale waker, it still waits"
    );
    assert_eq!(group.running(), 1);
    tx.send(()).unwrap();
    group.wait().await.unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_of_a_group_is_alive_after_wait_or_drop_on_one_thread() {
    for limit in [Some(8), None] {
        nothing_is_alive_after_wait_or_drop(limit).await;
    }
}
