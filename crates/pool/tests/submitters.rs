//! Many submitters at once on a multi-thread runtime, racing for a short queue: some give up while they
//! wait (at random points, through a timeout), some only try, and the pool closes partway. Every job
//! that was accepted runs exactly once, every refused one never runs, the report agrees, and nothing
//! is left waiting or alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded_cancel::live;
use bounded_pool::{Pool, SubmitError, TrySubmitError};

const SUBMITTERS: u64 = 8;
const EACH: u64 = 2_000;

async fn round(seed: u64) {
    let pool = Arc::new(Pool::builder().workers(3).queue(4).build().unwrap());
    let ran = Arc::new(AtomicU64::new(0));
    let mut submitters = Vec::new();
    for s in 0..SUBMITTERS {
        let (pool, ran) = (pool.clone(), ran.clone());
        submitters.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            let mut state = seed ^ (s + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for _ in 0..EACH {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let ran = ran.clone();
                let job = move |_ctx| async move {
                    if state.is_multiple_of(3) {
                        tokio::task::yield_now().await;
                    }
                    ran.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, String>(())
                };
                match state % 4 {
                    // Gives up after a few microseconds of waiting, wherever the wait stands.
                    0 => {
                        let wait = Duration::from_micros(state % 50);
                        match tokio::time::timeout(wait, pool.submit_detached(job)).await {
                            Ok(Ok(())) => accepted += 1,
                            Ok(Err(SubmitError::Closed(_))) | Err(_) => {}
                            Ok(Err(other)) => panic!("unexpected {other}"),
                        }
                    }
                    1 => match pool.try_submit_detached(job) {
                        Ok(()) => accepted += 1,
                        Err(TrySubmitError::Full(_) | TrySubmitError::Closed(_)) => {}
                        Err(other) => panic!("unexpected {other}"),
                    },
                    _ => match pool.submit_detached(job).await {
                        Ok(()) => accepted += 1,
                        Err(SubmitError::Closed(_)) => {}
                        Err(other) => panic!("unexpected {other}"),
                    },
                }
            }
            accepted
        }));
    }
    // Closes partway, after a number of jobs that depends on the seed: every submitter still in line
    // is refused, and what was accepted still runs.
    let threshold = (seed * 997) % (SUBMITTERS * EACH / 4);
    while ran.load(Ordering::Relaxed) < threshold && !submitters.iter().all(|s| s.is_finished()) {
        tokio::time::sleep(Duration::from_micros(50)).await;
    }
    let report = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.shutdown().await })
    };
    let mut accepted = 0;
    for submitter in submitters {
        accepted += submitter.await.unwrap();
    }
    let report = tokio::time::timeout(Duration::from_secs(30), report)
        .await
        .expect("the pool drains")
        .unwrap();
    assert_eq!(
        ran.load(Ordering::Relaxed),
        accepted,
        "accepted jobs ran exactly once"
    );
    assert_eq!((report.submitted, report.completed), (accepted, accepted));
    assert_eq!(report.never_started + report.cancelled, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_submitters_that_give_up_lose_no_job_and_run_none_twice() {
    for seed in 1..=20u64 {
        round(seed).await;
    }
    live::assert_none_alive().await;
}
