use std::fmt;

/// How one task of a [`Shutdown`](crate::Shutdown) ended.
///
/// # Examples
///
/// ```
/// use bounded_cancel::TaskOutcome;
///
/// assert_eq!(TaskOutcome::Failed("boom".into()).to_string(), "failed: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskOutcome {
    /// The task returned `Ok(())`.
    Completed,
    /// The task returned an error; this is the error's text.
    Failed(String),
    /// The task panicked; this is the panic message.
    Panicked(String),
    /// The task was still running when the grace period ran out, and was aborted.
    Aborted,
    /// The task was dropped before it finished, by the shutdown of the runtime it ran on (the
    /// `Shutdown` waited on another runtime).
    Lost,
}

impl fmt::Display for TaskOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskOutcome::Completed => f.write_str("completed"),
            TaskOutcome::Failed(text) => write!(f, "failed: {text}"),
            TaskOutcome::Panicked(text) => write!(f, "panicked: {text}"),
            TaskOutcome::Aborted => f.write_str("aborted after the grace period"),
            TaskOutcome::Lost => {
                f.write_str("dropped before it finished: the runtime it ran on shut down")
            }
        }
    }
}

/// One line of a [`ShutdownReport`]: a task's name and how it ended.
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
/// shutdown.spawn("http", |_ctx| async { Ok::<_, String>(()) });
/// let report = shutdown.wait(Duration::from_secs(1)).await;
/// let task = &report.tasks()[0];
/// assert_eq!((task.name(), task.outcome()), ("http", &TaskOutcome::Completed));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    name: String,
    outcome: TaskOutcome,
}

impl TaskReport {
    pub(crate) fn new(name: String, outcome: TaskOutcome) -> Self {
        TaskReport { name, outcome }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the task ended.
    pub fn outcome(&self) -> &TaskOutcome {
        &self.outcome
    }
}

/// What [`Shutdown::wait`](crate::Shutdown::wait) found: every task, in spawn order, with its outcome.
///
/// Its `Display` prints one line per task, ready for a log.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Shutdown;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut shutdown = Shutdown::new();
/// shutdown.spawn("worker", |_ctx| async { Ok::<_, String>(()) });
/// let report = shutdown.wait(Duration::from_secs(1)).await;
/// assert!(report.is_clean());
/// assert_eq!(report.to_string(), "worker: completed\n");
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    tasks: Vec<TaskReport>,
}

impl ShutdownReport {
    pub(crate) fn new(tasks: Vec<TaskReport>) -> Self {
        ShutdownReport { tasks }
    }

    /// Every task, in the order it was spawned.
    pub fn tasks(&self) -> &[TaskReport] {
        &self.tasks
    }

    /// Returns `true` if every task completed: none failed, panicked, was aborted or was lost.
    pub fn is_clean(&self) -> bool {
        self.tasks
            .iter()
            .all(|t| t.outcome == TaskOutcome::Completed)
    }

    /// Looks a task up by name (the first, if several share it).
    pub fn get(&self, name: &str) -> Option<&TaskOutcome> {
        self.tasks
            .iter()
            .find(|t| t.name == name)
            .map(|t| &t.outcome)
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for task in &self.tasks {
            writeln!(f, "{}: {}", task.name, task.outcome)?;
        }
        Ok(())
    }
}
