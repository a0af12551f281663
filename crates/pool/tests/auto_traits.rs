//! The pool, its handles and its errors are `Send` and `Sync` (a job's own error type permitting),
//! so they cross tasks freely and `?` turns the errors into `Box<dyn Error + Send + Sync>`.

use bounded_pool::{JobError, JobHandle, Metrics, Pool, PoolReport, SubmitError, TrySubmitError};

fn send_sync<T: Send + Sync>() {}
fn unpin<T: Unpin>() {}

#[test]
fn public_types_have_the_expected_auto_traits() {
    send_sync::<Pool>();
    send_sync::<JobHandle<u8, String>>();
    unpin::<JobHandle<u8, String>>();
    send_sync::<JobError<String>>();
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

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a handler returning tower's `BoxError` (or `anyhow::Result`) writes: `?` on the submission
/// and on the handle. A job that panicked comes out as an error that says so, and the payload is
/// still there for whoever wants it.
async fn handle_one(pool: &Pool, panics: bool) -> Result<u8, BoxError> {
    let handle = pool
        .submit(move |_ctx| async move {
            if panics {
                std::panic::panic_any(7u16);
            }
            Err::<u8, _>(std::io::Error::other("disk full"))
        })
        .await?;
    Ok(handle.await?)
}

#[tokio::test]
async fn job_errors_and_panics_go_into_a_boxed_error_with_the_question_mark() {
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    let failed = handle_one(&pool, false).await.unwrap_err();
    assert_eq!(failed.to_string(), "job failed: disk full");
    let panicked = handle_one(&pool, true).await.unwrap_err();
    assert_eq!(
        panicked.to_string(),
        "job panicked: panic payload is not a string"
    );
    let Ok(job_error) = panicked.downcast::<JobError<std::io::Error>>() else {
        panic!("a JobError inside")
    };
    let JobError::Panicked(payload) = *job_error else {
        panic!("Panicked")
    };
    assert_eq!(payload.into_inner().downcast_ref::<u16>(), Some(&7));
    pool.shutdown().await;
}
