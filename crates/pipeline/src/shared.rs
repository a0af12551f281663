//! What every task of one pipeline shares: its context, the first failure, the stages' counters, and
//! the abort handles that stop it all.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use bounded_cancel::Context;
use bounded_cancel::live::TaskCounter;
use bounded_sync::Mutex;
use bounded_sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use bounded_sync::slow::LongPolls;
use tokio::task::AbortHandle;

use crate::{PipelineError, StageMetrics};

pub(crate) type ErrorHandler<E> = Box<dyn Fn(u64, E) + Send + Sync>;

pub(crate) struct Item<T> {
    pub(crate) index: u64,
    pub(crate) value: T,
}

pub(crate) struct Counters {
    pub(crate) name: String,
    pub(crate) workers: usize,
    pub(crate) items_in: AtomicU64,
    pub(crate) items_out: AtomicU64,
    pub(crate) busy: AtomicUsize,
    pub(crate) errors: AtomicU64,
    /// Set by a worker whose items compute enough that the stage runs faster on every thread than
    /// in one task, or from the start for a stage that is never hosted (see `host`).
    pub(crate) spread: AtomicBool,
    /// The long calls its workers timed, picked at random: once they fill the stage's time, it
    /// spreads (see `host`).
    pub(crate) long_calls: Mutex<LongPolls>,
    #[cfg(feature = "metrics")]
    pub(crate) exported: crate::export::Exported,
}

impl Counters {
    pub(crate) fn new(name: String, workers: usize) -> Self {
        Counters {
            #[cfg(feature = "metrics")]
            exported: crate::export::Exported::new(&name),
            name,
            workers,
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            errors: AtomicU64::new(0),
            spread: AtomicBool::new(false),
            long_calls: Mutex::new(LongPolls::new(crate::host::SAMPLE_EVERY)),
        }
    }

    pub(crate) fn add_in(&self, n: usize) {
        if n > 0 {
            self.items_in.fetch_add(n as u64, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            self.exported.items_in.increment(n as u64);
        }
    }

    pub(crate) fn add_out(&self, n: usize) {
        if n > 0 {
            self.items_out.fetch_add(n as u64, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            self.exported.items_out.increment(n as u64);
        }
    }

    pub(crate) fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.exported.errors.increment(1);
    }

    pub(crate) fn busy(&self, by: isize) {
        if by > 0 {
            self.busy.fetch_add(by.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.busy.fetch_sub(by.unsigned_abs(), Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        self.exported.busy.add(by as i64);
    }
}

pub(crate) struct Shared<E> {
    pub(crate) ctx: Context,
    failure: Mutex<Option<PipelineError<E>>>,
    on_error: Option<ErrorHandler<E>>,
    stages: Arc<Mutex<Vec<Arc<Counters>>>>,
    tasks: TaskCounter,
    handles: Mutex<Vec<AbortHandle>>,
    /// Set before the pipeline aborts its tasks: a task dropped unfinished after this was stopped by
    /// the pipeline; one dropped before it was lost to its runtime's shutdown.
    stopping: AtomicBool,
    /// Set when the pipeline stops before its end: a failure, the source stopping before it ran out,
    /// or a stage task dropped before it finished. Unset, the stages all ran to their end, and the
    /// output ends with no error even if the context ended after them.
    cut_short: AtomicBool,
    /// Whether tokio's clock ran when a worker first asked, on a `current_thread` runtime (see
    /// [`Shared::batches_on_counter`]).
    clock_runs: OnceLock<bool>,
    /// The span current where the pipeline was built: the parent of every stage worker's span.
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl<E: Send + 'static> Shared<E> {
    pub(crate) fn new(ctx: Context, on_error: Option<ErrorHandler<E>>) -> Self {
        Shared {
            ctx,
            failure: Mutex::new(None),
            on_error,
            stages: Arc::default(),
            tasks: TaskCounter::new("pipeline stage"),
            handles: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            cut_short: AtomicBool::new(false),
            clock_runs: OnceLock::new(),
            #[cfg(feature = "tracing")]
            span: tracing::Span::current(),
        }
    }

    /// Whether workers on a runtime of `threads` threads time their batches on the CPU's counter,
    /// a few nanoseconds a read where the system clock behind tokio's takes several times that, or
    /// on tokio's clock, so that a paused clock drives their choice in tests as it drives every
    /// other. A multi-thread runtime's clock always runs (tokio pauses only `current_thread` ones);
    /// on one thread, the first worker to ask looks once for the whole pipeline (a microsecond's
    /// spin, [`tokio_clock_runs`](bounded_sync::clock::tokio_clock_runs)).
    pub(crate) fn batches_on_counter(&self, threads: usize) -> bool {
        threads > 1
            || *self
                .clock_runs
                .get_or_init(bounded_sync::clock::tokio_clock_runs)
    }

    /// Spawns the pipeline's watch task, which no item passes through.
    pub(crate) fn spawn_watch<F>(self: &Arc<Self>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(None, fut);
    }

    /// Spawns one of the pipeline's tasks: of `stage`, or the watch task for `None`. A task
    /// dropped before it finished, unless the pipeline stopped it, fails the pipeline as
    /// [`PipelineError::Lost`]: its runtime shut down; a stage's task dropped unfinished also cut
    /// the pipeline short.
    fn spawn<F>(self: &Arc<Self>, stage: Option<&str>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Before the task exists, whose drop unstarted would count as lost.
        let runtime = bounded_sync::runtime::current("a pipeline was built");
        let fut = Watched {
            lost: Lost {
                shared: Arc::clone(self),
                stage: stage.unwrap_or_default().to_owned(),
                of_stage: stage.is_some(),
                finished: false,
            },
            fut,
        };
        let handle = runtime.spawn(self.tasks.track(fut)).abort_handle();
        let mut handles = self.handles.lock();
        // A task spawned while `abort_all` runs: either it finds the handle in the list, or this
        // sees `stopping`, which it sets before it takes the list's lock.
        if self.stopping.load(Ordering::Acquire) {
            handle.abort();
        }
        handles.push(handle);
    }

    /// Spawns one of a stage's tasks, in a `pipeline stage` span (with the `tracing` feature) whose
    /// parent is the span current where the pipeline was built.
    pub(crate) fn spawn_stage<F>(self: &Arc<Self>, stage: &str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        #[cfg(feature = "tracing")]
        let fut = tracing::Instrument::instrument(
            fut,
            tracing::info_span!(
                target: "bounded_pipeline",
                parent: &self.span,
                "pipeline stage",
                stage = %stage
            ),
        );
        self.spawn(Some(stage), fut);
    }

    pub(crate) fn add_stage(&self, name: String, workers: usize) -> Arc<Counters> {
        let counters = Arc::new(Counters::new(name, workers));
        self.stages.lock().push(Arc::clone(&counters));
        counters
    }

    /// Records the first failure and stops the pipeline; later failures are consequences, not causes.
    ///
    /// A failure that comes after the pipeline's context has ended for another reason (a parent
    /// cancelled, a deadline, a shutdown, the output dropped) is not recorded: the stage produced it
    /// answering that end, whose cause the output reports. The check is made under the failure lock, and
    /// a failure recorded here is stored before it cancels the context, so the order is never a race:
    /// whichever of "a failure" or "an outside end" came first is what the output says.
    pub(crate) fn fail(&self, failure: PipelineError<E>) {
        let mut slot = self.failure.lock();
        // A pipeline built wrong says so whatever else happened.
        let invalid = matches!(failure, PipelineError::Invalid(_));
        let recorded = slot.is_none() && (invalid || !self.ctx.is_cancelled());
        #[cfg(feature = "tracing")]
        let event = recorded.then(|| describe(&failure));
        if recorded {
            *slot = Some(failure);
        }
        drop(slot);
        self.cut_short();
        #[cfg(feature = "tracing")]
        if let Some((stage, what)) = event {
            tracing::error!(
                target: "bounded_pipeline",
                parent: &self.span,
                stage,
                "the pipeline failed: {what}"
            );
        }
        self.ctx.cancel();
    }

    /// A stage function's error: handed to the skip handler (and the item dropped), or the end of the
    /// pipeline. Returns whether the stage goes on.
    pub(crate) fn error(&self, counters: &Counters, index: u64, error: E) -> bool {
        counters.add_error();
        match &self.on_error {
            Some(handler) => {
                // The handler is the caller's code: a panic in it is the pipeline's failure, never a
                // worker that dies quietly with the items it held.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handler(index, error)
                })) {
                    Ok(()) => true,
                    Err(payload) => {
                        self.fail(PipelineError::Panicked {
                            stage: counters.name.clone(),
                            index,
                            payload: payload.into(),
                        });
                        false
                    }
                }
            }
            None => {
                self.fail(PipelineError::Failed {
                    stage: counters.name.clone(),
                    index,
                    error,
                });
                false
            }
        }
    }
}

impl<E> Shared<E> {
    /// Stops every task of the pipeline: they are dropped at their next await, and the channels they
    /// held close behind them.
    pub(crate) fn abort_all(&self) {
        // Release: a task dropped by this abort reads it, and does not count itself lost.
        self.stopping.store(true, Ordering::Release);
        for handle in self.handles.lock().iter() {
            handle.abort();
        }
    }

    pub(crate) fn take_failure(&self) -> Option<PipelineError<E>> {
        self.failure.lock().take()
    }

    /// Records that the pipeline stops before its end (see [`Shared::ended_early`]).
    pub(crate) fn cut_short(&self) {
        // Release: the output reads it after the links this task holds have closed.
        self.cut_short.store(true, Ordering::Release);
    }

    /// Why the pipeline ended, read by the output once the last link has closed and is empty: the
    /// first failure, or the context's cause if something stopped before its end. A context that
    /// ended after every stage ran to its end stopped nothing, and is no error.
    pub(crate) fn ended_early(&self) -> Option<PipelineError<E>> {
        self.take_failure().or_else(|| {
            // Acquire: pairs with `cut_short`; the chain of closed links orders the two as well.
            self.cut_short
                .load(Ordering::Acquire)
                .then(|| self.ctx.cause().map(PipelineError::Cancelled))
                .flatten()
        })
    }

    pub(crate) fn metrics(&self) -> Vec<StageMetrics> {
        snapshot(&self.stages)
    }

    /// The stages' counters, shared: a handle that outlives the output reads them.
    pub(crate) fn stages(&self) -> Arc<Mutex<Vec<Arc<Counters>>>> {
        Arc::clone(&self.stages)
    }
}

pin_project_lite::pin_project! {
    /// A task of the pipeline, with what reports it lost if it is dropped unfinished.
    struct Watched<E, F>
    where
        E: Send,
        E: 'static,
    {
        // Dropped before `fut`: the failure is recorded before the links the task holds close, so
        // the output, seeing them closed, finds it.
        lost: Lost<E>,
        #[pin]
        fut: F,
    }
}

impl<E: Send + 'static, F: Future<Output = ()>> Future for Watched<E, F> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.project();
        let polled = this.fut.poll(cx);
        if polled.is_ready() {
            this.lost.finished = true;
        }
        polled
    }
}

struct Lost<E: Send + 'static> {
    shared: Arc<Shared<E>>,
    stage: String,
    /// Items pass through the task: dropped unfinished, it cut the pipeline short.
    of_stage: bool,
    finished: bool,
}

impl<E: Send + 'static> Drop for Lost<E> {
    fn drop(&mut self) {
        if self.of_stage && !self.finished {
            self.shared.cut_short();
        }
        // Acquire: pairs with `abort_all`. Dropped unfinished without the pipeline stopping it, the
        // task went with its runtime's shutdown.
        if !self.finished && !self.shared.stopping.load(Ordering::Acquire) {
            // Recorded as every failure is: only if it is the first and the pipeline had not
            // already ended.
            self.shared.fail(PipelineError::Lost {
                stage: std::mem::take(&mut self.stage),
            });
        }
    }
}

/// Each stage's counters, the source first.
pub(crate) fn snapshot(stages: &Mutex<Vec<Arc<Counters>>>) -> Vec<StageMetrics> {
    {
        let stages = stages.lock();
        let mut upstream_out = None;
        stages
            .iter()
            .map(|c| {
                let items_in = c.items_in.load(Ordering::Relaxed);
                let items_out = c.items_out.load(Ordering::Relaxed);
                let queued = upstream_out.map_or(0, |out: u64| out.saturating_sub(items_in));
                upstream_out = Some(items_out);
                StageMetrics {
                    name: c.name.clone(),
                    workers: c.workers,
                    items_in,
                    items_out,
                    queued,
                    busy: c.busy.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

/// The one owner of a pipeline's tasks; dropping it (with the last builder or the output) cancels the
/// pipeline's context and aborts every task.
pub(crate) struct Owner<E> {
    pub(crate) shared: Arc<Shared<E>>,
}

impl<E> Drop for Owner<E> {
    fn drop(&mut self) {
        self.shared.ctx.cancel();
        self.shared.abort_all();
    }
}

/// What an `error` event says of a pipeline's failure: the stage, and what happened there (the error
/// value itself is the caller's type, which need not be printable).
#[cfg(feature = "tracing")]
fn describe<E>(failure: &PipelineError<E>) -> (String, String) {
    match failure {
        PipelineError::Failed { stage, index, .. } => {
            (stage.clone(), format!("item {index} failed"))
        }
        PipelineError::Panicked {
            stage,
            index,
            payload,
        } => (
            stage.clone(),
            format!("item {index} panicked: {}", payload.message()),
        ),
        PipelineError::Invalid(why) => (String::new(), why.clone()),
        PipelineError::Cancelled(cause) => (String::new(), cause.to_string()),
        PipelineError::Lost { stage } => (
            stage.clone(),
            "a task was dropped before it finished (its runtime shut down)".to_owned(),
        ),
    }
}

#[cfg(all(test, not(bounded_loom)))]
mod clock_tests {
    use bounded_cancel::Context;
    use tokio::runtime::Builder;

    use super::Shared;

    #[test]
    fn batches_are_timed_on_the_counter_only_where_tokio_clock_runs() {
        let paused = Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let running = Builder::new_current_thread().enable_time().build().unwrap();
        let on_paused = Shared::<()>::new(Context::new(), None);
        assert!(!paused.block_on(async { on_paused.batches_on_counter(1) }));
        // Decided once for the pipeline: its workers all time their batches alike.
        assert!(!running.block_on(async { on_paused.batches_on_counter(1) }));
        let on_running = Shared::<()>::new(Context::new(), None);
        assert!(running.block_on(async { on_running.batches_on_counter(1) }));
        // A multi-thread runtime's clock cannot be paused: no need to look.
        let fresh = Shared::<()>::new(Context::new(), None);
        assert!(fresh.batches_on_counter(2));
        assert!(fresh.clock_runs.get().is_none());
    }
}
