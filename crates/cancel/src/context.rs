use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::future::{Cancelled, Run};
use crate::{Cause, live};

/// A cancellation scope with a cause and an optional deadline: Go's `context.Context` for tokio.
///
/// A `Context` is cheap to clone (one reference count) and every clone is the same context.
/// Contexts form a tree: cancelling one cancels all of its descendants, never its ancestors.
///
/// - [`cancel`](Context::cancel) and [`cancel_with`](Context::cancel_with) end the context. The first
///   cause recorded wins; a descendant cancelled through an ancestor reports the ancestor's cause.
/// - [`with_timeout`](Context::with_timeout) and [`with_deadline`](Context::with_deadline) make a child
///   that ends with [`Cause::DeadlineExceeded`] when its deadline passes. A child keeps the earlier of its
///   own and its parent's deadline.
/// - [`is_cancelled`](Context::is_cancelled) is a few atomic loads and takes no lock.
/// - [`cancelled`](Context::cancelled) waits for the end and yields the cause;
///   [`run`](Context::run) races a future against it.
///
/// # Deadlines and the clock
///
/// Deadlines use [`tokio::time::Instant`], so tests on a paused clock drive them. A context with a
/// deadline of its own owns exactly one timer task, spawned when the context is made and aborted when
/// the last clone is dropped. Its descendants and every waiter share that timer: no wait arms a timer of
/// its own. A child whose deadline is not earlier than its parent's has no timer at all.
///
/// # Examples
///
/// ```
/// use bounded_cancel::{Cause, Context};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let root = Context::new();
/// let request = root.with_timeout(Duration::from_millis(50));
///
/// // A slow call loses to the deadline and is dropped.
/// let slow = tokio::time::sleep(Duration::from_secs(1));
/// assert!(matches!(request.run(slow).await, Err(Cause::DeadlineExceeded)));
///
/// // The parent is untouched.
/// assert!(!root.is_cancelled());
/// # }
/// ```
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
}

struct Node {
    token: CancellationToken,
    cause: OnceLock<Cause>,
    parent: Option<Arc<Node>>,
    deadline: Option<Instant>,
    timer: Option<AbortHandle>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(timer) = &self.timer {
            timer.abort();
        }
    }
}

impl Node {
    fn is_cancelled(&self) -> bool {
        self.cause().is_some()
    }

    fn cause(&self) -> Option<&Cause> {
        let mut node = self;
        loop {
            if let Some(cause) = node.cause.get() {
                return Some(cause);
            }
            node = node.parent.as_deref()?;
        }
    }

    fn cancel(&self, cause: Cause) -> bool {
        // An ancestor's cause already covers this context: the first cause wins.
        if self.is_cancelled() || self.cause.set(cause).is_err() {
            return false;
        }
        // The cause is stored before the token fires, so every waiter woken by the token sees it.
        self.token.cancel();
        true
    }
}

impl Context {
    /// Creates a root context: never cancelled until [`cancel`](Context::cancel), no deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    ///
    /// let ctx = Context::new();
    /// assert!(!ctx.is_cancelled());
    /// assert!(ctx.deadline().is_none());
    /// ```
    pub fn new() -> Self {
        Context {
            node: Arc::new(Node {
                token: CancellationToken::new(),
                cause: OnceLock::new(),
                parent: None,
                deadline: None,
                timer: None,
            }),
        }
    }

    /// Creates a child: cancelled when this context is, with the same deadline, and cancellable on its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    ///
    /// let parent = Context::new();
    /// let child = parent.child();
    /// child.cancel();
    /// assert!(!parent.is_cancelled());
    ///
    /// let other = parent.child();
    /// parent.cancel();
    /// assert!(other.is_cancelled());
    /// ```
    pub fn child(&self) -> Self {
        self.make_child(self.node.deadline)
    }

    /// Creates a child whose deadline is `timeout` from now on tokio's clock, or the parent's if that is earlier.
    ///
    /// # Panics
    ///
    /// Panics if the child needs a timer and is made outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::{Cause, Context};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ctx = Context::new().with_timeout(Duration::from_secs(2));
    /// assert_eq!(ctx.remaining(), Some(Duration::from_secs(2)));
    /// let cause = ctx.cancelled().await;
    /// assert!(matches!(cause, Cause::DeadlineExceeded));
    /// # }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        self.with_deadline(Instant::now() + timeout)
    }

    /// Creates a child that ends at `deadline`, or at the parent's deadline if that is earlier.
    ///
    /// # Panics
    ///
    /// Panics if the child needs a timer and is made outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let soon = Instant::now() + Duration::from_secs(1);
    /// let parent = Context::new().with_deadline(soon);
    /// let child = parent.with_deadline(soon + Duration::from_secs(60));
    /// assert_eq!(child.deadline(), Some(soon));
    /// # }
    /// ```
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        match self.node.deadline {
            Some(inherited) if inherited <= deadline => self.make_child(Some(inherited)),
            _ => self.make_child_with_timer(deadline),
        }
    }

    fn make_child(&self, deadline: Option<Instant>) -> Self {
        Context {
            node: Arc::new(Node {
                token: self.node.token.child_token(),
                cause: OnceLock::new(),
                parent: Some(self.node.clone()),
                deadline,
                timer: None,
            }),
        }
    }

    fn make_child_with_timer(&self, deadline: Instant) -> Self {
        let token = self.node.token.child_token();
        if deadline <= Instant::now() {
            let ctx = self.make_child(Some(deadline));
            ctx.node.cancel(Cause::DeadlineExceeded);
            return ctx;
        }
        let node = Arc::new_cyclic(|weak: &Weak<Node>| {
            let timer = spawn_timer(weak.clone(), token.clone(), deadline);
            Node {
                token,
                cause: OnceLock::new(),
                parent: Some(self.node.clone()),
                deadline: Some(deadline),
                timer: Some(timer),
            }
        });
        Context { node }
    }

    /// Cancels this context and its descendants with [`Cause::Cancelled`].
    ///
    /// Returns `true` if this call ended the context, `false` if it had already ended (its cause stays).
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    ///
    /// let ctx = Context::new();
    /// assert!(ctx.cancel());
    /// assert!(!ctx.cancel());
    /// ```
    pub fn cancel(&self) -> bool {
        self.node.cancel(Cause::Cancelled)
    }

    /// Cancels this context and its descendants with `err` as the cause.
    ///
    /// The error is stored once, behind an `Arc`: every [`cause`](Context::cause) of this context and of its
    /// descendants hands out that same value. Returns `false` and drops `err` if the context had already ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use std::io;
    ///
    /// let ctx = Context::new();
    /// let child = ctx.child();
    /// assert!(ctx.cancel_with(io::Error::other("upstream closed")));
    /// assert_eq!(
    ///     child.cause().unwrap().to_string(),
    ///     "context cancelled by error: upstream closed",
    /// );
    /// ```
    pub fn cancel_with<E>(&self, err: E) -> bool
    where
        E: Error + Send + Sync + 'static,
    {
        self.cancel_with_arc(Arc::new(err))
    }

    /// Like [`cancel_with`](Context::cancel_with) for an error that is already shared.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use std::error::Error;
    /// use std::sync::Arc;
    ///
    /// let err: Arc<dyn Error + Send + Sync> = Arc::new(std::fmt::Error);
    /// let ctx = Context::new();
    /// ctx.cancel_with_arc(err.clone());
    /// assert!(Arc::ptr_eq(&err, match &ctx.cause().unwrap() {
    ///     bounded_cancel::Cause::Error(e) => e,
    ///     _ => unreachable!(),
    /// }));
    /// ```
    pub fn cancel_with_arc(&self, err: Arc<dyn Error + Send + Sync + 'static>) -> bool {
        self.node.cancel(Cause::Error(err))
    }

    /// Returns `true` once this context or an ancestor has been cancelled or has passed its deadline.
    ///
    /// This takes no lock: it reads one atomic per level of the tree.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    ///
    /// let ctx = Context::new();
    /// assert!(!ctx.is_cancelled());
    /// ctx.cancel();
    /// assert!(ctx.is_cancelled());
    /// ```
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.node.is_cancelled()
    }

    /// Returns why this context ended, or `None` while it is live.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::{Cause, Context};
    ///
    /// let parent = Context::new();
    /// let child = parent.child();
    /// assert!(child.cause().is_none());
    /// parent.cancel();
    /// assert!(matches!(child.cause(), Some(Cause::Cancelled)));
    /// ```
    pub fn cause(&self) -> Option<Cause> {
        self.node.cause().cloned()
    }

    /// Returns the instant at which this context ends by itself, if it has a deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    ///
    /// assert_eq!(Context::new().deadline(), None);
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// Returns the time left until the deadline (zero once it has passed), or `None` without a deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ctx = Context::new().with_timeout(Duration::from_secs(5));
    /// tokio::time::sleep(Duration::from_secs(2)).await;
    /// assert_eq!(ctx.remaining(), Some(Duration::from_secs(3)));
    /// # }
    /// ```
    pub fn remaining(&self) -> Option<Duration> {
        self.node
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Waits until this context ends and returns the cause.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it completes removes its waiter and changes nothing else.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::{Cause, Context};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = Context::new();
    /// let waiter = tokio::spawn({
    ///     let ctx = ctx.clone();
    ///     async move { ctx.cancelled().await }
    /// });
    /// ctx.cancel();
    /// assert!(matches!(waiter.await.unwrap(), Cause::Cancelled));
    /// # }
    /// ```
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled::new(&self.node.token, self)
    }

    /// Runs `fut` until it completes or this context ends, whichever is first.
    ///
    /// Returns the future's output, or the cause if the context ended first. A context that has already
    /// ended never polls `fut`. The future is dropped with the returned [`Run`].
    ///
    /// # Cancel safety
    ///
    /// As cancel-safe as `fut` itself: dropping `Run` drops `fut` where it stands.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = Context::new();
    /// assert_eq!(ctx.run(async { 7 }).await.unwrap(), 7);
    /// ctx.cancel();
    /// assert!(ctx.run(async { 7 }).await.is_err());
    /// # }
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> Run<'_, F> {
        Run::new(self.cancelled(), fut)
    }

    /// Returns a tokio-util [`CancellationToken`] that is cancelled when this context ends.
    ///
    /// The token is a child: cancelling it does not cancel this context. Use it to hand this context's
    /// lifetime to code that speaks `CancellationToken`; use [`cancel`](Context::cancel) to end the context.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    ///
    /// let ctx = Context::new();
    /// let token = ctx.token();
    /// ctx.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn token(&self) -> CancellationToken {
        self.node.token.child_token()
    }

    pub(crate) fn cause_or_cancelled(&self) -> Cause {
        self.cause().unwrap_or(Cause::Cancelled)
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::new()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("cause", &self.node.cause())
            .field("deadline", &self.node.deadline)
            .finish()
    }
}

fn spawn_timer(node: Weak<Node>, token: CancellationToken, deadline: Instant) -> AbortHandle {
    let timer = async move {
        tokio::select! {
            biased;
            _ = token.cancelled() => {}
            _ = tokio::time::sleep_until(deadline) => {
                if let Some(node) = node.upgrade() {
                    node.cancel(Cause::DeadlineExceeded);
                }
            }
        }
    };
    tokio::spawn(live::tracked("context deadline timer", timer)).abort_handle()
}
