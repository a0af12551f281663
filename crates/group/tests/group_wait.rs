//! `wait`: zero-value groups, the first error as the identical value, repeated and concurrent waits.

use std::sync::Arc;
use std::time::Duration;

use bounded_group::Group;
use tokio::time::sleep;

#[derive(Debug, PartialEq)]
struct Tagged(&'static str);

#[tokio::test]
async fn new_group_needs_no_configuration_and_empty_wait_is_ok() {
    let group = Group::<String>::new();
    assert_eq!(group.wait().await, Ok(()));
    assert_eq!(group.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn all_ok_tasks_give_ok() {
    let group = Group::<String>::new();
    for i in 0..50u64 {
        group
            .spawn(move |_ctx| async move {
                sleep(Duration::from_millis(i + 1)).await;
                Ok(())
            })
            .await
            .unwrap();
    }
    assert_eq!(group.running(), 50);
    assert_eq!(group.wait().await, Ok(()));
    assert_eq!(group.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn first_error_wins_as_the_identical_value() {
    let group = Group::<Arc<Tagged>>::new();
    let first = Arc::new(Tagged("first"));
    let sent = first.clone();
    group
        .spawn(move |_ctx| async move {
            sleep(Duration::from_millis(10)).await;
            Err(sent)
        })
        .await
        .unwrap();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_millis(20)).await;
            Err(Arc::new(Tagged("later")))
        })
        .await
        .unwrap();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_millis(30)).await;
            Ok(())
        })
        .await
        .unwrap();
    let err = group.wait().await.unwrap_err();
    assert!(
        Arc::ptr_eq(&err, &first),
        "wait must return the very error the task returned"
    );
    // Asking again gives the same answer.
    assert!(Arc::ptr_eq(&group.wait().await.unwrap_err(), &first));
}

#[tokio::test(start_paused = true)]
async fn two_concurrent_waiters_both_get_the_first_error() {
    let group = Arc::new(Group::<Arc<Tagged>>::new());
    let first = Arc::new(Tagged("boom"));
    let sent = first.clone();
    group
        .spawn(move |_ctx| async move {
            sleep(Duration::from_secs(1)).await;
            Err(sent)
        })
        .await
        .unwrap();
    let a = tokio::spawn({
        let group = group.clone();
        async move { group.wait().await }
    });
    let b = tokio::spawn({
        let group = group.clone();
        async move { group.wait().await }
    });
    let (a, b) = (a.await.unwrap().unwrap_err(), b.await.unwrap().unwrap_err());
    assert!(Arc::ptr_eq(&a, &first) && Arc::ptr_eq(&b, &first));
}

#[tokio::test(start_paused = true)]
async fn wait_waits_for_every_task_not_just_the_first_error() {
    let group = Group::<&str>::new();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    group
        .spawn(|_ctx| async { Err("fast failure") })
        .await
        .unwrap();
    group
        .spawn(move |_ctx| async move {
            sleep(Duration::from_secs(5)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(group.wait().await, Err("fast failure"));
    assert!(
        done.load(std::sync::atomic::Ordering::SeqCst),
        "a zero-value group lets siblings finish"
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_value_group_does_not_cancel_on_error_and_can_be_reused() {
    let group = Group::<&str>::new();
    group.spawn(|_ctx| async { Err("x") }).await.unwrap();
    assert_eq!(group.wait().await, Err("x"));
    assert!(!group.context().is_cancelled());
    group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
    assert_eq!(
        group.wait().await,
        Err("x"),
        "the first error stays the group's answer"
    );
}

#[tokio::test(start_paused = true)]
async fn collect_errors_returns_every_error_in_order() {
    let group = Group::<u64>::new().collect_errors();
    for i in 0..5u64 {
        group
            .spawn(move |_ctx| async move {
                sleep(Duration::from_millis(10 * (5 - i))).await;
                if i % 2 == 0 { Err(i) } else { Ok(()) }
            })
            .await
            .unwrap();
    }
    assert_eq!(group.wait_all().await, Err(vec![4, 2, 0]));
    assert_eq!(group.wait().await, Err(4));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_wait_midway_changes_nothing() {
    let group = Group::<&str>::new();
    group
        .spawn(|_ctx| async {
            sleep(Duration::from_secs(1)).await;
            Err("late")
        })
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), group.wait())
            .await
            .is_err()
    );
    assert_eq!(
        group.running(),
        1,
        "the task runs on after the wait is dropped"
    );
    assert_eq!(group.wait().await, Err("late"));
}
