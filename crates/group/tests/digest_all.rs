//! The errgroup MD5All pipeline (the `digest_all` example) digests everything, or fails fast and cleanly.

#[path = "../examples/digest_all.rs"]
#[allow(dead_code)]
mod digest_all;

use std::sync::Arc;

use bounded_cancel::{Context, live};
use digest_all::{DigestError, Files, digest_all};

fn files(n: usize) -> Files {
    (0..n)
        .map(|i| (format!("f{i:04}"), vec![i as u8; i % 50]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_every_file_once() {
    let files = Arc::new(files(1_000));
    let sums = digest_all(&Context::new(), files.clone()).await.unwrap();
    assert_eq!(sums.len(), 1_000);
    assert!(sums.keys().eq(files.keys()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_file_fails_the_whole_pipeline_with_its_error() {
    let mut files = files(1_000);
    files.insert("f0500.locked".to_owned(), Vec::new());
    let err = digest_all(&Context::new(), Arc::new(files))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DigestError {
            path: "f0500.locked".into(),
            reason: "permission denied".into()
        }
    );
    live::assert_none_alive().await;
}

#[tokio::test]
async fn a_cancelled_caller_gets_the_cause_and_nothing_is_left_running() {
    let ctx = Context::new();
    ctx.cancel();
    let err = digest_all(&ctx, Arc::new(files(100))).await.unwrap_err();
    assert_eq!(err.reason, "context cancelled");
    live::assert_none_alive().await;
}
