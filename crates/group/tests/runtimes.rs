//! A group whose tasks' runtime shuts down: the tasks are gone with it, so `wait` returns and says
//! so, instead of waiting for tasks that no longer exist.

use std::time::Duration;

use bounded_group::{Failure, Group};
use futures_util::FutureExt;

const LOST: &str = "task dropped before it finished: the runtime it ran on shut down";

fn runtimes() -> (tokio::runtime::Runtime, tokio::runtime::Runtime) {
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (first, second)
}

/// With and without a limit (tasks of their own, and tasks on runners, one of them still queued):
/// `wait_and_recover` on another runtime reports the loss as a panic naming the task, and `wait`
/// re-raises it.
#[test]
fn waiting_on_a_group_whose_runtime_shut_down_reports_the_lost_tasks() {
    // Each case many times: under a limit, the second task is sometimes still queued for a runner
    // when the runtime shuts down, and sometimes running.
    for limit in [None, Some(2)].repeat(20) {
        let (first, second) = runtimes();
        let mut group = Group::<String>::new();
        group.set_limit(limit).unwrap();
        first.block_on(async {
            group
                .spawn_named("stuck", |ctx| async move {
                    ctx.cancelled().await;
                    Ok(())
                })
                .await
                .unwrap();
            group
                .spawn(|ctx| async move {
                    ctx.cancelled().await;
                    Ok(())
                })
                .await
                .unwrap();
            tokio::task::yield_now().await;
        });
        drop(first);
        second.block_on(async {
            let failure = tokio::time::timeout(Duration::from_secs(10), group.wait_and_recover())
                .await
                .expect("wait returns once the tasks are gone")
                .unwrap_err();
            let Failure::Panicked(panic) = failure else {
                panic!("a lost task is reported as a panic, not {failure:?}");
            };
            assert_eq!(panic.message(), LOST);
            assert_eq!(group.running(), 0);
            let raised = std::panic::AssertUnwindSafe(group.wait())
                .catch_unwind()
                .await
                .unwrap_err();
            // The payload went to the first wait; this one re-raises with the same message inside.
            let message = bounded_cancel::panic_message(&*raised);
            assert!(message.contains(LOST), "limit {limit:?}: {message}");
        });
    }
}
