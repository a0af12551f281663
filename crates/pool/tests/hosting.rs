//! On a multi-thread runtime, workers whose jobs wait share one tokio task: their jobs run there,
//! one after another on one thread. What must hold whatever task polls a worker: every job runs once
//! and is counted once, an abort or a runtime shutting down drops every job wherever its worker is,
//! a shrink retires workers from the shared task, a graceful shutdown waits for its jobs, a panic
//! there takes no other job with it, and nothing outlives the pool.

#[path = "support/two_threads.rs"]
mod two_threads;
use two_threads::two_thread_runtime;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bounded_cancel::live;
use bounded_pool::{JobError, Pool};
use tokio::sync::{Barrier, Semaphore};

/// Counts itself when dropped: the job that holds it has been dropped, run or not.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A job that waits once, so that its worker moves into the shared task, and then forever.
async fn waits_forever(guard: Dropped) -> Result<(), String> {
    let _guard = guard;
    tokio::task::yield_now().await;
    std::future::pending::<()>().await;
    Ok(())
}

/// Waits until `running` jobs of the pool have started and not ended.
async fn until_running(pool: &Pool, running: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while pool.metrics().running < running {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the jobs start");
}

/// Eight jobs that each wait once, then meet at a barrier, then name the tokio task polling them:
/// all eight name the same one, where a task per worker would name eight. Twenty rounds, each on a
/// fresh runtime.
#[test]
fn jobs_that_wait_run_on_one_task_on_a_multi_thread_runtime() {
    for round in 0..20 {
        let runtime = two_thread_runtime();
        let tasks = runtime.block_on(async {
            tokio::spawn(async {
                let pool = Pool::builder().workers(8).queue(8).build().unwrap();
                let barrier = Arc::new(Barrier::new(8));
                let mut handles = Vec::new();
                for _ in 0..8 {
                    let barrier = barrier.clone();
                    let job = move |_ctx| async move {
                        tokio::task::yield_now().await;
                        barrier.wait().await;
                        Ok::<_, String>(tokio::task::id())
                    };
                    handles.push(pool.submit(job).await.unwrap());
                }
                let mut tasks = HashSet::new();
                for handle in handles {
                    tasks.insert(handle.await.unwrap());
                }
                assert_eq!(pool.shutdown().await.completed, 8);
                tasks
            })
            .await
            .unwrap()
        });
        assert_eq!(
            tasks.len(),
            1,
            "round {round}: eight jobs that waited ran on {} tasks",
            tasks.len()
        );
    }
}

/// Dropping a pool whose waiting jobs share a task drops every job, resolves every handle as
/// cancelled, counts each as cancelled, and leaves no task behind. Ten rounds.
#[test]
fn dropping_a_pool_drops_the_jobs_that_share_a_task() {
    for round in 0..10 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            tokio::spawn(async move {
                let pool = Pool::builder().workers(8).queue(8).build().unwrap();
                let dropped = Arc::new(AtomicUsize::new(0));
                let mut handles = Vec::new();
                for _ in 0..8 {
                    let guard = Dropped(dropped.clone());
                    handles.push(pool.submit(move |_ctx| waits_forever(guard)).await.unwrap());
                }
                until_running(&pool, 8).await;
                drop(pool);
                for handle in handles {
                    assert!(
                        matches!(handle.await, Err(JobError::Cancelled)),
                        "round {round}: a job outlived its pool"
                    );
                }
                assert_eq!(dropped.load(Ordering::SeqCst), 8, "round {round}");
                live::assert_none_alive().await;
            })
            .await
            .unwrap();
        });
    }
}

/// A runtime that shuts down while waiting jobs share a task takes every one of them with it, and
/// the pool, used from another runtime, reports each as cancelled. Ten rounds.
#[test]
fn a_runtime_shutting_down_drops_the_jobs_that_share_a_task() {
    for round in 0..10 {
        let first = two_thread_runtime();
        let dropped = Arc::new(AtomicUsize::new(0));
        let pool = first.block_on(async {
            let pool = Pool::builder().workers(8).queue(8).build().unwrap();
            for _ in 0..8 {
                let guard = Dropped(dropped.clone());
                pool.submit_detached(move |_ctx| waits_forever(guard))
                    .await
                    .unwrap();
            }
            until_running(&pool, 8).await;
            pool
        });
        drop(first);
        assert_eq!(dropped.load(Ordering::SeqCst), 8, "round {round}");
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let report = second.block_on(pool.shutdown());
        assert_eq!(
            (report.submitted, report.cancelled),
            (8, 8),
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
    for round in 0..20 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            tokio::spawn(async move {
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
            })
            .await
            .unwrap();
        });
    }
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

/// A pool shrunk from 8 workers to 2 while all 8 wait in the shared task: the 8 jobs finish, and
/// from then on no more than 2 jobs run at once, though each of the next 64 waits several times.
/// The report counts all 72 and no task outlives the pool. Ten rounds.
#[test]
fn shrinking_the_pool_retires_workers_that_share_a_task() {
    for round in 0..10 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            tokio::spawn(async move {
                let pool = Pool::builder().workers(8).queue(64).build().unwrap();
                let gate = Arc::new(Semaphore::new(0));
                let mut first = Vec::new();
                for _ in 0..8 {
                    let gate = gate.clone();
                    let job = move |_ctx| async move {
                        tokio::task::yield_now().await;
                        let _ = gate.acquire().await;
                        Ok::<_, String>(())
                    };
                    first.push(pool.submit(job).await.unwrap());
                }
                until_running(&pool, 8).await;
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
                let report = pool.shutdown().await;
                assert_eq!(report.completed, 72, "round {round}");
                let most = at_once.most.load(Ordering::SeqCst);
                assert!(
                    most <= 2,
                    "round {round}: {most} jobs ran at once on 2 workers"
                );
                live::assert_none_alive().await;
            })
            .await
            .unwrap();
        });
    }
}

/// A graceful shutdown waits for the jobs that share a task: it does not finish while they wait,
/// and once they are let go it reports every one completed, with no task left. Ten rounds.
#[test]
fn shutdown_waits_for_the_jobs_that_share_a_task() {
    for round in 0..10 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            tokio::spawn(async move {
                let pool = Arc::new(Pool::builder().workers(8).queue(8).build().unwrap());
                let gate = Arc::new(Semaphore::new(0));
                let finished = Arc::new(AtomicUsize::new(0));
                for _ in 0..8 {
                    let (gate, finished) = (gate.clone(), finished.clone());
                    let job = move |_ctx| async move {
                        tokio::task::yield_now().await;
                        let _ = gate.acquire().await;
                        finished.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(())
                    };
                    pool.submit_detached(job).await.unwrap();
                }
                until_running(&pool, 8).await;
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
                assert_eq!(report.completed, 8, "round {round}");
                assert_eq!(finished.load(Ordering::SeqCst), 8, "round {round}");
                drop(pool);
                live::assert_none_alive().await;
            })
            .await
            .unwrap();
        });
    }
}

/// `abort` drops the jobs waiting in the shared task at once: each handle resolves as cancelled,
/// each job is dropped, and the report counts them cancelled. Ten rounds.
#[test]
fn abort_drops_the_jobs_that_share_a_task() {
    for round in 0..10 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            tokio::spawn(async move {
                let pool = Pool::builder().workers(8).queue(8).build().unwrap();
                let dropped = Arc::new(AtomicUsize::new(0));
                let mut handles = Vec::new();
                for _ in 0..8 {
                    let guard = Dropped(dropped.clone());
                    handles.push(pool.submit(move |_ctx| waits_forever(guard)).await.unwrap());
                }
                until_running(&pool, 8).await;
                pool.abort();
                for handle in handles {
                    assert!(
                        matches!(handle.await, Err(JobError::Cancelled)),
                        "round {round}: an aborted job did not resolve as cancelled"
                    );
                }
                assert_eq!(dropped.load(Ordering::SeqCst), 8, "round {round}");
                let report = pool.shutdown().await;
                assert_eq!(
                    (report.cancelled, report.completed),
                    (8, 0),
                    "round {round}"
                );
                live::assert_none_alive().await;
            })
            .await
            .unwrap();
        });
    }
}

/// A job that panics after it waited, in the shared task, takes nothing else with it: its handle
/// says it panicked, the seven beside it complete, and the pool runs eight more jobs that wait.
/// Ten rounds.
#[test]
fn a_panic_in_the_shared_task_takes_no_other_job_with_it() {
    for round in 0..10 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            tokio::spawn(async move {
                let pool = Pool::builder().workers(8).queue(8).build().unwrap();
                let barrier = Arc::new(Barrier::new(8));
                let mut handles = Vec::new();
                for n in 0..16 {
                    let barrier = barrier.clone();
                    let job = move |_ctx| async move {
                        tokio::task::yield_now().await;
                        barrier.wait().await;
                        assert_ne!(n, 3, "job 3 panics");
                        Ok::<_, String>(n)
                    };
                    handles.push(pool.submit(job).await.unwrap());
                }
                for (n, handle) in handles.into_iter().enumerate() {
                    match handle.await {
                        Err(JobError::Panicked(_)) if n == 3 => {}
                        Ok(got) if n != 3 => assert_eq!(got, n),
                        other => panic!("round {round}: job {n} ended as {other:?}"),
                    }
                }
                let report = pool.shutdown().await;
                assert_eq!(
                    (report.completed, report.panicked),
                    (15, 1),
                    "round {round}"
                );
                live::assert_none_alive().await;
            })
            .await
            .unwrap();
        });
    }
}

/// More workers wait at once than the shared task holds (it polls up to 64): those it has no room
/// for keep tasks of their own, and all 100 jobs are waiting together at a barrier, then complete.
/// Ten rounds.
#[test]
fn more_waiting_workers_than_the_shared_task_holds_all_run() {
    for round in 0..10 {
        let runtime = two_thread_runtime();
        runtime.block_on(async {
            tokio::spawn(async move {
                let pool = Pool::builder().workers(100).queue(100).build().unwrap();
                let barrier = Arc::new(Barrier::new(100));
                for _ in 0..100 {
                    let barrier = barrier.clone();
                    let job = move |_ctx| async move {
                        tokio::task::yield_now().await;
                        barrier.wait().await;
                        Ok::<_, String>(())
                    };
                    pool.submit_detached(job).await.unwrap();
                }
                let report = tokio::time::timeout(Duration::from_secs(10), pool.shutdown())
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: not all 100 jobs met"));
                assert_eq!(report.completed, 100, "round {round}");
                live::assert_none_alive().await;
            })
            .await
            .unwrap();
        });
    }
}
