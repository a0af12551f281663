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
