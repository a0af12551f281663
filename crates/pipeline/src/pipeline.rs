//! [`Pipeline`]: the start of a pipeline, and its source's task.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bounded_cancel::Context;
use futures_util::{FutureExt, Stream, StreamExt};

use crate::PipelineError;
use crate::shared::{Counters, ErrorHandler, Item, Owner, Shared};
use crate::stage::{Spawner, Stage};

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
        Stage::source(Owner { shared }, spawn)
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
