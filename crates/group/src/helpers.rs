//! `map` and `for_each`: the common Go `Fanout` in one call.

use std::future::Future;
use std::sync::Arc;

use bounded_cancel::{Cause, Context};

use crate::{Group, MapError, ResultGroup, SpawnError};

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
/// `Ok` holds an output for every item. If `ctx` ends before every item has started, the calls that
/// started are waited for and the result is [`MapError::Cancelled`], never a shorter list. If it ends
/// after every item started, the calls decide: an error one returns is the result, and if all of them
/// still return `Ok`, so does this.
///
/// # Errors
///
/// As [`map`], and [`MapError::Cancelled`] with `ctx`'s cause when it ended before every item started.
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
    let mut stopped = None;
    for item in items {
        let f = f.clone();
        if let Err(err) = group.spawn(move |ctx| f(ctx, item)).await {
            // The group's context ended: a call failed or the caller's context ended. Start nothing
            // more.
            stopped = Some(cause_of(err));
            break;
        }
    }
    let outputs = group.wait().await.map_err(MapError::Failed)?;
    every_item_ran(stopped)?;
    Ok(outputs)
}

/// Why a spawn of the helpers was refused: the group's context ended. (A limit of 0, the other
/// refusal, is checked before anything is spawned.)
fn cause_of<F>(err: SpawnError<F>) -> Cause {
    match err {
        SpawnError::Cancelled { cause, .. } => cause,
        SpawnError::LimitZero(_) => Cause::Cancelled,
        // The helpers spawn from the caller, never from a task of their group.
        SpawnError::Deadlock(_) => unreachable!("a helper spawned from a task of its own group"),
    }
}

/// After the calls that started ended without an error: [`MapError::Cancelled`] if the intake
/// stopped before every item had started, which (no call having failed) the caller's context did.
fn every_item_ran<E>(stopped: Option<Cause>) -> Result<(), MapError<E>> {
    match stopped {
        Some(cause) => Err(MapError::Cancelled(cause)),
        None => Ok(()),
    }
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
    for_each_with(&Context::new(), items, limit, f).await
}

/// Like [`for_each`], under the caller's context: when `ctx` ends, the calls see it and no more items
/// start (as [`map_with`]).
///
/// `Ok(())` means `f` ran on every item and returned `Ok` each time.
///
/// # Errors
///
/// As [`map_with`]: [`MapError::Cancelled`] when `ctx` ended before every item started.
///
/// # Panics
///
/// Re-raises the first panic inside `f`.
///
/// # Examples
///
/// ```
/// use bounded_cancel::{Cause, Context};
/// use bounded_group::MapError;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let request = Context::new();
/// request.cancel(); // the caller gave up: nothing starts
/// let err = bounded_group::for_each_with(&request, 0..100u32, 4, |_ctx, _n| async { Err("ran") })
///     .await
///     .unwrap_err();
/// assert_eq!(err, MapError::Cancelled(Cause::Cancelled));
/// # }
/// ```
pub async fn for_each_with<I, F, Fut, E>(
    ctx: &Context,
    items: I,
    limit: usize,
    f: F,
) -> Result<(), MapError<E>>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(Context, I::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let limit = MapError::check(limit)?;
    let mut group = Group::fail_fast(ctx);
    group
        .set_limit(Some(limit))
        .expect("a new group has no running tasks");
    let f = Arc::new(f);
    let mut stopped = None;
    for item in items {
        let f = f.clone();
        if let Err(err) = group.spawn(move |ctx| f(ctx, item)).await {
            stopped = Some(cause_of(err));
            break;
        }
    }
    group.wait_first().await.map_err(MapError::Failed)?;
    every_item_ran(stopped)
}

/// Runs `f` on every item, at most `limit` at a time, and returns each item's outcome in input order:
/// its value or its error (conc's `ResultErrorPool`, `iter.MapErr`). Unlike [`map`], an error stops
/// nothing: every item runs, and every error is there to report together.
///
/// # Errors
///
/// [`MapError::InvalidLimit`] for a limit of 0 or above [`MAX_LIMIT`](crate::MAX_LIMIT); the calls'
/// own errors are values in the result, never this error.
///
/// # Panics
///
/// Re-raises the first panic inside `f`, after cancelling the other calls' context.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let outcomes = bounded_group::map_results(1..=4u32, 2, |_ctx, n| async move {
///     if n % 2 == 0 { Ok(n * 10) } else { Err(format!("{n} is odd")) }
/// })
/// .await
/// .unwrap();
/// assert_eq!(outcomes, [Err("1 is odd".into()), Ok(20), Err("3 is odd".into()), Ok(40)]);
/// let errors: Vec<String> = outcomes.into_iter().filter_map(Result::err).collect();
/// assert_eq!(errors.len(), 2);
/// # }
/// ```
pub async fn map_results<I, F, Fut, U, E>(
    items: I,
    limit: usize,
    f: F,
) -> Result<Vec<Result<U, E>>, MapError<E>>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(Context, I::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
{
    map_results_with(&Context::new(), items, limit, f).await
}

/// Like [`map_results`], under the caller's context: when `ctx` ends, the calls see it and no more
/// items start.
///
/// `Ok` holds an outcome for every item. If `ctx` ends before every item has started, the calls that
/// started are waited for and the result is [`MapError::Cancelled`], never a shorter list: a
/// position with no outcome cannot be told from the next one. To keep the outcomes of the calls
/// that ran, spawn them on a [`ResultGroup`] under `ctx`, whose `wait` returns each spawned call's
/// value in order.
///
/// # Errors
///
/// As [`map_results`], and [`MapError::Cancelled`] with `ctx`'s cause when it ended before every
/// item started.
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
/// let outcomes = bounded_group::map_results_with(&ctx, ["a", "bb"], 8, |_ctx, s: &str| async move {
///     Ok::<_, String>(s.len())
/// })
/// .await
/// .unwrap();
/// assert_eq!(outcomes, [Ok(1), Ok(2)]);
/// # }
/// ```
pub async fn map_results_with<I, F, Fut, U, E>(
    ctx: &Context,
    items: I,
    limit: usize,
    f: F,
) -> Result<Vec<Result<U, E>>, MapError<E>>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(Context, I::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
{
    // Each call's error is its value: the group itself never fails, so no error cancels the rest.
    let f = Arc::new(f);
    let outcomes = map_with(ctx, items, limit, move |ctx, item| {
        let call = f(ctx, item);
        async move { Ok::<_, std::convert::Infallible>(call.await) }
    })
    .await;
    match outcomes {
        Ok(outcomes) => Ok(outcomes),
        Err(MapError::InvalidLimit(limit)) => Err(MapError::InvalidLimit(limit)),
        Err(MapError::Cancelled(cause)) => Err(MapError::Cancelled(cause)),
        Err(MapError::Failed(never)) => match never {},
    }
}

/// Runs `f` on every item, at most `limit` at a time, concurrently *inside the caller's task*: the
/// items and `f` may borrow (`&mut` items from `iter_mut()`, locals of the caller), because nothing is
/// spawned (conc's `iter.ForEach`). The first error stops taking items, drops the calls still running,
/// and is returned.
///
/// # The price
///
/// Every call is polled by the caller's task, on one thread at a time: calls that wait (I/O, timers)
/// overlap, but CPU work in one call holds up the others and the caller. For work that must run in
/// parallel, or outlive the caller's borrow, use [`for_each`] (which spawns).
///
/// # Errors
///
/// [`MapError::Failed`] with the first error; [`MapError::InvalidLimit`] for a limit of 0 or above
/// [`MAX_LIMIT`](crate::MAX_LIMIT), before anything runs.
///
/// # Panics
///
/// A panic in `f` unwinds into the caller, as any panic in its own task would.
///
/// # Cancel safety
///
/// Dropping the future drops the calls in flight; items not yet started are not touched.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut prices = vec![100u32, 250, 75];
/// let rate = 2; // a local, borrowed by every call
/// bounded_group::for_each_borrowed(prices.iter_mut(), 2, |price| async move {
///     tokio::task::yield_now().await; // a call that waits
///     *price *= rate;
///     Ok::<_, String>(())
/// })
/// .await
/// .unwrap();
/// assert_eq!(prices, [200, 500, 150]);
/// # }
/// ```
pub async fn for_each_borrowed<I, F, Fut, E>(
    items: I,
    limit: usize,
    mut f: F,
) -> Result<(), MapError<E>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    use futures_util::StreamExt;
    use futures_util::stream::FuturesUnordered;

    let limit = MapError::check(limit)?;
    let mut items = items.into_iter();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < limit {
            match items.next() {
                Some(item) => running.push(f(item)),
                None => break,
            }
        }
        match running.next().await {
            Some(Ok(())) => {}
            Some(Err(err)) => return Err(MapError::Failed(err)),
            None => return Ok(()),
        }
    }
}
