//! Backpressure: at most `workers` run and at most `queue` wait; the next submit waits for room.

#[path = "../../group/tests/support/gauge.rs"]
mod gauge;

use std::time::Duration;

use bounded_cancel::Context;
use bounded_pool::{BuildError, Pool, TrySubmitError};
use gauge::Gauge;
use tokio::time::{Instant, sleep};

#[tokio::test]
async fn zero_workers_or_a_zero_queue_is_a_clear_builder_error() {
    let err = Pool::builder().workers(0).build().unwrap_err();
    assert_eq!(err, BuildError::ZeroWorkers);
    assert!(err.to_string().contains("at least 1 worker"));
    let err = Pool::builder().queue(0).build().unwrap_err();
    assert_eq!(err, BuildError::ZeroQueue);
    assert!(err.to_string().contains("queue of at least 1"));
}

#[tokio::test(start_paused = true)]
async fn at_most_w_run_and_q_wait_and_the_next_submit_waits_for_room() {
    let (w, q) = (3, 5);
    let pool = Pool::builder().workers(w).queue(q).build().unwrap();
    let gauge = Gauge::default();
    let job = |gauge: Gauge| {
        move |_ctx: Context| async move {
            let _running = gauge.enter();
            sleep(Duration::from_secs(1)).await;
            Ok::<_, String>(())
        }
    };
    let mut handles = Vec::new();
    for _ in 0..w + q {
        handles.push(pool.submit(job(gauge.clone())).await.unwrap());
    }
    tokio::task::yield_now().await;
    let m = pool.metrics();
    assert_eq!((m.running, m.queued), (w as u64, q as u64));
    assert_eq!(gauge.now(), w);
    assert!(matches!(
        pool.try_submit(job(gauge.clone())),
        Err(TrySubmitError::Full(_))
    ));

    // The (w + q + 1)th submit waits until a worker takes a job off the queue, at t = 1 s.
    let start = Instant::now();
    handles.push(pool.submit(job(gauge.clone())).await.unwrap());
    assert_eq!(Instant::now() - start, Duration::from_secs(1));

    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(gauge.max(), w);
    assert!(pool.shutdown().await.is_clean());
}

type Boxed = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// A node of a tree of depth `depth` whose children are jobs submitted to the same pool, each run
/// in the submitting job instead when the pool refuses it with `Deadlock`.
fn visit(
    pool: std::sync::Weak<Pool>,
    gauge: Gauge,
    visited: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    depth: u32,
    nap: Duration,
    as_job: bool,
) -> impl FnOnce(Context) -> Boxed + Send + 'static {
    move |ctx| {
        Box::pin(async move {
            let _running = as_job.then(|| gauge.enter());
            visited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            sleep(nap).await;
            if depth == 0 {
                return Ok(());
            }
            let pool = pool.upgrade().ok_or("the pool is gone")?;
            // A child job; `as_job`: counted in the gauge as a job of its own.
            let child = |as_job| {
                let pool = std::sync::Arc::downgrade(&pool);
                visit(pool, gauge.clone(), visited.clone(), depth - 1, nap, as_job)
            };
            for _ in 0..2 {
                match pool.submit(child(true)).await {
                    Ok(handle) => handle.detach(),
                    // Run in this job, as a job of its own would (but not counted as one).
                    Err(bounded_pool::SubmitError::Deadlock(_)) => {
                        child(false)(ctx.clone()).await?;
                    }
                    Err(err) => return Err(err.to_string()),
                }
            }
            Ok(())
        })
    }
}

/// Walks a tree of depth 6 (127 nodes) through a pool whose jobs submit their children to it and
/// hold their worker while they wait for room.
async fn walk_a_tree_through_its_own_pool(workers: usize, queue: usize, nap: Duration) {
    let pool = std::sync::Arc::new(
        Pool::builder()
            .workers(workers)
            .queue(queue)
            .build()
            .unwrap(),
    );
    let gauge = Gauge::default();
    let visited = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let root = visit(
        std::sync::Arc::downgrade(&pool),
        gauge.clone(),
        visited.clone(),
        6,
        nap,
        true,
    );
    pool.submit(root).await.unwrap().detach();
    let deadline = Instant::now() + Duration::from_secs(10);
    while visited.load(std::sync::atomic::Ordering::Relaxed) < 127 || gauge.now() > 0 {
        assert!(
            Instant::now() < deadline,
            "jobs that submit to their own full pool never wait for ever: {} of 127 visited",
            visited.load(std::sync::atomic::Ordering::Relaxed)
        );
        sleep(Duration::from_millis(1)).await;
    }
    let report = pool.shutdown().await;
    assert_eq!(report.submitted, report.completed);
    assert!(gauge.max() <= workers, "{} jobs ran at once", gauge.max());
}

#[tokio::test(start_paused = true)]
async fn jobs_that_hold_every_worker_waiting_to_submit_to_their_pool_are_refused() {
    for (workers, queue) in [(1, 1), (2, 1), (2, 4), (8, 2)] {
        walk_a_tree_through_its_own_pool(workers, queue, Duration::ZERO).await;
        walk_a_tree_through_its_own_pool(workers, queue, Duration::from_millis(3)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_jobs_submitting_to_their_own_full_pool_on_a_multi_thread_runtime() {
    for round in 0..40 {
        let (workers, queue) = [(1, 1), (2, 1), (3, 2), (8, 4)][round % 4];
        walk_a_tree_through_its_own_pool(workers, queue, Duration::from_micros(100)).await;
    }
}

/// The refusal comes only when no worker can take a job: a job whose submissions wait side by side
/// holds one worker, and another worker that ends its job takes from the queue, which makes room.
#[tokio::test(start_paused = true)]
async fn a_job_submitting_to_its_own_full_pool_waits_while_a_worker_can_still_take() {
    let pool = std::sync::Arc::new(Pool::builder().workers(2).queue(1).build().unwrap());
    pool.submit(|_ctx| async {
        sleep(Duration::from_secs(1)).await;
        Ok::<_, String>(())
    })
    .await
    .unwrap()
    .detach();
    let same = std::sync::Arc::downgrade(&pool);
    let handle = pool
        .submit(move |_ctx| async move {
            let pool = same.upgrade().ok_or("the pool is gone")?;
            let start = Instant::now();
            let (first, second) = tokio::join!(
                pool.submit(|_ctx| async { Ok::<_, String>(()) }),
                pool.submit(|_ctx| async { Ok::<_, String>(()) })
            );
            first.map_err(|err| err.to_string())?.detach();
            second.map_err(|err| err.to_string())?.detach();
            assert_eq!(
                start.elapsed(),
                Duration::from_secs(1),
                "it waited for room"
            );
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    handle.await.unwrap();
    // One worker: its job is the only one that could take from the full queue.
    let pool = std::sync::Arc::new(Pool::builder().workers(1).queue(1).build().unwrap());
    let same = std::sync::Arc::downgrade(&pool);
    let handle = pool
        .submit(move |_ctx| async move {
            let pool = same.upgrade().ok_or("the pool is gone")?;
            pool.submit(|_ctx| async { Ok::<_, String>(()) })
                .await
                .unwrap()
                .detach();
            let start = Instant::now();
            let err = pool
                .submit(|_ctx| async { Ok::<_, String>(()) })
                .await
                .unwrap_err();
            assert!(
                matches!(err, bounded_pool::SubmitError::Deadlock(_)),
                "{err}"
            );
            assert!(err.to_string().contains("try_submit"), "{err}");
            assert_eq!(start.elapsed(), Duration::ZERO);
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the submission is refused, not left waiting")
        .unwrap();
    assert_eq!(pool.metrics().rejected, 1);
    let report = pool.shutdown().await;
    assert_eq!((report.submitted, report.completed), (2, 2));
}
