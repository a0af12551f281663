//! [`Stage`]: the last stage of a pipeline being built, and the bounds every stage takes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bounded_cancel::Context;
use bounded_sync::runtime::BoxIfLarge;

use crate::link::{Link, Producer};
use crate::shared::{Counters, Item, Owner, Shared};
use crate::{Output, PipelineError, ordered, worker};

/// Items each stage's output channel holds unless [`Stage::buffer`] says otherwise.
pub const DEFAULT_BUFFER: usize = 16;

/// The most workers a stage runs. Each is a tokio task for the life of the pipeline; more than this is
/// almost always a unit mistake. More is an [`Invalid`](PipelineError::Invalid) pipeline.
pub const MAX_WORKERS: usize = 65_536;

/// The largest buffer a stage takes. A buffer's memory follows the items it holds, never its bound, so
/// a large bound costs nothing until it fills. More is an [`Invalid`](PipelineError::Invalid) pipeline.
pub const MAX_BUFFER: usize = 1 << 60;

/// Starts a stage's tasks, given its counters and the link its output goes to.
pub(crate) type Spawner<T> = Box<dyn FnOnce(Arc<Counters>, &Arc<Link<Item<T>>>) + Send>;

/// The last stage of a pipeline being built, producing items of type `T`.
///
/// A stage's workers start when the next stage (or the [`Output`]) is attached, once the size of its
/// output channel is known. Dropping a `Stage` stops everything built so far.
///
/// # Examples
///
/// ```
/// # use bounded_cancel::Context;
/// # use bounded_pipeline::Pipeline;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out = Pipeline::new(&Context::new())
///     .source(1..=100u64)
///     .map(8, |_ctx, n| async move { Ok::<_, String>(n * n) })
///     .named("square")
///     .buffer(32)
///     .filter_map(2, |_ctx, n| async move { Ok(if n % 2 == 0 { Some(n) } else { None }) })
///     .output();
/// assert_eq!(out.try_collect().await.unwrap().len(), 50);
/// # }
/// ```
pub struct Stage<T, E> {
    owner: Owner<E>,
    spawn: Spawner<T>,
    name: String,
    workers: usize,
    capacity: usize,
}

impl<T, E> Stage<T, E> {
    /// The first stage: a source's one task, with the default buffer.
    pub(crate) fn source(owner: Owner<E>, spawn: Spawner<T>) -> Self {
        Stage {
            owner,
            spawn,
            name: "source".into(),
            workers: 1,
            capacity: DEFAULT_BUFFER,
        }
    }
}

impl<T: Send + 'static, E: Send + 'static> Stage<T, E> {
    /// Starts this stage's tasks on a new link, read by `consumers` tasks, and hands the link back.
    fn attach(self, consumers: usize) -> (Owner<E>, Arc<Link<Item<T>>>) {
        let Stage {
            owner,
            spawn,
            name,
            workers,
            capacity,
        } = self;
        if capacity == 0 {
            owner.shared.fail(PipelineError::Invalid(format!(
                "stage `{name}` was given a buffer of 0: give it room for at least 1 item"
            )));
        }
        if capacity > MAX_BUFFER {
            owner.shared.fail(PipelineError::Invalid(format!(
                "stage `{name}` was given a buffer of {capacity}: the most a buffer holds is \
                 {MAX_BUFFER}, and its memory follows what it holds, so a smaller bound costs nothing"
            )));
        }
        // The link counts what its consumers hold as well as what is queued: room for both. Both are
        // within their maximums here, so the sum cannot overflow.
        let link = Link::new(capacity.clamp(1, MAX_BUFFER) + consumers, consumers);
        let counters = owner.shared.add_stage(name, workers);
        spawn(counters, &link);
        (owner, link)
    }

    /// The workers a stage gets: as asked, or (for a count that is refused) 1, since the pipeline has
    /// failed and will not run anyway.
    fn checked_workers(&self, kind: &str, workers: usize) -> usize {
        if workers == 0 {
            self.owner.shared.fail(PipelineError::Invalid(format!(
                "stage `{kind}` was given 0 workers: give it at least 1"
            )));
            return 1;
        }
        if workers > MAX_WORKERS {
            self.owner.shared.fail(PipelineError::Invalid(format!(
                "stage `{kind}` was given {workers} workers: a stage runs at most {MAX_WORKERS}"
            )));
            return 1;
        }
        workers
    }

    /// A stage of `workers` workers running `f` on each item as it arrives, passing results on in the
    /// order they finish.
    ///
    /// `f` gets the pipeline's context (cancelled when the pipeline stops) and the item. An `Err`
    /// stops the pipeline (or goes to the [`skip_errors`](crate::Pipeline::skip_errors) handler).
    /// Zero workers is a [`PipelineError::Invalid`] from the output.
    ///
    /// Each worker starts as a tokio task of its own. On a multi-thread runtime, the workers of a
    /// stage of at most 16 whose calls of `f` stay quick (under 250 ns, timed now and then) move into
    /// one task, so that cheap items are not handed between the runtime's threads; once calls take
    /// longer, or a few slow ones (say one in a hundred, computing for a millisecond) fill the
    /// stage's time, every worker goes back to a task of its own for good. This applies to
    /// `filter_map` and `map_ordered` too.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut sums = Pipeline::new(&Context::new())
    ///     .source(0..10u32)
    ///     .map(4, |_ctx, n| async move { Ok::<_, String>(n + 1) })
    ///     .output()
    ///     .try_collect()
    ///     .await
    ///     .unwrap();
    /// sums.sort();
    /// assert_eq!(sums, (1..=10).collect::<Vec<_>>());
    /// # }
    /// ```
    pub fn map<U, F, Fut>(self, workers: usize, f: F) -> Stage<U, E>
    where
        U: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
    {
        if BoxIfLarge::<Fut>::YES {
            return self.map_as_is(workers, boxing(f));
        }
        self.map_as_is(workers, f)
    }

    fn map_as_is<U, F, Fut>(self, workers: usize, f: F) -> Stage<U, E>
    where
        U: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
    {
        self.unordered("map", workers, move |ctx, item| {
            let fut = f(ctx, item);
            async move { fut.await.map(Some) }
        })
    }

    /// Each item becomes any number of items (none, one or many): `f` returns something to iterate,
    /// whose items go on in the order it yields them. Items it yields carry the index of the item they
    /// came from, in errors and skip reports.
    ///
    /// # Backpressure
    ///
    /// A worker reserves a place downstream for each item it passes on, so a call that yields many
    /// items waits for room between them, and the stage never holds more than its output link allows.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut words = Pipeline::new(&Context::new())
    ///     .source(["a b", "", "c d e"])
    ///     .flat_map(2, |_ctx, line: &str| async move {
    ///         Ok::<_, String>(line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    ///     })
    ///     .output()
    ///     .try_collect()
    ///     .await
    ///     .unwrap();
    /// words.sort();
    /// assert_eq!(words, ["a", "b", "c", "d", "e"]);
    /// # }
    /// ```
    pub fn flat_map<I, F, Fut>(self, workers: usize, f: F) -> Stage<I::Item, E>
    where
        I: IntoIterator + Send + 'static,
        I::IntoIter: Send,
        I::Item: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<I, E>> + Send + 'static,
    {
        if BoxIfLarge::<Fut>::YES {
            return self.flat_map_as_is(workers, boxing(f));
        }
        self.flat_map_as_is(workers, f)
    }

    fn flat_map_as_is<I, F, Fut>(self, workers: usize, f: F) -> Stage<I::Item, E>
    where
        I: IntoIterator + Send + 'static,
        I::IntoIter: Send,
        I::Item: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<I, E>> + Send + 'static,
    {
        let f = Arc::new(move |ctx, item| {
            let fut = f(ctx, item);
            async move { fut.await.map(Some) }
        });
        self.stage_of_workers("flat_map", workers, f, false, worker::run_flat)
    }

    /// [`map`](Stage::map), dropping the items for which `f` returns `Ok(None)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let big = Pipeline::new(&Context::new())
    ///     .source(0..10u32)
    ///     .filter_map(2, |_ctx, n| async move { Ok::<_, String>((n >= 8).then_some(n)) })
    ///     .output()
    ///     .try_collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(big.len(), 2);
    /// # }
    /// ```
    pub fn filter_map<U, F, Fut>(self, workers: usize, f: F) -> Stage<U, E>
    where
        U: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<U>, E>> + Send + 'static,
    {
        if BoxIfLarge::<Fut>::YES {
            return self.unordered("filter_map", workers, boxing(f));
        }
        self.unordered("filter_map", workers, f)
    }

    /// [`map`](Stage::map), passing results on in the order the items arrived.
    ///
    /// Workers still run in parallel; a reorder buffer holds finished items until the ones before them
    /// are passed on. It is bounded: at most `2 × workers` items are taken but not yet passed on, so
    /// one slow item stops intake rather than growing memory.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let same_order = Pipeline::new(&Context::new())
    ///     .source(0..8u64)
    ///     .map_ordered(4, |_ctx, n| async move {
    ///         tokio::time::sleep(Duration::from_millis(80 - n * 10)).await; // later items finish first
    ///         Ok::<_, String>(n)
    ///     })
    ///     .output()
    ///     .try_collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(same_order, (0..8).collect::<Vec<_>>());
    /// # }
    /// ```
    pub fn map_ordered<U, F, Fut>(self, workers: usize, f: F) -> Stage<U, E>
    where
        U: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
    {
        if BoxIfLarge::<Fut>::YES {
            return self.map_ordered_as_is(workers, boxing(f));
        }
        self.map_ordered_as_is(workers, f)
    }

    fn map_ordered_as_is<U, F, Fut>(self, workers: usize, f: F) -> Stage<U, E>
    where
        U: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
    {
        let workers = self.checked_workers("map_ordered", workers);
        let (owner, input) = self.attach(workers);
        let shared = Arc::clone(&owner.shared);
        let spawn: Spawner<U> = Box::new(move |counters, link| {
            let f = move |ctx, item| {
                let fut = f(ctx, item);
                async move { fut.await.map(Some) }
            };
            ordered::spawn(&shared, counters, workers, input, link.producer(), f);
        });
        Stage {
            owner,
            spawn,
            name: "map_ordered".into(),
            workers,
            capacity: DEFAULT_BUFFER,
        }
    }

    fn unordered<U, F, Fut>(self, kind: &str, workers: usize, f: F) -> Stage<U, E>
    where
        U: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<U>, E>> + Send + 'static,
    {
        self.stage_of_workers(kind, workers, Arc::new(f), true, worker::run)
    }

    /// A stage of `workers` workers, each running `run` on the stage's input, its own producer and a
    /// share of the stage function `f`; `hostable` if its workers time their calls, so that they may
    /// share one task while the calls are quick (see `host`).
    fn stage_of_workers<U, F, W, Fut>(
        self,
        kind: &str,
        workers: usize,
        f: Arc<F>,
        hostable: bool,
        run: W,
    ) -> Stage<U, E>
    where
        U: Send + 'static,
        F: Send + Sync + 'static,
        W: Fn(Arc<Shared<E>>, Arc<Counters>, Arc<Link<Item<T>>>, Producer<Item<U>>, Arc<F>) -> Fut
            + Send
            + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let workers = self.checked_workers(kind, workers);
        let (owner, input) = self.attach(workers);
        let shared = Arc::clone(&owner.shared);
        let spawn: Spawner<U> = Box::new(move |counters, link| {
            // Every producer is made before any worker runs: a worker that ended before the next
            // producer existed would close the link behind it (the link's invariant 3).
            let outs: Vec<Producer<Item<U>>> = (0..workers).map(|_| link.producer()).collect();
            let runs = outs
                .into_iter()
                .zip(worker::shares(f, workers))
                .map(|(out, share)| {
                    run(shared.clone(), counters.clone(), input.clone(), out, share)
                });
            crate::host::spawn_workers(&shared, &counters, runs, hostable);
        });
        Stage {
            owner,
            spawn,
            name: kind.into(),
            workers,
            capacity: DEFAULT_BUFFER,
        }
    }

    /// Sets how many items this stage's output channel holds ([`DEFAULT_BUFFER`] unless set). A
    /// buffer of 0 is a [`PipelineError::Invalid`] from the output.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let stage = Pipeline::<String>::new(&Context::new()).source(0..10).buffer(64);
    /// # drop(stage);
    /// # }
    /// ```
    pub fn buffer(self, capacity: usize) -> Self {
        Stage { capacity, ..self }
    }

    /// Names this stage in [`Output::metrics`] and in errors.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let stage = Pipeline::<String>::new(&Context::new()).source(0..10).named("orders");
    /// # drop(stage);
    /// # }
    /// ```
    pub fn named(self, name: impl Into<String>) -> Self {
        Stage {
            name: name.into(),
            ..self
        }
    }

    /// Starts the last stage and returns the pipeline's output: a [`Stream`](futures_util::Stream)
    /// of the items, ending with the pipeline's failure if it had one.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out = Pipeline::new(&Context::new()).source(0..3).output();
    /// let (items, failure) = out.collect().await;
    /// assert_eq!(items, [0, 1, 2]);
    /// assert!(failure.map(|e: bounded_pipeline::PipelineError<()>| e).is_none());
    /// # }
    /// ```
    pub fn output(self) -> Output<T, E> {
        let (owner, link) = self.attach(1);
        Output::new(owner, link)
    }
}

impl<T, E> fmt::Debug for Stage<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("buffer", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// `f`, each future it makes boxed as it is made: the stage functions whose futures are larger than
/// tokio's threshold for boxing a task's future run this way, as `tokio::spawn` boxes such a future,
/// since in a debug build each move of it through a worker's wrappers is a copy on the stack.
fn boxing<T, R, F, Fut>(f: F) -> impl Fn(Context, T) -> Pin<Box<Fut>> + Send + Sync + 'static
where
    F: Fn(Context, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    move |ctx, item| Box::pin(f(ctx, item))
}
