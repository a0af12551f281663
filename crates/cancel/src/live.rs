//! Live-task accounting: the goleak idea for tokio.
//!
//! Every task that a `bounded` crate spawns runs inside [`tracked`], which records the task's name from
//! the moment it is created until its future is dropped (because it finished or was aborted). Tests call
//! [`settle`] or [`assert_none_alive`] to check that nothing `bounded` spawned outlived its owner.
//!
//! Entries are kept per tokio runtime, so tests running side by side in one process (each on its own
//! `#[tokio::test]` runtime) never see each other's tasks. There are no stack dumps and no need for
//! `tokio_unstable`: a leak is reported by the names given to [`tracked`].
//!
//! The cost of [`tracked`] is one short lock when the task is created; use a [`TaskCounter`] for many
//! tasks of one kind, which costs two atomic operations per task.
//!
//! # Examples
//!
//! ```
//! use bounded_cancel::live;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let task = tokio::spawn(live::tracked("cache refresher", async {
//!     tokio::time::sleep(Duration::from_secs(3600)).await;
//! }));
//! let err = live::settle(Duration::from_millis(100)).await.unwrap_err();
//! assert_eq!(err.names(), ["cache refresher"]);
//!
//! task.abort();
//! live::assert_none_alive().await;
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::runtime::{Handle, Id as RuntimeId};
use tokio::time::Instant;

/// How long [`assert_none_alive`] lets tasks wind down before it fails.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(1);

struct Entry {
    id: u64,
    runtime: Option<RuntimeId>,
    name: Cow<'static, str>,
    alive: AtomicUsize,
}

/// Every entry ever made, weakly: an entry lives as long as its holders (tracked futures, a
/// [`TaskCounter`]), and dead ones are pruned as the list grows.
struct Registry {
    entries: Vec<Weak<Entry>>,
    prune_at: usize,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        entries: Vec::new(),
        prune_at: 64,
    });
    bounded_sync::lock_static(&REGISTRY)
}

fn current_runtime() -> Option<RuntimeId> {
    Handle::try_current().ok().map(|h| h.id())
}

fn register(name: Cow<'static, str>, alive: usize) -> Arc<Entry> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let entry = Arc::new(Entry {
        id: NEXT.fetch_add(1, Ordering::Relaxed),
        runtime: current_runtime(),
        name,
        alive: AtomicUsize::new(alive),
    });
    let mut registry = registry();
    if registry.entries.len() >= registry.prune_at {
        registry.entries.retain(|e| e.strong_count() > 0);
        // Prune again only once the live entries have doubled: amortised constant time per entry.
        registry.prune_at = (registry.entries.len() * 2).max(64);
    }
    registry.entries.push(Arc::downgrade(&entry));
    entry
}

/// One live task of an entry, counted until dropped.
struct Guard(Arc<Entry>);

impl Guard {
    fn new(entry: Arc<Entry>) -> Self {
        // Relaxed here and below: a count publishes no data, and a caller that needs to see a task
        // gone (a test after joining it, or `settle` polling) is ordered by the join or the poll loop.
        entry.alive.fetch_add(1, Ordering::Relaxed);
        Guard(entry)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// A future that counts as a live task from its creation until it is dropped. See [`tracked`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Tracked<F> {
        #[pin]
        fut: F,
        guard: Guard,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.project().fut.poll(cx)
    }
}

impl<F> fmt::Debug for Tracked<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("name", &self.guard.0.name)
            .finish()
    }
}

/// A named count of live tasks, for an owner that spawns many tasks of one kind.
///
/// [`tracked`] records one entry per task; a `TaskCounter` records one entry for all of its tasks and
/// only bumps a counter per task, which keeps the cost per task to two atomic operations. [`names`]
/// lists it as `name` while one of its tasks is alive, or `name (xN)` for N of them.
///
/// # Examples
///
/// ```
/// use bounded_cancel::live::{self, TaskCounter};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let counter = TaskCounter::new("request handler");
/// let a = tokio::spawn(counter.track(std::future::pending::<()>()));
/// let b = tokio::spawn(counter.track(std::future::pending::<()>()));
/// assert_eq!(live::names(), ["request handler (x2)"]);
/// a.abort();
/// b.abort();
/// live::assert_none_alive().await;
/// # }
/// ```
pub struct TaskCounter {
    entry: Arc<Entry>,
}

impl TaskCounter {
    /// Makes a counter named `name`, belonging to the current runtime (or to none, outside one).
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        TaskCounter {
            entry: register(name.into(), 0),
        }
    }

    /// Wraps `fut` so that it counts as one live task of this counter until it is dropped.
    pub fn track<F>(&self, fut: F) -> Tracked<F> {
        Tracked {
            fut,
            guard: Guard::new(self.entry.clone()),
        }
    }

    /// How many tasks of this counter are alive now.
    pub fn alive(&self) -> usize {
        self.entry.alive.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for TaskCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskCounter")
            .field("name", &self.entry.name)
            .field("alive", &self.alive())
            .finish()
    }
}

/// Wraps `fut` so that it is listed as a live task named `name` until it is dropped.
///
/// Pass the result to `tokio::spawn` (or a `JoinSet`): the task is then live from the spawn until it
/// completes or its abort takes effect. The entry belongs to the runtime current at this call.
///
/// # Examples
///
/// ```
/// use bounded_cancel::live;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let task = tokio::spawn(live::tracked("worker", async { 1 + 1 }));
/// assert_eq!(task.await.unwrap(), 2);
/// assert!(live::names().is_empty());
/// # }
/// ```
pub fn tracked<F>(name: impl Into<Cow<'static, str>>, fut: F) -> Tracked<F> {
    Tracked {
        fut,
        guard: Guard(register(name.into(), 1)),
    }
}

/// Names of the tracked tasks of the current runtime (or of no runtime, outside one) that are alive now.
///
/// # Examples
///
/// ```
/// use bounded_cancel::live;
///
/// let idle = live::tracked("not spawned yet", async {});
/// assert_eq!(live::names(), ["not spawned yet"]);
/// drop(idle);
/// assert!(live::names().is_empty());
/// ```
pub fn names() -> Vec<String> {
    let runtime = current_runtime();
    let mut live: Vec<(u64, String)> = registry()
        .entries
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|e| e.runtime == runtime)
        .filter_map(|e| match e.alive.load(Ordering::Relaxed) {
            0 => None,
            1 => Some((e.id, e.name.to_string())),
            n => Some((e.id, format!("{} (x{n})", e.name))),
        })
        .collect();
    live.sort_unstable();
    live.into_iter().map(|(_, name)| name).collect()
}

/// Waits up to `within` (on tokio's clock) for every tracked task of this runtime to end.
///
/// Aborted tasks end when the runtime next reaches them, so a check right after a drop needs this
/// short wait; on a paused clock it costs no real time.
///
/// # Errors
///
/// [`StillAlive`], naming each task left, if some are still alive after `within`.
///
/// # Examples
///
/// ```
/// use bounded_cancel::live;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let task = tokio::spawn(live::tracked("short", async {}));
/// live::settle(Duration::from_millis(50)).await.unwrap();
/// # let _ = task;
/// # }
/// ```
pub async fn settle(within: Duration) -> Result<(), StillAlive> {
    // `Duration::MAX` (no instant that far) waits for as long as it takes.
    let until = crate::deadline_after(within);
    loop {
        // A few plain yields first: most aborted tasks are dropped on the runtime's next pass.
        for _ in 0..8 {
            if names().is_empty() {
                return Ok(());
            }
            tokio::task::yield_now().await;
        }
        if until.is_some_and(|until| Instant::now() >= until) {
            let names = names();
            return if names.is_empty() {
                Ok(())
            } else {
                Err(StillAlive { names, within })
            };
        }
        let left = until.map_or(Duration::MAX, |until| {
            until.saturating_duration_since(Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(1).min(left)).await;
    }
}

/// Panics, naming the tasks left, unless every tracked task of this runtime ends within [`DEFAULT_SETTLE`].
///
/// # Panics
///
/// Panics with the [`StillAlive`] message if tasks are left.
///
/// # Examples
///
/// ```
/// use bounded_cancel::live;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// live::assert_none_alive().await;
/// # }
/// ```
pub async fn assert_none_alive() {
    if let Err(err) = settle(DEFAULT_SETTLE).await {
        panic!("{err}");
    }
}

/// Error of [`settle`]: tracked tasks outlived the wait.
///
/// # Examples
///
/// ```
/// use bounded_cancel::live;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let _stuck = tokio::spawn(live::tracked("stuck", std::future::pending::<()>()));
/// let err = live::settle(Duration::from_millis(10)).await.unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "1 task spawned by bounded still alive after 10ms: stuck; \
///      find its owner and drop, abort or shut it down before this check",
/// );
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StillAlive {
    names: Vec<String>,
    within: Duration,
}

impl StillAlive {
    /// Names of the tasks left, oldest first.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl fmt::Display for StillAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.names.len();
        write!(
            f,
            "{n} task{} spawned by bounded still alive after {:?}: {}; \
             find its owner and drop, abort or shut it down before this check",
            if n == 1 { "" } else { "s" },
            self.within,
            self.names.join(", "),
        )
    }
}

impl std::error::Error for StillAlive {}
