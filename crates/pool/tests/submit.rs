//! Submitting: `try_submit` never waits and hands the job back; `submit_with` ends with the caller's cause;
//! a dropped `submit` runs nothing and leaks nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bounded_cancel::{Cause, Context, live};
use bounded_pool::{JobError, Pool, SubmitError, TrySubmitError};
use tokio::time::{Instant, sleep};

async fn blocker(ctx: Context) -> Result<(), String> {
    ctx.cancelled().await;
    Ok(())
}

fn flag_job(
    ran: &Arc<AtomicBool>,
) -> impl FnOnce(Context) -> std::future::Ready<Result<(), String>> + Send + 'static {
    let ran = ran.clone();
    move |_ctx| {
        ran.store(true, Ordering::SeqCst);
        std::future::ready(Ok(()))
    }
}

#[tokio::test]
async fn try_submit_hands_the_job_back_when_full_and_when_closed() {
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    pool.try_submit(blocker).unwrap().detach(); // taken by the worker once it runs
    tokio::task::yield_now().await;
    pool.try_submit(blocker).unwrap().detach(); // waits in the queue
    let ran = Arc::new(AtomicBool::new(false));
    let Err(TrySubmitError::Full(job)) = pool.try_submit(flag_job(&ran)) else {
        panic!("the queue is full");
    };
    assert!(!ran.load(Ordering::SeqCst));
    pool.close();
    let Err(TrySubmitError::Closed(job)) = pool.try_submit(job) else {
        panic!("the pool is closed");
    };
    // The job is intact and still runnable.
    job(Context::new()).await.unwrap();
    assert!(ran.load(Ordering::SeqCst));
    assert_eq!(pool.metrics().rejected, 2);
    pool.abort();
}

#[tokio::test(start_paused = true)]
async fn submit_with_hands_the_job_back_with_the_callers_cause() {
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    pool.submit(blocker).await.unwrap().detach();
    tokio::task::yield_now().await;
    pool.submit(blocker).await.unwrap().detach();

    let ran = Arc::new(AtomicBool::new(false));
    let request = Context::new().with_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let err = pool
        .submit_with(&request, flag_job(&ran))
        .await
        .unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_millis(300));
    let SubmitError::Cancelled {
        job,
        cause: Cause::DeadlineExceeded,
    } = err
    else {
        panic!("expected the deadline as the cause, got {err:?}");
    };

    let request = Context::new();
    let canceller = request.clone();
    tokio::spawn(async move {
        sleep(Duration::from_millis(50)).await;
        canceller.cancel_with(std::io::Error::other("client went away"));
    });
    let err = pool.submit_with(&request, job).await.unwrap_err();
    assert!(err.to_string().contains("client went away"), "{err}");
    let job = err.into_inner();
    assert!(!ran.load(Ordering::SeqCst));
    job(Context::new()).await.unwrap();
    assert_eq!(pool.metrics().submitted, 2);
    pool.abort();
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_submit_runs_nothing_and_leaks_nothing() {
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    pool.submit(|_ctx| async {
        sleep(Duration::from_secs(1)).await;
        Ok::<_, String>(())
    })
    .await
    .unwrap()
    .detach();
    tokio::task::yield_now().await;
    pool.submit(|_ctx| async { Ok::<_, String>(()) })
        .await
        .unwrap()
        .detach();

    let ran = Arc::new(AtomicBool::new(false));
    let waiting = pool.submit(flag_job(&ran));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), waiting)
            .await
            .is_err()
    );

    let report = pool.shutdown().await;
    assert!(
        !ran.load(Ordering::SeqCst),
        "a dropped submit must never run its job"
    );
    assert_eq!((report.submitted, report.completed), (2, 2));
    live::assert_none_alive().await;
}

#[tokio::test]
async fn waiting_submitters_are_released_by_close() {
    let pool = Arc::new(Pool::builder().workers(1).queue(1).build().unwrap());
    pool.submit(blocker).await.unwrap().detach();
    tokio::task::yield_now().await;
    pool.submit(blocker).await.unwrap().detach();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.submit(|_ctx| async { Ok::<_, String>(()) })
                .await
                .map(|_| ())
        }
    });
    tokio::task::yield_now().await;
    pool.close();
    assert!(matches!(waiter.await.unwrap(), Err(SubmitError::Closed(_))));
    pool.abort();
}

/// Fills a pool of one worker and a queue of one: the worker runs a job that waits for the returned
/// context to end, and one job is queued behind it.
async fn fill(pool: &Pool) -> Context {
    let gate = Context::new();
    let blocked = gate.clone();
    pool.submit(move |_ctx| async move {
        blocked.cancelled().await;
        Ok::<_, String>(())
    })
    .await
    .unwrap()
    .detach();
    tokio::task::yield_now().await;
    pool.submit(|_ctx| async { Ok::<_, String>(()) })
        .await
        .unwrap()
        .detach();
    gate
}

/// Submitters waiting for room get it in the order they came, and a `try_submit` made while they
/// wait never takes a slot ahead of them.
#[tokio::test]
async fn waiting_submitters_get_room_in_order_and_try_submit_never_overtakes_them() {
    let pool = Arc::new(Pool::builder().workers(1).queue(1).build().unwrap());
    let gate = fill(&pool).await;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for id in 0..5u32 {
        let (pool, order) = (pool.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            pool.submit(move |_ctx| async move {
                order.lock().unwrap().push(id);
                Ok::<_, String>(())
            })
            .await
            .unwrap()
            .detach();
        }));
        // Each is in line before the next comes.
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        pool.try_submit(|_ctx| async { Ok::<_, String>(()) }),
        Err(TrySubmitError::Full(_))
    ));
    gate.cancel();
    for waiter in waiters {
        waiter.await.unwrap();
    }
    let report = pool.shutdown().await;
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!((report.submitted, report.completed), (7, 7));
}

/// A wait that was given a slot and dropped before it saw it hands the slot to the next in line, and
/// waits dropped while in line are skipped: the one live submitter behind them still gets in.
#[tokio::test]
async fn a_slot_given_to_a_dropped_wait_goes_to_the_next_in_line() {
    let pool = Arc::new(Pool::builder().workers(1).queue(1).build().unwrap());
    let gate = fill(&pool).await;

    let ran = Arc::new(AtomicBool::new(false));
    let dropped_ran = Arc::new(AtomicBool::new(false));
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    // First in line: polled once, so it waits; it will be given the first free slot.
    let mut first = Box::pin(pool.submit(flag_job(&dropped_ran)));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    // A crowd that leaves the line before any slot frees.
    let mut crowd: Vec<_> = (0..100)
        .map(|_| Box::pin(pool.submit(flag_job(&dropped_ran))))
        .collect();
    for wait in &mut crowd {
        assert!(wait.as_mut().poll(&mut cx).is_pending());
    }
    drop(crowd);
    let behind = tokio::spawn({
        let (pool, ran) = (pool.clone(), ran.clone());
        async move {
            let job = flag_job(&ran);
            pool.submit(job).await.map(|h| h.detach()).is_ok()
        }
    });
    tokio::task::yield_now().await;
    // The blocker ends and the queued job starts, which frees its slot for `first`; `first` is
    // dropped without seeing it.
    gate.cancel();
    while pool.metrics().completed < 2 {
        tokio::task::yield_now().await;
    }
    assert!(!behind.is_finished(), "the slot went to the first in line");
    drop(first);
    let behind = tokio::time::timeout(Duration::from_secs(10), behind).await;
    assert!(behind.expect("the slot was passed on").unwrap());
    let report = pool.shutdown().await;
    assert!(ran.load(Ordering::SeqCst));
    assert!(
        !dropped_ran.load(Ordering::SeqCst),
        "a dropped submit never runs"
    );
    assert_eq!((report.submitted, report.completed), (3, 3));
    live::assert_none_alive().await;
}

/// A caller whose context ends while a place is being granted to it gets its cause, with its job
/// back unrun, and the place goes to the next in line rather than being kept by the finished
/// submission.
#[tokio::test]
async fn a_caller_that_ends_as_its_place_is_granted_gets_its_cause_and_the_place_goes_on() {
    let pool = Arc::new(Pool::builder().workers(1).queue(1).build().unwrap());
    let gate = fill(&pool).await;
    let (ran, behind_ran) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
    let request = Context::new();
    let mut first = Box::pin(pool.submit_with(&request, flag_job(&ran)));
    assert!(first.as_mut().poll(cx).is_pending());
    let behind = tokio::spawn({
        let (pool, ran) = (pool.clone(), behind_ran.clone());
        async move {
            pool.submit(flag_job(&ran))
                .await
                .map(|h| h.detach())
                .is_ok()
        }
    });
    tokio::task::yield_now().await;
    // The queued job starts, which grants its place to `first`; the caller ends before `first`
    // looks again.
    gate.cancel();
    while pool.metrics().completed < 2 {
        tokio::task::yield_now().await;
    }
    request.cancel();
    let std::task::Poll::Ready(Err(SubmitError::Cancelled { job, cause })) =
        first.as_mut().poll(cx)
    else {
        panic!("the caller's cause is looked at first");
    };
    assert!(matches!(cause, Cause::Cancelled));
    // Resolved, the submission holds no place although it is not dropped yet.
    let behind = tokio::time::timeout(Duration::from_secs(10), behind).await;
    assert!(behind.expect("the place was passed on").unwrap());
    drop(first);
    assert_eq!(pool.metrics().rejected, 1);
    let report = pool.shutdown().await;
    assert!(behind_ran.load(Ordering::SeqCst));
    assert!(!ran.load(Ordering::SeqCst), "a refused job never runs");
    job(Context::new()).await.unwrap();
    assert!(ran.load(Ordering::SeqCst), "the job comes back intact");
    assert_eq!((report.submitted, report.completed), (3, 3));
}

/// A submission carries its job and a few words: the wait in line and the caller's cancellation
/// take room only once it has to wait, so the future a task holds across `submit(..).await` stays
/// small.
#[tokio::test]
async fn a_submission_is_its_job_and_a_few_words() {
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    let job = |_ctx: Context| async { Ok::<_, String>(()) };
    let request = Context::new();
    let words = std::mem::size_of::<usize>();
    assert!(std::mem::size_of_val(&pool.submit_detached(job)) <= 7 * words);
    assert!(std::mem::size_of_val(&pool.submit(job)) <= 8 * words);
    assert!(std::mem::size_of_val(&pool.submit_with(&request, job)) <= 8 * words);
    pool.abort();
}

/// Every job is handed the same context, whichever worker runs it: a job that cancels it ends it for
/// the jobs running on the other workers too, and for the jobs after it, but not the pool.
#[tokio::test(start_paused = true)]
async fn a_job_that_cancels_its_context_ends_it_for_every_job_but_not_the_pool() {
    let pool = Pool::builder().workers(3).queue(4).build().unwrap();
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            pool.try_submit(|ctx: Context| async move { Ok::<_, String>(ctx.cancelled().await) })
        })
        .collect::<Result<_, _>>()
        .unwrap();
    sleep(Duration::from_millis(1)).await;
    let canceller = pool
        .try_submit(|ctx: Context| async move {
            ctx.cancel_with(std::io::Error::other("shedding load"));
            Ok::<_, String>(())
        })
        .unwrap();
    canceller.await.unwrap();
    for job in waiting {
        let cause = tokio::time::timeout(Duration::from_secs(60), job)
            .await
            .expect("the cancel reached a job on another worker")
            .unwrap();
        assert_eq!(
            cause.to_string(),
            "context cancelled by error: shedding load"
        );
    }
    let later = pool.submit(|ctx: Context| async move { Ok::<_, String>(ctx.is_cancelled()) });
    assert!(
        later.await.unwrap().await.unwrap(),
        "a later job gets the ended context"
    );
    assert!(
        !pool.context().is_cancelled(),
        "the pool itself is not cancelled"
    );
    let report = pool.shutdown().await;
    assert_eq!(report.completed, 4);
    live::assert_none_alive().await;
}

/// `submit_with`'s context bounds the wait for room, not the job: a job accepted for a request runs
/// after the request has ended (work that outlives it, such as a receipt sent after the answer). A
/// job meant to end with its request races its work against the request's context with
/// `Context::run`: queued past the request's deadline, it never starts its work, and its handle
/// carries the cause.
#[tokio::test(start_paused = true)]
async fn a_job_runs_under_the_pools_context_and_ends_with_its_request_only_when_raced_against_it() {
    let pool = Pool::builder().workers(1).queue(4).build().unwrap();
    // Holds the one worker for 100 ms.
    pool.submit(|_ctx| async {
        sleep(Duration::from_millis(100)).await;
        Ok::<_, String>(())
    })
    .await
    .unwrap()
    .detach();

    let request = Context::new().with_timeout(Duration::from_millis(50));
    let outlives = Arc::new(AtomicBool::new(false));
    let bound = Arc::new(AtomicBool::new(false));
    let receipt = pool
        .submit_with(&request, {
            let outlives = outlives.clone();
            move |_ctx| async move {
                outlives.store(true, Ordering::SeqCst);
                Ok::<_, String>(())
            }
        })
        .await
        .unwrap();
    let answer = pool
        .submit_with(&request, {
            let (request, bound) = (request.clone(), bound.clone());
            move |ctx| async move {
                let work = async move {
                    bound.store(true, Ordering::SeqCst);
                    ctx.cancelled().await;
                };
                request.run(work).await.map_err(|cause| cause.to_string())
            }
        })
        .await
        .unwrap();

    receipt.await.unwrap();
    assert!(
        outlives.load(Ordering::SeqCst),
        "an accepted job runs after its request ended"
    );
    let err = answer.await.unwrap_err();
    assert!(
        matches!(&err, JobError::Failed(cause) if cause == "context deadline exceeded"),
        "{err}"
    );
    assert!(
        !bound.load(Ordering::SeqCst),
        "the raced work started after its request ended"
    );
    assert!(request.is_cancelled());

    // Raced the same way, a job running when its request ends has its work dropped there.
    let request = Context::new().with_timeout(Duration::from_millis(30));
    let started = Instant::now();
    let answer = pool
        .submit_with(&request, {
            let request = request.clone();
            move |_ctx| async move {
                let work = sleep(Duration::from_secs(1));
                request.run(work).await.map_err(|cause| cause.to_string())
            }
        })
        .await
        .unwrap();
    assert!(answer.await.is_err());
    assert_eq!(started.elapsed(), Duration::from_millis(30));
    pool.shutdown().await;
}

/// A job whose future keeps 1 MiB across an await, half a worker thread's stack, runs from every way
/// in, on both runtimes: the pool boxes such a future on its own, as `tokio::spawn` does, where
/// moving it through the pool's and the worker's frames would overflow the worker's stack in a debug
/// build.
#[test]
fn a_job_with_a_large_future_runs_on_a_workers_stack() {
    bounded_testkit::on_worker_stacks(|| async {
        let pool = Pool::builder().workers(2).queue(8).build().unwrap();
        let large = bounded_testkit::large_future::<u64, String>;
        let submitted = pool.submit(move |_ctx| large(1)).await.unwrap();
        let caller = Context::new();
        let with = pool
            .submit_with(&caller, move |_ctx| large(2))
            .await
            .unwrap();
        let tried = pool.try_submit(move |_ctx| large(4)).unwrap();
        pool.submit_detached(move |_ctx| large(8)).await.unwrap();
        pool.try_submit_detached(move |_ctx| large(16)).unwrap();
        let sum = submitted.await.unwrap() + with.await.unwrap() + tried.await.unwrap();
        assert_eq!(sum, 7);
        let report = pool.shutdown().await;
        assert_eq!(report.completed, 5, "{report:?}");
    });
}

/// A job whose closure carries 64 KiB by value (a buffer moved into a `move` closure) is queued and
/// runs from every way in, on both runtimes, whether it finds room at once or waits in line for it;
/// one dropped while it waits runs nothing, and one that is refused comes back whole: the pool puts
/// such a closure in a box of its own as the submission is made, where moving it through the
/// submission's frames overflowed a worker's stack in a debug build. Each way in is a function of
/// its own, as in a service: one function holding every submission would overflow a debug build's
/// stack by itself.
#[test]
fn a_job_whose_closure_carries_a_large_buffer_runs_on_a_workers_stack() {
    use bounded_testkit::{LARGE_CLOSURE, carried, reading};
    type Submitted<'a> = Pin<Box<dyn Future<Output = u64> + Send + 'a>>;
    fn submit(pool: &Pool, n: u64) -> Submitted<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            let job = move |_ctx| reading::<_, _, String>(carried, n);
            pool.submit(job).await.unwrap().await.unwrap()
        })
    }
    fn submit_with(pool: &Pool, n: u64) -> Submitted<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            let job = move |_ctx| reading::<_, _, String>(carried, n);
            let caller = Context::new();
            pool.submit_with(&caller, job).await.unwrap().await.unwrap()
        })
    }
    fn try_submit(pool: &Pool, n: u64) -> Submitted<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            let job = move |_ctx| reading::<_, _, String>(carried, n);
            pool.try_submit(job).unwrap().await.unwrap()
        })
    }
    fn submit_detached(pool: &Pool, _n: u64) -> Submitted<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            let job = move |_ctx| reading::<_, _, String>(carried, ());
            pool.submit_detached(job).await.unwrap();
            0
        })
    }
    fn try_submit_detached(pool: &Pool, _n: u64) -> Submitted<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            let job = move |_ctx| reading::<_, _, String>(carried, ());
            pool.try_submit_detached(job).unwrap();
            0
        })
    }
    // Refused by a closed pool, by `submit` and then by `try_submit`, and run by hand: the closure
    // handed back is the one given, its buffer intact.
    fn refused(pool: &Pool, n: u64) -> Submitted<'_> {
        Box::pin(async move {
            let carried = *carried::<LARGE_CLOSURE>();
            let job = move |_ctx| reading::<_, _, String>(carried, n);
            let job = pool.submit(job).await.unwrap_err().into_inner();
            let job = pool.try_submit(job).unwrap_err().into_inner();
            job(Context::new()).await.unwrap()
        })
    }
    // Waits in line for room in a full queue: once dropped while it waits, which runs nothing, and
    // once until a place is granted to it.
    fn in_line(n: u64) -> Submitted<'static> {
        Box::pin(async move {
            let pool = Pool::builder().workers(1).queue(1).build().unwrap();
            let gate = Context::new();
            let blocker = |gate: Context| {
                move |_ctx| async move {
                    gate.cancelled().await;
                    Ok::<_, String>(())
                }
            };
            // One runs on the only worker, holding it; the other waits in the queue's only place.
            for _ in 0..2 {
                let blocker = blocker(gate.clone());
                pool.submit_detached(blocker).await.unwrap();
            }
            let ran = Arc::new(AtomicBool::new(false));
            let dropped = {
                let carried = *carried::<LARGE_CLOSURE>();
                let ran = ran.clone();
                move |_ctx| {
                    ran.store(true, Ordering::SeqCst);
                    reading::<_, _, String>(carried, n)
                }
            };
            {
                let mut submit = std::pin::pin!(pool.submit(dropped));
                assert!(
                    bounded_testkit::poll_once(&mut submit).await.is_pending(),
                    "the queue is full"
                );
            }
            let carried = *carried::<LARGE_CLOSURE>();
            let job = move |_ctx| reading::<_, _, String>(carried, n);
            let mut submit = std::pin::pin!(pool.submit(job));
            assert!(
                bounded_testkit::poll_once(&mut submit).await.is_pending(),
                "the queue is full"
            );
            gate.cancel();
            let value = submit.await.unwrap().await.unwrap();
            let report = pool.shutdown().await;
            assert!(
                !ran.load(Ordering::SeqCst),
                "a submission dropped in line runs nothing"
            );
            assert_eq!((report.submitted, report.completed), (3, 3), "{report:?}");
            value
        })
    }
    bounded_testkit::on_worker_stacks(|| async {
        assert_eq!(in_line(64).await, 64);
        let pool = Pool::builder().workers(2).queue(8).build().unwrap();
        let ways: [fn(&Pool, u64) -> Submitted<'_>; 5] = [
            submit,
            submit_with,
            try_submit,
            submit_detached,
            try_submit_detached,
        ];
        let mut sum = 0;
        for (way, n) in ways.into_iter().zip([1, 2, 4, 8, 16]) {
            sum += way(&pool, n).await;
        }
        assert_eq!(sum, 7);
        pool.close();
        assert_eq!(refused(&pool, 32).await, 32);
        let report = pool.shutdown().await;
        assert_eq!(report.completed, 5, "{report:?}");
    });
}
