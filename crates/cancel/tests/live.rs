//! Live-task accounting: the check fails while a task is left running and passes once it ends.

use std::time::Duration;

use bounded_cancel::live;
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn fails_naming_a_task_left_running_then_passes_once_it_ends() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(live::tracked("leaky worker", async move {
        let _ = stopped.await;
    }));
    let start = Instant::now();
    let err = live::settle(Duration::from_millis(50)).await.unwrap_err();
    assert_eq!(err.names(), ["leaky worker"]);
    assert!(err.to_string().contains("leaky worker"));
    assert_eq!(
        Instant::now() - start,
        Duration::from_millis(50),
        "the wait is bounded"
    );

    stop.send(()).unwrap();
    task.await.unwrap();
    live::settle(Duration::from_millis(50)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_aborted_task_is_gone_after_settling() {
    let task = tokio::spawn(live::tracked("aborted", sleep(Duration::from_secs(3600))));
    tokio::task::yield_now().await;
    task.abort();
    live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn waits_for_a_task_that_is_finishing() {
    let _task = tokio::spawn(live::tracked("finishing", sleep(Duration::from_millis(30))));
    live::settle(Duration::from_millis(100)).await.unwrap();
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "1 task spawned by bounded still alive after 1s: stuck")]
async fn assert_none_alive_panics_with_the_names() {
    let _task = tokio::spawn(live::tracked("stuck", std::future::pending::<()>()));
    live::assert_none_alive().await;
}

#[test]
fn each_runtime_sees_only_its_own_tasks() {
    let a = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let b = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    a.block_on(async {
        // The task stays parked on runtime `a`: dropping its join handle does not end it.
        drop(tokio::spawn(live::tracked(
            "on runtime a",
            std::future::pending::<()>(),
        )));
        assert_eq!(live::names(), ["on runtime a"]);
    });
    b.block_on(async {
        assert!(live::names().is_empty());
        live::settle(Duration::from_millis(1)).await.unwrap();
    });
    a.block_on(async { assert_eq!(live::names(), ["on runtime a"]) });
}
