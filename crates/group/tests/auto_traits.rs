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
}
