//! The future of `submit`, `submit_with` and `submit_detached`, written by hand so that it stays a
//! few words beside the job: an `async fn` keeps room for every state it could be in (the wait in
//! line, the caller's cancellation) in every submission, and copies all of it as the future moves.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bounded_cancel::{Cancelled, Context};
use bounded_sync::queue::{Refused, Reserve};

use crate::error::SubmitError;
use crate::job_handle::JobHandle;
use crate::pool::{Inner, JobFuture, ResultTx, Submission};

/// What a submission hands back once its job is queued: a [`JobHandle`], or nothing for a detached
/// job. Made at the first poll, as an `async fn` would, so a submission never polled allocates
/// nothing.
pub(crate) trait Reply<T, E> {
    type Handle;

    /// Where the job's result goes, and what the submitter gets to await it.
    fn make() -> (Option<ResultTx<T, E>>, Self::Handle);
}

/// A job whose result is awaited through a [`JobHandle`].
pub(crate) struct WithHandle;

/// A job whose result nobody awaits.
pub(crate) struct Detached;

impl<T, E> Reply<T, E> for WithHandle {
    type Handle = JobHandle<T, E>;

    fn make() -> (Option<ResultTx<T, E>>, JobHandle<T, E>) {
        let (tx, rx) = oneshot::async_channel();
        (Some(tx), JobHandle::new(rx))
    }
}

impl<T, E> Reply<T, E> for Detached {
    type Handle = ();

    fn make() -> (Option<ResultTx<T, E>>, ()) {
        (None, ())
    }
}

/// Queues a job, waiting for room: into a free place at once if there is one (reserved and filled
/// under one lock of the queue), else into the first place granted to it in line. The caller's
/// context, if any, ends the wait; its wait is boxed and made only once the submitter has to wait,
/// so that the common case carries none.
pub(crate) struct Submit<'a, J, T, E, R: Reply<T, E>> {
    inner: &'a Inner,
    caller: Option<&'a Context>,
    job: Option<J>,
    state: State<'a, T, E, R>,
}

enum State<'a, T, E, R: Reply<T, E>> {
    /// Not polled yet.
    Start,
    /// No place was free: in line for one, with the result channel already made.
    Waiting {
        reserve: Reserve<'a, JobFuture>,
        caller_ended: Option<Pin<Box<Cancelled<'a>>>>,
        tx: Option<ResultTx<T, E>>,
        handle: R::Handle,
    },
    /// Resolved; the place in line, if any, is given up.
    Done,
}

impl<'a, J, T, E, R: Reply<T, E>> Submit<'a, J, T, E, R> {
    pub(crate) fn new(inner: &'a Inner, caller: Option<&'a Context>, job: J) -> Self {
        Submit {
            inner,
            caller,
            job: Some(job),
            state: State::Start,
        }
    }
}

// Nothing in it is pinned: the caller's wait is boxed.
impl<J, T, E, R: Reply<T, E>> Unpin for Submit<'_, J, T, E, R> {}

impl<J, Fut, T, E, R> Future for Submit<'_, J, T, E, R>
where
    J: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
    R: Reply<T, E>,
{
    type Output = Result<R::Handle, SubmitError<J>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = this.inner;
        if let State::Start = this.state {
            let job = this
                .job
                .take()
                .expect("a submission polled after it resolved");
            // The pool's state is read before the caller's: a finished pool says `Closed` to every
            // caller, whichever entry point it used.
            if inner.is_closed() {
                this.state = State::Done;
                return Poll::Ready(Err(inner.refused(SubmitError::Closed(job))));
            }
            if let Some(cause) = this.caller.and_then(Context::cause) {
                this.state = State::Done;
                let refused = match inner.queue.is_refusing() {
                    true => SubmitError::Closed(job),
                    false => SubmitError::Cancelled { job, cause },
                };
                return Poll::Ready(Err(inner.refused(refused)));
            }
            let (tx, handle) = R::make();
            match inner.try_place(Submission { job, tx }) {
                Ok(()) => {
                    this.state = State::Done;
                    return Poll::Ready(Ok(handle));
                }
                Err((Refused::Closed, submission)) => {
                    this.state = State::Done;
                    return Poll::Ready(Err(inner.refused(SubmitError::Closed(submission.job))));
                }
                Err((Refused::Full, submission)) => {
                    this.job = Some(submission.job);
                    this.state = State::Waiting {
                        reserve: inner.queue.reserve(),
                        caller_ended: None,
                        tx: submission.tx,
                        handle,
                    };
                }
            }
        }
        let State::Waiting {
            reserve,
            caller_ended,
            ..
        } = &mut this.state
        else {
            panic!("a submission polled after it resolved");
        };
        // The caller's context is looked at first. The pool's own context needs no waiter here: when
        // it ends, the abort refuses every submitter in line, which ends this wait as `Closed`.
        if let Some(caller) = this.caller {
            let ended = caller_ended.get_or_insert_with(|| Box::pin(caller.cancelled()));
            if let Poll::Ready(cause) = ended.as_mut().poll(cx) {
                let job = this.job.take().expect("a waiting submission holds its job");
                this.state = State::Done;
                return Poll::Ready(Err(inner.refused(SubmitError::Cancelled { job, cause })));
            }
        }
        let waited = std::task::ready!(Pin::new(reserve).poll(cx));
        let job = this.job.take().expect("a waiting submission holds its job");
        let State::Waiting { tx, handle, .. } = std::mem::replace(&mut this.state, State::Done)
        else {
            unreachable!("matched above");
        };
        Poll::Ready(match waited {
            Ok(place) => {
                inner.fill(place, Submission { job, tx });
                Ok(handle)
            }
            Err(_) => Err(inner.refused(SubmitError::Closed(job))),
        })
    }
}
