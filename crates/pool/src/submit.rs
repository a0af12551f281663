//! The future of `submit`, `submit_with` and `submit_detached`, written by hand so that it stays a
//! few words beside the job: an `async fn` keeps room for every state it could be in (the wait in
//! line, the caller's cancellation) in every submission, and copies all of it as the future moves.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bounded_cancel::{Cancelled, Context};
use bounded_sync::own::OwnWait;
use bounded_sync::queue::{Refused, Reserve};
use bounded_sync::runtime::BoxIfLarge;
use pin_project_lite::pin_project;

use crate::error::SubmitError;
use crate::inner::Inner;
use crate::job::{JobFuture, ResultTx, Submission};
use crate::job_handle::JobHandle;

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

/// The future of a submission. A job larger than tokio's threshold for boxing a task's future is put
/// in a box of its own as the submission is made, before anything else moves it, so that what the
/// pool's frames move from then on is the box, and a refusal hands the job back out of it: in a
/// debug build each move is a copy on the stack, and the submission's frames move the job many
/// times. `Placing` below does the work, on the job as it is or on its box.
pub(crate) enum Submit<'a, J, T, E, R: Reply<T, E>> {
    AsIs(Placing<'a, J, T, E, R>),
    // Boxed whole, so that this variant is a pointer the other's unused values can tell apart: the
    // future stays the size it is without this choice.
    Boxed(Box<Placing<'a, Box<J>, T, E, R>>),
}

impl<'a, J, T, E, R: Reply<T, E>> Submit<'a, J, T, E, R> {
    #[inline]
    pub(crate) fn new(inner: &'a Inner, caller: Option<&'a Context>, job: J) -> Self {
        if BoxIfLarge::<J>::YES {
            Submit::Boxed(Box::new(Placing::new(inner, caller, Box::new(job))))
        } else {
            Submit::AsIs(Placing::new(inner, caller, job))
        }
    }
}

impl<J, Fut, T, E, R> Future for Submit<'_, J, T, E, R>
where
    J: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
    R: Reply<T, E>,
{
    type Output = Result<R::Handle, SubmitError<J>>;

    // Inlined into the caller's future, as `Placing::poll` is. The guards are constants: each `J`
    // compiles the one arm it can take.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Submit::AsIs(placing) if !BoxIfLarge::<J>::YES => Pin::new(placing).poll(cx),
            Submit::Boxed(placing) if BoxIfLarge::<J>::YES => Pin::new(&mut **placing)
                .poll(cx)
                .map(|placed| placed.map_err(|refused| refused.map(|job| *job))),
            _ => unreachable!("a job is boxed when it is large, and only then"),
        }
    }
}

/// Queues a job, waiting for room: into a free place at once if there is one (reserved and filled
/// under one lock of the queue), else into the first place granted to it in line. The caller's
/// context, if any, ends the wait; its wait is boxed and made only once the submitter has to wait,
/// so that the common case carries none.
pub(crate) struct Placing<'a, J, T, E, R: Reply<T, E>> {
    inner: &'a Inner,
    caller: Option<&'a Context>,
    state: State<'a, J, T, E, R>,
}

enum State<'a, J, T, E, R: Reply<T, E>> {
    /// Not polled yet. The first poll takes the job out in place, reading it alone rather than the
    /// whole state its caller has just written (`None` only once taken).
    Start(Option<J>),
    /// No place was free: in line for one, with the result channel already made.
    Waiting {
        reserve: Reserve<'a, JobFuture>,
        extras: Option<Pin<Box<Extras<'a>>>>,
        submission: Submission<J, T, E>,
        handle: R::Handle,
    },
    /// Resolved; the place in line, if any, is given up.
    Done,
}

pin_project! {
    /// What only some waits need, boxed so that every submission stays a few words: the caller's
    /// cancellation (`submit_with`), and the count of a wait that comes from one of the pool's own
    /// jobs (see `Inner::own_wait`).
    struct Extras<'a> {
        #[pin]
        caller_ended: Option<Cancelled<'a>>,
        own: Option<OwnWait<'a>>,
    }
}

impl<'a, J, T, E, R: Reply<T, E>> Placing<'a, J, T, E, R> {
    fn new(inner: &'a Inner, caller: Option<&'a Context>, job: J) -> Self {
        Placing {
            inner,
            caller,
            state: State::Start(Some(job)),
        }
    }
}

// Nothing in it is pinned: the job is moved in and out, and the caller's wait is boxed.
impl<J, T, E, R: Reply<T, E>> Unpin for Placing<'_, J, T, E, R> {}

impl<J, Fut, T, E, R> Future for Placing<'_, J, T, E, R>
where
    J: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
    R: Reply<T, E>,
{
    type Output = Result<R::Handle, SubmitError<J>>;

    // Inlined into the caller's future, so that its answer (the handle, or the job handed back) stays
    // in registers rather than being stored by this function and read back at once by the caller.
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = this.inner;
        if let State::Start(job) = &mut this.state {
            // A submission that finds room does not wait, so it spends the caller's tokio budget as
            // a send on a tokio channel does: a loop of submissions yields every so often, so that
            // the workers (and everything else on the thread) run rather than wait for the queue to
            // fill. Out of budget, it has taken nothing: the job stays here for the next poll. (One
            // that has to wait for room spends the unit too, and returns `Pending`, which ends its
            // task's turn and so renews the budget anyway.)
            std::task::ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
            let Some(job) = job.take() else {
                unreachable!("a submission takes its job once");
            };
            this.state = State::Done;
            // The pool's state is read before the caller's: a finished pool says `Closed` to every
            // caller, whichever entry point it used.
            if inner.is_closed() {
                return Poll::Ready(Err(inner.refused(SubmitError::Closed(job))));
            }
            if let Some(cause) = this.caller.and_then(Context::cause) {
                let refused = match inner.queue.is_refusing() {
                    true => SubmitError::Closed(job),
                    false => SubmitError::Cancelled { job, cause },
                };
                return Poll::Ready(Err(inner.refused(refused)));
            }
            let (tx, handle) = R::make();
            match inner.try_place(Submission { job, tx }) {
                Ok(()) => return Poll::Ready(Ok(handle)),
                Err((Refused::Closed, submission)) => {
                    return Poll::Ready(Err(inner.refused(SubmitError::Closed(submission.job))));
                }
                Err((Refused::Full, submission)) => {
                    // A job of this pool holds its worker while it waits for room: refused when
                    // every worker is held so.
                    let own = match inner.calling_job() {
                        None => None,
                        Some(job) => match inner.own_wait(job) {
                            Some(own) => Some(own),
                            None => {
                                let refused = SubmitError::Deadlock(submission.job);
                                return Poll::Ready(Err(inner.refused(refused)));
                            }
                        },
                    };
                    let extras = own.map(|own| {
                        Box::pin(Extras {
                            caller_ended: None,
                            own: Some(own),
                        })
                    });
                    this.state = State::Waiting {
                        reserve: inner.queue.reserve(),
                        extras,
                        submission,
                        handle,
                    };
                }
            }
        }
        let State::Waiting {
            reserve, extras, ..
        } = &mut this.state
        else {
            panic!("a submission polled after it resolved");
        };
        // The caller's context is looked at first. The pool's own context needs no waiter here: when
        // it ends, the abort refuses every submitter in line, which ends this wait as `Closed`.
        let caller_ended = match this.caller {
            Some(caller) => {
                let extras = extras.get_or_insert_with(|| {
                    Box::pin(Extras {
                        caller_ended: None,
                        own: None,
                    })
                });
                let mut ended = extras.as_mut().project().caller_ended;
                if ended.is_none() {
                    ended.set(Some(caller.cancelled()));
                }
                match ended.as_pin_mut().map(|ended| ended.poll(cx)) {
                    Some(Poll::Ready(cause)) => Some(cause),
                    _ => None,
                }
            }
            None => None,
        };
        let waited = match caller_ended {
            Some(cause) => Err(Some(cause)),
            None => std::task::ready!(Pin::new(reserve).poll(cx)).map_err(|_| None),
        };
        // Done either way: the place in line, granted or not, is given up now (with the reserve),
        // not when the future is dropped.
        let State::Waiting {
            submission, handle, ..
        } = std::mem::replace(&mut this.state, State::Done)
        else {
            unreachable!("matched above");
        };
        Poll::Ready(match waited {
            Ok(place) => {
                inner.fill(place, submission);
                Ok(handle)
            }
            Err(cause) => {
                let job = submission.job;
                Err(inner.refused(match cause {
                    Some(cause) => SubmitError::Cancelled { job, cause },
                    None => SubmitError::Closed(job),
                }))
            }
        })
    }
}
