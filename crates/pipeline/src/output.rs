use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use bounded_cancel::Context;
use futures_util::Stream;
use futures_util::stream::FusedStream;

use crate::link::{Consumer, Link};
use crate::shared::{Item, Owner};
use crate::{Collect, ForEach, MetricsHandle, PipelineError, StageMetrics, TryCollect};

/// The end of a pipeline: a [`Stream`] of `Ok` items that ends, if the pipeline stopped early, with
/// one `Err` saying why.
///
/// Dropping it cancels the pipeline's context and aborts every stage's tasks.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_pipeline::Pipeline;
/// use futures_util::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut out = Pipeline::new(&Context::new())
///     .source(0..1_000_000u64)
///     .map(4, |_ctx, n| async move { Ok::<_, String>(n) })
///     .output();
/// let first = out.next().await.unwrap().unwrap();
/// drop(out); // the other 999,999 are never pulled: every stage is stopped
/// # let _ = first;
/// # }
/// ```
#[must_use = "a pipeline's output does nothing unless read, and dropping it stops the pipeline"]
pub struct Output<T, E> {
    input: Consumer<Item<T>>,
    /// Items taken from the link and not yet yielded.
    taken: VecDeque<Item<T>>,
    /// Items taken in the last batch, whose places go back once all of them are yielded.
    in_hand: usize,
    owner: Owner<E>,
    ended: bool,
    /// It has yielded `None`.
    terminated: bool,
}

// Nothing in an output is pinned in place: the items are only moved out.
impl<T, E> Unpin for Output<T, E> {}

impl<T: Send + 'static, E> Output<T, E> {
    pub(crate) fn new(owner: Owner<E>, link: Arc<Link<Item<T>>>) -> Self {
        Output {
            input: link.consumer(),
            taken: VecDeque::new(),
            in_hand: 0,
            owner,
            ended: false,
            terminated: false,
        }
    }

    /// A handle that reads the stage metrics from anywhere, and after the output is consumed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out = Pipeline::<()>::new(&Context::new()).source(0..5).output();
    /// let metrics = out.metrics_handle();
    /// out.collect().await;
    /// assert_eq!(metrics.snapshot()[0].items_out, 5);
    /// # }
    /// ```
    pub fn metrics_handle(&self) -> MetricsHandle {
        MetricsHandle::new(self.owner.shared.stages())
    }

    /// Each stage's counters, the source first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out = Pipeline::<()>::new(&Context::new()).source(0..5).named("ids").output();
    /// assert_eq!(out.metrics()[0].name, "ids");
    /// # }
    /// ```
    pub fn metrics(&self) -> Vec<StageMetrics> {
        self.owner.shared.metrics()
    }

    /// The pipeline's context, the one its stage functions receive.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out = Pipeline::<()>::new(&Context::new()).source(0..5).output();
    /// out.context().cancel(); // stops every stage
    /// # }
    /// ```
    pub fn context(&self) -> &Context {
        &self.owner.shared.ctx
    }

    /// Every item, or the first failure.
    ///
    /// # Errors
    ///
    /// The [`PipelineError`] that stopped the pipeline: the first error as the identical value (fail
    /// fast), a panic with its payload, the context's cause, or a stage built with a zero.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the output, which stops every stage (see [`Output`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out = Pipeline::new(&Context::new()).source(0..3).map_ordered(2, |_c, n| async move { Ok::<_, ()>(n) });
    /// assert_eq!(out.output().try_collect().await.unwrap(), [0, 1, 2]);
    /// # }
    /// ```
    pub fn try_collect(self) -> TryCollect<T, E> {
        TryCollect::new(self)
    }

    /// Everything that came out, and how the pipeline ended (`None`: its source ran dry).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the output, which stops every stage (see [`Output`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out = Pipeline::new(&Context::new())
    ///     .source(0..10u32)
    ///     .map_ordered(1, |_c, n| async move { if n < 3 { Ok(n) } else { Err("too big") } })
    ///     .output();
    /// let (items, failure) = out.collect().await;
    /// assert_eq!(items, [0, 1, 2]);
    /// assert_eq!(failure.unwrap().into_error(), Some("too big"));
    /// # }
    /// ```
    pub fn collect(self) -> Collect<T, E> {
        Collect::new(self)
    }

    /// Runs `f` on each item as it comes out, one at a time; the stages keep working meanwhile, up to
    /// their buffers.
    ///
    /// # Errors
    ///
    /// As [`try_collect`](Output::try_collect); `f` has seen every item that came out before it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the output, which stops every stage (see [`Output`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut total = 0;
    /// Pipeline::<()>::new(&Context::new()).source(1..=4).output().for_each(|n| { total += n; async {} }).await.unwrap();
    /// assert_eq!(total, 10);
    /// # }
    /// ```
    pub fn for_each<F, Fut>(self, f: F) -> ForEach<T, E, F, Fut>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = ()>,
    {
        ForEach::new(self, f)
    }
}

impl<T, E> Output<T, E> {
    /// Ends the pipeline because the consumer's own code panicked on the `index`th item it was given.
    pub(crate) fn stop_with_panic(
        &mut self,
        index: u64,
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) -> PipelineError<E> {
        self.ended = true;
        let shared = &self.owner.shared;
        shared.ctx.cancel();
        shared.abort_all();
        PipelineError::Panicked {
            stage: "for_each".to_owned(),
            index,
            payload: payload.into(),
        }
    }
}

impl<T: Send + 'static, E> Stream for Output<T, E> {
    type Item = Result<T, PipelineError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            this.terminated = true;
            return Poll::Ready(None);
        }
        // Each item spends the reader's tokio budget, as a receive from a tokio channel does: a
        // reader whose stages keep up with it (or whose last buffer is full) yields every so often
        // instead of keeping its thread from the runtime's other tasks. Out of budget, nothing is
        // taken; waiting for an item gives the unit back.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        loop {
            if let Some(item) = this.taken.pop_front() {
                coop.made_progress();
                return Poll::Ready(Some(Ok(item.value)));
            }
            // The batch in hand is all yielded: its places go back as more are taken, under one
            // lock, and before the output waits if nothing is queued.
            // The output is the link's only consumer: it takes all that is queued, which moves by
            // one swap of buffers when its batch is empty (as it is here).
            let done = std::mem::take(&mut this.in_hand);
            let took =
                match (this.input).done_and_try_take(done, usize::MAX, false, &mut this.taken) {
                    Some(took) => took,
                    None => ready!(this.input.poll_take(cx, usize::MAX, false, &mut this.taken)),
                };
            if took {
                this.in_hand = this.taken.len();
                continue;
            }
            // Every stage has ended and the last link is empty; say why if it was early. The watch
            // task is all that is left: stop it now rather than when the output is dropped.
            this.ended = true;
            let shared = &this.owner.shared;
            shared.abort_all();
            coop.made_progress();
            let end = shared.ended_early().map(Err);
            this.terminated = end.is_none();
            return Poll::Ready(end);
        }
    }
}

/// Once it has yielded `None` (after the `Err` that says why, if the pipeline stopped early), it
/// yields `None` for ever: usable in `futures::select!` as it is.
impl<T: Send + 'static, E> FusedStream for Output<T, E> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<T, E> fmt::Debug for Output<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("metrics", &self.owner.shared.metrics())
            .field("ended", &self.ended)
            .finish()
    }
}
