//! Panics: caught, cancel the derived context, re-raised once with the original payload, never leak slots.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_group::{Failure, Group, TaskPanicked};
use futures_util::FutureExt;
use tokio::time::sleep;

#[derive(Debug, PartialEq)]
struct Payload(u32);

#[tokio::test(start_paused = true)]
async fn a_panic_cancels_the_context_and_siblings_still_finish() {
    let group = Group::<std::fmt::Error>::with_context(&Context::new());
    let finished = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let finished = finished.clone();
        group
            .spawn(move |ctx| async move {
                ctx.cancelled().await;
                sleep(Duration::from_millis(5)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await
            .unwrap();
    }
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_millis(10)).await;
            panic!("index out of bounds");
        })
        .await
        .unwrap();
    let cause = group.context().cancelled().await;
    let panicked = cause
        .error()
        .and_then(|e| e.downcast_ref::<TaskPanicked>())
        .unwrap();
    assert_eq!(panicked.message(), "index out of bounds");

    let failure = group.wait_and_recover().await.unwrap_err();
    assert!(matches!(&failure, Failure::Panicked(p) if p.message() == "index out of bounds"));
    assert_eq!(
        finished.load(Ordering::SeqCst),
        3,
        "siblings run to the end"
    );
}

#[tokio::test]
async fn wait_re_raises_the_first_panic_with_its_original_payload() {
    let group = Group::<String>::new();
    group
        .spawn(|_ctx| async { std::panic::panic_any(Payload(7)) })
        .await
        .unwrap();
    let caught = AssertUnwindSafe(group.wait())
        .catch_unwind()
        .await
        .unwrap_err();
    assert_eq!(caught.downcast_ref::<Payload>(), Some(&Payload(7)));
}

#[tokio::test(start_paused = true)]
async fn several_panics_re_raise_exactly_one() {
    let group = Group::<String>::new();
    for i in 0..5u32 {
        group
            .spawn(move |_ctx| async move {
                sleep(Duration::from_millis(u64::from(i) * 10)).await;
                std::panic::panic_any(Payload(i))
            })
            .await
            .unwrap();
    }
    let caught = AssertUnwindSafe(group.wait())
        .catch_unwind()
        .await
        .unwrap_err();
    assert_eq!(
        caught.downcast_ref::<Payload>(),
        Some(&Payload(0)),
        "the first panic, by time"
    );
    // The payload went to the first wait; a second wait still panics, naming the message.
    let again = AssertUnwindSafe(group.wait())
        .catch_unwind()
        .await
        .unwrap_err();
    let text = again.downcast_ref::<String>().unwrap();
    assert!(text.contains("panic payload is not a string"), "{text}");
}

#[tokio::test]
async fn a_panic_is_reported_in_preference_to_an_error() {
    let group = Group::<&str>::new();
    group
        .spawn(|_ctx| async { Err("plain error") })
        .await
        .unwrap();
    tokio::task::yield_now().await;
    group.spawn(|_ctx| async { panic!("bug") }).await.unwrap();
    let failure = group.wait_and_recover().await.unwrap_err();
    assert!(matches!(failure, Failure::Panicked(p) if p.message() == "bug"));
}

#[tokio::test]
async fn wait_and_recover_hands_back_the_payload() {
    let group = Group::<String>::new();
    group
        .spawn(|_ctx| async { std::panic::panic_any(Payload(3)) })
        .await
        .unwrap();
    let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else {
        panic!("expected a panic");
    };
    let payload = panic.into_payload().unwrap();
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_tasks_never_use_up_slots() {
    let mut group = Group::<String>::new();
    group.set_limit(Some(2)).unwrap();
    for i in 0..10 {
        tokio::time::timeout(
            Duration::from_secs(10),
            group.spawn(move |_ctx| async move { panic!("task {i}") }),
        )
        .await
        .expect("a slot must come back after each panic")
        .unwrap();
    }
    assert!(group.wait_and_recover().await.is_err());
    assert_eq!(group.running(), 0);
    for _ in 0..2 {
        assert!(group.try_spawn(|_ctx| async { Ok(()) }).is_ok());
    }
}

#[tokio::test]
async fn a_panic_while_building_the_future_is_caught_too() {
    let group = Group::<String>::new();
    group
        .spawn(|_ctx| -> std::future::Ready<Result<(), String>> { panic!("in the closure") })
        .await
        .unwrap();
    assert!(
        matches!(group.wait_and_recover().await, Err(Failure::Panicked(p)) if p.message() == "in the closure")
    );
}
