//! `map` and `for_each`: no calls on empty input, every item once and in order, panics propagate,
//! and an `Ok` always holds every item: a caller's context that ends first is an error.

#[path = "support/gauge.rs"]
#[allow(dead_code)]
mod gauge;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bounded_cancel::{Cause, Context};
use bounded_group::{MAX_LIMIT, MapError};
use futures_util::FutureExt;
use gauge::Gauge;

#[tokio::test]
async fn empty_input_never_calls_f() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let out = bounded_group::map(Vec::<u32>::new(), 4, move |_ctx, _n| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<u32, String>(0) }
    })
    .await
    .unwrap();
    assert!(out.is_empty());
    let c = calls.clone();
    bounded_group::for_each(Vec::<u32>::new(), 4, move |_ctx, _n| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), String>(()) }
    })
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_items_are_each_visited_once_in_order() {
    let visits: Arc<Vec<AtomicUsize>> =
        Arc::new((0..10_000).map(|_| AtomicUsize::new(0)).collect());
    let gauge = Gauge::default();
    let (v, g) = (visits.clone(), gauge.clone());
    let out = bounded_group::map(0..10_000usize, 16, move |_ctx, i| {
        let (v, g) = (v.clone(), g.clone());
        async move {
            let _running = g.enter();
            v[i].fetch_add(1, Ordering::SeqCst);
            if i % 10 == 0 {
                tokio::task::yield_now().await;
            }
            Ok::<_, String>(i * 3)
        }
    })
    .await
    .unwrap();
    assert_eq!(out, (0..10_000).map(|i| i * 3).collect::<Vec<_>>());
    assert!(visits.iter().all(|n| n.load(Ordering::SeqCst) == 1));
    assert!(gauge.max() <= 16);

    let sum = Arc::new(AtomicUsize::new(0));
    let s = sum.clone();
    bounded_group::for_each(0..10_000usize, 16, move |_ctx, i| {
        let s = s.clone();
        async move {
            s.fetch_add(i, Ordering::SeqCst);
            Ok::<_, String>(())
        }
    })
    .await
    .unwrap();
    assert_eq!(sum.load(Ordering::SeqCst), (0..10_000).sum::<usize>());
}

#[tokio::test]
async fn a_panic_inside_propagates_to_the_caller() {
    let caught = AssertUnwindSafe(bounded_group::map(0..100u32, 4, |_ctx, i| async move {
        if i == 37 {
            panic!("item {i} is cursed");
        }
        Ok::<_, String>(i)
    }))
    .catch_unwind()
    .await
    .unwrap_err();
    assert_eq!(bounded_cancel::panic_message(&*caught), "item 37 is cursed");

    let caught = AssertUnwindSafe(bounded_group::for_each(
        0..10u32,
        2,
        |_ctx, _i| async move {
            panic!("always");
            #[allow(unreachable_code)]
            Ok::<(), String>(())
        },
    ))
    .catch_unwind()
    .await
    .unwrap_err();
    assert_eq!(bounded_cancel::panic_message(&*caught), "always");
}

#[tokio::test]
async fn the_first_error_stops_intake_and_is_returned() {
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let err = bounded_group::map(0..10_000u32, 2, move |ctx, i| {
        s.fetch_add(1, Ordering::SeqCst);
        async move {
            match i {
                0..5 => Ok(i),
                5 => Err(format!("item {i} failed")),
                // Later items hold their slot until the failure ends the context.
                _ => {
                    ctx.cancelled().await;
                    Err("cancelled".to_owned())
                }
            }
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err, MapError::Failed("item 5 failed".to_owned()));
    assert!(
        started.load(Ordering::SeqCst) < 100,
        "intake must stop after the first error"
    );
}

#[tokio::test]
async fn a_zero_or_oversized_limit_is_an_error_value_and_nothing_runs() {
    for limit in [0, MAX_LIMIT + 1, usize::MAX] {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let err = bounded_group::map(0..10u32, limit, move |_ctx, i| {
            r.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, String>(i) }
        })
        .await
        .unwrap_err();
        assert_eq!(err, MapError::InvalidLimit(limit));
        let r = ran.clone();
        let err = bounded_group::for_each(0..10u32, limit, move |_ctx, _i| {
            r.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, String>(()) }
        })
        .await
        .unwrap_err();
        assert_eq!(err, MapError::InvalidLimit(limit));
        assert!(!err.to_string().is_empty());
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn the_largest_limit_allowed_runs_everything() {
    let out = bounded_group::map(0..100u32, MAX_LIMIT, |_ctx, i| async move {
        tokio::task::yield_now().await;
        Ok::<_, String>(i)
    })
    .await
    .unwrap();
    assert_eq!(out, (0..100).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn map_results_runs_every_item_and_keeps_each_outcome_in_place() {
    let gauge = Gauge::default();
    let g = gauge.clone();
    let outcomes = bounded_group::map_results(0..100u32, 4, move |_ctx, i| {
        let g = g.clone();
        async move {
            let _running = g.enter();
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(i % 7))).await;
            if i % 10 == 3 {
                Err(format!("item {i}"))
            } else {
                Ok(i * 2)
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(outcomes.len(), 100, "an error stopped nothing");
    for (i, outcome) in outcomes.iter().enumerate() {
        let i = i as u32;
        if i % 10 == 3 {
            assert_eq!(outcome, &Err(format!("item {i}")));
        } else {
            assert_eq!(outcome, &Ok(i * 2));
        }
    }
    assert!(gauge.max() <= 4, "{} at once", gauge.max());
    assert!(matches!(
        bounded_group::map_results(0..1u32, 0, |_ctx, i| async move { Ok::<_, String>(i) }).await,
        Err(MapError::InvalidLimit(0))
    ));
}

#[tokio::test]
async fn map_results_re_raises_a_panic() {
    let caught = AssertUnwindSafe(bounded_group::map_results(
        0..10u32,
        2,
        |_ctx, i| async move {
            assert!(i != 5, "boom at {i}");
            Ok::<_, String>(i)
        },
    ))
    .catch_unwind()
    .await
    .unwrap_err();
    assert_eq!(bounded_cancel::panic_message(&*caught), "boom at 5");
}

#[tokio::test(start_paused = true)]
async fn for_each_borrowed_mutates_in_place_within_the_limit_without_spawning() {
    let mut totals = vec![0u64; 50];
    let gauge = Gauge::default();
    let caller = std::thread::current().id();
    bounded_group::for_each_borrowed(totals.iter_mut().enumerate(), 3, |(i, total)| {
        let gauge = &gauge;
        async move {
            let _running = gauge.enter();
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            assert_eq!(
                std::thread::current().id(),
                caller,
                "runs in the caller's task"
            );
            *total = i as u64 * 3;
            Ok::<_, String>(())
        }
    })
    .await
    .unwrap();
    assert_eq!(totals, (0..50u64).map(|i| i * 3).collect::<Vec<_>>());
    assert_eq!(
        gauge.max(),
        3,
        "three at a time, overlapping while they wait"
    );
    bounded_cancel::live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn for_each_borrowed_stops_at_the_first_error_and_drops_the_calls_in_flight() {
    let mut seen = Vec::new();
    let finished = AtomicUsize::new(0);
    let err = bounded_group::for_each_borrowed(0..100u32, 4, |i| {
        seen.push(i);
        let finished = &finished;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(if i == 2 {
                1
            } else {
                50
            }))
            .await;
            if i == 2 {
                return Err(format!("item {i}"));
            }
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err, MapError::Failed("item 2".to_owned()));
    assert_eq!(seen, [0, 1, 2, 3], "no item started after the first error");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "the calls in flight were dropped"
    );
}

/// Counts the calls that started and the calls that finished.
#[derive(Clone, Default)]
struct Calls {
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

impl Calls {
    fn start(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }

    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }
}

/// The helpers that take the caller's context.
const FORMS: [Form; 3] = [Form::Map, Form::ForEach, Form::MapResults];

#[derive(Clone, Copy, Debug)]
enum Form {
    Map,
    ForEach,
    MapResults,
}

impl Form {
    /// Runs this helper over `0..items` with `limit`; every call runs `call(ctx, i)` and then gives
    /// `i` back. `Ok` is the number of outputs the helper returned.
    async fn run<Fut>(
        self,
        ctx: &Context,
        items: u32,
        limit: usize,
        call: impl Fn(Context, u32) -> Fut + Send + Sync + 'static,
    ) -> Result<usize, MapError<String>>
    where
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        match self {
            Form::Map => bounded_group::map_with(ctx, 0..items, limit, move |ctx, i| {
                let call = call(ctx, i);
                async move { call.await.map(|()| i) }
            })
            .await
            .map(|out| out.len()),
            Form::ForEach => bounded_group::for_each_with(ctx, 0..items, limit, call)
                .await
                .map(|()| items as usize),
            Form::MapResults => bounded_group::map_results_with(ctx, 0..items, limit, call)
                .await
                .map(|out| out.len()),
        }
    }
}

#[tokio::test]
async fn a_context_ended_before_the_start_runs_nothing_and_is_an_error() {
    let ctx = Context::new();
    ctx.cancel();
    let calls = Calls::default();
    for form in FORMS {
        let c = calls.clone();
        let result = form
            .run(&ctx, 100, 4, move |_ctx, _i| {
                c.start();
                async { Ok(()) }
            })
            .await;
        assert_eq!(
            result,
            Err(MapError::Cancelled(Cause::Cancelled)),
            "{form:?}"
        );
    }
    assert_eq!(calls.started(), 0, "nothing ran");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_in_the_middle_is_an_error_not_a_shorter_list() {
    for form in FORMS {
        let calls = Calls::default();
        let c = calls.clone();
        let ctx = Context::new().with_timeout(std::time::Duration::from_millis(35));
        // The calls ignore their context: only the intake stops.
        let err = form
            .run(&ctx, 100, 2, move |_ctx, _i| {
                let c = c.clone();
                c.start();
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    c.finish();
                    Ok(())
                }
            })
            .await
            .unwrap_err();
        assert_eq!(
            err,
            MapError::Cancelled(Cause::DeadlineExceeded),
            "{form:?}"
        );
        assert!(err.to_string().contains("deadline exceeded"), "{err}");
        assert!(
            err.to_string().contains("did not run"),
            "says items were left: {err}"
        );
        assert!(
            (6..=10).contains(&calls.started()),
            "{form:?}: the intake stopped at the deadline, after {} calls",
            calls.started()
        );
        assert_eq!(
            calls.finished(),
            calls.started(),
            "{form:?}: every call that started ended before the helper returned"
        );
    }
}

#[tokio::test]
async fn a_cancel_with_an_error_mid_run_reports_that_very_error() {
    for form in FORMS {
        let ctx = Context::new();
        let canceller = ctx.clone();
        let err = form
            .run(&ctx, 1_000, 2, move |_ctx, i| {
                if i == 10 {
                    canceller.cancel_with(std::io::Error::other("client went away"));
                }
                async { Ok(()) }
            })
            .await
            .unwrap_err();
        assert_eq!(
            err,
            MapError::Cancelled(ctx.cause().expect("cancelled")),
            "{form:?}"
        );
        assert!(err.to_string().contains("client went away"), "{err}");
    }
}

#[tokio::test]
async fn a_calls_own_error_wins_over_the_end_it_caused() {
    for form in FORMS {
        let ctx = Context::new();
        let canceller = ctx.clone();
        // The failing call ends the caller's context first, then fails.
        let result = form
            .run(&ctx, 100, 2, move |_ctx, i| {
                let canceller = canceller.clone();
                async move {
                    if i == 3 {
                        canceller.cancel();
                        return Err(format!("item {i}"));
                    }
                    Ok(())
                }
            })
            .await;
        match form {
            // A call's error is the result.
            Form::Map | Form::ForEach => {
                assert_eq!(
                    result,
                    Err(MapError::Failed("item 3".to_owned())),
                    "{form:?}"
                )
            }
            // Here a call's error is its outcome, and the end left items unstarted.
            Form::MapResults => assert_eq!(result, Err(MapError::Cancelled(Cause::Cancelled))),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_end_after_every_item_started_leaves_the_result_to_the_calls() {
    // Ten items under a limit of 16: all start, then the caller's context ends while they run.
    for calls_fail in [false, true] {
        let ctx = Context::new();
        let canceller = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            canceller.cancel();
        });
        let result = bounded_group::map_with(&ctx, 0..10u32, 16, move |ctx, i| async move {
            ctx.cancelled().await;
            match calls_fail {
                true => Err(format!("item {i} saw the end")),
                false => Ok(i),
            }
        })
        .await;
        match calls_fail {
            true => {
                assert!(matches!(result, Err(MapError::Failed(e)) if e.ends_with("saw the end")))
            }
            false => assert_eq!(result, Ok((0..10).collect::<Vec<_>>())),
        }
    }
}

#[test]
fn on_multi_thread_an_ok_is_always_whole_whenever_the_end_comes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (mut whole, mut cancelled) = (0, 0);
    for round in 0..300u32 {
        let calls = Calls::default();
        let c = calls.clone();
        let result = runtime.block_on(async move {
            let ctx = Context::new();
            let canceller = ctx.clone();
            // The end comes after a different number of turns each round: before the first item,
            // among them, or after the last.
            let ender = tokio::spawn(async move {
                for _ in 0..round % 60 {
                    tokio::task::yield_now().await;
                }
                canceller.cancel();
            });
            let result = bounded_group::map_with(&ctx, 0..50u32, 4, move |_ctx, i| {
                let c = c.clone();
                c.start();
                async move {
                    tokio::task::yield_now().await;
                    c.finish();
                    Ok::<_, String>(i)
                }
            })
            .await;
            ender.await.unwrap();
            result
        });
        assert_eq!(
            calls.finished(),
            calls.started(),
            "round {round}: a call outlived the helper"
        );
        match result {
            Ok(out) => {
                assert_eq!(out, (0..50).collect::<Vec<_>>(), "round {round}");
                whole += 1;
            }
            Err(err) => {
                assert_eq!(err, MapError::Cancelled(Cause::Cancelled), "round {round}");
                assert!(
                    calls.started() < 50,
                    "round {round}: every item started, yet cancelled"
                );
                cancelled += 1;
            }
        }
    }
    assert!(cancelled > 0, "some rounds ended early ({whole} whole)");
}

#[tokio::test(start_paused = true)]
async fn a_helper_dropped_at_any_await_leaves_no_task_and_no_call_running() {
    // Dropped after 0, 1, 2, ... polls: before the first spawn, while spawning, while waiting for a
    // slot, and while waiting for the calls.
    for polls in 0..40 {
        for form in FORMS {
            let calls = Calls::default();
            let c = calls.clone();
            let ctx = Context::new();
            let run = form.run(&ctx, 20, 3, move |_ctx, _i| {
                let c = c.clone();
                c.start();
                async move {
                    // Counted as finished only if it runs to its end; a dropped call never does.
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    c.finish();
                    Ok(())
                }
            });
            // Boxed, so that dropping it drops the helper's future itself.
            let mut run = Box::pin(run);
            for _ in 0..polls {
                if run.as_mut().now_or_never().is_some() {
                    break;
                }
                tokio::time::advance(std::time::Duration::from_millis(1)).await;
            }
            drop(run);
            let finished = calls.finished();
            tokio::time::advance(std::time::Duration::from_millis(50)).await;
            assert_eq!(
                calls.finished(),
                finished,
                "{form:?} dropped after {polls} polls: a call ran on"
            );
            bounded_cancel::live::assert_none_alive().await;
        }
    }
}
