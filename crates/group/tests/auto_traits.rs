//! Public futures and handles are `Send` (and `Sync` where shared), so they work inside spawned tasks.

use bounded_cancel::Context;
use bounded_group::{Failure, Group, ResultGroup, ResultSpawn, SetLimitError, Spawn, SpawnError};

fn send<T: Send>(_: &T) {}
fn sync<T: Sync>(_: &T) {}
fn unpin<T: Unpin>(_: &T) {}
fn send_sync<T: Send + Sync>() {}

type Task = fn(Context) -> std::future::Ready<Result<(), String>>;

#[test]
fn public_types_have_the_expected_auto_traits() {
    let group = Group::<String>::new();
    send(&group);
    sync(&group);
    let task: Task = |_ctx| std::future::ready(Ok(()));
    let spawn: Spawn<'_, String, Task> = group.spawn(task);
    send(&spawn);
    unpin(&spawn);
    let results = ResultGroup::<u8, String>::new();
    send(&results);
    sync(&results);
    let result_task = |_ctx: Context| std::future::ready(Ok::<u8, String>(1));
    let rspawn: ResultSpawn<'_, u8, String, _> = results.spawn(result_task);
    send(&rspawn);
    unpin(&rspawn);
    let err: SpawnError<Task> = SpawnError::LimitZero(task);
    send(&err);
    send_sync::<SetLimitError>();
    let failure: Failure<String> = Failure::Error(String::new());
    send(&failure);
    sync(&failure);
    send_sync::<bounded_group::Panic>();
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A task's error, as a service defines one: cloneable, since every `wait` returns it.
#[derive(Debug, Clone)]
struct DiskFull;

impl std::fmt::Display for DiskFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk full")
    }
}

impl std::error::Error for DiskFull {}

/// What a handler returning tower's `BoxError` (or `anyhow::Result`) writes.
async fn run(panics: bool) -> Result<(), BoxError> {
    let group = Group::<DiskFull>::new();
    group
        .spawn_named("export", move |_ctx| async move {
            if panics {
                panic!("no account");
            }
            Err(DiskFull)
        })
        .await?;
    group.wait_and_recover().await?;
    Ok(())
}

#[tokio::test]
async fn a_failure_or_a_panic_goes_into_a_boxed_error_with_the_question_mark() {
    assert_eq!(run(false).await.unwrap_err().to_string(), "disk full");
    let err = run(true).await.unwrap_err();
    assert_eq!(err.to_string(), "task `export` panicked: no account");
    let Ok(failure) = err.downcast::<Failure<DiskFull>>() else {
        panic!("a Failure inside")
    };
    let Failure::Panicked(panic) = *failure else {
        panic!("Panicked")
    };
    assert_eq!(
        *panic.into_payload().unwrap().downcast::<&str>().unwrap(),
        "no account"
    );
}
