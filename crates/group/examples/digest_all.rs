//! The MD5All pipeline from the errgroup documentation, in bounded-group.
//!
//! ```text
//! cargo run -p bounded-group --example digest_all
//! ```
//!
//! A producer walks the "files" and feeds their paths to a bounded channel; twenty digesters read and
//! hash them, each selecting on the group's context while it sends; a helper awaits `wait` and then
//! closes the results channel; the caller drains the results and awaits `wait` again for the error.
//! The files live in memory and the digest is 64-bit FNV-1a, so the example runs anywhere as it is.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bounded_cancel::Context;
use bounded_group::{Group, SpawnError};
use tokio::sync::{Mutex, mpsc};

const DIGESTERS: usize = 20;

/// The files to digest: path to contents.
pub(crate) type Files = BTreeMap<String, Vec<u8>>;

/// Why a digest failed: which file, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DigestError {
    /// The file that failed, or `*` when the whole run was cancelled.
    pub(crate) path: String,
    /// What went wrong.
    pub(crate) reason: String,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl std::error::Error for DigestError {}

impl DigestError {
    fn cancelled(cause: bounded_cancel::Cause) -> Self {
        DigestError {
            path: "*".to_owned(),
            reason: cause.to_string(),
        }
    }
}

/// An unlimited group refuses a task only when its context has already ended.
fn refused<F>(err: SpawnError<F>) -> DigestError {
    match err {
        SpawnError::Cancelled { cause, .. } => DigestError::cancelled(cause),
        other => unreachable!("an unlimited group refused a task: {other}"),
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reads a file; files named `*.locked` fail, as an unreadable file would.
async fn read(files: &Files, path: &str) -> Result<Vec<u8>, DigestError> {
    tokio::task::yield_now().await;
    if path.ends_with(".locked") {
        return Err(DigestError {
            path: path.to_owned(),
            reason: "permission denied".to_owned(),
        });
    }
    Ok(files[path].clone())
}

/// Digests every file, or returns the first error; on error every stage stops early.
pub(crate) async fn digest_all(
    ctx: &Context,
    files: Arc<Files>,
) -> Result<BTreeMap<String, u64>, DigestError> {
    let group = Arc::new(Group::with_context(ctx));

    // Stage 1: the producer, the only sender of `paths`, which it closes by returning.
    let (paths_tx, paths_rx) = mpsc::channel::<String>(DIGESTERS);
    let walk = files.clone();
    group
        .spawn(move |gctx| async move {
            for path in walk.keys() {
                if gctx.run(paths_tx.send(path.clone())).await.is_err() {
                    break; // cancelled: stop walking
                }
            }
            Ok(())
        })
        .await
        .map_err(refused)?;

    // Stage 2: the digesters share the paths receiver and send to `results`.
    let (results_tx, mut results_rx) = mpsc::channel::<(String, u64)>(DIGESTERS);
    let paths_rx = Arc::new(Mutex::new(paths_rx));
    for _ in 0..DIGESTERS {
        let (paths, results, files) = (paths_rx.clone(), results_tx.clone(), files.clone());
        group
            .spawn(move |gctx| async move {
                loop {
                    let next = paths.lock().await.recv().await;
                    let Some(path) = next else { return Ok(()) };
                    let sum = fnv1a(&read(&files, &path).await?);
                    // Select on the context while sending, as the Go version does.
                    match gctx.run(results.send((path, sum))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) | Err(_) => return Ok(()),
                    }
                }
            })
            .await
            .map_err(refused)?;
    }

    // The helper: once every task has ended, close `results` by dropping the last sender.
    let helper = tokio::spawn({
        let group = group.clone();
        async move {
            let _ = group.wait().await;
            drop(results_tx);
        }
    });

    let mut sums = BTreeMap::new();
    while let Some((path, sum)) = results_rx.recv().await {
        sums.insert(path, sum);
    }
    helper.await.expect("the helper does not panic");
    // The caller waits again: the same first error, or Ok.
    group.wait().await?;
    Ok(sums)
}

fn sample_files(locked: bool) -> Arc<Files> {
    let mut files: Files = (0..200)
        .map(|i| {
            (
                format!("src/file{i:03}.txt"),
                format!("contents of file {i}").into_bytes(),
            )
        })
        .collect();
    if locked {
        files.insert("src/file100.locked".to_owned(), Vec::new());
    }
    Arc::new(files)
}

#[tokio::main]
async fn main() {
    let ctx = Context::new();
    match digest_all(&ctx, sample_files(false)).await {
        Ok(sums) => {
            println!("digested {} files", sums.len());
            for (path, sum) in sums.iter().take(3) {
                println!("  {sum:016x}  {path}");
            }
        }
        Err(err) => println!("unexpected failure: {err}"),
    }
    match digest_all(&ctx, sample_files(true)).await {
        Ok(sums) => println!("unexpected success with {} files", sums.len()),
        Err(err) => println!("with an unreadable file: {err}"),
    }
}
