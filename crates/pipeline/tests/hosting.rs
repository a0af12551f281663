//! On a multi-thread runtime, the workers of a `map` (or `filter_map`, or `map_ordered`) stage whose
//! calls stay quick move into one task,
//! and leave it again, for good, once the calls compute. Tasks are counted with tokio's own count of
//! the runtime's live tasks: the pipeline's watch task, its source, and one task per worker, or one
//! for all the workers the stage's host holds.

#[path = "../../group/tests/support/gauge.rs"]
#[allow(dead_code)]
mod gauge;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bounded_cancel::Context;
use bounded_pipeline::{Output, Pipeline};
use futures_util::StreamExt;
use gauge::Gauge;
use tokio::runtime::{Builder, Handle, Runtime};

fn two_threads() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

fn alive() -> usize {
    Handle::current().metrics().num_alive_tasks()
}

/// Reads items off `out` until `until` holds of the runtime's live tasks, for at most ten seconds
/// (a loaded machine may delay the workers' timings): whether it did.
async fn read_until(out: &mut Output<u64, String>, until: impl Fn(usize) -> bool) -> bool {
    let give_up = Instant::now() + Duration::from_secs(10);
    while Instant::now() < give_up {
        for _ in 0..1_000 {
            out.next().await.expect("endless").expect("no failure");
        }
        if until(alive()) {
            return true;
        }
    }
    false
}

/// A stage of 8 workers whose calls return at once: each worker starts in a task of its own (the
/// first items run side by side), and once their calls have proved quick they share one task, so
/// that the runtime no longer hands items between its threads to reach them.
#[test]
fn quick_workers_move_into_one_task() {
    two_threads().block_on(async {
        let mut out = Pipeline::new(&Context::new())
            .source(0..u64::MAX)
            .map(8, |_ctx, n| async move { Ok::<_, String>(n) })
            .output();
        out.next().await.unwrap().unwrap();
        // The watch task, the source and 8 workers. A worker asks to join only after dozens of
        // quick calls, more than the links let through before the first item is read.
        assert_eq!(alive(), 10, "each worker starts in a task of its own");
        assert!(
            read_until(&mut out, |alive| alive == 3).await,
            "the workers share one task: {} tasks alive",
            alive()
        );
    });
}

/// Once hosted, a stage whose calls turn CPU-bound (1 ms each, no await) spreads again: every worker
/// back in a task of its own, and two calls running at once, one on each thread.
#[test]
fn hosted_workers_spread_again_once_their_calls_compute() {
    spreads_once_hosted_calls_compute(1);
}

/// A hosted stage whose calls stay quick one after another, while one call in `every` computes
/// for 1 ms from some moment on, spreads again: every worker back in a task of its own, and two of
/// the slow calls running at once, one on each thread.
fn spreads_once_hosted_calls_compute(every: u64) {
    two_threads().block_on(async {
        let heavy = Arc::new(AtomicBool::new(false));
        let gauge = Gauge::default();
        let (h, g) = (heavy.clone(), gauge.clone());
        let mut out = Pipeline::new(&Context::new())
            .source(0..u64::MAX)
            .map(8, move |_ctx, n| {
                if h.load(Ordering::Relaxed) && n % every == every - 1 {
                    let _running = g.enter();
                    spin(Duration::from_millis(1));
                }
                async move { Ok::<_, String>(n) }
            })
            .output();
        assert!(read_until(&mut out, |alive| alive == 3).await, "hosted");
        heavy.store(true, Ordering::Relaxed);
        let spread = read_until(&mut out, |alive| alive == 10).await;
        assert!(spread, "spread again: {} tasks alive", alive());
        let give_up = Instant::now() + Duration::from_secs(10);
        while gauge.max() < 2 && Instant::now() < give_up {
            out.next().await.unwrap().unwrap();
        }
        assert_eq!(gauge.max(), 2, "two slow calls ran at once");
    });
}

/// Spread is for good: a stage that spread because its calls computed keeps its workers in tasks of
/// their own when the calls turn quick again.
#[test]
fn a_stage_that_spread_stays_spread() {
    two_threads().block_on(async {
        let heavy = Arc::new(AtomicBool::new(true));
        let h = heavy.clone();
        let mut out = Pipeline::new(&Context::new())
            .source(0..u64::MAX)
            .map(8, move |_ctx, n| {
                if h.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_micros(50) {
                        std::hint::spin_loop();
                    }
                }
                async move { Ok::<_, String>(n) }
            })
            .output();
        // 125 calls a worker on average: a worker spreads the stage after 44 calls that compute.
        for _ in 0..1_000 {
            out.next().await.unwrap().unwrap();
        }
        heavy.store(false, Ordering::Relaxed);
        for _ in 0..200_000 {
            out.next().await.unwrap().unwrap();
        }
        assert_eq!(alive(), 10, "every worker still in a task of its own");
    });
}

/// A hosted stage whose calls are quick but for one in a hundred, which computes for 1 ms, spreads
/// again: its calls are quick one after another (each worker times about one in sixteen, and the
/// one after a slow one is quick), but the slow ones fill the stage's time. (One in a hundred, with
/// workers that take items in batches of up to sixteen: timing every sixteenth call, rather than
/// one picked at random, would mostly miss them.)
#[test]
fn hosted_workers_spread_again_once_rare_slow_calls_fill_their_time() {
    spreads_once_hosted_calls_compute(100);
}

/// A quick stage stays hosted on a machine whose CPUs are all busy with other threads, twice over,
/// although the operating system then often stops the host's thread in the middle of a poll to run
/// them: a poll so stopped says nothing of the calls in it. Spreading stays possible on a machine
/// busy enough (docs/pipeline.md): the operating system, or the hypervisor of a virtual machine,
/// can now and then stop the thread inside enough timed polls at once. So the stage gets three
/// tries, each a new stage on a new runtime, and the test fails only when every one spreads.
#[test]
fn a_quick_stage_stays_hosted_while_other_threads_take_its_cpu() {
    let mut alive_after = Vec::new();
    for _ in 0..3 {
        let alive = quick_stage_under_spinning_threads();
        alive_after.push(alive);
        if alive == 3 {
            return;
        }
    }
    panic!("spread in each of three tries, tasks alive after each: {alive_after:?}");
}

/// A quick stage, hosted, read for 2 s while twice as many threads as CPUs spin: how many tasks
/// its runtime then has alive (3 while the stage is hosted: the pipeline's watch task, its source
/// and the stage's host; 10 once it spread).
fn quick_stage_under_spinning_threads() -> usize {
    two_threads().block_on(async {
        let mut out = Pipeline::new(&Context::new())
            .source(0..u64::MAX)
            .map(8, |_ctx, n| async move { Ok::<_, String>(n) })
            .output();
        assert!(read_until(&mut out, |alive| alive == 3).await, "hosted");
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let spinners: Vec<_> = (0..2 * cpus)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            for _ in 0..1_000 {
                out.next().await.unwrap().unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
        for spinner in spinners {
            spinner.join().unwrap();
        }
        alive()
    })
}

fn spin(time: Duration) {
    let start = Instant::now();
    while start.elapsed() < time {
        std::hint::spin_loop();
    }
}

/// `map_ordered`'s workers are hosted the same way, and its items still come out in their order.
#[test]
fn ordered_workers_are_hosted_too_and_keep_the_order() {
    two_threads().block_on(async {
        let mut out = Pipeline::new(&Context::new())
            .source(0..u64::MAX)
            .map_ordered(8, |_ctx, n| async move {
                if n % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                Ok::<_, String>(n)
            })
            .output();
        let mut next = 0;
        let give_up = Instant::now() + Duration::from_secs(10);
        // The watch task, the source, the host and the reorder task.
        while alive() != 4 {
            assert!(Instant::now() < give_up, "hosted: {} tasks alive", alive());
            for _ in 0..1_000 {
                assert_eq!(out.next().await.unwrap().unwrap(), next);
                next += 1;
            }
        }
        for _ in 0..100_000 {
            assert_eq!(out.next().await.unwrap().unwrap(), next);
            next += 1;
        }
    });
}

/// Items that wait are hosted too while their polls are quick: a stage whose calls each await once
/// ends up in one task.
#[test]
fn workers_whose_calls_wait_but_stay_quick_are_hosted_too() {
    two_threads().block_on(async {
        let mut out = Pipeline::new(&Context::new())
            .source(0..u64::MAX)
            .map(8, |_ctx, n| async move {
                tokio::task::yield_now().await;
                Ok::<_, String>(n)
            })
            .output();
        assert!(
            read_until(&mut out, |alive| alive == 3).await,
            "hosted: {} tasks alive",
            alive()
        );
    });
}

/// Nothing is hosted where there is nothing to gain: on a runtime of one thread, and in a stage of
/// more workers than a host polls at each wake-up (16).
#[test]
fn no_host_on_one_thread_or_for_many_workers() {
    let one = Builder::new_current_thread().enable_time().build().unwrap();
    for (rt, workers) in [(&one, 8), (&two_threads(), 17)] {
        rt.block_on(async {
            let mut out = Pipeline::new(&Context::new())
                .source(0..u64::MAX)
                .map(workers, |_ctx, n| async move { Ok::<_, String>(n) })
                .output();
            for _ in 0..200_000 {
                out.next().await.unwrap().unwrap();
            }
            assert_eq!(alive(), 2 + workers, "one task per worker");
        });
    }
}

/// What a call does, chosen from its item: mostly return at once, now and then await once or spin
/// for 20 µs, through one run of 800 items (placed by `seed`) spin for 20 µs each, so that a stage
/// hosted by then spreads (each worker of the stages below makes about 85 to 200 calls through it,
/// and a worker spreads its stage after 44 that compute), or (with `fails`) fail.
async fn mixed(seed: u64, n: u64, fails: bool) -> Result<u64, String> {
    let roll = (n ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54;
    let slow_from = 2_000 + seed.wrapping_mul(7_919) % 15_000;
    let slow = (slow_from..slow_from + 800).contains(&n);
    match roll {
        _ if slow => spin_20us(),
        0..=899 => {}
        900..=979 => tokio::task::yield_now().await,
        980..=1_020 => spin_20us(),
        _ if fails && n > 5_000 => return Err(format!("item {n}")),
        _ => {}
    }
    Ok(n)
}

fn spin_20us() {
    spin(Duration::from_micros(20));
}

/// Many pipelines whose stages move into their hosts and out again at random moments, on two
/// threads: every item comes through exactly once (or the pipeline ends with its first failure),
/// whether the output is read to its end or dropped part-way, and no task outlives its pipeline.
#[test]
fn stress_hosted_stages_deliver_exactly_once() {
    let rt = two_threads();
    for seed in 0..60u64 {
        rt.block_on(async move {
            let items = 20_000u64;
            let mut out = Pipeline::new(&Context::new())
                .source(0..items)
                .map(4, move |_ctx, n| mixed(seed, n, seed % 4 == 0))
                .filter_map(3, move |_ctx, n| async move {
                    Ok::<_, String>((n % 7 != 0).then_some(n))
                })
                .map(8, move |_ctx, n| mixed(seed.wrapping_add(1), n, false))
                .output();
            let stop_at = match seed % 3 {
                0 => items / 2,
                _ => items,
            };
            let mut seen = vec![false; items as usize];
            let mut count = 0;
            while let Some(item) = out.next().await {
                match item {
                    Ok(n) => {
                        assert!(!seen[n as usize], "item {n} came twice");
                        seen[n as usize] = true;
                        count += 1;
                        if count == stop_at {
                            break;
                        }
                    }
                    Err(bounded_pipeline::PipelineError::Failed { .. }) => {
                        assert_eq!(seed % 4, 0, "only the pipelines that fail");
                        break;
                    }
                    Err(other) => panic!("seed {seed}: {other}"),
                }
            }
            let failed = seed % 4 == 0 && count < stop_at;
            if stop_at == items && !failed {
                let expected = (0..items).filter(|n| n % 7 != 0).count() as u64;
                assert_eq!(count, expected, "seed {seed}: every item once");
            }
            drop(out);
            bounded_cancel::live::assert_none_alive().await;
        });
    }
}

/// A hosted stage whose runtime shuts down is lost with it as a stage of its own tasks is: the
/// output, read on another runtime, ends with `Lost`, never as if the stream had run out.
#[test]
fn a_hosted_stage_lost_with_its_runtime_ends_the_output_with_an_error() {
    for _ in 0..10 {
        let first = two_threads();
        let mut out = first.block_on(async {
            let mut out = Pipeline::new(&Context::new())
                .source(0..u64::MAX)
                .map(8, |_ctx, n| async move { Ok::<_, String>(n) })
                .output();
            assert!(read_until(&mut out, |alive| alive == 3).await, "hosted");
            out
        });
        drop(first);
        let second = Builder::new_current_thread().enable_time().build().unwrap();
        let end = second.block_on(async {
            let read = async {
                while let Some(next) = out.next().await {
                    if let Err(err) = next {
                        return Some(err);
                    }
                }
                None
            };
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .expect("the output ends instead of hanging")
        });
        match end {
            Some(bounded_pipeline::PipelineError::Lost { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
