//! A task spawned with a name keeps it: the caught panic says which task it was.

use bounded_group::{Failure, Group};

#[tokio::test]
async fn a_caught_panic_names_its_task_and_an_unnamed_one_says_none() {
    let group = Group::<String>::new();
    group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
    group
        .spawn_named("reindex shard 7", |_ctx| async {
            tokio::task::yield_now().await; // panics on a runner, not on the spawner
            panic!("index out of range")
        })
        .await
        .unwrap();
    let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else {
        panic!("the panic is reported");
    };
    assert_eq!(panic.task(), Some("reindex shard 7"));
    assert_eq!(panic.message(), "index out of range");
    assert_eq!(
        panic.to_string(),
        "task `reindex shard 7` panicked: index out of range"
    );
    // Every later caller sees the name too.
    let Err(Failure::Panicked(again)) = group.wait_and_recover().await else {
        unreachable!()
    };
    assert_eq!(again.task(), Some("reindex shard 7"));

    let unnamed = Group::<String>::new();
    unnamed
        .spawn(|_ctx| async { panic!("boom") })
        .await
        .unwrap();
    let Err(Failure::Panicked(panic)) = unnamed.wait_and_recover().await else {
        unreachable!()
    };
    assert_eq!(panic.task(), None);
    assert_eq!(panic.to_string(), "a task panicked: boom");
}

#[tokio::test]
async fn a_named_task_that_succeeds_or_fails_behaves_like_any_other() {
    let group = Group::with_context(&bounded_cancel::Context::new());
    group
        .spawn_named("ok", |_ctx| async { Ok(()) })
        .await
        .unwrap();
    group
        .spawn_named("fails", |_ctx| async { Err("no quota".to_owned()) })
        .await
        .unwrap();
    assert_eq!(group.wait().await, Err("no quota".to_owned()));
}

#[tokio::test]
async fn try_spawn_named_names_the_task_or_hands_the_closure_back() {
    let mut group = Group::<String>::new();
    group.set_limit(Some(1)).unwrap();
    group
        .try_spawn_named("only slot", |_ctx| async { panic!("bad row") })
        .unwrap();
    let refused = group
        .try_spawn_named("no room", |_ctx| async { Ok(()) })
        .unwrap_err();
    assert!(matches!(refused, bounded_group::TrySpawnError::Full(_)));
    let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else {
        unreachable!()
    };
    assert_eq!(panic.task(), Some("only slot"));
}

#[tokio::test(start_paused = true)]
async fn a_spawn_named_dropped_while_waiting_for_a_slot_runs_nothing() {
    let mut group = Group::<String>::new();
    group.set_limit(Some(1)).unwrap();
    group
        .spawn(|_ctx| async {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            Ok(())
        })
        .await
        .unwrap();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let waiting = group.spawn_named("late", move |_ctx| async move {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    });
    assert!(
        futures_util::FutureExt::now_or_never(waiting).is_none(),
        "no slot yet"
    );
    group.wait().await.unwrap();
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "the dropped spawn ran nothing"
    );
    bounded_cancel::live::assert_none_alive().await;
}
