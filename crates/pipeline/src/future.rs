use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use futures_util::Stream;
use pin_project_lite::pin_project;

use crate::{Output, PipelineError};

/// Future returned by [`Output::collect`]: everything that came out, and how the pipeline ended.
#[must_use = "futures do nothing unless polled"]
pub struct Collect<T, E> {
    output: Output<T, E>,
    items: Vec<T>,
}

// Nothing here is pinned in place: the items are only moved, and the output is `Unpin`.
impl<T, E> Unpin for Collect<T, E> {}

impl<T, E> Collect<T, E> {
    pub(crate) fn new(output: Output<T, E>) -> Self {
        Collect {
            output,
            items: Vec::new(),
        }
    }
}

impl<T: Send + 'static, E> Future for Collect<T, E> {
    type Output = (Vec<T>, Option<PipelineError<E>>);

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match ready!(Pin::new(&mut this.output).poll_next(cx)) {
                Some(Ok(item)) => this.items.push(item),
                Some(Err(failure)) => {
                    return Poll::Ready((std::mem::take(&mut this.items), Some(failure)));
                }
                None => return Poll::Ready((std::mem::take(&mut this.items), None)),
            }
        }
    }
}

impl<T, E> fmt::Debug for Collect<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collect")
            .field("collected", &self.items.len())
            .finish_non_exhaustive()
    }
}

/// Future returned by [`Output::try_collect`]: every item, or the first failure.
#[must_use = "futures do nothing unless polled"]
pub struct TryCollect<T, E> {
    collect: Collect<T, E>,
}

impl<T, E> TryCollect<T, E> {
    pub(crate) fn new(output: Output<T, E>) -> Self {
        TryCollect {
            collect: Collect::new(output),
        }
    }
}

impl<T: Send + 'static, E> Future for TryCollect<T, E> {
    type Output = Result<Vec<T>, PipelineError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // A failure is the last thing an output yields, so collecting stops at the first one either way.
        match ready!(Pin::new(&mut self.get_mut().collect).poll(cx)) {
            (items, None) => Poll::Ready(Ok(items)),
            (_, Some(failure)) => Poll::Ready(Err(failure)),
        }
    }
}

impl<T, E> fmt::Debug for TryCollect<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryCollect")
            .field("collected", &self.collect.items.len())
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// Future returned by [`Output::for_each`]: runs the function on each item, one at a time.
    #[must_use = "futures do nothing unless polled"]
    pub struct ForEach<T, E, F, Fut> {
        output: Output<T, E>,
        f: F,
        #[pin]
        running: Option<Fut>,
        // The index of the item `running` is for.
        index: u64,
    }
}

impl<T, E, F, Fut> ForEach<T, E, F, Fut> {
    pub(crate) fn new(output: Output<T, E>, f: F) -> Self {
        ForEach {
            output,
            f,
            running: None,
            index: 0,
        }
    }
}

impl<T, E, F, Fut> Future for ForEach<T, E, F, Fut>
where
    T: Send + 'static,
    F: FnMut(T) -> Fut,
    Fut: Future<Output = ()>,
{
    type Output = Result<(), PipelineError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(running) = this.running.as_mut().as_pin_mut() {
                // The callback is the caller's code: a panic in it ends the pipeline like a stage's.
                match std::panic::catch_unwind(AssertUnwindSafe(|| running.poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(())) => {}
                    Err(payload) => {
                        this.running.set(None);
                        return Poll::Ready(Err(this.output.stop_with_panic(*this.index, payload)));
                    }
                }
                this.running.set(None);
                *this.index += 1;
            }
            match ready!(Pin::new(&mut *this.output).poll_next(cx)) {
                Some(Ok(item)) => {
                    match std::panic::catch_unwind(AssertUnwindSafe(|| (this.f)(item))) {
                        Ok(fut) => this.running.set(Some(fut)),
                        Err(payload) => {
                            return Poll::Ready(Err(this
                                .output
                                .stop_with_panic(*this.index, payload)));
                        }
                    }
                }
                Some(Err(failure)) => return Poll::Ready(Err(failure)),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<T, E, F, Fut> fmt::Debug for ForEach<T, E, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForEach")
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}
