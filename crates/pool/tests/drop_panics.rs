//! The pool drops things of yours: a job that never started (its closure), a job aborted while it
//! ran (its future), a value nobody reads (a detached job's, or one whose handle was dropped). A
//! destructor that panics there takes no worker and no count with it, and no caller of `abort`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use bounded_cancel::live;
use bounded_pool::{Pool, PoolReport};

/// Panics when dropped (unless the thread is unwinding already), counting itself first.
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        if !std::thread::panicking() {
            panic!("a bomb went off as it was dropped");
        }
    }
}

impl std::fmt::Display for Bomb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a bomb")
    }
}

/// The bombs' panics are expected here: kept out of the test output, every other panic printed.
fn quiet_bombs() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if bounded_cancel::panic_message(info.payload()) != "a bomb went off as it was dropped"
            {
                previous(info);
            }
        }));
    });
}

/// Runs `n` jobs that each finish, one at a time, and checks that they all ran.
async fn the_pool_still_runs(pool: &Pool, n: usize) {
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let ran = ran.clone();
        let handle = pool
            .submit(move |_ctx| async move {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(())
            })
            .await
            .expect("the pool still takes jobs");
        handle.await.unwrap();
    }
    assert_eq!(ran.load(Ordering::SeqCst), n);
}

fn accounted(report: &PoolReport) -> u64 {
    report.completed + report.failed + report.panicked + report.cancelled + report.never_started
}

/// Returns how many of its 20 values were dropped, read once the pool is gone.
async fn values_nobody_reads(pool: &Pool) -> Arc<AtomicUsize> {
    let dropped = Arc::new(AtomicUsize::new(0));
    for i in 0..20 {
        let bomb = Bomb(dropped.clone());
        // The job ends only once its handle is gone, so that the worker drops its value.
        let (go, handle_gone) = tokio::sync::oneshot::channel::<()>();
        let job = move |_ctx| async move {
            let _ = handle_gone.await;
            Ok::<_, String>(bomb)
        };
        if i % 2 == 0 {
            drop(pool.submit(job).await.unwrap());
        } else {
            pool.submit_detached(job).await.unwrap();
        }
        go.send(()).unwrap();
    }
    the_pool_still_runs(pool, 50).await;
    // Every worker lives on: as many jobs as workers run at once.
    let gate = Arc::new(tokio::sync::Barrier::new(3));
    let waits: Vec<_> = futures_util::future::join_all((0..2).map(|_| {
        let gate = gate.clone();
        pool.submit(move |_ctx| async move {
            gate.wait().await;
            Ok::<_, String>(())
        })
    }))
    .await;
    gate.wait().await;
    for wait in waits {
        wait.unwrap().await.unwrap();
    }
    dropped
}

/// A pool of two workers through which 20 values nobody reads go: it runs on, counts every job,
/// and every value was dropped.
async fn a_pool_through_which_values_nobody_reads_go() {
    let pool = Pool::builder().workers(2).queue(4).build().unwrap();
    let dropped = values_nobody_reads(&pool).await;
    let report = pool.shutdown().await;
    assert_eq!((report.submitted, report.completed), (72, 72));
    drop(pool);
    live::assert_none_alive().await;
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        20,
        "every value was dropped"
    );
}

#[tokio::test]
async fn a_value_nobody_reads_whose_destructor_panics_takes_no_worker() {
    quiet_bombs();
    a_pool_through_which_values_nobody_reads_go().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_nobody_reads_whose_destructor_panics_takes_no_worker_on_a_multi_thread_runtime() {
    quiet_bombs();
    for _ in 0..20 {
        a_pool_through_which_values_nobody_reads_go().await;
    }
}

/// One job holds the only worker; the queue is full of jobs whose closures hold bombs. The abort
/// drops them, on the caller's task: the caller goes on, and the report counts every job.
#[tokio::test]
async fn queued_jobs_whose_closures_panic_as_they_are_dropped_leave_the_pool_whole() {
    quiet_bombs();
    let dropped = Arc::new(AtomicUsize::new(0));
    let pool = Pool::builder().workers(1).queue(4).build().unwrap();
    let running = Bomb(dropped.clone());
    let held = pool
        .submit(move |ctx| async move {
            let _running = running; // dropped with the job's future when it is aborted
            ctx.cancelled().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    tokio::task::yield_now().await;
    for _ in 0..4 {
        let bomb = Bomb(dropped.clone());
        pool.try_submit_detached(move |_ctx| async move {
            drop(bomb);
            Ok::<_, String>(())
        })
        .unwrap();
    }
    pool.abort();
    let report = tokio::time::timeout(Duration::from_secs(5), pool.shutdown())
        .await
        .expect("the shutdown ends");
    assert_eq!((report.cancelled, report.never_started), (1, 4));
    assert_eq!(accounted(&report), report.submitted);
    assert!(held.await.is_err());
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        5,
        "every bomb was dropped once"
    );
    live::assert_none_alive().await;
}

/// Jobs that hold bombs, aborted at random moments on two threads: wherever each is dropped (in
/// the queue, in a worker's hands, while it runs), every shutdown ends and counts every job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_dropped_anywhere_with_panicking_destructors_are_all_counted() {
    quiet_bombs();
    for round in 0..50u64 {
        let dropped = Arc::new(AtomicUsize::new(0));
        let pool = Arc::new(Pool::builder().workers(3).queue(8).build().unwrap());
        let so_far = Arc::new(AtomicUsize::new(0));
        let submitter = tokio::spawn({
            let (pool, dropped, so_far) = (pool.clone(), dropped.clone(), so_far.clone());
            async move {
                let mut accepted = 0;
                for i in 0..200u64 {
                    let bomb = Bomb(dropped.clone());
                    let job = move |_ctx| async move {
                        for _ in 0..i % 3 {
                            tokio::task::yield_now().await;
                        }
                        Ok::<_, String>(bomb)
                    };
                    if let Err(refused) = pool.submit_detached(job).await {
                        // A refused job comes back to its caller, bomb and all: dropped here.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            drop(refused)
                        }));
                        break;
                    }
                    accepted += 1;
                    so_far.store(accepted as usize, Ordering::SeqCst);
                }
                accepted
            }
        });
        // The abort comes after a different number of jobs each round.
        let abort_after = (round * 37 % 190) as usize;
        while so_far.load(Ordering::SeqCst) < abort_after {
            tokio::task::yield_now().await;
        }
        pool.abort();
        let accepted = submitter.await.unwrap();
        let report = tokio::time::timeout(Duration::from_secs(5), pool.shutdown())
            .await
            .expect("the shutdown ends");
        assert!(report.submitted >= abort_after as u64);
        assert_eq!(report.submitted, accepted);
        assert_eq!(accounted(&report), accepted);
        drop(pool);
        // A worker drops a job's value after it counted the job: once the workers are gone,
        // every bomb has gone off (the refused job's too, dropped above).
        live::assert_none_alive().await;
        assert!(dropped.load(Ordering::SeqCst) as u64 >= accepted);
    }
}

/// Jobs that answer the pool's stop with an error holding a bomb: the error is how they answered,
/// not a failure, and the pool drops it; each job counts once, as cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_that_answer_the_stop_and_panic_as_they_are_dropped_count_once() {
    quiet_bombs();
    for _ in 0..20 {
        let dropped = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let pool = Pool::builder().workers(4).queue(4).build().unwrap();
        let mut handles = Vec::new();
        for _ in 0..4 {
            let bomb = Bomb(dropped.clone());
            let started = started.clone();
            let handle = pool
                .submit(move |ctx| async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    ctx.cancelled().await;
                    Err::<(), _>(bomb)
                })
                .await
                .unwrap();
            handles.push(handle);
        }
        drop(handles);
        // Every job waits for the stop before the stop comes: on a busy machine a worker can take
        // longer than the grace below to reach its job, which would then never start.
        tokio::time::timeout(Duration::from_secs(10), async {
            while started.load(Ordering::SeqCst) < 4 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the four jobs start");
        let report = tokio::time::timeout(
            Duration::from_secs(5),
            pool.shutdown_timeout(Duration::from_millis(10)),
        )
        .await
        .expect("the shutdown ends");
        assert_eq!((report.submitted, report.cancelled), (4, 4), "{report:?}");
        assert_eq!(accounted(&report), 4);
        drop(pool);
        live::assert_none_alive().await;
        assert_eq!(dropped.load(Ordering::SeqCst), 4);
    }
}
