//! What a task ends with is yours: an error whose `Display` or destructor panics as the group reads
//! or drops it takes no runner with it, and every task still counts as ended.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use bounded_cancel::{Context, live};
use bounded_group::{Group, TaskError};

const BOOM: &str = "a bomb went off";

/// An error whose destructor panics (unless the thread is unwinding already), and whose `Display`
/// panics too when asked to.
#[derive(Debug)]
struct Bomb {
    id: usize,
    dropped: Arc<AtomicUsize>,
    display_panics: bool,
}

impl Clone for Bomb {
    fn clone(&self) -> Self {
        Bomb {
            id: self.id,
            dropped: self.dropped.clone(),
            display_panics: self.display_panics,
        }
    }
}

impl std::fmt::Display for Bomb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.display_panics {
            panic!("{BOOM}");
        }
        write!(f, "bomb {}", self.id)
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
        if !std::thread::panicking() {
            panic!("{BOOM}");
        }
    }
}

/// The bombs' panics are expected here: kept out of the test output, every other panic printed.
fn quiet_bombs() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if bounded_cancel::panic_message(info.payload()) != BOOM {
                previous(info);
            }
        }));
    });
}

/// Spawns 200 tasks, every tenth failing with a bomb, and waits: every task ran and the first
/// error comes back. The group, and the bomb it kept, are dropped at the end, their panics caught.
async fn errors_that_panic_as_they_are_dropped(group: Group<Bomb>, display_panics: bool) {
    let dropped = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    for id in 0..200 {
        let (dropped, ran) = (dropped.clone(), ran.clone());
        group
            .spawn(move |_ctx| async move {
                tokio::task::yield_now().await;
                ran.fetch_add(1, Ordering::SeqCst);
                match id % 10 {
                    0 => Err(Bomb {
                        id,
                        dropped,
                        display_panics,
                    }),
                    _ => Ok(()),
                }
            })
            .await
            .expect("the group takes every task");
    }
    let first = tokio::time::timeout(Duration::from_secs(5), group.wait())
        .await
        .expect("wait returns: every task counts as ended")
        .expect_err("a task failed");
    assert_eq!(ran.load(Ordering::SeqCst), 200);
    assert_eq!(first.id % 10, 0);
    // The ones the group did not keep were dropped, each once.
    assert_eq!(dropped.load(Ordering::SeqCst), 19);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop((first, group))));
}

#[tokio::test]
async fn errors_whose_destructors_panic_leave_every_task_counted() {
    quiet_bombs();
    errors_that_panic_as_they_are_dropped(Group::new(), false).await;
    live::assert_none_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_whose_destructors_panic_leave_every_task_counted_on_a_multi_thread_runtime() {
    quiet_bombs();
    for _ in 0..20 {
        errors_that_panic_as_they_are_dropped(Group::new(), false).await;
    }
}

/// With a context, the first error becomes its cause through the error's `Display`; one that
/// panics still ends the context, with a cause that says what happened, and the error itself is
/// still the one `wait` returns.
#[tokio::test]
async fn an_error_whose_display_panics_still_ends_the_context_and_is_returned() {
    quiet_bombs();
    let group = Group::with_context(&Context::new());
    let ctx = group.context().clone();
    errors_that_panic_as_they_are_dropped(group, true).await;
    let cause = ctx
        .cause()
        .expect("the first error ended the group's context");
    let error = cause.error().expect("a cause made from the error");
    let task_error = error
        .downcast_ref::<TaskError>()
        .expect("the group's cause for a failed task");
    assert!(
        task_error
            .message()
            .contains("Display panicked: a bomb went off"),
        "{}",
        task_error.message()
    );
}
