//! What a group's tasks share with the group: the context, the count of live tasks, and the outcome.

use std::any::Any;
use std::error::Error;
use std::pin::pin;
use std::sync::Arc;

use bounded_cancel::{Context, panic_message};
use bounded_sync::Mutex;
use bounded_sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use bounded_sync::slots::Slots;
use tokio::sync::Notify;

use crate::error::{Failure, Panic, TaskPanicked};
use bounded_sync::own::OwnWaits;

/// The message of a task whose future was dropped before it finished by its runtime's shutdown.
pub(crate) const LOST: &str = "task dropped before it finished: the runtime it ran on shut down";

/// Turns the first error into the cause of the group's context.
pub(crate) type ToCause<E> = fn(&E) -> Arc<dyn Error + Send + Sync>;

/// How a group reacts to its first failure.
pub(crate) struct Policy<E> {
    /// Cancel the group's context on the first error or panic (`with_context`, `map`).
    pub(crate) cancel_on_failure: bool,
    /// The first error's cause; without it the context ends with `Cause::Cancelled`.
    pub(crate) to_cause: Option<ToCause<E>>,
}

pub(crate) struct Shared<E> {
    pub(crate) ctx: Context,
    policy: Policy<E>,
    /// Keep every error, not only the first.
    collect_errors: AtomicBool,
    active: AtomicUsize,
    /// The group is being dropped: a task dropped from now on was aborted by it, not lost.
    dropping: AtomicBool,
    idle: Notify,
    /// A limited group's free slots: a task holds one from its admission until it ends. Here,
    /// beside the rest of what tasks share, so that a task needs no handle of its own to give its
    /// slot back. Closed when the group's context ends (see the executor's watcher).
    pub(crate) slots: Slots,
    /// The group's own tasks waiting in `spawn` for a slot while they hold one (see `own.rs`).
    pub(crate) own_waits: OwnWaits,
    outcome: Mutex<Outcome<E>>,
    /// `bounded_group_tasks_alive{group}`, registered when the group is named or first spawns.
    #[cfg(feature = "metrics")]
    alive: std::sync::OnceLock<bounded_sync::gauge::SharedGauge>,
}

struct Outcome<E> {
    /// The first error first; later ones only when collecting.
    errors: Vec<E>,
    /// The first panic; its payload is moved out by the first wait that reports it.
    panic: Option<Panic>,
}

impl<E> Shared<E> {
    pub(crate) fn new(ctx: Context, policy: Policy<E>) -> Self {
        Shared {
            ctx,
            policy,
            collect_errors: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            dropping: AtomicBool::new(false),
            idle: Notify::new(),
            slots: Slots::new(0),
            own_waits: OwnWaits::default(),
            outcome: Mutex::new(Outcome {
                errors: Vec::new(),
                panic: None,
            }),
            #[cfg(feature = "metrics")]
            alive: std::sync::OnceLock::new(),
        }
    }

    /// Names the group's gauge; only before it was registered.
    #[cfg(feature = "metrics")]
    pub(crate) fn name(&self, name: &str) {
        let _ = self.alive.set(alive_gauge(name));
    }

    #[cfg(feature = "metrics")]
    fn alive(&self) -> &bounded_sync::gauge::SharedGauge {
        self.alive.get_or_init(|| alive_gauge("group"))
    }

    pub(crate) fn collect_errors(&self) {
        // Release, with the acquire in `record_error`: a task ending on another thread sees the mode
        // chosen before it, without taking a lock only to read a flag.
        self.collect_errors.store(true, Ordering::Release);
    }

    pub(crate) fn active(&self) -> usize {
        // Acquire, with the release half of `finish`'s decrement: a caller that sees a task gone also
        // sees the outcome it recorded.
        self.active.load(Ordering::Acquire)
    }

    pub(crate) fn admitted(&self) {
        // Relaxed: admitting a task publishes nothing; the spawn that follows does.
        self.active.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.alive().add(1);
    }

    /// Records how a task ended. Called exactly once per admitted task, after its slot is released.
    ///
    /// What the task returned is the caller's: a panic in its error's `Display` (made into the
    /// context's cause) or in the destructor of an error or payload that is not kept is caught, so
    /// that the task still counts as ended and its runner lives on.
    pub(crate) fn finish(
        &self,
        result: std::thread::Result<Result<(), E>>,
        name: Option<Arc<str>>,
    ) {
        let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.record(result, name);
        }));
        if let Err(payload) = recorded {
            caller_code_panicked(payload);
        }
        self.ended();
    }

    fn record(&self, result: std::thread::Result<Result<(), E>>, name: Option<Arc<str>>) {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "bounded_group", task = name.as_deref(), "a group task failed");
                self.record_error(err)
            }
            Err(payload) => {
                #[cfg(feature = "tracing")]
                tracing::error!(
                    target: "bounded_group",
                    task = name.as_deref(),
                    panic = bounded_cancel::panic_message(&*payload),
                    "a group task panicked"
                );
                self.record_panic(payload, name)
            }
        }
    }

    /// A task's future was dropped before it finished, and not by the group's drop: the runtime it
    /// ran on shut down. It counts as a panic with [`LOST`] as its message, so that `wait` returns (and
    /// says so) instead of waiting for a task that no longer exists.
    pub(crate) fn lost(&self, name: Option<Arc<str>>) {
        // Acquire: pairs with the release in `group_dropped`.
        if !self.dropping.load(Ordering::Acquire) {
            #[cfg(feature = "tracing")]
            tracing::error!(target: "bounded_group", task = name.as_deref(), "{LOST}");
            self.record_panic_of(Arc::from(LOST), Box::new(LOST), None, name);
        }
        self.ended();
    }

    /// The group is being dropped: the tasks it aborts are not reported as lost.
    pub(crate) fn group_dropped(&self) {
        self.dropping.store(true, Ordering::Release);
    }

    fn ended(&self) {
        #[cfg(feature = "metrics")]
        self.alive().add(-1);
        // AcqRel: releases this task's recorded outcome to whoever sees the count drop, and the last
        // task out acquires every other task's before it wakes the waiters.
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    fn record_error(&self, err: E) {
        // The cause is made from the error by the caller's code (its `Display`), so outside the lock,
        // and only while no error is recorded: errors are never removed, so a later one is never
        // the first. A `Display` that panics still leaves the error recorded, with a cause saying so.
        let cause = match self.policy.to_cause {
            Some(to_cause) if self.outcome.lock().errors.is_empty() => Some(
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| to_cause(&err)))
                    .unwrap_or_else(|payload| {
                        let message = format!(
                            "(its error's Display panicked: {})",
                            panic_message(&*payload)
                        );
                        caller_code_panicked(payload);
                        Arc::new(crate::TaskError::new(message))
                    }),
            ),
            _ => None,
        };
        let mut outcome = self.outcome.lock();
        let first = outcome.errors.is_empty();
        // Stored before the context is cancelled, so a task that fails because it saw the context
        // end can never be recorded ahead of the real error. Acquire: pairs with the release in
        // `collect_errors`.
        let unkept = if first || self.collect_errors.load(Ordering::Acquire) {
            outcome.errors.push(err);
            None
        } else {
            Some(err)
        };
        drop(outcome);
        if first && self.policy.cancel_on_failure {
            match cause {
                Some(cause) => self.ctx.cancel_with_arc(cause),
                None => self.ctx.cancel(),
            };
        }
        // Dropped outside the lock: its destructor is the caller's code.
        drop(unkept);
    }

    fn record_panic(&self, payload: Box<dyn Any + Send>, task: Option<Arc<str>>) {
        let message: Arc<str> = Arc::from(panic_message(&*payload));
        // Taken on the thread that caught the panic, right after the catch, and always, so that it is
        // never left for a later panic (see `bounded_cancel::capture_panic_backtraces`).
        let backtrace = bounded_cancel::take_panic_backtrace().map(Arc::new);
        self.record_panic_of(message, payload, backtrace, task);
    }

    fn record_panic_of(
        &self,
        message: Arc<str>,
        payload: Box<dyn Any + Send>,
        backtrace: Option<Arc<std::backtrace::Backtrace>>,
        task: Option<Arc<str>>,
    ) {
        let mut outcome = self.outcome.lock();
        let first = outcome.panic.is_none();
        if first {
            outcome.panic = Some(Panic::new(message.clone(), Some(payload), backtrace, task));
        }
        drop(outcome);
        if first && self.policy.cancel_on_failure {
            self.ctx.cancel_with(TaskPanicked::new(message));
        }
    }

    /// Waits until no admitted task is left.
    pub(crate) async fn idle(&self) {
        loop {
            let mut notified = pin!(self.idle.notified());
            notified.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The first panic (its payload goes to the first caller), else the first error, cloned.
    pub(crate) fn failure(&self) -> Option<Failure<E>>
    where
        E: Clone,
    {
        self.take_panic().map(Failure::Panicked).or_else(|| {
            self.outcome
                .lock()
                .errors
                .first()
                .cloned()
                .map(Failure::Error)
        })
    }

    /// Every recorded error, in the order they happened, cloned.
    pub(crate) fn errors(&self) -> Vec<E>
    where
        E: Clone,
    {
        self.outcome.lock().errors.clone()
    }

    /// Moves the recorded errors out, for a consuming wait.
    pub(crate) fn take_errors(&self) -> Vec<E> {
        std::mem::take(&mut self.outcome.lock().errors)
    }

    pub(crate) fn take_panic(&self) -> Option<Panic> {
        self.outcome.lock().panic.as_mut().map(Panic::take)
    }
}

/// The gauge of tasks alive in the group named `group` (cargo feature `metrics`).
#[cfg(feature = "metrics")]
fn alive_gauge(group: &str) -> bounded_sync::gauge::SharedGauge {
    // For exporters that show it (Prometheus's `# HELP`). Once per process, by the first group to
    // register: groups are often made per request, and a recorder takes a process-wide lock to
    // store a description. The pools and limiters, built once, say theirs at each registration.
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_gauge!(
            "bounded_group_tasks_alive",
            metrics::Unit::Count,
            "Tasks of a group that have not ended yet"
        );
    });
    bounded_sync::gauge::SharedGauge::register("bounded_group_tasks_alive", "group", group)
}

/// The caller's code panicked where the group records a task's end (an error's `Display` or
/// destructor, a payload's destructor): caught there, told as an `error` event (feature `tracing`),
/// and its payload dropped where a panic cannot escape.
#[cold]
#[inline(never)]
fn caller_code_panicked(payload: Box<dyn Any + Send>) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "bounded_group",
        panic = panic_message(&*payload),
        "the error or panic payload a group task ended with panicked as it was read or dropped"
    );
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload)));
}
