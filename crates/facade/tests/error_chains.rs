//! Every error of `bounded` prints what caused it in its own message, so that a log line of `%err`
//! is whole; its `source()` then goes on from the first cause it did not print. A report that walks
//! the chain (anyhow's `{:#}`, a `tracing` field of the whole chain) prints each message once, and
//! still reaches the deepest cause.

use std::error::Error;
use std::fmt;

use bounded::cancel::tower::RequestEnded;
use bounded::group::{MapError, SpawnError, TrySpawnError};
use bounded::pool::SubmitError;
use bounded::prelude::*;
use bounded::ratelimit::AcquireError;

/// The deepest cause: what went wrong underneath.
#[derive(Debug)]
struct DiskFull;

impl fmt::Display for DiskFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("disk full")
    }
}

impl Error for DiskFull {}

/// A user's error with a cause of its own, as most real errors have (an I/O error under it).
#[derive(Debug)]
struct UploadFailed(DiskFull);

impl fmt::Display for UploadFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("upload failed")
    }
}

impl Error for UploadFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

/// The messages of the chain, from `err` down, as a report that walks it prints them.
fn chain(err: &(dyn Error + 'static)) -> Vec<String> {
    std::iter::successors(Some(err), |&err| err.source())
        .map(ToString::to_string)
        .collect()
}

/// Each message of the chain appears once, and the chain ends at the deepest cause.
#[track_caller]
fn assert_told_once(err: &(dyn Error + 'static)) {
    let chain = chain(err);
    for (at, message) in chain.iter().enumerate() {
        for below in &chain[at + 1..] {
            assert!(
                !message.contains(below.as_str()),
                "{below:?} is printed twice in the chain {chain:#?}"
            );
        }
    }
    assert!(
        chain[0].contains("upload failed"),
        "the message names its cause: {chain:#?}"
    );
    assert_eq!(
        chain.last().map(String::as_str),
        Some("disk full"),
        "{chain:#?}"
    );
}

/// A context cancelled by the user's error.
fn cancelled() -> Context {
    let ctx = Context::new();
    ctx.cancel_with(UploadFailed(DiskFull));
    ctx
}

#[test]
fn a_cause_and_a_request_that_ended_on_it() {
    let cause = cancelled().cause().expect("cancelled");
    assert_told_once(&cause);
    assert_told_once(&RequestEnded::new(cause));
}

#[tokio::test]
async fn a_submission_refused_by_the_callers_context() {
    let pool = Pool::builder().workers(1).queue(1).build().unwrap();
    let caller = cancelled();
    let job = |_ctx| async { Ok::<_, String>(()) };
    let err = pool.submit_with(&caller, job).await.unwrap_err();
    assert!(matches!(err, SubmitError::Cancelled { .. }), "{err}");
    assert_told_once(&err);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_spawn_refused_by_the_groups_context() {
    let group: Group<String> = Group::with_context(&cancelled());
    let err = group
        .spawn(|_ctx| async { Ok::<_, String>(()) })
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::Cancelled { .. }), "{err}");
    assert_told_once(&err);
    let err = group
        .try_spawn(|_ctx| async { Ok::<_, String>(()) })
        .unwrap_err();
    assert!(matches!(err, TrySpawnError::Cancelled { .. }), "{err}");
    assert_told_once(&err);
}

#[tokio::test]
async fn a_map_that_failed_and_one_that_was_cancelled() {
    let failed = bounded::group::map([1, 2, 3], 2, |_ctx, n| async move {
        match n {
            2 => Err(UploadFailed(DiskFull)),
            n => Ok(n),
        }
    })
    .await
    .unwrap_err();
    assert!(matches!(failed, MapError::Failed(_)), "{failed}");
    assert_told_once(&failed);
    let cancelled = bounded::group::map_with(&cancelled(), [1, 2, 3], 2, |_ctx, n| async move {
        Ok::<_, UploadFailed>(n)
    })
    .await
    .unwrap_err();
    assert!(matches!(cancelled, MapError::Cancelled(_)), "{cancelled}");
    assert_told_once(&cancelled);
}

#[tokio::test]
async fn a_pipeline_that_failed_and_one_that_was_cancelled() {
    let failed = Pipeline::<UploadFailed>::new(&Context::new())
        .source(0..10u32)
        .map(2, |_ctx, n| async move {
            match n {
                5 => Err(UploadFailed(DiskFull)),
                n => Ok(n),
            }
        })
        .output()
        .collect()
        .await
        .1
        .expect("item 5 fails");
    assert!(matches!(failed, PipelineError::Failed { .. }), "{failed}");
    assert_told_once(&failed);
    let cancelled = Pipeline::<UploadFailed>::new(&cancelled())
        .source(0..10u32)
        .map(2, |_ctx, n| async move { Ok(n) })
        .output()
        .collect()
        .await
        .1
        .expect("the pipeline's context ended");
    assert!(
        matches!(cancelled, PipelineError::Cancelled(_)),
        "{cancelled}"
    );
    assert_told_once(&cancelled);
}

#[tokio::test]
async fn a_rate_limit_wait_ended_by_its_context() {
    let limiter = Limiter::new(Quota::per_second(1)).unwrap();
    let err = limiter.acquire_with(&cancelled()).await.unwrap_err();
    assert!(matches!(err, AcquireError::Cancelled(_)), "{err}");
    assert_told_once(&err);
}
