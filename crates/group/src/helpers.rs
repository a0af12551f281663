//! `map` and `for_each`: the common Go `Fanout` in one call.

use std::future::Future;
use std::sync::Arc;

use bounded_cancel::Context;

use crate::{Group, MapError, ResultGroup};

/// Runs `f` on every item, at most `limit` at a time, and returns the outputs in input order.
///
/// The first error cancels the context the other calls received, stops taking items, and is returned.
/// Equivalent to [`map_with`] under a fresh root context.
///
/// # Errors
///
/// [`MapError::Failed`] with the first error `f` returned; [`MapError::InvalidLimit`], before anything
/// runs, for a limit of 0 or above [`MAX_LIMIT`](crate::MAX_LIMIT).
///
/// # Panics
///
/// Re-raises the first panic inside `f`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let lengths = bounded_group::map(["a", "bb", "ccc"], 2, |_ctx, s: &str| async move {
///     Ok::<_, std::io::Error>(s.len())
/// })
/// .await
/// .unwrap();
/// assert_eq!(lengths, [1, 2, 3]);
/// # }
/// ```
pub async fn map<I, F, Fut, U, E>(items: I, limit: usize, f: F) -> Result<Vec<U>, MapError<E>>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(Context, I::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
{
    map_with(&Context::new(), items, limit, f).await
}

/// Like [`map`], under the caller's context: when `ctx` ends, the calls see it and no more items start.
///
/// If `ctx` ends before every item has started, the outputs of the items that ran are returned; check
/// `ctx.is_cancelled()` (or have `f` return an error on cancellation) to tell a partial result apart.
///
/// # Errors
///
/// As [`map`].
///
/// # Panics
///
/// Re-raises the first panic inside `f`.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = Context::new();
/// let doubled = bounded_group::map_with(&ctx, 1..=3, 8, |_ctx, n: u32| async move {
///     Ok::<_, String>(n * 2)
/// })
/// .await
/// .unwrap();
/// assert_eq!(doubled, [2, 4, 6]);
/// # }
/// ```
pub async fn map_with<I, F, Fut, U, E>(
    ctx: &Context,
    items: I,
    limit: usize,
    f: F,
) -> Result<Vec<U>, MapError<E>>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(Context, I::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
{
    let limit = MapError::check(limit)?;
    let mut group = ResultGroup::from_group(Group::fail_fast(ctx));
    group
        .set_limit(Some(limit))
        .expect("a new group has no running tasks");
    let f = Arc::new(f);
    for item in items {
        let f = f.clone();
        if group.spawn(move |ctx| f(ctx, item)).await.is_err() {
            // The group's context ended: a call failed or the caller cancelled. Start nothing more.
            break;
        }
    }
    group.wait().await.map_err(MapError::Failed)
}

/// Runs `f` on every item, at most `limit` at a time; the first error cancels the rest and is returned.
///
/// # Errors
///
/// As [`map`].
///
/// # Panics
///
/// Re-raises the first panic inside `f`.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sum = Arc::new(AtomicU32::new(0));
/// let total = sum.clone();
/// bounded_group::for_each(1..=4u32, 2, move |_ctx, n| {
///     let sum = sum.clone();
///     async move {
///         sum.fetch_add(n, Ordering::Relaxed);
///         Ok::<_, std::io::Error>(())
///     }
/// })
/// .await
/// .unwrap();
/// assert_eq!(total.load(Ordering::Relaxed), 10);
/// # }
/// ```
pub async fn for_each<I, F, Fut, E>(items: I, limit: usize, f: F) -> Result<(), MapError<E>>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(Context, I::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let limit = MapError::check(limit)?;
    let mut group = Group::fail_fast(&Context::new());
    group
        .set_limit(Some(limit))
        .expect("a new group has no running tasks");
    let f = Arc::new(f);
    for item in items {
        let f = f.clone();
        if group.spawn(move |ctx| f(ctx, item)).await.is_err() {
            break;
        }
    }
    group.wait_first().await.map_err(MapError::Failed)
}
