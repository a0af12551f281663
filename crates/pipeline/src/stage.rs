use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bounded_cancel::Context;
use futures_util::{FutureExt, Stream, StreamExt};

use crate::link::{Link, Producer};
use crate::shared::{Counters, ErrorHandler, Item, Owner, Shared};
use crate::{Output, PipelineError, ordered, worker};

/// Items each stage's output channel holds unless [`Stage::buffer`] says otherwise.
pub const DEFAULT_BUFFER: usize = 16;

/// Starts a stage's tasks, given its counters and the link its output goes to.
/// The most workers a stage runs. Each is a tokio task for the life of the pipeline; more than this is
/// almost always a unit mistake. More is an [`Invalid`](PipelineError::Invalid) pipeline.
pub const MAX_WORKERS: usize = 65_536;

/// The largest buffer a stage takes. A buffer's memory follows the items it holds, never its bound, so
/// a large bound costs nothing until it fills. More is an [`Invalid`](PipelineError::Invalid) pipeline.
pub const MAX_BUFFER: usize = 1 << 60;

type Spawner<T> = Box<dyn FnOnce(Arc<Counters>, &Arc<Link<Item<T>>>) + Send>;

/// The start of a pipeline: its context and its error policy. [`source`](Pipeline::source) gives the
/// first [`Stage`].
///
/// The pipeline runs under a child of the context given to [`new`](Pipeline::new): cancelling that
/// context stops every stage, and the output ends with the cause.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_pipeline::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let lengths = Pipeline::new(&Context::new())
///     .source(["a", "bb", "ccc"])
///     .map_ordered(2, |_ctx, s: &str| async move { Ok::<_, String>(s.len()) })
///     .output()
///     .try_collect()
///     .await
///     .unwrap();
/// assert_eq!(lengths, [1, 2, 3]);
/// # }
/// ```
pub struct Pipeline<E> {
    ctx: Context,
    on_error: Option<ErrorHandler<E>>,
}

impl<E: Send + 'static> Pipeline<E> {
    /// A pipeline under a child of `parent`, failing fast on the first error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// let app = Context::new();
    /// let pipeline: Pipeline<std::io::Error> = Pipeline::new(&app);
    /// ```
    pub fn new(parent: &Context) -> Self {
        Pipeline {
            ctx: parent.child(),
            on_error: None,
        }
    }

    /// Skip mode: a stage function's error goes to `handler` with the item's position in the source
    /// (from 0), the item is dropped, and the rest flow on. Panics still stop the pipeline.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_pipeline::Pipeline;
    /// use std::sync::{Arc, Mutex};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let skipped = Arc::new(Mutex::new(Vec::new()));
    /// let log = skipped.clone();
    /// let evens = Pipeline::new(&Context::new())
    ///     .skip_errors(move |index, err: String| log.lock().unwrap().push((index, err)))
    ///     .source(0..6u32)
    ///     .map_ordered(2, |_ctx, n| async move { if n % 2 == 0 { Ok(n) } else { Err(format!("{n} is odd")) } })
    ///     .output()
    ///     .try_collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(evens, [0, 2, 4]);
    /// assert_eq!(skipped.lock().unwrap().len(), 3);
    /// # }
    /// ```
    pub fn skip_errors<H>(self, handler: H) -> Self
    where
        H: Fn(u64, E) + Send + Sync + 'static,
    {
        Pipeline {
            on_error: Some(Box::new(handler)),
            ..self
        }
    }

    /// The first stage: one task pulling `items`, only as fast as the stages after it take them.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime: the pipeline's tasks start here.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let all = Pipeline::new(&Context::new()).source(vec![1, 2, 3]).output();
    /// assert_eq!(all.try_collect().await.map_err(|e: bounded_pipeline::PipelineError<()>| e).unwrap(), [1, 2, 3]);
    /// # }
    /// ```
    pub fn source<I>(self, items: I) -> Stage<I::Item, E>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
    {
        self.source_stream(futures_util::stream::iter(items))
    }

    /// The first stage, from a [`Stream`]: one task polling it, only as fast as the stages after it
    /// take its items, and never again once the pipeline has stopped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime: the pipeline's tasks start here.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = tokio::sync::mpsc::channel(4);
    /// tokio::spawn(async move { for n in 0..3 { tx.send(n).await.unwrap(); } });
    /// let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|n| (n, rx)) });
    /// let out = Pipeline::new(&Context::new()).source_stream(stream).output();
    /// assert_eq!(out.try_collect().await.map_err(|e: bounded_pipeline::PipelineError<()>| e).unwrap(), [0, 1, 2]);
    /// # }
    /// ```
    pub fn source_stream<S>(self, stream: S) -> Stage<S::Item, E>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        self.source_lifted(stream, Ok)
    }

    /// A fallible source: an iterator of `Result`s whose errors end the pipeline (fail fast) or go to
    /// the skip handler with their index (skip mode), exactly as a stage's errors do.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime: the pipeline's tasks start here.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_pipeline::{Pipeline, PipelineError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let lines = ["1", "2", "x", "4"].map(|l| l.parse::<u32>().map_err(|e| e.to_string()));
    /// let err = Pipeline::new(&Context::new())
    ///     .try_source(lines)
    ///     .output()
    ///     .try_collect()
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, PipelineError::Failed { index: 2, .. }));
    /// # }
    /// ```
    pub fn try_source<I, T>(self, items: I) -> Stage<T, E>
    where
        I: IntoIterator<Item = Result<T, E>>,
        I::IntoIter: Send + 'static,
        T: Send + 'static,
    {
        self.try_source_stream(futures_util::stream::iter(items))
    }

    /// A fallible stream source (a stream of `Result`s, such as lines read from a socket); see
    /// [`try_source`](Pipeline::try_source).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime: the pipeline's tasks start here.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use bounded_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let reads = futures_util::stream::iter([Ok(1), Err("disk error"), Ok(3)]);
    /// let (kept, failure) = Pipeline::new(&Context::new())
    ///     .skip_errors(|index, err| eprintln!("record {index} skipped: {err}"))
    ///     .try_source_stream(reads)
    ///     .output()
    ///     .collect()
    ///     .await;
    /// assert_eq!((kept, failure.is_none()), (vec![1, 3], true));
    /// # }
    /// ```
    pub fn try_source_stream<S, T>(self, stream: S) -> Stage<T, E>
    where
        S: Stream<Item = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        self.source_lifted(stream, |item| item)
    }

    /// The source task: pulls `stream`, turns each item into a value or an error with `lift`.
    fn source_lifted<S, T>(self, stream: S, lift: fn(S::Item) -> Result<T, E>) -> Stage<T, E>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        T: Send + 'static,
    {
        let shared = Arc::new(Shared::new(self.ctx, self.on_error));
        // The pipeline's watchman: once its context ends, for whatever reason, every task stops.
        let watch = Arc::clone(&shared);
        shared.spawn_watch(async move {
            watch.ctx.cancelled().await;
            watch.abort_all();
        });
        let source = Arc::clone(&shared);
        let spawn: Spawner<T> = Box::new(move |counters, link| {
            let task = Arc::clone(&source);
            let mut out = link.producer();
            let stage = counters.name.clone();
            source.spawn_stage(&stage, async move {
                // Boxed so that it can be dropped before the task ends, under `catch_unwind`.
                let mut stream = Box::pin(stream);
                let mut index = 0;
                // Told once per run of items (before each reservation of places), when the source
                // goes quiet and at the end, not twice per item.
                let mut tally = Tally::new(&counters);
                // The context is checked before every pull, so a stopped pipeline pulls nothing more;
                // a place downstream is reserved before every pull, so the source runs no further ahead
                // than the links after it hold.
                let mut ran_out = false;
                while !task.ctx.is_cancelled() {
                    if !out.has_place() {
                        tally.tell();
                        out.reserve().await;
                    }
                    // The stream is the caller's code: a panic in it is the pipeline's failure.
                    let pulled = match AssertUnwindSafe(stream.next())
                        .catch_unwind()
                        .now_or_never()
                    {
                        Some(pulled) => pulled,
                        None => {
                            // The source is quiet: pass on what is in hand (keeping only the
                            // place reserved for the next item) before waiting for it.
                            tally.tell();
                            out.flush_keeping_one();
                            AssertUnwindSafe(stream.next()).catch_unwind().await
                        }
                    };
                    let value = match pulled {
                        Ok(Some(value)) => value,
                        Ok(None) => {
                            ran_out = true;
                            break;
                        }
                        Err(payload) => {
                            let stage = counters.name.clone();
                            task.fail(PipelineError::Panicked {
                                stage,
                                index,
                                payload: payload.into(),
                            });
                            break;
                        }
                    };
                    tally.pulled += 1;
                    match lift(value) {
                        Ok(value) => {
                            out.push(Item { index, value });
                            tally.passed += 1;
                        }
                        Err(error) => {
                            // A source's error is handled as a stage's: skipped, or the end.
                            out.unreserve();
                            if !task.error(&counters, index, error) {
                                break;
                            }
                        }
                    }
                    index += 1;
                }
                // The stream is the caller's code when it is dropped too (an iterator that cleans
                // up): a panic there is the pipeline's failure, at the source's position, recorded
                // before the link closes.
                if let Err(payload) =
                    std::panic::catch_unwind(AssertUnwindSafe(move || drop(stream)))
                {
                    task.fail(PipelineError::Panicked {
                        stage: counters.name.clone(),
                        index,
                        payload: payload.into(),
                    });
                }
                // Told before the output can see the end (the link closes when `out` is dropped);
                // a source aborted mid-run tells as its tally is dropped.
                tally.tell();
                // Stopped before the stream ran out, it cut the pipeline short, and says so before
                // its link closes.
                if !ran_out {
                    task.cut_short();
                }
            });
        });
        Stage {
            owner: Owner { shared },
            spawn,
            name: "source".into(),
            workers: 1,
            capacity: DEFAULT_BUFFER,
        }
    }
}

impl<E> fmt::Debug for Pipeline<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("ctx", &self.ctx)
            .field("skip_errors", &self.on_error.is_some())
            .finish()
    }
}

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
    /// `f` gets the pipeline's context (cancelled when the pipeline stops) and the item. An `Err` stops
    /// the pipeline (or goes to the [`skip_errors`](Pipeline::skip_errors) handler). Zero workers is an
    /// [`PipelineError::Invalid`] from the output.
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

    /// Starts the last stage and returns the pipeline's output: a [`Stream`] of the items, ending with
    /// the pipeline's failure if it had one.
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

/// A source's items pulled and passed on since its stage's counters were last told.
struct Tally<'a> {
    counters: &'a Counters,
    pulled: usize,
    passed: usize,
}

impl<'a> Tally<'a> {
    fn new(counters: &'a Counters) -> Self {
        Tally {
            counters,
            pulled: 0,
            passed: 0,
        }
    }

    fn tell(&mut self) {
        self.counters.add_in(std::mem::take(&mut self.pulled));
        self.counters.add_out(std::mem::take(&mut self.passed));
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.tell();
    }
}
