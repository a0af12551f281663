use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use bounded_cancel::Context;
use pin_project_lite::pin_project;

use crate::{AcquireError, AcquireWith, Limiter, Throttled};

/// A client that waits for its limiter before every call: the common Go rate-limited `Client`.
///
/// Clones share the limiter, so 200 tasks holding clones of one `Throttle` together stay within
/// its quota, granted in the order they called.
///
/// # Examples
///
/// ```
/// use bounded_cancel::Context;
/// use bounded_ratelimit::{Limiter, Quota, Throttle};
/// use std::time::Duration;
///
/// #[derive(Clone, Debug)]
/// struct Downstream;
/// impl Downstream {
///     async fn get(&self, path: &str) -> String { format!("200 OK {path}") }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = Limiter::new(Quota::per_second(50).burst(1)).expect("a valid quota");
/// let client = Throttle::new(Downstream, limiter);
///
/// let request = Context::new().with_timeout(Duration::from_secs(5));
/// let reply = client.call(&request, |d| d.get("/orders")).await.expect("within the deadline");
/// assert_eq!(reply, "200 OK /orders");
/// # }
/// ```
#[derive(Clone)]
pub struct Throttle<C> {
    client: C,
    limiter: Limiter,
}

impl<C> Throttle<C> {
    /// Wraps `client` so that each [`call`](Throttle::call) first takes one unit from `limiter`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// let client = Throttle::new(vec![1, 2, 3], Limiter::new(Quota::per_second(10)).unwrap());
    /// assert_eq!(client.get_ref().len(), 3);
    /// ```
    pub fn new(client: C, limiter: Limiter) -> Self {
        Throttle { client, limiter }
    }

    /// Waits for a unit (unless `ctx` ends first), then runs `f` on the client.
    ///
    /// `ctx` bounds the wait for the unit; `f`'s future then runs to its end, as `f` wrote it. For a
    /// call that should end with `ctx` too, as a Go client's `Do(req.WithContext(ctx))` does, have
    /// `f` race it: `client.call(&ctx, |c| ctx.run(c.get(url)))` gives `Err(cause)` inside the `Ok`
    /// once `ctx` ends mid-call (the unit was spent: the call was made).
    ///
    /// # Errors
    ///
    /// [`AcquireError`] when no unit was granted: the context ended, or its deadline comes before the
    /// unit would (reported at once). `f` did not run.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for the unit consumes nothing and `f` never runs; once `f`
    /// has run, dropping it drops `f`'s future.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let client = Throttle::new(40, Limiter::new(Quota::per_second(10)).unwrap());
    /// let n = client.call(&Context::new(), |n| async move { n + 2 }).await.unwrap();
    /// assert_eq!(n, 42);
    /// # }
    /// ```
    pub fn call<'a, F, Fut>(&'a self, ctx: &'a Context, f: F) -> Call<'a, C, F, Fut>
    where
        F: FnOnce(&'a C) -> Fut,
        Fut: Future,
    {
        Call {
            acquire: self.limiter.acquire_with(ctx),
            client: &self.client,
            f: Some(f),
            fut: None,
        }
    }

    /// Like [`call`](Throttle::call), for a call that costs `n` units (a batch request, a large
    /// upload): `f` runs once `n` units are granted together.
    ///
    /// # Errors
    ///
    /// As `call`, plus [`AcquireError::InsufficientCapacity`] at once when `n` exceeds the burst.
    /// `f` did not run.
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Throttle::call).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_cancel::Context;
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let client = Throttle::new((), Limiter::new(Quota::per_second(10)).unwrap());
    /// let batch = vec![1, 2, 3, 4];
    /// let n = batch.len() as u32;
    /// let sent = client.call_n(&Context::new(), n, |_| async move { batch.len() }).await.unwrap();
    /// assert_eq!(sent, 4);
    /// assert_eq!(client.limiter().tokens(), 6);
    /// # }
    /// ```
    pub fn call_n<'a, F, Fut>(&'a self, ctx: &'a Context, n: u32, f: F) -> Call<'a, C, F, Fut>
    where
        F: FnOnce(&'a C) -> Fut,
        Fut: Future,
    {
        Call {
            acquire: self.limiter.acquire_n_with(ctx, n),
            client: &self.client,
            f: Some(f),
            fut: None,
        }
    }

    /// Runs `f` on the client if a unit is free now and nobody is queued; never waits. The unit is
    /// taken and `f` has run when this returns `Ok`: await the future it made.
    ///
    /// # Errors
    ///
    /// [`Throttled`] with the time to wait, and `f` back, never run ([`Throttled::into_inner`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let client = Throttle::new(40, Limiter::new(Quota::per_second(1).burst(1)).unwrap());
    /// let n = client.try_call(|n| async move { n + 2 }).ok().unwrap().await;
    /// assert_eq!(n, 42);
    /// let refused = client.try_call(|n| async move { n + 2 }).err().unwrap();
    /// assert_eq!(refused.retry_after(), Some(std::time::Duration::from_secs(1)));
    /// # }
    /// ```
    pub fn try_call<'a, F, Fut>(&'a self, f: F) -> Result<Fut, Throttled<F>>
    where
        F: FnOnce(&'a C) -> Fut,
    {
        self.try_call_n(1, f)
    }

    /// The try twin of [`call_n`](Throttle::call_n): runs `f` if `n` units are free now and nobody is
    /// queued; never waits.
    ///
    /// # Errors
    ///
    /// [`Throttled`] with why ([`Throttled::error`]: not yet, with the wait, or never, for more units
    /// than the burst) and `f` back, never run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let client = Throttle::new((), Limiter::new(Quota::per_second(10)).unwrap());
    /// client.try_call_n(8, |_| async {}).ok().unwrap().await;
    /// let refused = client.try_call_n(8, |_| async {}).err().unwrap();
    /// assert!(refused.retry_after().is_some());
    /// # }
    /// ```
    pub fn try_call_n<'a, F, Fut>(&'a self, n: u32, f: F) -> Result<Fut, Throttled<F>>
    where
        F: FnOnce(&'a C) -> Fut,
    {
        match self.limiter.try_acquire_n(n) {
            Ok(()) => Ok(f(&self.client)),
            Err(error) => Err(Throttled { error, f }),
        }
    }

    /// The limiter every call goes through.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// let client = Throttle::new((), Limiter::new(Quota::per_second(10)).unwrap());
    /// assert_eq!(client.limiter().quota(), Quota::per_second(10));
    /// ```
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The wrapped client, for calls that need no unit.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// let client = Throttle::new("db", Limiter::new(Quota::per_second(10)).unwrap());
    /// assert_eq!(*client.get_ref(), "db");
    /// ```
    pub fn get_ref(&self) -> &C {
        &self.client
    }

    /// Unwraps the client.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Limiter, Quota, Throttle};
    /// let client = Throttle::new(7, Limiter::new(Quota::per_second(10)).unwrap());
    /// assert_eq!(client.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> C {
        self.client
    }
}

impl<C: fmt::Debug> fmt::Debug for Throttle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("client", &self.client)
            .field("limiter", &self.limiter)
            .finish()
    }
}

pin_project! {
    /// Future returned by [`Throttle::call`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Call<'a, C, F, Fut> {
        #[pin]
        acquire: AcquireWith<'a>,
        client: &'a C,
        f: Option<F>,
        #[pin]
        fut: Option<Fut>,
    }
}

impl<'a, C, F, Fut> Future for Call<'a, C, F, Fut>
where
    F: FnOnce(&'a C) -> Fut,
    Fut: Future,
{
    type Output = Result<Fut::Output, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.f.is_some() {
            if let Err(err) = ready!(this.acquire.poll(cx)) {
                this.f.take();
                return Poll::Ready(Err(err));
            }
            let f = this.f.take().expect("checked above");
            this.fut.set(Some(f(this.client)));
        }
        match this.fut.as_pin_mut() {
            Some(fut) => fut.poll(cx).map(Ok),
            None => panic!("`Call` polled after completion"),
        }
    }
}

impl<C, F, Fut> fmt::Debug for Call<'_, C, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("acquire", &self.acquire)
            .field("called", &self.f.is_none())
            .finish()
    }
}
