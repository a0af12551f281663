//! `Context`: a tree of cancellation scopes, each with a first cause and an optional deadline.
//!
//! # Invariants
//!
//! 1. A node's cause is set at most once (`OnceLock`): the first `record` wins, and a node whose
//!    ancestor has a cause records nothing, so a descendant always reports its ancestor's cause.
//! 2. The cause is stored before the node's waiters are woken and its token fires, so every waiter
//!    woken (and every token that fired) reads the cause, never "cancelled without a cause".
//! 3. A node's deadline is the earlier of its own and its parent's, fixed when it is made.
//! 4. Every answer that depends on time reads the clock: once the deadline has passed, the first
//!    reader records `DeadlineExceeded` on the highest ancestor sharing that deadline (invariant 1
//!    decides against a concurrent `cancel`), so `is_cancelled`, `cause`, `remaining` and a
//!    `cancelled` wait agree with no timer task and on any runtime.
//! 5. `cancel` reads the clock first: a deadline that has passed was the first cause, whether or not
//!    anyone had looked.
//! 6. An alias (`Context::alias`) is a node that stands for its parent: it hands out the parent's
//!    token and has the parent's deadline, never records a cause of its own, and forwards every cancel
//!    to the node it stands for. So every answer read through it is the parent's, one level further
//!    down the walk of invariant 1, and it owns no timer (the deadline's owner is above it). It is a
//!    child in the tree of invariant 7 like any other, so its waiters and children are woken with the
//!    node it stands for.
//! 7. Every node is in its parent's `children` (a slab of weak references, under the parent's lock)
//!    from its making to its drop. The node that records a cause then wakes its subtree: it wakes its
//!    own waiters (invariant 8) and cancels its token if one was made, then does the same for each
//!    live child that has no cause of its own (one that has woken its subtree when it recorded), and
//!    so on down, with a stack rather than recursion, holding one node's lock at a time and no lock
//!    while it wakes anyone or drops a node. A node made after the walk passed its parent reads the
//!    cause instead: its parent's lock orders its making after the cause was stored.
//! 8. A waiter registers its waker in its node's `waiters`, under that lock, unless the end has
//!    already taken them (`ended`); the walk stores the cause first, then takes every waker and
//!    marks the node ended under the same lock, and wakes them after. So a waiter is either
//!    registered before the walk takes the wakers, and woken, or finds the node ended, and reads
//!    the cause. A waiter reads the cause before it registers, too: a node made after the walk
//!    passed its parent is never walked, so a waker registered there would stay. A cause a waiter
//!    reads after registering was recorded after its look before, when its node already was in its
//!    parent's children: that cause's walk reaches the node (it is alive), so the waiter lets its
//!    registration go without the lock, and the walk takes it. A waiter dropped before it saw a
//!    cause removes its waker under the lock unless the node has ended; nothing registers after the
//!    end, so its key is still its own. Polled again by the task it registered (the waker wakes the
//!    same task), a waiter only reads the cause: its registration still stands, so an end after
//!    that read still wakes it.
//! 9. A node's token is made at most once, by the first `token`, under the node's lock, as a child of
//!    its parent's token (made first if need be), so that it fires with its ancestors' tokens even after
//!    its node is gone. The walk reads it under the same lock; every `token` reads the cause after
//!    making or reading the token and cancels it if the node has ended. So a token is cancelled by the
//!    walk, by its parent's token or by its maker, whichever comes last.
//!
//! The only atomics here are `OnceLock`s and the key of invariant 7, read and written under the
//! parent's lock. The loom models at the end interleave concurrent cancels, reads
//! and tokens of the real code.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::Waker;
use std::time::Duration;

use bounded_sync::Mutex;
use slab::Slab;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::future::{Cancelled, Run};
use crate::{Cause, live};

/// A cancellation scope with a cause and an optional deadline: Go's `context.Context` for tokio.
///
/// A `Context` is cheap to clone (one reference count) and every clone is the same context. Code
/// that clones one context on many threads at once, for every item it handles, can give each thread
/// an [`alias`](Context::alias) of it to clone instead.
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
/// Deadlines use [`tokio::time::Instant`], so tests on a paused clock drive them. A deadline costs no
/// task: making and dropping a context with a deadline touches no runtime and takes no lock but its
/// parent's, to enter it in and take it out of the parent's children. The clock
/// is read where an answer depends on it, so [`is_cancelled`](Context::is_cancelled),
/// [`cause`](Context::cause), [`remaining`](Context::remaining) and [`cancelled`](Context::cancelled)
/// always agree, on any runtime or none: once the deadline has passed, the context is cancelled with
/// [`Cause::DeadlineExceeded`] (recorded the first time anyone looks, and then seen by every
/// descendant). A [`cancelled`](Context::cancelled) wait arms one tokio timer for itself, on the runtime
/// that polls it. Only [`token`](Context::token) starts a timer task, because a `CancellationToken` must
/// fire at the deadline whether or not anyone asks.
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
    cause: OnceLock<Cause>,
    parent: Option<Arc<Node>>,
    /// The effective deadline: the earlier of this node's own and its parent's.
    deadline: Option<Instant>,
    /// Started by `token()` only, so that an interop token fires at the deadline by itself; started
    /// again by a later `token()` if the runtime it ran on has shut down.
    timer: Mutex<Option<AbortHandle>>,
    /// This node stands for its parent (invariant 6).
    alias: bool,
    /// The `cancelled` waits on this node, woken when it ends (invariant 8).
    waiters: Mutex<Waiters>,
    /// The live children, woken with this node (invariant 7).
    children: Mutex<Slab<Weak<Node>>>,
    /// This node's key in its parent's `children`, written and read under the parent's lock.
    key: AtomicUsize,
    /// Made by the first `token()` (invariant 9).
    token: OnceLock<CancellationToken>,
}

/// The wakers of the `cancelled` waits on one node, until its end takes them (invariant 8). A place
/// given back is reused by the next wait, so the slab holds as many places as waits were registered
/// at once (a waker each, 16 bytes), until the end frees it.
#[derive(Default)]
struct Waiters {
    wakers: Slab<Waker>,
    /// The end has taken the wakers: no wait registers any more.
    ended: bool,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.detach();
        // The ancestors this node held the last reference to are dropped one after another rather
        // than each inside the drop of the one below, so that a long chain cannot overflow the stack.
        let mut next = self.parent.take();
        while let Some(parent) = next {
            next = Arc::into_inner(parent).and_then(|mut node| {
                node.detach();
                node.parent.take()
            });
        }
    }
}

impl Node {
    #[inline]
    fn is_cancelled(&self) -> bool {
        self.cause().is_some()
    }

    /// The recorded cause, or `DeadlineExceeded` (recorded now) if the deadline has passed.
    #[inline]
    fn cause(&self) -> Option<&Cause> {
        if let Some(cause) = self.recorded() {
            return Some(cause);
        }
        self.deadline.and_then(|deadline| self.cause_at(deadline))
    }

    /// [`cause`](Node::cause) for a live context with a deadline: kept out of line, so that the
    /// check every spawn and submission makes on a context without one stays a few instructions.
    #[inline(never)]
    fn cause_at(&self, deadline: Instant) -> Option<&Cause> {
        if Instant::now() < deadline {
            return None;
        }
        self.expire();
        self.recorded()
    }

    /// The highest ancestor whose effective deadline is this node's, or `None` when the deadline is
    /// this node's own.
    fn deadline_owner(&self) -> Option<&Arc<Node>> {
        let mut owner = None;
        let mut next = self.parent.as_ref();
        while let Some(parent) = next.filter(|p| p.deadline == self.deadline) {
            owner = Some(parent);
            next = parent.parent.as_ref();
        }
        owner
    }

    /// The cause recorded on this node or an ancestor, without reading the clock.
    #[inline]
    fn recorded(&self) -> Option<&Cause> {
        let mut node = self;
        loop {
            if let Some(cause) = node.cause.get() {
                return Some(cause);
            }
            node = node.parent.as_deref()?;
        }
    }

    /// Records `DeadlineExceeded` on the highest ancestor that shares this node's deadline, so that its
    /// whole subtree (and the tokens handed out under it) ends together.
    fn expire(&self) {
        match self.deadline_owner() {
            Some(owner) => owner.record(Cause::DeadlineExceeded),
            None => self.record(Cause::DeadlineExceeded),
        };
    }

    fn cancel(&self, cause: Cause) -> bool {
        let node = self.stands_for();
        // A deadline that has passed was the first cause, whether or not anyone had looked yet.
        if node.cause().is_some() {
            return false;
        }
        node.record(cause)
    }

    /// The node this one stands for: itself, or for an alias the node it aliases (invariant 6).
    fn stands_for(&self) -> &Node {
        match (&self.parent, self.alias) {
            (Some(parent), true) => parent.stands_for(),
            _ => self,
        }
    }

    fn record(&self, cause: Cause) -> bool {
        // An ancestor's cause already covers this context: the first cause wins.
        if self.recorded().is_some() || self.cause.set(cause).is_err() {
            return false;
        }
        // The cause is stored before anyone is woken, so every waiter woken sees it (invariant 2).
        self.wake_subtree();
        true
    }

    /// Stops this node's timer and takes it out of its parent's children, as it is dropped.
    fn detach(&mut self) {
        if let Some(timer) = self.timer.get_mut().take() {
            timer.abort();
        }
        if let Some(parent) = &self.parent {
            let removed = parent
                .children
                .lock()
                .try_remove(self.key.load(Ordering::Relaxed));
            // A weak reference to this node, dropped outside the lock.
            drop(removed);
        }
    }

    /// Wakes the waiters and fires the tokens of this node and of every descendant that has not
    /// ended on its own (invariant 7).
    fn wake_subtree(&self) {
        let mut stack = Vec::new();
        self.wake(&mut stack);
        while let Some(node) = stack.pop() {
            if node.cause.get().is_none() {
                node.wake(&mut stack);
            }
        }
    }

    /// Wakes this node's waiters, cancels its token if it has one, and pushes its live children.
    fn wake(&self, stack: &mut Vec<Arc<Node>>) {
        let token = {
            let children = self.children.lock();
            stack.extend(children.iter().filter_map(|(_, child)| child.upgrade()));
            self.token.get().cloned()
        };
        let wakers = {
            let mut waiters = self.waiters.lock();
            waiters.ended = true;
            std::mem::take(&mut waiters.wakers)
        };
        for (_, waker) in wakers {
            waker.wake();
        }
        if let Some(token) = token {
            token.cancel();
        }
    }

    fn new(parent: Option<Arc<Node>>, deadline: Option<Instant>, alias: bool) -> Node {
        Node {
            cause: OnceLock::new(),
            parent,
            deadline,
            timer: Mutex::new(None),
            alias,
            waiters: Mutex::default(),
            children: Mutex::new(Slab::new()),
            key: AtomicUsize::new(0),
            token: OnceLock::new(),
        }
    }

    /// A new node under `parent`, in its parent's `children` (invariant 7).
    fn child_of(parent: &Arc<Node>, deadline: Option<Instant>, alias: bool) -> Arc<Node> {
        let node = Arc::new(Node::new(Some(parent.clone()), deadline, alias));
        let mut children = parent.children.lock();
        node.key
            .store(children.insert(Arc::downgrade(&node)), Ordering::Relaxed);
        drop(children);
        node
    }

    /// This node's token, made by the first call (invariant 9); an alias's is its parent's.
    fn token(&self) -> CancellationToken {
        let node = self.stands_for();
        if let Some(token) = node.token.get() {
            let token = token.clone();
            node.fire_if_ended(&token);
            return token;
        }
        // The ancestors that have no token yet, made from the top down, each a child of the one
        // above it, so that a token fires with its ancestors' even after its own node is gone.
        let mut missing = vec![node];
        let mut above = None;
        let mut next = node.parent.as_deref();
        while let Some(parent) = next.map(Node::stands_for) {
            if let Some(token) = parent.token.get() {
                above = Some(token.clone());
                break;
            }
            missing.push(parent);
            next = parent.parent.as_deref();
        }
        for node in missing.into_iter().rev() {
            let made = above
                .as_ref()
                .map_or_else(CancellationToken::new, CancellationToken::child_token);
            let token = {
                let _walk = node.children.lock();
                node.token.get_or_init(|| made).clone()
            };
            node.fire_if_ended(&token);
            above = Some(token);
        }
        above.expect("made above")
    }

    /// Cancels `token` if this node has ended: a token made after the walk passed (invariant 9).
    fn fire_if_ended(&self, token: &CancellationToken) {
        if self.cause().is_some() {
            token.cancel();
        }
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
            node: Arc::new(Node::new(None, None, false)),
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
    #[must_use = "this returns a new context; the one it is called on is unchanged"]
    pub fn child(&self) -> Self {
        self.make_child(self.node.deadline)
    }

    /// Creates a child whose deadline is `timeout` from now on tokio's clock, or the parent's if that is earlier.
    ///
    /// Durations saturate: a timeout too long to be an instant (such as [`Duration::MAX`]) means no
    /// deadline of the child's own, as with tokio's `sleep`.
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
    ///
    /// The context it is called on keeps no deadline: a call whose result is not used does nothing,
    /// and the compiler says so (as `go vet` does of a discarded `cancel`).
    ///
    /// ```compile_fail
    /// #![deny(unused_must_use)]
    /// # use bounded_cancel::Context;
    /// # use std::time::Duration;
    /// let ctx = Context::new();
    /// ctx.with_timeout(Duration::from_secs(2)); // error: unused return value
    /// ```
    #[must_use = "this returns a new context; the one it is called on is unchanged"]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        match crate::deadline_after(timeout) {
            Some(deadline) => self.with_deadline(deadline),
            None => self.child(),
        }
    }

    /// Creates a child that ends at `deadline`, or at the parent's deadline if that is earlier.
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
    #[must_use = "this returns a new context; the one it is called on is unchanged"]
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        let deadline = match self.node.deadline {
            Some(inherited) if inherited <= deadline => inherited,
            _ => deadline,
        };
        self.make_child(Some(deadline))
    }

    fn make_child(&self, deadline: Option<Instant>) -> Self {
        Context {
            node: Node::child_of(&self.node, deadline, false),
        }
    }

    /// Returns another handle on this same context, whose clones are counted apart from this one's.
    ///
    /// The alias is this context in everything it does: cancelling it cancels this context (and so
    /// every descendant of it), it ends when this context ends, with the same cause, and it has the
    /// same deadline and the same token. What differs is only where its clones are counted. Every
    /// clone of a context adds to and takes from one reference count; threads that clone the same
    /// context at once, for every job or item they run, take that count's cache line from one another
    /// on each clone and each drop. A long-lived worker that hands each of its jobs a clone can clone
    /// an alias of its own instead, made once when the worker starts. `bounded`'s pool workers,
    /// pipeline stage workers and (on a multi-thread runtime) group runners do so.
    ///
    /// An alias costs one allocation and, like a child, a turn of this context's lock when it is made
    /// and when it is dropped (it is one of this context's children, woken with it). Every check made
    /// through it (such as [`is_cancelled`](Context::is_cancelled)) reads one atomic more than the
    /// same check made through this context.
    ///
    /// # Examples
    ///
    /// ```
    /// use bounded_cancel::Context;
    ///
    /// let ctx = Context::new();
    /// let alias = ctx.alias();
    /// let for_a_job = alias.clone(); // counted on the alias, not on `ctx`
    /// assert!(for_a_job.cancel());
    /// assert!(ctx.is_cancelled(), "cancelling an alias cancels the context itself");
    /// assert!(!alias.cancel(), "it had already ended");
    /// ```
    #[must_use = "this returns a new context; the one it is called on is unchanged"]
    pub fn alias(&self) -> Self {
        Context {
            node: Node::child_of(&self.node, self.node.deadline, true),
        }
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
    /// For a context with a deadline, the wait arms one tokio timer for itself when first polled, and
    /// ends with [`Cause::DeadlineExceeded`] when the deadline comes.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it completes removes its waiter and changes nothing else.
    ///
    /// # Panics
    ///
    /// Waiting on a context with a deadline needs tokio's timer: it panics, as `tokio::time::sleep`
    /// does, when first polled outside a tokio runtime, or in one built without `enable_time`, while
    /// the deadline is still ahead. A wait on a context without one needs no runtime.
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
        Cancelled::new(self)
    }

    /// Runs `fut` until it completes or this context ends, whichever is first.
    ///
    /// Returns the future's output, or the cause if the context ended first. A context that has already
    /// ended never polls `fut`. The future is dropped with the returned [`Run`].
    ///
    /// The first poll registers the wait with this context (one turn of a lock); every later poll by
    /// the same task reads the cause with atomic loads and takes no lock, however many tasks race
    /// futures against this one context.
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
    ///
    /// # Deadlines
    ///
    /// A token cannot read the clock, so for a context with a deadline the first call starts one timer
    /// task (on the current runtime) that ends the context when the deadline passes; it is aborted when
    /// the last clone of the context that owns the deadline is dropped. If that runtime shuts down before
    /// the deadline, the next call starts the timer again on its own runtime. Called outside a runtime, no
    /// timer can start: the token then fires at the deadline only if the context is looked at or waited
    /// on.
    pub fn token(&self) -> CancellationToken {
        if let Some(deadline) = self.node.deadline
            && !self.is_cancelled()
        {
            let owner = self.node.deadline_owner().unwrap_or(&self.node);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                start_timer(&runtime, owner, deadline);
            }
        }
        self.node.token().child_token()
    }

    /// Ends the context with `DeadlineExceeded` (unless it has ended already); a waiter's timer calls
    /// it when the deadline has come.
    pub(crate) fn expire(&self) {
        self.node.expire();
    }

    /// Registers a wait's `waker`, to be woken when this context ends (invariant 8): its key, or
    /// `None` if the end has woken this context's waits already (its cause is then recorded).
    pub(crate) fn register(&self, waker: &Waker) -> Option<usize> {
        let mut waiters = self.node.waiters.lock();
        (!waiters.ended).then(|| waiters.wakers.insert(waker.clone()))
    }

    /// Puts `waker` in place of the one registered under `key`: `false` if the end has taken it.
    pub(crate) fn reregister(&self, key: usize, waker: &Waker) -> bool {
        let mut waiters = self.node.waiters.lock();
        if waiters.ended {
            return false;
        }
        let old = std::mem::replace(&mut waiters.wakers[key], waker.clone());
        drop(waiters);
        drop(old);
        true
    }

    /// Takes back the waker registered under `key`, for a wait dropped before it saw the end.
    pub(crate) fn deregister(&self, key: usize) {
        let mut waiters = self.node.waiters.lock();
        let waker = match waiters.ended {
            false => waiters.wakers.try_remove(key),
            true => None,
        };
        drop(waiters);
        drop(waker);
    }

    /// The cause recorded on this context or an ancestor, without reading the clock.
    pub(crate) fn recorded_cause(&self) -> Option<Cause> {
        self.node.recorded().cloned()
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

/// Starts `owner`'s token timer unless one runs. A live context's timer has finished only if its
/// runtime shut down; the tokens would then never fire at the deadline, so one starts again here.
/// Spawned outside the lock; of two callers that both found none running, the second stops its own.
fn start_timer(runtime: &tokio::runtime::Handle, owner: &Arc<Node>, deadline: Instant) {
    let needed = |timer: &Option<AbortHandle>| timer.as_ref().is_none_or(AbortHandle::is_finished);
    if !needed(&owner.timer.lock()) {
        return;
    }
    let started = spawn_timer(runtime, owner, deadline);
    let spare = {
        let mut timer = owner.timer.lock();
        if needed(&timer) {
            timer.replace(started)
        } else {
            Some(started)
        }
    };
    // The finished timer's handle, or the one started too late: aborting a finished task does nothing.
    if let Some(spare) = spare {
        spare.abort();
    }
}

fn spawn_timer(
    runtime: &tokio::runtime::Handle,
    node: &Arc<Node>,
    deadline: Instant,
) -> AbortHandle {
    // A clone of the token does not keep the node alive; the weak reference lets the last clone of the
    // context drop the node, whose `Drop` aborts this task.
    let (token, node) = (node.token(), Arc::downgrade(node));
    let timer = async move {
        tokio::select! {
            biased;
            _ = token.cancelled() => {}
            _ = tokio::time::sleep_until(deadline) => {
                if let Some(node) = node.upgrade() {
                    node.expire();
                }
            }
        }
    };
    runtime
        .spawn(live::tracked("context deadline timer", timer))
        .abort_handle()
}

/// A task's waker that counts its wakes; its `Arc`'s count tells how many clones are held.
#[cfg(test)]
struct Counting(AtomicUsize);

#[cfg(test)]
impl std::task::Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
fn counting() -> (Arc<Counting>, Waker) {
    let count = Arc::new(Counting(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    (count, waker)
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_parent_keeps_no_place_for_children_that_are_gone() {
        let root = Context::new();
        let kept = root.child();
        for _ in 0..1_000 {
            let child = root.with_timeout(Duration::from_secs(60));
            let _alias = child.alias();
            let _grandchild = child.child();
            let _token = child.token();
        }
        {
            let children = root.node.children.lock();
            assert_eq!(children.len(), 1, "only the child still alive");
            assert!(children.capacity() <= 4, "places are reused, not added");
        }
        drop(kept);
        assert!(root.node.children.lock().is_empty());
    }

    /// Waits dropped in any order give their places back, a place given back and taken again belongs
    /// to the new wait, and the end wakes exactly the waits still there and keeps no waker: a key a
    /// dropped wait removes is never another wait's.
    #[test]
    fn waits_dropped_in_any_order_leave_exactly_the_live_ones_to_wake() {
        use std::future::Future;
        use std::pin::pin;
        use std::task::Context as TaskContext;

        let ctx = Context::new();
        let (a, wake_a) = counting();
        let (b, wake_b) = counting();
        let (c, wake_c) = counting();
        let poll = |wait: std::pin::Pin<&mut Cancelled<'_>>, waker: &Waker| {
            wait.poll(&mut TaskContext::from_waker(waker))
        };
        let mut first = Box::pin(ctx.cancelled());
        let mut second = Box::pin(ctx.cancelled());
        assert!(poll(first.as_mut(), &wake_a).is_pending());
        assert!(poll(second.as_mut(), &wake_b).is_pending());
        assert_eq!(ctx.node.waiters.lock().wakers.len(), 2);
        drop(first);
        // The third wait takes the first one's place.
        let mut third = pin!(ctx.cancelled());
        assert!(poll(third.as_mut(), &wake_c).is_pending());
        drop(second);
        assert_eq!(ctx.node.waiters.lock().wakers.len(), 1, "only the third");
        assert_eq!((Arc::strong_count(&a), Arc::strong_count(&b)), (2, 2));
        ctx.cancel();
        let wakes = |w: &Arc<Counting>| w.0.load(Ordering::SeqCst);
        assert_eq!((wakes(&a), wakes(&b), wakes(&c)), (0, 0, 1));
        assert!(matches!(
            poll(third.as_mut(), &wake_c),
            std::task::Poll::Ready(Cause::Cancelled)
        ));
        let waiters = ctx.node.waiters.lock();
        assert!(waiters.ended && waiters.wakers.is_empty());
        drop(waiters);
        assert_eq!(
            Arc::strong_count(&c),
            2,
            "the end kept no clone of the waker"
        );
        // After the end, a new wait ends at its first poll and registers nothing.
        let mut late = pin!(ctx.cancelled());
        assert!(poll(late.as_mut(), &wake_a).is_ready());
        assert!(ctx.node.waiters.lock().wakers.is_empty());
    }

    /// A context made after its parent ended is never walked by that end: waits on it, however
    /// many, read the cause and register nothing, so none of their wakers stays behind.
    #[test]
    fn waits_on_a_context_made_after_its_parent_ended_leave_no_waker() {
        use std::future::Future;
        use std::task::Context as TaskContext;

        let root = Context::new();
        root.cancel();
        let late = root.child();
        let (count, waker) = counting();
        for _ in 0..100 {
            let mut wait = Box::pin(late.cancelled());
            let polled = wait.as_mut().poll(&mut TaskContext::from_waker(&waker));
            assert!(matches!(polled, std::task::Poll::Ready(Cause::Cancelled)));
        }
        assert!(late.node.waiters.lock().wakers.is_empty());
        assert_eq!(Arc::strong_count(&count), 2, "no clone of the waker kept");
    }

    /// A wait polled again by another task hands its place to that task's waker, and the first
    /// task's waker is let go at once.
    #[test]
    fn a_wait_polled_by_another_task_keeps_one_place_and_one_waker() {
        use std::future::Future;
        use std::task::Context as TaskContext;

        let ctx = Context::new();
        let (first, wake_first) = counting();
        let (second, wake_second) = counting();
        let mut wait = Box::pin(ctx.cancelled());
        let cx = |waker| TaskContext::from_waker(waker);
        assert!(wait.as_mut().poll(&mut cx(&wake_first)).is_pending());
        assert!(wait.as_mut().poll(&mut cx(&wake_second)).is_pending());
        assert_eq!(ctx.node.waiters.lock().wakers.len(), 1);
        assert_eq!(Arc::strong_count(&first), 2, "the first waker was let go");
        drop(wait);
        assert!(ctx.node.waiters.lock().wakers.is_empty());
        assert_eq!(
            Arc::strong_count(&second),
            2,
            "and the second, with the wait"
        );
    }

    #[test]
    fn children_made_and_dropped_while_the_context_ends_leave_no_place_behind() {
        use std::future::Future;
        use std::task::{Context as TaskContext, Waker};

        for _ in 0..100 {
            let root = Context::new();
            let start = Arc::new(std::sync::Barrier::new(3));
            let makers: Vec<_> = (0..2)
                .map(|_| {
                    let (root, start) = (root.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let mut cx = TaskContext::from_waker(Waker::noop());
                        for i in 0..200 {
                            let child = if i % 2 == 0 {
                                root.child()
                            } else {
                                root.alias()
                            };
                            let grandchild = child.child();
                            let mut wait = Box::pin(grandchild.cancelled());
                            let _ = wait.as_mut().poll(&mut cx);
                            if i % 3 == 0 {
                                let _ = grandchild.token();
                            }
                        }
                    })
                })
                .collect();
            start.wait();
            root.cancel();
            for maker in makers {
                maker.join().unwrap();
            }
            assert!(root.node.children.lock().is_empty());
        }
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::*;

    /// Lets the other threads run until `woken` has counted a wake.
    fn spin_until_woken(woken: &Counting) {
        while woken.0.load(Ordering::SeqCst) == 0 {
            loom::thread::yield_now();
        }
    }

    /// A wait polled on one thread while another ends its context, beside a second wait that is
    /// dropped meanwhile: the first is ready at its first poll or woken once and then ready, and the
    /// context keeps no waker of either (invariant 8). The cause is a `OnceLock`, read without loom,
    /// so loom interleaves the waiters' lock and the yields.
    #[test]
    fn a_wait_begun_or_dropped_while_the_context_ends_is_woken_or_gone() {
        use std::future::Future;
        use std::task::Context as TaskContext;

        loom::model(|| {
            let root = Context::new();
            let waiter = {
                let ctx = root.clone();
                loom::thread::spawn(move || {
                    let (kept, wake_kept) = counting();
                    let (_, wake_dropped) = counting();
                    let mut wait = Box::pin(ctx.cancelled());
                    let mut other = Box::pin(ctx.cancelled());
                    let _ = other
                        .as_mut()
                        .poll(&mut TaskContext::from_waker(&wake_dropped));
                    let mut cx = TaskContext::from_waker(&wake_kept);
                    let first = wait.as_mut().poll(&mut cx);
                    drop(other);
                    if first.is_pending() {
                        spin_until_woken(&kept);
                        assert!(wait.as_mut().poll(&mut cx).is_ready(), "woken, then ready");
                    }
                    assert!(kept.0.load(Ordering::SeqCst) <= 1, "woken once at most");
                })
            };
            loom::thread::yield_now();
            root.cancel();
            waiter.join().unwrap();
            let waiters = root.node.waiters.lock();
            assert!(waiters.ended && waiters.wakers.is_empty(), "no waker kept");
        });
    }

    /// One thread makes a child and waits on it while another ends the root: the wait ends, and once
    /// both are done the child keeps no waker, whether it was made before the end or after the walk
    /// passed the root (invariant 8: a wait reads the cause before it registers).
    #[test]
    fn a_wait_on_a_child_made_while_the_root_ends_leaves_no_waker() {
        use std::future::Future;
        use std::task::Context as TaskContext;

        loom::model(|| {
            let root = Context::new();
            let waiter = {
                let root = root.clone();
                loom::thread::spawn(move || {
                    let child = root.child();
                    let (woken, waker) = counting();
                    let mut cx = TaskContext::from_waker(&waker);
                    {
                        let mut wait = Box::pin(child.cancelled());
                        while wait.as_mut().poll(&mut cx).is_pending() {
                            spin_until_woken(&woken);
                        }
                    }
                    child
                })
            };
            root.cancel();
            let child = waiter.join().unwrap();
            assert!(child.node.waiters.lock().wakers.is_empty(), "no waker kept");
        });
    }

    /// One thread ends the root while another makes a child under it, takes the child's token, and
    /// drops the child (so the walk may find it, upgrade it and drop it last, or find it gone): the
    /// token fires, and the root keeps no place for the child.
    #[test]
    fn a_child_made_and_dropped_while_the_root_ends_leaves_a_fired_token_and_no_place() {
        loom::model(|| {
            let root = Context::new();
            let maker = {
                let root = root.clone();
                loom::thread::spawn(move || {
                    let child = root.child();
                    let token = child.token();
                    drop(child);
                    token
                })
            };
            root.cancel();
            let token = maker.join().unwrap();
            assert!(token.is_cancelled(), "the token fired");
            assert!(root.node.children.lock().is_empty());
        });
    }

    /// Two threads take the first tokens of the same child at once (one of the two makes it, under
    /// the child's lock) while the root ends: both tokens fire.
    #[test]
    fn tokens_first_taken_on_two_threads_while_the_root_ends_both_fire() {
        loom::model(|| {
            let root = Context::new();
            let child = root.child();
            let takers: Vec<_> = (0..2)
                .map(|_| {
                    let child = child.clone();
                    loom::thread::spawn(move || child.token())
                })
                .collect();
            root.cancel();
            for taker in takers {
                assert!(taker.join().unwrap().is_cancelled());
            }
            assert!(
                child
                    .node
                    .token
                    .get()
                    .is_some_and(CancellationToken::is_cancelled)
            );
        });
    }

    /// A token taken from a child while another thread ends the parent fires, whichever comes
    /// first (invariant 9): the walk fires it, or its maker reads the end and fires it.
    #[test]
    fn a_token_made_while_its_parent_ends_fires() {
        loom::model(|| {
            let root = Context::new();
            let child = root.child();
            let canceller = {
                let root = root.clone();
                loom::thread::spawn(move || root.cancel())
            };
            let token = child.token();
            let grandchild = child.child();
            assert!(canceller.join().unwrap());
            assert!(token.is_cancelled(), "the child's token fired");
            assert!(grandchild.token().is_cancelled());
        });
    }

    /// Two threads end one context with different causes (one through an alias of it) while a third
    /// reads it through a child: one cause wins, every reader that sees the context ended sees that
    /// cause, and a child never reports a cause its parent does not have. The cause is a `OnceLock`
    /// and the wake-up a tokio-util token, both `std`-synchronised, so loom interleaves the operations
    /// (at the yields) rather than the instructions inside them.
    #[test]
    fn the_first_cause_wins_and_every_reader_agrees() {
        loom::model(|| {
            let ctx = Context::new();
            let child = ctx.child();
            // One canceller ends the context through an alias of it (invariant 6).
            let canceller = |with_error: bool| {
                let ctx = if with_error { ctx.alias() } else { ctx.clone() };
                loom::thread::spawn(move || {
                    loom::thread::yield_now();
                    if with_error {
                        ctx.cancel_with(std::io::Error::other("first"))
                    } else {
                        ctx.cancel()
                    }
                })
            };
            let a = canceller(true);
            let b = canceller(false);
            loom::thread::yield_now();
            let seen = child.cause();
            let won = [a.join().unwrap(), b.join().unwrap()];
            assert_eq!(
                won.iter().filter(|w| **w).count(),
                1,
                "exactly one cause wins"
            );
            let winner = ctx.cause().expect("ended");
            let expected = if won[0] { "first" } else { "context cancelled" };
            assert!(winner.to_string().contains(expected), "{winner}");
            if let Some(seen) = seen {
                assert_eq!(
                    seen.to_string(),
                    winner.to_string(),
                    "a reader saw another cause"
                );
            }
            assert_eq!(child.cause().unwrap().to_string(), winner.to_string());
            assert!(child.token().is_cancelled(), "the child's token fired");
        });
    }
}
