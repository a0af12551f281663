use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
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
    tasks: Vec<Spawned>,
    listener: Option<AbortHandle>,
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
            tasks: Vec::new(),
            listener: None,
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
        let name = name.into();
        let fut = task(self.ctx.child());
        let tracked = live::tracked(
            name.clone(),
            async move { fut.await.map_err(|e| e.to_string()) },
        );
        let handle = tokio::spawn(tracked);
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

    /// Triggers the shutdown when the process receives SIGINT (Ctrl-C) or, on Unix, SIGTERM.
    ///
    /// The handlers are installed before this returns, so a signal sent right after is not missed. The root
    /// context's cause is then a [`SignalReceived`] error naming the signal. Calling it again does nothing.
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
    pub fn on_signals(&mut self) -> io::Result<()> {
        if self.listener.is_some() {
            return Ok(());
        }
        let received = signals()?;
        let ctx = self.ctx.clone();
        let listener = live::tracked("shutdown signal listener", async move {
            tokio::select! {
                _ = ctx.cancelled() => {}
                name = received => { ctx.cancel_with(SignalReceived { name }); }
            }
        });
        self.listener = Some(tokio::spawn(listener).abort_handle());
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
            .map(|(i, handle)| async move { (i, outcome(handle.await)) })
            .collect();

        // Phase one: run until triggered, or until every task has ended by itself.
        let ctx = self.ctx.clone();
        let triggered = loop {
            tokio::select! {
                biased;
                _ = ctx.cancelled() => break true,
                next = running.next() => match next {
                    Some((i, out)) => outcomes[i] = Some(out),
                    None => break false,
                },
            }
        };

        // Phase two: drain for `grace`, then abort what is left and collect how each ended.
        if triggered {
            let drain = async {
                while let Some((i, out)) = running.next().await {
                    outcomes[i] = Some(out);
                }
            };
            // A grace too long to be an instant (`Duration::MAX`) drains without a time limit.
            let drained = match crate::deadline_after(grace) {
                Some(until) => tokio::time::timeout_at(until, drain).await.is_ok(),
                None => {
                    drain.await;
                    true
                }
            };
            if !drained {
                self.tasks.iter().for_each(|t| t.abort.abort());
                while let Some((i, out)) = running.next().await {
                    outcomes[i] = Some(out);
                }
            }
        }
        self.ctx.cancel();

        let tasks = self
            .tasks
            .drain(..)
            .zip(outcomes)
            .map(|(t, out)| TaskReport::new(t.name, out.unwrap_or(TaskOutcome::Aborted)))
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

fn outcome(joined: Result<Result<(), String>, JoinError>) -> TaskOutcome {
    match joined {
        Ok(Ok(())) => TaskOutcome::Completed,
        Ok(Err(text)) => TaskOutcome::Failed(text),
        Err(err) if err.is_panic() => {
            TaskOutcome::Panicked(crate::panic_message(&*err.into_panic()).to_owned())
        }
        Err(_) => TaskOutcome::Aborted,
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

/// Installs the handlers now and returns a future that names the first signal to arrive.
#[cfg(unix)]
fn signals() -> io::Result<impl Future<Output = &'static str> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    })
}

#[cfg(not(unix))]
fn signals() -> io::Result<impl Future<Output = &'static str> + Send> {
    Ok(async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(_) => std::future::pending().await,
        }
    })
}
