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

/// A task that spawns children into its own group and then waits for the group: the wait would
/// include the task itself. It panics instead of waiting for ever; the other tasks run to their
/// end, and the owner's wait reports the panic.
async fn a_task_waiting_for_its_own_group(limit: Option<usize>, nap: Duration) {
    let mut group = Group::<String>::new();
    group.set_limit(limit).unwrap();
    let group = Arc::new(group);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let same = group.clone();
    let counted = done.clone();
    group
        .spawn(move |_ctx| async move {
            for _ in 0..4 {
                let counted = counted.clone();
                same.spawn(move |_ctx| async move {
                    sleep(nap).await;
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                })
                .await
                .unwrap();
            }
            sleep(nap).await;
            same.wait().await
        })
        .await
        .unwrap();
    let failure = tokio::time::timeout(Duration::from_secs(10), group.wait_and_recover())
        .await
        .expect("the owner's wait returns")
        .unwrap_err();
    let bounded_group::Failure::Panicked(panic) = failure else {
        panic!("the task's wait panics: {failure}");
    };
    assert!(
        panic.message().contains("one of its own tasks"),
        "{}",
        panic.message()
    );
    assert!(
        panic.message().contains("a group of their own"),
        "{}",
        panic.message()
    );
    assert_eq!(done.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(group.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_task_waiting_for_its_own_group_panics_instead_of_waiting_for_itself() {
    for limit in [None, Some(2), Some(8)] {
        a_task_waiting_for_its_own_group(limit, Duration::ZERO).await;
        a_task_waiting_for_its_own_group(limit, Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waiting_for_its_own_group_panics_on_a_multi_thread_runtime() {
    for round in 0..30 {
        let limit = [None, Some(2), Some(8)][round % 3];
        a_task_waiting_for_its_own_group(limit, Duration::from_micros(200)).await;
    }
}

/// What the panic's message advises works: a task waits for the tasks it spawns through a group of
/// their own, even while it runs as a task of another group.
#[tokio::test(start_paused = true)]
async fn a_task_waits_for_its_children_in_a_group_of_their_own() {
    let group = Group::<String>::new();
    for _ in 0..3 {
        group
            .spawn(|_ctx| async move {
                let children = Group::<String>::new();
                for i in 0..4u64 {
                    children
                        .spawn(move |_ctx| async move {
                            sleep(Duration::from_millis(i)).await;
                            Ok(())
                        })
                        .await
                        .unwrap();
                }
                children.wait().await
            })
            .await
            .unwrap();
    }
    assert_eq!(group.wait().await, Ok(()));
}
