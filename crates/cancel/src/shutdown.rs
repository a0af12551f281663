use std::fmt;
use std::future::Future;
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use bounded_sync::runtime::BoxIfLarge;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinError, JoinHandle};

use crate::report::{ShutdownReport, TaskOutcome, TaskReport};
use crate::{Context, live};

/// Graceful shutdown for a service: named tasks under one root [`Context`], a trigger, and a bounded drain.
///
/// `Shutdown` is a library, not a framework. Spawn the service's long-running tasks with
/// [`spawn`](Shutdown::spawn); each receives a child of the root context. End the service with
/// [`trigger`](Shutdown::trigger) (or on SIGINT/SIGTERM after [`on_signals`](Shutdown::on_signals)), then
/// [`wait`](Shutdown::wait) gives the tasks `grace` to finish, aborts whatever is left, and returns a
/// [`ShutdownReport`] naming every task as completed, failed, panicked or aborted.
///
/// Dropping a `Shutdown` without waiting cancels the root context and aborts every task it spawned.
///
/// Each task keeps its line of the report, and the finished task's result, until `wait`: spawn the
/// service's few long-running tasks here (the server, its pool's owner, a poller), not one per request
/// or connection, which would grow without bound. Per-request work goes in a `Group` or a pool that
/// such a task owns and drains; they keep nothing of a task once it has ended.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Shutdown;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut shutdown = Shutdown::new();
/// shutdown.spawn("ticker", |ctx| async move {
///     while ctx.run(tokio::time::sleep(Duration::from_secs(1))).await.is_ok() {}
///     Ok::<_, std::io::Error>(())
/// });
/// shutdown.trigger();
/// let report = shutdown.wait(Duration::from_secs(5)).await;
/// assert!(report.is_clean(), "{report}");
/// # }
/// ```
pub struct Shutdown {
    ctx: Context,
    /// Ended to cut the drain short: a second signal, or `cut_short`.
    now: Context,
    tasks: Vec<Spawned>,
    listener: Option<AbortHandle>,
    trigger_on_failure: bool,
}

struct Spawned {
    name: String,
    handle: Option<JoinHandle<Result<(), String>>>,
    // Kept apart from the join handle, which `wait` takes: a dropped `wait` must still abort the task.
    abort: AbortHandle,
}

impl Shutdown {
    /// Creates a shutdown scope with a fresh root context.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Shutdown;
    ///
    /// let shutdown = Shutdown::new();
    /// assert!(!shutdown.is_triggered());
    /// ```
    pub fn new() -> Self {
        Shutdown::with_context(&Context::new())
    }

    /// Creates a shutdown scope whose root is a child of `parent`: cancelling `parent` triggers it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::{Context, Shutdown};
    ///
    /// let app = Context::new();
    /// let shutdown = Shutdown::with_context(&app);
    /// app.cancel();
    /// assert!(shutdown.is_triggered());
    /// ```
    pub fn with_context(parent: &Context) -> Self {
        Shutdown {
            ctx: parent.child(),
            now: Context::new(),
            tasks: Vec::new(),
            listener: None,
            trigger_on_failure: false,
        }
    }

    /// The root context: every task's context is a child of it, and cancelling it triggers the shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Shutdown;
    ///
    /// let shutdown = Shutdown::new();
    /// let trigger = shutdown.context().clone();
    /// trigger.cancel();
    /// assert!(shutdown.is_triggered());
    /// ```
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Spawns a named task that receives a child of the root context.
    ///
    /// A task should return once its context ends; the error it returns is kept, as text, in the report.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::{Shutdown, TaskOutcome};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut shutdown = Shutdown::new();
    /// shutdown.spawn("migrations", |_ctx| async { Err("table exists") });
    /// let report = shutdown.wait(Duration::from_secs(1)).await;
    /// assert_eq!(report.tasks()[0].outcome(), &TaskOutcome::Failed("table exists".into()));
    /// # }
    /// ```
    pub fn spawn<F, Fut, E>(&mut self, name: impl Into<String>, task: F)
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        // Before the caller's closure runs: outside a runtime nothing starts.
        let runtime = bounded_sync::runtime::current("a shutdown task was spawned");
        let name = name.into();
        let fut = task(self.ctx.child());
        // A large future is boxed before it is wrapped, as `tokio::spawn` boxes one before it makes
        // the task: in a debug build each move through the wrappers would be a copy on the stack.
        if BoxIfLarge::<Fut>::YES {
            self.spawn_started(&runtime, name, Box::pin(fut));
        } else {
            self.spawn_started(&runtime, name, fut);
        }
    }

    /// Spawns the task whose future `task` started.
    fn spawn_started<Fut, E>(&mut self, runtime: &Handle, name: String, fut: Fut)
    where
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let trigger = self
            .trigger_on_failure
            .then(|| (self.ctx.clone(), name.clone()));
        let tracked = live::tracked(name.clone(), async move {
            let Some((ctx, name)) = trigger else {
                return fut.await.map_err(|e| e.to_string());
            };
            // Under `trigger_on_failure`, a task that fails or panics starts the shutdown, with itself
            // as the cause; the panic then goes on to the report as usual.
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => {
                    // The error's `Display` is the caller's code: if it panics, the shutdown still
                    // starts, and the task is reported as the panic.
                    let message = std::panic::catch_unwind(AssertUnwindSafe(|| err.to_string()));
                    match message {
                        Ok(message) => {
                            ctx.cancel_with(TaskFailed::new(name, message.clone()));
                            Err(message)
                        }
                        Err(payload) => {
                            let message = crate::panic_message(&*payload).to_owned();
                            ctx.cancel_with(TaskFailed::new(
                                name,
                                format!("failed, and its error's Display panicked: {message}"),
                            ));
                            std::panic::resume_unwind(payload)
                        }
                    }
                }
                Err(payload) => {
                    let message = crate::panic_message(&*payload).to_owned();
                    ctx.cancel_with(TaskFailed::new(name, format!("panicked: {message}")));
                    std::panic::resume_unwind(payload)
                }
            }
        });
        // The span current at `spawn` is the task's parent, wherever it runs.
        #[cfg(feature = "tracing")]
        let tracked = tracing::Instrument::instrument(
            tracked,
            tracing::info_span!(target: "bounded_cancel", "shutdown task", task = %name),
        );
        let handle = runtime.spawn(tracked);
        self.tasks.push(Spawned {
            name,
            abort: handle.abort_handle(),
            handle: Some(handle),
        });
    }

    /// Starts the shutdown: cancels the root context, so every task sees its context end.
    ///
    /// Returns `true` if this call started it. [`wait`](Shutdown::wait) measures `grace` from the moment
    /// it sees the trigger.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Shutdown;
    ///
    /// let shutdown = Shutdown::new();
    /// assert!(shutdown.trigger());
    /// assert!(shutdown.is_triggered());
    /// ```
    pub fn trigger(&self) -> bool {
        self.ctx.cancel()
    }

    /// Makes a task that fails or panics start the shutdown, for services whose tasks must all live:
    /// the context's cause is then a [`TaskFailed`] naming the task. Applies to the tasks spawned after
    /// it; a task that ends with `Ok` never triggers it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::{Shutdown, TaskFailed};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut shutdown = Shutdown::new().trigger_on_failure();
    /// shutdown.spawn("server", |ctx| async move { ctx.cancelled().await; Ok::<_, String>(()) });
    /// shutdown.spawn("cache refresher", |_ctx| async { Err("redis unreachable") });
    /// let cause = shutdown.context().cancelled().await;
    /// let failed = cause.error().unwrap().downcast_ref::<TaskFailed>().unwrap();
    /// assert_eq!(failed.task(), "cache refresher");
    /// let report = shutdown.wait(Duration::from_secs(1)).await;
    /// assert!(!report.is_clean());
    /// # }
    /// ```
    #[must_use = "trigger_on_failure returns the shutdown it configures"]
    pub fn trigger_on_failure(mut self) -> Self {
        self.trigger_on_failure = true;
        self
    }

    /// Cuts the drain short: `wait` aborts every task still running at once, as if its grace had run
    /// out. A second SIGINT or SIGTERM does this when [`on_signals`](Shutdown::on_signals) listens.
    /// Triggers the shutdown too, if nothing had.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Shutdown;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut shutdown = Shutdown::new();
    /// shutdown.spawn("slow drain", |ctx| async move {
    ///     ctx.cancelled().await;
    ///     tokio::time::sleep(Duration::from_secs(60)).await; // ignores the grace
    ///     Ok::<_, String>(())
    /// });
    /// shutdown.cut_short();
    /// let start = tokio::time::Instant::now();
    /// let report = shutdown.wait(Duration::from_secs(30)).await;
    /// assert_eq!(start.elapsed(), Duration::ZERO);
    /// assert!(!report.is_clean()); // the task was aborted
    /// # }
    /// ```
    pub fn cut_short(&self) {
        self.ctx.cancel();
        self.now.cancel();
    }

    /// Returns `true` once the shutdown has been triggered (or the parent context ended).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Shutdown;
    ///
    /// assert!(!Shutdown::new().is_triggered());
    /// ```
    pub fn is_triggered(&self) -> bool {
        self.ctx.is_cancelled()
    }

    #[cfg(feature = "signal")]
    #[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
    /// Triggers the shutdown when the process is told to stop: SIGINT (Ctrl-C) or SIGTERM on Unix,
    /// Ctrl-C or Ctrl-Break on Windows, Ctrl-C on other platforms that have signals.
    ///
    /// The Windows handlers use tokio's `signal::windows`. The workspace's CI runs on Linux: it
    /// type-checks them for `x86_64-pc-windows-msvc` but does not run them.
    ///
    /// The handlers are installed before this returns, so a signal sent right after is not missed. The root
    /// context's cause is then a [`SignalReceived`] error naming the signal. A second signal during the
    /// drain cuts it short ([`cut_short`](Shutdown::cut_short)): `wait` aborts what is left at once, as
    /// servers do on a second Ctrl-C. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// The I/O error of the operating system if a handler cannot be installed.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use bounded_cancel::Shutdown;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut shutdown = Shutdown::new();
    /// shutdown.on_signals()?;
    /// // ... spawn the service's tasks ...
    /// let report = shutdown.wait(Duration::from_secs(10)).await;
    /// println!("{report}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_signals(&mut self) -> std::io::Result<()> {
        if self.listener.is_some() {
            return Ok(());
        }
        let runtime = bounded_sync::runtime::current("Shutdown::on_signals was called");
        let mut received = Signals::install()?;
        let (ctx, now) = (self.ctx.clone(), self.now.clone());
        let listener = live::tracked("shutdown signal listener", async move {
            // The first signal starts the drain (unless something else already has); the next one
            // cuts it short. The listener lives until `wait` returns or the shutdown is dropped.
            let name = received.next().await;
            ctx.cancel_with(SignalReceived { name });
            let name = received.next().await;
            now.cancel_with(SignalReceived { name });
        });
        self.listener = Some(runtime.spawn(listener).abort_handle());
        Ok(())
    }

    /// Waits for the trigger, drains for `grace`, aborts what is left, and reports every task.
    ///
    /// The wait has two phases. Until the shutdown is triggered, it waits for the trigger or for every
    /// task to end by itself. From the trigger on, tasks have `grace` (on tokio's clock) to return; any
    /// still running then are aborted and reported as [`TaskOutcome::Aborted`]. So `wait` never runs past
    /// the trigger plus `grace`, and on return no task of this scope is alive.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe in the sense of resuming: `wait` owns the scope, so dropping it mid-wait drops the
    /// scope, which cancels the root context and aborts every task.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::{Shutdown, TaskOutcome};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut shutdown = Shutdown::new();
    /// shutdown.spawn("stubborn", |_ctx| async {
    ///     std::future::pending::<()>().await;
    ///     Ok::<_, String>(())
    /// });
    /// shutdown.trigger();
    /// let report = shutdown.wait(Duration::from_secs(2)).await;
    /// assert_eq!(report.tasks()[0].outcome(), &TaskOutcome::Aborted);
    /// # }
    /// ```
    pub async fn wait(mut self, grace: Duration) -> ShutdownReport {
        let mut outcomes: Vec<Option<TaskOutcome>> = vec![None; self.tasks.len()];
        let mut running: FuturesUnordered<_> = self
            .tasks
            .iter_mut()
            .enumerate()
            .filter_map(|(i, t)| t.handle.take().map(|h| (i, h)))
            .map(|(i, handle)| async move { (i, handle.await) })
            .collect();
        // Until the tasks left are aborted below, a task that ends cancelled was dropped by the
        // shutdown of its runtime.
        let mut aborted = false;

        // Phase one: run until triggered, or until every task has ended by itself.
        let ctx = self.ctx.clone();
        let triggered = loop {
            tokio::select! {
                biased;
                _ = ctx.cancelled() => break true,
                next = running.next() => match next {
                    Some((i, joined)) => outcomes[i] = Some(outcome(joined, aborted)),
                    None => break false,
                },
            }
        };

        // Phase two: drain for `grace`, then abort what is left and collect how each ended.
        if triggered {
            let drain = async {
                while let Some((i, joined)) = running.next().await {
                    outcomes[i] = Some(outcome(joined, aborted));
                }
            };
            // A grace too long to be an instant (`Duration::MAX`) drains without a time limit; a second
            // signal (or `cut_short`) ends the drain at once.
            let drain = self.now.run(drain);
            let drained = match crate::deadline_after(grace) {
                Some(until) => matches!(tokio::time::timeout_at(until, drain).await, Ok(Ok(()))),
                None => drain.await.is_ok(),
            };
            if !drained {
                self.tasks.iter().for_each(|t| t.abort.abort());
                aborted = true;
                while let Some((i, joined)) = running.next().await {
                    outcomes[i] = Some(outcome(joined, aborted));
                }
            }
        }
        self.ctx.cancel();

        let tasks = self
            .tasks
            .drain(..)
            .zip(outcomes)
            .map(|(t, out)| {
                let out = out.unwrap_or(TaskOutcome::Aborted);
                #[cfg(feature = "tracing")]
                match &out {
                    TaskOutcome::Completed => {}
                    TaskOutcome::Failed(error) => {
                        tracing::warn!(target: "bounded_cancel", task = %t.name, %error, "a shutdown task failed")
                    }
                    TaskOutcome::Panicked(panic) => {
                        tracing::error!(target: "bounded_cancel", task = %t.name, %panic, "a shutdown task panicked")
                    }
                    TaskOutcome::Aborted => tracing::warn!(
                        target: "bounded_cancel",
                        task = %t.name,
                        "a shutdown task was aborted: it outlived the grace period"
                    ),
                    TaskOutcome::Lost => tracing::error!(
                        target: "bounded_cancel",
                        task = %t.name,
                        "a shutdown task was dropped by the shutdown of its runtime"
                    ),
                }
                TaskReport::new(t.name, out)
            })
            .collect();
        ShutdownReport::new(tasks)
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.ctx.cancel();
        for task in &self.tasks {
            task.abort.abort();
        }
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Shutdown")
            .field("ctx", &self.ctx)
            .field("tasks", &names)
            .finish()
    }
}

/// How a task ended; a cancelled task was aborted here only once `aborted` is set (nothing else
/// aborts a shutdown's tasks but the shutdown of their runtime).
fn outcome(joined: Result<Result<(), String>, JoinError>, aborted: bool) -> TaskOutcome {
    match joined {
        Ok(Ok(())) => TaskOutcome::Completed,
        Ok(Err(text)) => TaskOutcome::Failed(text),
        Err(err) if err.is_panic() => {
            TaskOutcome::Panicked(crate::panic_message(&*err.into_panic()).to_owned())
        }
        Err(_) if aborted => TaskOutcome::Aborted,
        Err(_) => TaskOutcome::Lost,
    }
}

/// The cause of a shutdown started by [`Shutdown::on_signals`]: which signal arrived.
///
/// # Examples
///
/// ```
/// use bounded_cancel::SignalReceived;
///
/// let err = SignalReceived::new("SIGTERM");
/// assert_eq!(err.name(), "SIGTERM");
/// assert_eq!(err.to_string(), "received SIGTERM");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalReceived {
    name: &'static str,
}

impl SignalReceived {
    /// Makes the cause for the signal called `name`.
    pub fn new(name: &'static str) -> Self {
        SignalReceived { name }
    }

    /// The signal's name, such as `"SIGINT"` or `"SIGTERM"`.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl fmt::Display for SignalReceived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "received {}", self.name)
    }
}

impl std::error::Error for SignalReceived {}

/// The cause of a shutdown started by a failing or panicking task, under
/// [`trigger_on_failure`](Shutdown::trigger_on_failure).
///
/// # Examples
///
/// ```
/// use bounded_cancel::TaskFailed;
///
/// let err = TaskFailed::new("poller", "upstream gone");
/// assert_eq!(err.to_string(), "task `poller` failed: upstream gone");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailed {
    task: String,
    message: String,
}

impl TaskFailed {
    /// A failure of `task` with `message` (its error's text, or "panicked: ..." for a panic).
    pub fn new(task: impl Into<String>, message: impl Into<String>) -> Self {
        TaskFailed {
            task: task.into(),
            message: message.into(),
        }
    }

    /// The name the task was spawned with.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// What it failed with.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task `{}` failed: {}", self.task, self.message)
    }
}

impl std::error::Error for TaskFailed {}

/// The signals that stop a service, installed once and received as many times as they come.
#[cfg(all(unix, feature = "signal"))]
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

#[cfg(all(unix, feature = "signal"))]
impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// The name of the next signal to arrive.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.int.recv() => "SIGINT",
            Some(()) = self.term.recv() => "SIGTERM",
            else => std::future::pending().await,
        }
    }
}

/// On Windows: Ctrl-C and Ctrl-Break, the console's two interrupts.
#[cfg(all(windows, feature = "signal"))]
struct Signals {
    c: tokio::signal::windows::CtrlC,
    brk: tokio::signal::windows::CtrlBreak,
}

#[cfg(all(windows, feature = "signal"))]
impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            c: tokio::signal::windows::ctrl_c()?,
            brk: tokio::signal::windows::ctrl_break()?,
        })
    }

    /// The name of the next interrupt to arrive.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.c.recv() => "Ctrl-C",
            Some(()) = self.brk.recv() => "Ctrl-Break",
            else => std::future::pending().await,
        }
    }
}

#[cfg(all(not(unix), not(windows), feature = "signal"))]
struct Signals;

#[cfg(all(not(unix), not(windows), feature = "signal"))]
impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals)
    }

    /// The name of the next Ctrl-C.
    async fn next(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(_) => std::future::pending().await,
        }
    }
}
