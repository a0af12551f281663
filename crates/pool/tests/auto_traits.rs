//! The pool, its handles and its errors are `Send` (the pool and its handles `Sync` too), so they cross tasks freely.

use bounded_pool::{JobError, JobHandle, Metrics, Pool, PoolReport, SubmitError, TrySubmitError};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn unpin<T: Unpin>() {}

#[test]
fn public_types_have_the_expected_auto_traits() {
    send_sync::<Pool>();
    send_sync::<JobHandle<u8, String>>();
    unpin::<JobHandle<u8, String>>();
    send::<JobError<String>>();
    send_sync::<SubmitError<fn()>>();
    send_sync::<TrySubmitError<fn()>>();
    send_sync::<Metrics>();
    send_sync::<PoolReport>();
}

/// A submission can be awaited inside a spawned task, and `select!`ed on by reference without
/// pinning it first, whatever the job: the future moves the job in and out, never pins it.
#[tokio::test]
async fn submissions_are_send_and_unpin() {
    fn send_unpin<F: std::future::Future + Send + Unpin>(_: &F) {}
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    let ctx = bounded_cancel::Context::new();
    // The job's future, an async block, is not `Unpin`; the submission is, since it never polls it.
    let job = |_ctx| async { Ok::<_, String>(1) };
    send_unpin(&pool.submit(job));
    send_unpin(&pool.submit_with(&ctx, job));
    send_unpin(&pool.submit_detached(job));
    pool.abort();
}
