use std::fmt;
use std::sync::Arc;

use bounded_sync::Mutex;

use crate::shared::{Counters, snapshot};

/// One stage's counters, from [`Output::metrics`](crate::Output::metrics).
///
/// Read them side by side: the stage whose `queued` input stays high and whose `busy` equals its
/// `workers` is the bottleneck; the stages after it sit idle.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_pipeline::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let output = Pipeline::new(&Context::new())
///     .source(0..100u32)
///     .map(4, |_ctx, n| async move { Ok::<_, String>(n * 2) })
///     .named("double")
///     .output();
/// let metrics = output.metrics();
/// let _ = output.try_collect().await;
/// assert_eq!(metrics.len(), 2); // the source, then `double`
/// assert_eq!(metrics[1].name, "double");
/// assert_eq!(metrics[1].workers, 4);
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageMetrics {
    /// The stage's name (`source`, `map`, `map_ordered`, `filter_map`, or the name given with `named`).
    pub name: String,
    /// Worker tasks in the stage.
    pub workers: usize,
    /// Items the stage has taken from its input (for the source, items pulled: told once per run of
    /// items, before it reserves places downstream, waits or ends, so they trail by at most a run while
    /// it pulls).
    pub items_in: u64,
    /// Items the stage has passed on.
    pub items_out: u64,
    /// Items waiting in the stage's input channel. Once a pipeline has stopped early, the items that
    /// were waiting there when it stopped, dropped with it (0 after a pipeline that ran to its end).
    pub queued: u64,
    /// Workers running the stage function right now. A worker going through a run of items that each
    /// finish at once counts from the run's first call to its last (not between each two), and never
    /// while it waits for room downstream.
    pub busy: usize,
    /// Errors returned by the stage function (each one skipped, or the one that stopped the pipeline).
    pub errors: u64,
}

impl fmt::Display for StageMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<12} workers {:>2}  in {:>6}  out {:>6}  queued {:>4}  busy {:>2}  errors {}",
            self.name,
            self.workers,
            self.items_in,
            self.items_out,
            self.queued,
            self.busy,
            self.errors
        )
    }
}

/// Reads a pipeline's stage metrics from anywhere, for as long as you keep it: while the output is read
/// by another task, and after it has been collected (the counters then hold the final figures).
///
/// It keeps only the counters: holding it keeps no task of the pipeline alive.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_pipeline::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let output = Pipeline::new(&Context::new())
///     .source(0..100u32)
///     .map(4, |_ctx, n| async move { Ok::<_, String>(n * 2) })
///     .named("double")
///     .output();
/// let metrics = output.metrics_handle();
/// let doubled = output.try_collect().await.unwrap(); // the output is gone
/// assert_eq!(doubled.len(), 100);
/// let after = metrics.snapshot();
/// assert_eq!((after[1].name.as_str(), after[1].items_out), ("double", 100));
/// # }
/// ```
#[derive(Clone)]
pub struct MetricsHandle {
    stages: Arc<Mutex<Vec<Arc<Counters>>>>,
}

impl MetricsHandle {
    pub(crate) fn new(stages: Arc<Mutex<Vec<Arc<Counters>>>>) -> Self {
        MetricsHandle { stages }
    }

    /// Each stage's counters now, the source first (as [`Output::metrics`](crate::Output::metrics)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out = Pipeline::<()>::new(&Context::new()).source(0..5).named("ids").output();
    /// assert_eq!(out.metrics_handle().snapshot()[0].name, "ids");
    /// # }
    /// ```
    pub fn snapshot(&self) -> Vec<StageMetrics> {
        snapshot(&self.stages)
    }
}

impl fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsHandle")
            .field("stages", &self.snapshot())
            .finish()
    }
}
