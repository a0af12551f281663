//! A panic in a stage reaches the consumer as a value and stops the pipeline.

use bounded_cancel::{Context, live};
use bounded_pipeline::{Pipeline, PipelineError};

/// `result` is the pipeline's failure for a panic in `stage` at item `index`, with `message`.
fn assert_panicked<T: std::fmt::Debug>(
    result: Result<T, PipelineError<String>>,
    stage: &str,
    index: u64,
    message: &str,
) {
    match result {
        Err(PipelineError::Panicked {
            stage: got_stage,
            index: got_index,
            payload,
        }) => {
            assert_eq!((got_stage.as_str(), got_index), (stage, index));
            assert_eq!(payload.message(), message);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_stage_is_returned_with_its_payload_and_stops_everything() {
    let result = Pipeline::new(&Context::new())
        .source(0..1_000_000u64)
        .map(3, |_ctx, i| async move {
            if i == 5 {
                panic!("bad item {i}");
            }
            tokio::task::yield_now().await;
            Ok::<_, String>(i)
        })
        .named("parse")
        .output()
        .try_collect()
        .await;
    assert_panicked(result, "parse", 5, "bad item 5");
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_before_the_future_is_built_is_caught_too() {
    let err = Pipeline::new(&Context::new())
        .source(0..10u32)
        .map(2, |_ctx, i| {
            assert!(i != 3, "refused {i} before any await");
            async move { Ok::<_, String>(i) }
        })
        .output()
        .try_collect()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("refused 3 before any await"),
        "{err}"
    );
    live::assert_none_alive().await;
}

/// A future that waits before it panics is polled again after its worker has given the rest of its
/// batch back: that later poll is caught the same way as the first.
#[tokio::test(start_paused = true)]
async fn a_panic_after_the_future_waited_is_caught_too() {
    let result = Pipeline::new(&Context::new())
        .source(0..100u64)
        .map(2, |_ctx, i| async move {
            if i == 7 {
                tokio::task::yield_now().await;
                panic!("item {i} panicked after waiting");
            }
            Ok::<_, String>(i)
        })
        .named("wait_then_panic")
        .output()
        .try_collect()
        .await;
    assert_panicked(
        result,
        "wait_then_panic",
        7,
        "item 7 panicked after waiting",
    );
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_reported_even_in_skip_mode() {
    let err = Pipeline::new(&Context::new())
        .skip_errors(|_, _: String| {})
        .source(0..10u32)
        .map(1, |_ctx, i| async move {
            assert!(i < 4, "four");
            Ok(i)
        })
        .output()
        .try_collect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, PipelineError::Panicked { index: 4, .. }),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_skip_handler_ends_the_pipeline_with_its_payload() {
    let (items, failure) = Pipeline::new(&Context::new())
        .skip_errors(|index, _err: String| {
            if index == 3 {
                panic!("handler gave up on {index}");
            }
        })
        .source(0..50u64)
        .map(2, |_ctx, i| async move {
            if i % 3 == 0 {
                Err(format!("bad {i}"))
            } else {
                Ok(i)
            }
        })
        .named("check")
        .output()
        .collect()
        .await;
    match failure {
        Some(PipelineError::Panicked {
            stage,
            index,
            payload,
        }) => {
            assert_eq!((stage.as_str(), index), ("check", 3));
            assert_eq!(payload.message(), "handler gave up on 3");
        }
        other => panic!(
            "the pipeline ended with {other:?} after {} items",
            items.len()
        ),
    }
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_for_each_callback_ends_the_pipeline_with_its_payload() {
    let parent = Context::new();
    let output = Pipeline::new(&parent)
        .source(0..1_000u64)
        .map(2, |_ctx, i| async move { Ok::<_, String>(i) })
        .output();
    let ctx = output.context().clone();
    let err = output
        .for_each(|i| async move {
            tokio::task::yield_now().await;
            assert!(i != 7, "consumer choked on {i}");
        })
        .await
        .unwrap_err();
    match err {
        PipelineError::Panicked {
            stage,
            index,
            payload,
        } => {
            assert_eq!((stage.as_str(), index), ("for_each", 7));
            assert_eq!(payload.message(), "consumer choked on 7");
        }
        other => panic!("{other:?}"),
    }
    assert!(ctx.is_cancelled(), "every stage was stopped");
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_building_the_for_each_future_is_caught_too() {
    let err = Pipeline::new(&Context::new())
        .source(0..10u64)
        .output()
        .for_each(|i| {
            assert!(i != 2, "refused {i}");
            async {}
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PipelineError::<String>::Panicked { index: 2, .. }),
        "{err:?}"
    );
    live::assert_none_alive().await;
}

/// An iterator of the caller's that panics as it is dropped: its `Drop` is the caller's code too.
struct PanicsOnDrop<I>(I);

impl<I: Iterator> Iterator for PanicsOnDrop<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.0.next()
    }
}

impl<I> Drop for PanicsOnDrop<I> {
    fn drop(&mut self) {
        panic!("dropped on purpose");
    }
}

/// A `flat_map` stage's iterator that panics as it is dropped, after yielding its items, ends the
/// pipeline as a panic on the item it came from, not as a task lost with its runtime.
#[tokio::test(start_paused = true)]
async fn an_iterator_that_panics_as_it_is_dropped_is_a_panic_on_its_item() {
    bounded_testkit::quiet_planned_panics();
    let result = Pipeline::new(&Context::new())
        .source(0..10u64)
        .flat_map(2, |_ctx, i| async move {
            let items = vec![i, i];
            Ok::<_, String>(match i {
                3 => boxed(PanicsOnDrop(items.into_iter())),
                _ => boxed(items.into_iter()),
            })
        })
        .named("split")
        .output()
        .try_collect()
        .await;
    assert_panicked(result, "split", 3, "dropped on purpose");
    live::assert_none_alive().await;
}

/// One iterator type for both arms above.
fn boxed<I: Iterator<Item = u64> + Send + 'static>(
    iter: I,
) -> Box<dyn Iterator<Item = u64> + Send> {
    Box::new(iter)
}

/// A source iterator that panics as it is dropped, once every item is pulled, ends the pipeline as a
/// panic of the source at its position (the number of items it gave), not as a lost task.
#[tokio::test(start_paused = true)]
async fn a_source_that_panics_as_it_is_dropped_is_a_panic_of_the_source() {
    bounded_testkit::quiet_planned_panics();
    let result = Pipeline::new(&Context::new())
        .source(PanicsOnDrop(0..5u64))
        .map(2, |_ctx, i| async move { Ok::<_, String>(i) })
        .output()
        .try_collect()
        .await;
    assert_panicked(result, "source", 5, "dropped on purpose");
    live::assert_none_alive().await;
}

/// State a stage function captures that panics as it is dropped: dropped with the function, once
/// the stage's last worker ends.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("dropped on purpose");
    }
}

/// The four kinds of stage, each given a function that captured a [`Bomb`], run on `items`.
async fn stage_with_a_bomb(kind: &str, items: u64) -> Result<Vec<u64>, PipelineError<String>> {
    let bomb = Bomb;
    let stage = Pipeline::new(&Context::new()).source(0..items);
    let stage = match kind {
        "map" => stage.map(3, move |_ctx, i| {
            let _ = &bomb;
            async move { Ok::<_, String>(i) }
        }),
        "filter_map" => stage.filter_map(3, move |_ctx, i| {
            let _ = &bomb;
            async move { Ok::<_, String>(Some(i)) }
        }),
        "flat_map" => stage.flat_map(3, move |_ctx, i| {
            let _ = &bomb;
            async move { Ok::<_, String>([i]) }
        }),
        "map_ordered" => stage.map_ordered(3, move |_ctx, i| {
            let _ = &bomb;
            async move { Ok::<_, String>(i) }
        }),
        other => unreachable!("{other}"),
    };
    stage.output().try_collect().await
}

/// A stage function whose captured state panics as it is dropped, after the last item, ends the
/// pipeline as a panic of that stage at the number of items it took in, not as a task lost with
/// its runtime, and not as a success.
#[tokio::test(start_paused = true)]
async fn a_stage_function_that_panics_as_it_is_dropped_is_a_panic_of_its_stage() {
    bounded_testkit::quiet_planned_panics();
    for kind in ["map", "filter_map", "flat_map", "map_ordered"] {
        let result = stage_with_a_bomb(kind, 10).await;
        assert_panicked(result, kind, 10, "dropped on purpose");
        live::assert_none_alive().await;
    }
}

/// The same on a multi-thread runtime, with no items, where the workers can all end before the
/// code that spawned them has returned: whichever ends last drops the function and reports it.
#[test]
fn a_stage_function_dropped_by_workers_that_end_at_once_is_still_reported() {
    bounded_testkit::quiet_planned_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..1000 {
        for kind in ["map", "filter_map", "flat_map", "map_ordered"] {
            let result = rt.block_on(stage_with_a_bomb(kind, round % 3));
            assert_panicked(result, kind, round % 3, "dropped on purpose");
        }
    }
    rt.block_on(live::assert_none_alive());
}
