//! Runs of jobs: a worker whose last job finished at its first poll (on a multi-thread runtime, also
//! quickly) takes the jobs queued behind it in one go and runs them one after another. Nothing a
//! user can see changes with it: jobs start in the order they were queued, a job that waits does not
//! hold back the jobs taken with it, a job submitting to its own pool finds the room it would find
//! outside a run, the queue never holds more than its bound, and an abort from inside a run starts no
//! more jobs. The tests run on current_thread and the paused clock unless they say otherwise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_pool::{JobError, Pool, TrySubmitError};

#[path = "support/after_quick_jobs.rs"]
mod after_quick_jobs;
use after_quick_jobs::{QUICK_JOBS, pool_after_quick_jobs};
use tokio::sync::oneshot;

/// Lets every worker of a new pool reach the queue and park on it.
async fn let_workers_park() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// Waits (on the paused clock, so a hang fails at once) until `done` jobs have completed.
async fn until_completed(pool: &Pool, done: u64) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while pool.metrics().completed < done {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stuck: {}", pool.metrics()));
}

#[tokio::test(start_paused = true)]
async fn a_job_that_waits_in_a_run_does_not_hold_back_the_jobs_taken_with_it() {
    let pool = Pool::builder().workers(2).queue(16).build().unwrap();
    let_workers_park().await;
    let started = Arc::new(Mutex::new(Vec::new()));
    let (release, released) = oneshot::channel::<()>();
    let mut released = Some(released);
    // Job 0 finishes at once, so its worker takes jobs 1 to 9 as a run; job 1 waits until the
    // jobs after it have all run, which only another worker can do.
    for n in 0..10 {
        let started = started.clone();
        let wait = if n == 1 { released.take() } else { None };
        pool.try_submit_detached(move |_ctx| async move {
            started.lock().unwrap().push(n);
            if let Some(wait) = wait {
                wait.await.map_err(|_| "never released")?;
            }
            Ok::<_, &str>(())
        })
        .expect("room for every job");
    }
    until_completed(&pool, 9).await;
    assert_eq!(pool.metrics().running, 1, "job 1 still waits");
    release.send(()).unwrap();
    let report = pool.shutdown().await;
    assert_eq!(report.completed, 10);
    assert_eq!(*started.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

/// The same on a multi-thread runtime, on the real clock: after a stream of quick jobs, the worker
/// woken for 24 jobs queued at once takes most of them as a run, and job 4, which waits until every
/// other job has run, must not keep the jobs taken with it in its worker's hands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_waits_in_a_run_does_not_hold_back_the_jobs_taken_with_it_on_a_multi_thread_runtime()
 {
    const JOBS: u64 = 24;
    let pool = pool_after_quick_jobs(2, 32).await;
    let (release, released) = oneshot::channel::<()>();
    let mut released = Some(released);
    for n in 0..JOBS {
        let wait = if n == 4 { released.take() } else { None };
        pool.try_submit_detached(move |_ctx| async move {
            if let Some(wait) = wait {
                wait.await.map_err(|_| "never released")?;
            }
            Ok::<_, &str>(())
        })
        .expect("room for every job");
    }
    let before = QUICK_JOBS;
    tokio::time::timeout(Duration::from_secs(10), async {
        while pool.metrics().completed < before + JOBS - 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("jobs held behind the one that waits: {}", pool.metrics()));
    assert_eq!(pool.metrics().running, 1, "job 4 still waits");
    release.send(()).unwrap();
    let report = pool.shutdown().await;
    assert_eq!(report.completed, before + JOBS);
}

#[tokio::test(start_paused = true)]
async fn jobs_start_in_the_order_they_were_queued_whichever_of_them_wait() {
    let pool = Pool::builder().workers(3).queue(64).build().unwrap();
    let_workers_park().await;
    let started = Arc::new(Mutex::new(Vec::new()));
    let submit_all = async {
        for job in 0..1000u64 {
            let started = started.clone();
            pool.submit_detached(move |_ctx| async move {
                started.lock().unwrap().push(job);
                // Every seventh job waits a little; the rest finish at their first poll.
                if job % 7 == 3 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok::<_, String>(())
            })
            .await
            .expect("open");
        }
    };
    // On the paused clock, a job left in a worker's hands behind one that waits fires this at once.
    tokio::time::timeout(Duration::from_secs(60), submit_all)
        .await
        .expect("every job was queued");
    until_completed(&pool, 1000).await;
    let report = pool.shutdown().await;
    assert_eq!(report.completed, 1000);
    assert_eq!(*started.lock().unwrap(), (0..1000).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_job_of_a_run_finds_its_own_place_free_when_it_submits_to_its_pool() {
    let pool = Arc::new(Pool::builder().workers(1).queue(2).build().unwrap());
    let_workers_park().await;
    let (tx, rx) = oneshot::channel();
    let mut tx = Some(tx);
    // Job 0 finishes at once; the worker then takes job 1 alone as a run, while the place freed
    // by job 0 is already granted to the submitter of job 2, waiting in line. With job 1 running,
    // one job is queued (job 2, once placed) in a queue of 2: there is room for one more.
    pool.try_submit_detached(|_ctx| async { Ok::<_, String>(()) })
        .unwrap();
    let inner = pool.clone();
    pool.try_submit_detached(move |_ctx| {
        let tx = tx.take().unwrap();
        let follow_up = inner.try_submit_detached(|_ctx| async { Ok::<_, String>(()) });
        let _ = tx.send(follow_up.map_err(|err| matches!(err, TrySubmitError::Full(_))));
        async { Ok::<_, String>(()) }
    })
    .unwrap();
    pool.submit_detached(|_ctx| async { Ok::<_, String>(()) })
        .await
        .unwrap();
    assert_eq!(
        rx.await.unwrap(),
        Ok(()),
        "the follow-up was refused as full"
    );
    let report = pool.shutdown().await;
    assert_eq!(report.completed, 4);
}

#[tokio::test(start_paused = true)]
async fn the_queue_never_holds_more_than_its_bound_while_jobs_of_a_run_submit() {
    let pool = Arc::new(Pool::builder().workers(2).queue(4).build().unwrap());
    let_workers_park().await;
    let most_queued = Arc::new(Mutex::new(0));
    for n in 0..200u64 {
        let (inner, most) = (pool.clone(), most_queued.clone());
        pool.submit_detached(move |_ctx| async move {
            // Each job tries to queue a follow-up, and looks at what is queued after it.
            if n % 2 == 0 {
                let _ = inner.try_submit_detached(|_ctx| async { Ok::<_, String>(()) });
            }
            let queued = inner.metrics().queued;
            let mut most = most.lock().unwrap();
            *most = (*most).max(queued);
            Ok::<_, String>(())
        })
        .await
        .expect("open");
    }
    let report = pool.shutdown().await;
    assert!(
        report.completed > 200,
        "some follow-ups were queued: {report:?}"
    );
    assert!(*most_queued.lock().unwrap() <= 4);
}

#[tokio::test(start_paused = true)]
async fn a_pool_aborted_by_a_job_of_a_run_starts_none_of_the_jobs_taken_with_it() {
    let (pool, started, cancelled) = abort_from_the_third_job_of_a_run(false).await;
    assert_eq!(started, [0, 1, 2]);
    assert_eq!(cancelled, 5);
    let m = pool.metrics();
    assert_eq!(
        (m.completed, m.never_started, m.queued, m.running),
        (3, 5, 0, 0),
        "{m}"
    );
}

/// As above, with the job that aborts the pool waiting once afterwards: the jobs of the run behind it,
/// which a waiting job gives back to the queue, find the queue drained by the abort. They count as
/// never started, their places come back, and the shutdown ends.
#[tokio::test(start_paused = true)]
async fn a_job_of_a_run_that_aborts_its_pool_and_then_waits_leaves_no_job_behind() {
    let (pool, started, cancelled) = abort_from_the_third_job_of_a_run(true).await;
    assert_eq!(started, [0, 1, 2]);
    assert_eq!(cancelled, 6);
    let report = tokio::time::timeout(Duration::from_secs(60), pool.shutdown())
        .await
        .expect("the shutdown ends: every place came back");
    assert_eq!(
        (report.completed, report.cancelled, report.never_started),
        (2, 1, 5),
        "{report}"
    );
}

/// Eight jobs queued at once on a pool of one worker: job 0 finishes at once, so its worker takes jobs
/// 1 to 7 as a run, and job 2 aborts the pool (then waits once, with `then_wait`). The pool, the jobs
/// that started, and how many handles resolved as cancelled.
async fn abort_from_the_third_job_of_a_run(then_wait: bool) -> (Arc<Pool>, Vec<u64>, usize) {
    let pool = Arc::new(Pool::builder().workers(1).queue(8).build().unwrap());
    let_workers_park().await;
    let started = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for n in 0..8u64 {
        let (inner, started) = (pool.clone(), started.clone());
        handles.push(
            pool.try_submit(move |_ctx| {
                started.lock().unwrap().push(n);
                if n == 2 {
                    inner.abort();
                }
                async move {
                    if n == 2 && then_wait {
                        tokio::task::yield_now().await;
                    }
                    Ok::<_, String>(())
                }
            })
            .expect("room for every job"),
        );
    }
    let mut cancelled = 0;
    for handle in handles {
        if handle.await.is_err() {
            cancelled += 1;
        }
    }
    let started = started.lock().unwrap().clone();
    (pool, started, cancelled)
}

/// A job of a run that panics fails alone: the jobs taken with it still start, in their order, each
/// handle resolves with its own job's result, and the report counts each job once.
#[tokio::test(start_paused = true)]
async fn a_job_of_a_run_that_panics_fails_alone() {
    let pool = Pool::builder()
        .workers(1)
        .queue(8)
        .error_hook(|_| {})
        .build()
        .unwrap();
    let_workers_park().await;
    panics_in_a_run(&pool).await;
    let report = pool.shutdown().await;
    assert_eq!((report.completed, report.panicked), (6, 2), "{report}");
}

/// The same on a multi-thread runtime, after a stream of quick jobs, so that its worker times its
/// jobs' first polls and takes runs there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_run_that_panics_fails_alone_on_a_multi_thread_runtime() {
    for _ in 0..20 {
        let pool = pool_after_quick_jobs(1, 8).await;
        panics_in_a_run(&pool).await;
        let report = pool.shutdown().await;
        assert_eq!(
            (report.completed, report.panicked),
            (QUICK_JOBS + 6, 2),
            "{report}"
        );
    }
}

/// Queues eight jobs at once: job 2 panics in its closure and job 5 in its future, the others return
/// their number. Checks the order they started in and what each handle says.
async fn panics_in_a_run(pool: &Pool) {
    let started = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for n in 0..8u64 {
        let started = started.clone();
        handles.push(
            pool.try_submit(move |_ctx| {
                started.lock().unwrap().push(n);
                assert_ne!(n, 2, "job 2 panics in its closure");
                async move {
                    assert_ne!(n, 5, "job 5 panics in its future");
                    Ok::<_, String>(n)
                }
            })
            .expect("room for every job"),
        );
    }
    let mut results = Vec::new();
    for handle in handles {
        results.push(match handle.await {
            Ok(n) => Some(n),
            Err(JobError::Panicked(_)) => None,
            Err(other) => panic!("unexpected {other}"),
        });
    }
    let expected: Vec<_> = (0..8).map(|n| (n != 2 && n != 5).then_some(n)).collect();
    assert_eq!(results, expected);
    assert_eq!(*started.lock().unwrap(), (0..8).collect::<Vec<_>>());
}

/// A pool on a current_thread runtime of its own thread, fed by submitters on a multi-thread runtime
/// while its jobs (quick ones, ones that wait, ones that queue a follow-up) run in runs: each job runs
/// exactly once, every handle resolves with its job's result, the queue never holds more than its
/// bound, and the report adds up.
#[test]
fn submitters_on_other_threads_feed_a_pool_whose_jobs_run_in_runs() {
    feed_a_pool_from_other_threads(1);
}

/// The same with the pool on a multi-thread runtime of two threads of its own, where its workers take
/// runs after quick jobs too, on both threads.
#[test]
fn submitters_on_other_threads_feed_a_multi_thread_pool_whose_jobs_run_in_runs() {
    feed_a_pool_from_other_threads(2);
}

/// Four submitters on a multi-thread runtime feed a pool on a runtime of `home_threads` threads of
/// its own (current_thread for one).
fn feed_a_pool_from_other_threads(home_threads: usize) {
    const SUBMITTERS: u64 = 4;
    const EACH: u64 = 5_000;
    const QUEUE: usize = 8;
    const WORKERS: usize = 4;
    let (pool_tx, pool_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let home = std::thread::spawn(move || {
        let rt = match home_threads {
            1 => tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap(),
            threads => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_time()
                .build()
                .unwrap(),
        };
        rt.block_on(async move {
            let pool = Arc::new(
                Pool::builder()
                    .workers(WORKERS)
                    .queue(QUEUE)
                    .build()
                    .unwrap(),
            );
            pool_tx.send(pool.clone()).unwrap();
            stop_rx.await.unwrap();
            pool.shutdown().await
        })
    });
    let pool: Arc<Pool> = pool_rx.recv().unwrap();
    let ran = Arc::new(Mutex::new(vec![0u8; (SUBMITTERS * EACH * 2) as usize]));
    // Jobs whose submission returned, and jobs started (follow-ups included in both). Read in that
    // order, their difference never counts a job as queued that had started, where the pool's
    // metrics, read while jobs run, may count one that started between two of their reads.
    let (accepted, started) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let most_queued = Arc::new(AtomicU64::new(0));
    let feeders = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let follow_ups = feeders.block_on(async {
        let submitters: Vec<_> = (0..SUBMITTERS)
            .map(|s| {
                let (pool, ran, most) = (pool.clone(), ran.clone(), most_queued.clone());
                let (accepted, started) = (accepted.clone(), started.clone());
                tokio::spawn(async move {
                    let mut handles = Vec::new();
                    for n in 0..EACH {
                        let id = s * EACH + n;
                        let (inner, ran) = (pool.clone(), ran.clone());
                        let (job_accepted, job_started) = (accepted.clone(), started.clone());
                        let job = move |_ctx| async move {
                            let (accepted, started) = (job_accepted, job_started);
                            started.fetch_add(1, Ordering::SeqCst);
                            ran.lock().unwrap()[id as usize] += 1;
                            match id % 5 {
                                0 => tokio::task::yield_now().await,
                                1 => {
                                    // A follow-up, queued if there is room, with an id of its own.
                                    let (ran, counted) = (ran.clone(), started.clone());
                                    let follow = SUBMITTERS * EACH + id;
                                    let queued =
                                        inner.try_submit_detached(move |_ctx| async move {
                                            counted.fetch_add(1, Ordering::SeqCst);
                                            ran.lock().unwrap()[follow as usize] += 1;
                                            Ok::<_, u64>(follow)
                                        });
                                    if queued.is_ok() {
                                        accepted.fetch_add(1, Ordering::SeqCst);
                                    }
                                    return Ok((id, queued.is_ok()));
                                }
                                _ => {}
                            }
                            Ok::<_, u64>((id, false))
                        };
                        handles.push(pool.submit(job).await.expect("open"));
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let accepted = accepted.load(Ordering::SeqCst);
                        let queued = accepted.saturating_sub(started.load(Ordering::SeqCst));
                        most.fetch_max(queued, Ordering::SeqCst);
                    }
                    let mut follow_ups = 0;
                    for (n, handle) in handles.into_iter().enumerate() {
                        let (id, followed) = handle.await.expect("every job succeeds");
                        assert_eq!(id, s * EACH + n as u64);
                        follow_ups += u64::from(followed);
                    }
                    follow_ups
                })
            })
            .collect();
        let mut follow_ups = 0;
        for submitter in submitters {
            follow_ups += submitter.await.unwrap();
        }
        follow_ups
    });
    stop_tx.send(()).unwrap();
    let report = home.join().unwrap();
    assert_eq!(report.completed, SUBMITTERS * EACH + follow_ups);
    assert_eq!(report.submitted, report.completed);
    let ran = ran.lock().unwrap();
    let (jobs, follows) = ran.split_at((SUBMITTERS * EACH) as usize);
    assert!(jobs.iter().all(|&n| n == 1), "every job ran exactly once");
    assert_eq!(
        follows.iter().filter(|&&n| n == 1).count() as u64,
        follow_ups
    );
    assert!(follows.iter().all(|&n| n <= 1));
    // A job a worker has taken alone (its place free again) and not yet begun to poll counts as
    // queued here: on one thread, one at most; with threads to spare, one per worker, since a worker
    // that woke another for the jobs behind its own steps aside before it starts it. A run's jobs
    // keep their places until their worker comes back to the queue.
    let held = if home_threads == 1 { 1 } else { WORKERS };
    let most = most_queued.load(Ordering::SeqCst);
    assert!(most <= (QUEUE + held) as u64, "{most} jobs queued at once");
}

/// Jobs that each queue the next keep the queue from ever emptying, so the workers only ever take
/// runs, and a worker hands its thread back only when its coop budget is spent (a unit a take, up
/// to 16 jobs a run): the other workers, woken by the pushes, get their turns, and a shrink still
/// retires the workers it asks for, at their next take. Jobs run inside their worker's task, so the
/// task ids the jobs see are the workers that run them.
#[tokio::test(start_paused = true)]
async fn a_shrink_retires_workers_that_only_take_runs() {
    const CHAINS: u64 = 8;
    const JOBS: u64 = 40_000;
    let pool = Arc::new(Pool::builder().workers(4).queue(16).build().unwrap());
    let_workers_park().await;
    let ran = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    fn chain(pool: Arc<Pool>, ran: Arc<AtomicU64>, seen: Arc<Mutex<Vec<(u64, tokio::task::Id)>>>) {
        let next = pool.clone();
        pool.try_submit_detached(move |_ctx| async move {
            let n = ran.fetch_add(1, Ordering::SeqCst);
            seen.lock().unwrap().push((n, tokio::task::id()));
            if n < JOBS {
                chain(next, ran, seen);
            }
            Ok::<_, String>(())
        })
        .expect("a job's own place is free for its successor");
    }
    for _ in 0..CHAINS {
        chain(pool.clone(), ran.clone(), seen.clone());
    }
    while ran.load(Ordering::SeqCst) < JOBS / 2 {
        tokio::task::yield_now().await;
    }
    let at_shrink = ran.load(Ordering::SeqCst);
    assert!(
        at_shrink < JOBS,
        "the runtime's other tasks run while the chains do"
    );
    pool.resize(1).unwrap();
    until_completed(&pool, JOBS + CHAINS).await;
    let report = pool.shutdown().await;
    assert_eq!(report.completed, JOBS + CHAINS);
    let seen = seen.lock().unwrap();
    let before: std::collections::HashSet<_> = seen
        .iter()
        .filter(|(n, _)| *n < JOBS / 2)
        .map(|(_, id)| *id)
        .collect();
    let after: std::collections::HashSet<_> = seen
        .iter()
        .filter(|(n, _)| *n >= JOBS * 3 / 4)
        .map(|(_, id)| *id)
        .collect();
    assert!(
        before.len() > 1,
        "the chains spread over the workers at first"
    );
    assert_eq!(after.len(), 1, "one worker is left after the shrink");
}
