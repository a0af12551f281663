//! On a multi-thread runtime, workers whose jobs wait while the pool is saturated (its submitters
//! wait for room) share one tokio task: their jobs run there, one after another on one thread. What
//! must hold whatever task polls a worker: every job runs once and is counted once, an abort or a
//! runtime shutting down drops every job wherever its worker is, a shrink retires workers from the
//! shared task, a graceful shutdown waits for its jobs, a panic there takes no other job with it,
//! and nothing outlives the pool. A pool that is not saturated keeps each worker on a task of its
//! own.

#[path = "../../group/tests/support/gauge.rs"]
#[allow(dead_code)]
mod gauge;
#[path = "support/two_threads.rs"]
mod two_threads;
use gauge::Gauge;
use two_threads::two_thread_runtime;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bounded_cancel::{Context, live};
use bounded_pool::{JobError, JobHandle, Pool};
use tokio::sync::{Barrier, Semaphore};

/// Counts itself when dropped: the job that holds it has been dropped, run or not.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A job that counts its first poll in `polled`, waits once, so that its worker moves into the
/// shared task, and then waits forever.
async fn waits_forever(guard: Dropped, polled: Arc<AtomicUsize>) -> Result<(), String> {
    let _guard = guard;
    polled.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    std::future::pending::<()>().await;
    Ok(())
}

/// A job that waits once, then meets the others at `barrier`, then names the tokio task polling it.
async fn meet_and_name_the_task(barrier: Arc<Barrier>) -> Result<tokio::task::Id, String> {
    tokio::task::yield_now().await;
    barrier.wait().await;
    Ok(tokio::task::id())
}

/// A saturated pool with eight jobs that wait forever in the shared task, each holding a guard
/// that counts itself in `dropped` when the job is dropped.
async fn eight_waiting_forever(dropped: &Arc<AtomicUsize>) -> (Pool, Vec<JobHandle<(), String>>) {
    let polled = Arc::new(AtomicUsize::new(0));
    let (pool, handles) = saturated(8, |_| {
        let (guard, polled) = (Dropped(dropped.clone()), polled.clone());
        move |_ctx| waits_forever(guard, polled)
    })
    .await;
    // Polled, not only taken (`running` counts a job from its worker's take): a job stopped before
    // its first poll never started.
    until(&pool, |_| polled.load(Ordering::SeqCst) == 8).await;
    (pool, handles)
}

/// Every handle resolves as cancelled: its job never got to report.
async fn all_cancelled(handles: Vec<JobHandle<(), String>>, round: usize) {
    for handle in handles {
        let result = handle.await;
        assert!(
            matches!(result, Err(JobError::Cancelled)),
            "round {round}: a job that was dropped resolved as {result:?}"
        );
    }
}

/// Runs `test` once per round, each time as a task on a fresh multi-thread runtime, so that a
/// round's abort or shutdown cannot leak into the next.
fn each_round<F, Fut>(rounds: usize, test: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    for round in 0..rounds {
        let runtime = two_thread_runtime();
        runtime
            .block_on(async { tokio::spawn(test(round)).await })
            .unwrap();
    }
}

/// Waits until the pool's metrics satisfy `done`.
async fn until(pool: &Pool, done: impl Fn(&bounded_pool::Metrics) -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done(&pool.metrics()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the pool gets there");
}

/// The live tasks of pools named `pool` (the default): workers on tasks of their own, and the
/// shared task.
fn worker_tasks() -> usize {
    live::names()
        .iter()
        .filter_map(|name| match name.strip_prefix("pool worker") {
            Some("") => Some(1),
            Some(more) => more
                .trim_start_matches(" (x")
                .trim_end_matches(')')
                .parse()
                .ok(),
            None => None,
        })
        .sum()
}

/// A pool given `n` jobs from `make` while it is saturated, so that each of them that waits moves
/// its worker into the shared task. One worker is held on a gate, the queue of `n` is filled with
/// the jobs, and `n` more submissions are made to wait in line for room; then the pool grows by `n`
/// workers, each of whose takes frees a place a submission waits for. Returns once the held worker
/// has run the `n` quick jobs that waited in line: the pool then has `n + 1` workers and has
/// completed `n + 1` jobs, and the `n` jobs are running or done.
async fn saturated<J, Fut, T>(
    n: usize,
    make: impl Fn(usize) -> J,
) -> (Pool, Vec<JobHandle<T, String>>)
where
    J: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
    T: Send + 'static,
{
    let pool = Pool::builder().workers(1).queue(n).build().unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let hold = move |_ctx| async move {
        let _ = held.acquire().await;
        Ok::<_, String>(())
    };
    pool.submit_detached(hold).await.unwrap();
    until(&pool, |m| m.running == 1).await;
    let mut handles = Vec::new();
    for i in 0..n {
        handles.push(pool.submit(make(i)).await.unwrap());
    }
    let mut in_line: Vec<_> = (0..n)
        .map(|_| Box::pin(pool.submit(|_ctx| async { Ok::<_, String>(()) })))
        .collect();
    for submission in &mut in_line {
        // A fresh tokio budget first, so that `Pending` is a wait in line for room and not a
        // submission that yields because the loop above spent the budget.
        tokio::task::yield_now().await;
        let waits =
            std::future::poll_fn(|cx| Poll::Ready(submission.as_mut().poll(cx).is_pending()));
        assert!(waits.await, "the queue is full");
    }
    pool.resize(n + 1).unwrap();
    for submission in in_line {
        submission.await.unwrap().detach();
    }
    gate.add_permits(1);
    let quick = n as u64 + 1;
    until(&pool, |m| m.completed >= quick).await;
    (pool, handles)
}

/// Eight jobs given to a saturated pool each wait once, then meet at a barrier, then name the tokio
/// task polling them: all eight name the same one, where a task per worker would name eight.
/// Twenty rounds, each on a fresh runtime.
#[test]
fn jobs_that_wait_in_a_saturated_pool_run_on_one_task() {
    each_round(20, |round| async move {
        let barrier = Arc::new(Barrier::new(8));
        let (pool, handles) = saturated(8, |_| {
            let barrier = barrier.clone();
            move |_ctx| meet_and_name_the_task(barrier)
        })
        .await;
        let mut tasks = HashSet::new();
        for handle in handles {
            tasks.insert(handle.await.unwrap());
        }
        assert_eq!(pool.shutdown().await.completed, 17);
        assert_eq!(
            tasks.len(),
            1,
            "round {round}: eight jobs that waited ran on {} tasks",
            tasks.len()
        );
    });
}

/// Eight jobs that wait, given to a pool with room for all of them, so that no submitter ever
/// waits: each keeps its worker on a task of its own, and the eight name eight tasks. Twenty
/// rounds.
#[test]
fn jobs_that_wait_in_a_pool_with_room_keep_tasks_of_their_own() {
    each_round(20, |round| async move {
        let pool = Pool::builder().workers(8).queue(8).build().unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let mut handles = Vec::new();
        for _ in 0..8 {
            let barrier = barrier.clone();
            let job = move |_ctx| meet_and_name_the_task(barrier);
            handles.push(pool.submit(job).await.unwrap());
        }
        let mut tasks = HashSet::new();
        for handle in handles {
            tasks.insert(handle.await.unwrap());
        }
        assert_eq!(pool.shutdown().await.completed, 8);
        assert_eq!(tasks.len(), 8, "round {round}: workers shared tasks");
    });
}

/// Dropping a pool whose waiting jobs share a task drops every job, resolves every handle as
/// cancelled, and leaves no task behind. Ten rounds.
#[test]
fn dropping_a_pool_drops_the_jobs_that_share_a_task() {
    each_round(10, |round| async move {
        let dropped = Arc::new(AtomicUsize::new(0));
        let (pool, handles) = eight_waiting_forever(&dropped).await;
        drop(pool);
        all_cancelled(handles, round).await;
        assert_eq!(dropped.load(Ordering::SeqCst), 8, "round {round}");
        live::assert_none_alive().await;
    });
}

/// A runtime that shuts down while waiting jobs share a task takes every one of them with it, and
/// the pool, used from another runtime, reports each as cancelled. Ten rounds.
#[test]
fn a_runtime_shutting_down_drops_the_jobs_that_share_a_task() {
    for round in 0..10 {
        let first = two_thread_runtime();
        let dropped = Arc::new(AtomicUsize::new(0));
        let (pool, _handles) = first.block_on(eight_waiting_forever(&dropped));
        drop(first);
        assert_eq!(dropped.load(Ordering::SeqCst), 8, "round {round}");
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let report = second.block_on(pool.shutdown());
        assert_eq!(
            (report.submitted, report.completed, report.cancelled),
            (17, 9, 8),
            "round {round}"
        );
    }
}

/// Jobs that wait a little and jobs that finish at once, from four submitters, on a pool of four
/// workers: workers move into the shared task and out of it all the time (each parks whenever the
/// queue runs dry). Every job runs exactly once and the report adds up. Twenty rounds.
#[test]
fn workers_moving_between_tasks_run_every_job_once() {
    const EACH: usize = 2_000;
    each_round(20, |round| async move {
        let pool = Arc::new(Pool::builder().workers(4).queue(4).build().unwrap());
        let ran: Arc<Vec<AtomicUsize>> =
            Arc::new((0..4 * EACH).map(|_| AtomicUsize::new(0)).collect());
        let submitters: Vec<_> = (0..4)
            .map(|s| {
                let (pool, ran) = (pool.clone(), ran.clone());
                tokio::spawn(async move {
                    for n in 0..EACH {
                        let id = s * EACH + n;
                        let ran = ran.clone();
                        let job = move |_ctx| async move {
                            if id.is_multiple_of(3) {
                                tokio::task::yield_now().await;
                            }
                            ran[id].fetch_add(1, Ordering::SeqCst);
                            Ok::<_, String>(())
                        };
                        pool.submit_detached(job).await.unwrap();
                        if n % 64 == 0 {
                            // The queue runs dry now and then, and workers park.
                            tokio::time::sleep(Duration::from_micros(50)).await;
                        }
                    }
                })
            })
            .collect();
        for submitter in submitters {
            submitter.await.unwrap();
        }
        let report = pool.shutdown().await;
        assert_eq!(
            (report.submitted, report.completed),
            (4 * EACH as u64, 4 * EACH as u64),
            "round {round}"
        );
        let twice = ran.iter().filter(|n| n.load(Ordering::SeqCst) != 1).count();
        assert_eq!(twice, 0, "round {round}: jobs run other than once");
        live::assert_none_alive().await;
    });
}

/// Keeps the most jobs seen running at once.
#[derive(Default)]
struct AtOnce {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl AtOnce {
    async fn run(&self, waits: usize) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        for _ in 0..waits {
            tokio::task::yield_now().await;
        }
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A saturated pool shrunk from 9 workers to 2 while 8 of its jobs wait in the shared task: the 8
/// finish, and from then on no more than 2 jobs run at once, though each of the next 64 waits
/// several times. The report counts all 81 and no task outlives the pool. Ten rounds.
#[test]
fn shrinking_the_pool_retires_workers_that_share_a_task() {
    each_round(10, |round| async move {
        let gate = Arc::new(Semaphore::new(0));
        let (pool, first) = saturated(8, |_| {
            let gate = gate.clone();
            move |_ctx| async move {
                tokio::task::yield_now().await;
                let _ = gate.acquire().await;
                Ok::<_, String>(())
            }
        })
        .await;
        until(&pool, |m| m.running == 8).await;
        pool.resize(2).unwrap();
        gate.add_permits(8);
        for handle in first {
            handle.await.unwrap();
        }
        let at_once = Arc::new(AtOnce::default());
        for _ in 0..64 {
            let at_once = at_once.clone();
            pool.submit_detached(move |_ctx| async move {
                at_once.run(5).await;
                Ok::<_, String>(())
            })
            .await
            .unwrap();
        }
        until(&pool, |m| m.completed == 81).await;
        // Two workers are left, each on its task or in the shared one: the tasks of the
        // seven that retired are gone while the pool runs on.
        let most = 3;
        let tasks = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let tasks = worker_tasks();
                if tasks <= most {
                    return tasks;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "round {round}: {} worker tasks for 2 workers",
                worker_tasks()
            )
        });
        assert!(tasks <= most);
        let report = pool.shutdown().await;
        assert_eq!(report.completed, 81, "round {round}");
        let most = at_once.most.load(Ordering::SeqCst);
        assert!(
            most <= 2,
            "round {round}: {most} jobs ran at once on 2 workers"
        );
        live::assert_none_alive().await;
    });
}

/// A graceful shutdown waits for the jobs that share a task: it does not finish while they wait,
/// and once they are let go it reports every one completed, with no task left. Ten rounds.
#[test]
fn shutdown_waits_for_the_jobs_that_share_a_task() {
    each_round(10, |round| async move {
        let gate = Arc::new(Semaphore::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let (pool, _handles) = saturated(8, |_| {
            let (gate, finished) = (gate.clone(), finished.clone());
            move |_ctx| async move {
                tokio::task::yield_now().await;
                let _ = gate.acquire().await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(())
            }
        })
        .await;
        until(&pool, |m| m.running == 8).await;
        let pool = Arc::new(pool);
        let shutdown = tokio::spawn({
            let pool = pool.clone();
            async move { pool.shutdown().await }
        });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            !shutdown.is_finished(),
            "round {round}: the shutdown ended while its jobs waited"
        );
        gate.add_permits(8);
        let report = shutdown.await.unwrap();
        assert_eq!(report.completed, 17, "round {round}");
        assert_eq!(finished.load(Ordering::SeqCst), 8, "round {round}");
        drop(pool);
        live::assert_none_alive().await;
    });
}

/// `abort` drops the jobs waiting in the shared task at once: each handle resolves as cancelled,
/// each job is dropped, and the report counts them cancelled. Ten rounds.
#[test]
fn abort_drops_the_jobs_that_share_a_task() {
    each_round(10, |round| async move {
        let dropped = Arc::new(AtomicUsize::new(0));
        let (pool, handles) = eight_waiting_forever(&dropped).await;
        pool.abort();
        all_cancelled(handles, round).await;
        assert_eq!(dropped.load(Ordering::SeqCst), 8, "round {round}");
        let report = pool.shutdown().await;
        assert_eq!(
            (report.cancelled, report.completed),
            (8, 9),
            "round {round}"
        );
        live::assert_none_alive().await;
    });
}

/// A job that panics after it waited, in the shared task, takes nothing else with it: its handle
/// says it panicked, the seven beside it complete, and the pool runs eight more jobs that wait.
/// Ten rounds.
#[test]
fn a_panic_in_the_shared_task_takes_no_other_job_with_it() {
    each_round(10, |round| async move {
        let barrier = Arc::new(Barrier::new(8));
        let (pool, handles) = saturated(8, |n| {
            let barrier = barrier.clone();
            move |_ctx| async move {
                tokio::task::yield_now().await;
                barrier.wait().await;
                assert_ne!(n, 3, "job 3 panics");
                Ok::<_, String>(n)
            }
        })
        .await;
        for (n, handle) in handles.into_iter().enumerate() {
            match handle.await {
                Err(JobError::Panicked(_)) if n == 3 => {}
                Ok(got) if n != 3 => assert_eq!(got, n),
                other => panic!("round {round}: job {n} ended as {other:?}"),
            }
        }
        let mut more = Vec::new();
        for _ in 0..8 {
            let barrier = barrier.clone();
            let job = move |_ctx| meet_and_name_the_task(barrier);
            more.push(pool.submit(job).await.unwrap());
        }
        for handle in more {
            handle.await.unwrap();
        }
        let report = pool.shutdown().await;
        assert_eq!(
            (report.completed, report.panicked),
            (24, 1),
            "round {round}"
        );
        live::assert_none_alive().await;
    });
}

/// More workers wait at once than the shared task holds (it polls up to 64): those it has no room
/// for keep tasks of their own, and all 100 jobs are waiting together at a barrier, then complete.
/// Ten rounds.
#[test]
fn more_waiting_workers_than_the_shared_task_holds_all_run() {
    each_round(10, |round| async move {
        let barrier = Arc::new(Barrier::new(100));
        let (pool, handles) = saturated(100, |_| {
            let barrier = barrier.clone();
            move |_ctx| meet_and_name_the_task(barrier)
        })
        .await;
        let mut tasks = HashSet::new();
        for handle in handles {
            let task = tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .unwrap_or_else(|_| panic!("round {round}: not all 100 jobs met"));
            tasks.insert(task.unwrap());
        }
        // 64 share one task; the other 36 keep tasks of their own.
        assert_eq!(tasks.len(), 37, "round {round}");
        assert_eq!(pool.shutdown().await.completed, 201, "round {round}");
        live::assert_none_alive().await;
    });
}

/// A saturated pool whose jobs each wait once and then, one in a hundred, compute for 1 ms: their
/// workers move into the shared task, whose time those jobs fill, so that on its one thread they
/// would run one after another while the other thread sits idle. The shared task sees its long
/// polls and sends its workers back to tasks of their own: two of the jobs that compute run at
/// once, one on each thread. Only the jobs from the 2,000th on are watched, well after the
/// workers have moved. Five rounds.
#[test]
fn jobs_whose_rare_slow_polls_fill_the_shared_task_spread_again() {
    each_round(5, |round| async move {
        let pool = Pool::builder().workers(8).queue(16).build().unwrap();
        let gauge = Gauge::default();
        let give_up = Instant::now() + Duration::from_secs(10);
        for n in 0u64.. {
            if gauge.max() >= 2 || Instant::now() > give_up {
                break;
            }
            let gauge = gauge.clone();
            let job = move |_ctx| async move {
                tokio::task::yield_now().await;
                if n % 100 == 99 {
                    let _computing = (n >= 2_000).then(|| gauge.enter());
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_millis(1) {
                        std::hint::spin_loop();
                    }
                }
                Ok::<_, String>(())
            };
            pool.submit_detached(job).await.unwrap();
        }
        assert_eq!(gauge.max(), 2, "round {round}: two slow polls ran at once");
        pool.shutdown().await;
        live::assert_none_alive().await;
    });
}
