//! The loop each worker of an unordered stage runs, and the call of a stage function.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bounded_cancel::Context;
use bounded_sync::busy::{Stamp, step_aside};
use futures_util::FutureExt;
use tokio::time::Instant;

use crate::PipelineError;
use crate::host::Sampler;
use crate::link::{Consumer, Link, MAX_BATCH, Producer};
use crate::shared::{Counters, Item, Shared};

/// What a worker does with the item it just ran.
pub(crate) enum Step<U> {
    Pass(U),
    /// Filtered out, or its error was handed to the skip handler.
    Drop,
    /// The pipeline failed; the worker ends.
    Stop,
}

/// Runs the stage function on one item, handing it a clone of `ctx`, the worker's alias of the
/// pipeline's context: panics and errors become the pipeline's failure or go to the skip handler.
/// With `counted`, the call counts in `busy` while it runs; without, the caller counts it (a worker
/// counts a whole run of calls at once). The call may be timed for `sampler` (see `host`).
pub(crate) async fn call<T, U, E, F, Fut>(
    shared: &Shared<E>,
    ctx: &Context,
    counters: &Counters,
    f: &F,
    item: Item<T>,
    counted: bool,
    sampler: &mut Sampler,
) -> Step<U>
where
    E: Send + 'static,
    F: Fn(Context, T) -> Fut,
    Fut: Future<Output = Result<Option<U>, E>>,
{
    let mut busy = Busy::new(counters);
    busy.set(counted);
    let index = item.index;
    let mut item = Some(item);
    let mut fut = std::pin::pin!(None::<Fut>);
    let timed = sampler.start(counters);
    let first = std::future::poll_fn(|cx| {
        let started = start(cx, shared, counters, ctx, f, &mut item, fut.as_mut());
        Poll::Ready(started)
    })
    .await;
    if let Some(timed) = timed {
        sampler.sampled(timed, counters);
    }
    match (first, timed.is_some()) {
        (Some(step), _) => step,
        (None, true) => finish_sampled(shared, counters, index, fut, sampler).await,
        (None, false) => finish(shared, counters, index, fut).await,
    }
}

/// Calls `f` on the item and polls the future it returns once, in `fut`, where it stays: the item's
/// step if that settled it, `None` if the future waits ([`finish`] awaits the rest). A panic in the
/// call or the poll settles it too. Neither the future nor the poll's output is moved: copied, they
/// would be read back from memory written in pieces moments before, which the core cannot forward
/// from its store buffer.
fn start<T, U, E, F, Fut>(
    cx: &mut std::task::Context<'_>,
    shared: &Shared<E>,
    counters: &Counters,
    ctx: &Context,
    f: &F,
    item: &mut Option<Item<T>>,
    mut fut: std::pin::Pin<&mut Option<Fut>>,
) -> Option<Step<U>>
where
    E: Send + 'static,
    F: Fn(Context, T) -> Fut,
    Fut: Future<Output = Result<Option<U>, E>>,
{
    let Some(Item { index, value }) = item.take() else {
        unreachable!("an item's function is called once")
    };
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
        fut.set(Some(f(ctx.clone(), value)));
        (fut.as_mut().as_pin_mut()).expect("made just now").poll(cx)
    }));
    match polled {
        Ok(Poll::Pending) => None,
        Ok(Poll::Ready(returned)) => Some(step_of(shared, counters, index, Ok(returned))),
        Err(payload) => Some(step_of(shared, counters, index, Err(payload))),
    }
}

/// Awaits the rest of an item's future that waited at its first poll ([`start`]).
async fn finish<U, E, Fut>(
    shared: &Shared<E>,
    counters: &Counters,
    index: u64,
    mut fut: std::pin::Pin<&mut Option<Fut>>,
) -> Step<U>
where
    E: Send + 'static,
    Fut: Future<Output = Result<Option<U>, E>>,
{
    let fut = fut.as_mut().as_pin_mut().expect("made at the first poll");
    let result = AssertUnwindSafe(fut).catch_unwind().await;
    step_of(shared, counters, index, result)
}

/// [`finish`], timing each poll of the item's future for `sampler`.
async fn finish_sampled<U, E, Fut>(
    shared: &Shared<E>,
    counters: &Counters,
    index: u64,
    mut fut: std::pin::Pin<&mut Option<Fut>>,
    sampler: &mut Sampler,
) -> Step<U>
where
    E: Send + 'static,
    Fut: Future<Output = Result<Option<U>, E>>,
{
    let mut fut = fut.as_mut().as_pin_mut().expect("made at the first poll");
    let result = std::future::poll_fn(|cx| {
        let timed = Stamp::now();
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
        sampler.sampled(timed, counters);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    })
    .await;
    step_of(shared, counters, index, result)
}

/// What a call's outcome means for the worker: its value passes on, or it is dropped, or the pipeline
/// fails (a panic, or an error with no skip handler).
fn step_of<U, E: Send + 'static>(
    shared: &Shared<E>,
    counters: &Counters,
    index: u64,
    result: std::thread::Result<Result<Option<U>, E>>,
) -> Step<U> {
    match result {
        Ok(Ok(Some(value))) => Step::Pass(value),
        Ok(Ok(None)) => Step::Drop,
        Ok(Err(error)) => {
            if shared.error(counters, index, error) {
                Step::Drop
            } else {
                Step::Stop
            }
        }
        Err(payload) => {
            shared.fail(PipelineError::Panicked {
                stage: counters.name.clone(),
                index,
                payload: payload.into(),
            });
            Step::Stop
        }
    }
}

/// `n` shares of a stage function for its `n` workers, the last of them `f` itself, so that the code
/// that spawned the workers keeps none: whichever worker ends last drops the function, and reports a
/// panic there ([`let_go`]), never the spawning code after every worker has ended.
pub(crate) fn shares<F>(f: Arc<F>, n: usize) -> impl Iterator<Item = Arc<F>> {
    let mut f = Some(f);
    (0..n).map(move |i| match i + 1 == n {
        true => f.take().expect("one last share"),
        false => Arc::clone(f.as_ref().expect("taken by the last share only")),
    })
}

/// Lets go of a worker's share of its stage function. The last share drops the function and what it
/// captured, which is the caller's code as much as the function is: a panic there is the pipeline's
/// failure, at the number of items the stage took in. Called before the worker's end of its output
/// closes, so that the failure is recorded before the last worker's end closes the link, which the
/// consumer would otherwise read as a task lost.
pub(crate) fn let_go<F, E: Send + 'static>(f: Arc<F>, shared: &Shared<E>, counters: &Counters) {
    if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(f))) {
        shared.fail(PipelineError::Panicked {
            stage: counters.name.clone(),
            index: counters.items_in.load(Ordering::Relaxed),
            payload: payload.into(),
        });
    }
}

/// A worker's place in its stage's `busy` count: counted while set, and no longer once dropped (also
/// when the worker is aborted or a call panics).
pub(crate) struct Busy<'a> {
    counters: &'a Counters,
    on: bool,
}

impl<'a> Busy<'a> {
    pub(crate) fn new(counters: &'a Counters) -> Self {
        Busy {
            counters,
            on: false,
        }
    }

    pub(crate) fn set(&mut self, on: bool) {
        if on != self.on {
            self.on = on;
            self.counters.busy(if on { 1 } else { -1 });
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// How many times a worker on a multi-thread runtime that finds its input empty yields and looks
/// again before it only waits. Tokio runs a task that yields again only once its thread has nothing
/// else to run (after trying to take tasks from the other threads), so these yields cost the thread's
/// other tasks nothing, and a thread whose workers look again this way stays awake to take the next
/// batch, or a task of the other thread, where it would otherwise sleep and be woken through the
/// operating system for the next batch. The worker is parked on the link meanwhile, as a waiting
/// worker is: a batch queued from the other thread while it waits behind its own thread's work wakes
/// it there. Bounded, so that an idle pipeline waits after a few trips around its threads'
/// schedulers.
pub(crate) const LOOKS_BEFORE_PARKING: usize = 4;

/// [`LOOKS_BEFORE_PARKING`] on a runtime of several threads; none on a runtime of one, where no other
/// thread could bring the next batch while the worker looks.
fn looks_before_parking() -> usize {
    match tokio::runtime::Handle::current().metrics().num_workers() {
        1 => 0,
        _ => LOOKS_BEFORE_PARKING,
    }
}

/// Frees the places of the `done` items the worker has finished with, and takes the next batch of
/// `input` into `taken` (at most `max`; with `fair`, only this worker's share), under one lock,
/// first passing on what `output` holds if the input has nothing ready, so that a quiet input never
/// holds finished items back. On an empty input it looks again `looks` times, yielding before each
/// (see [`LOOKS_BEFORE_PARKING`]), before it parks. `None` at the end; otherwise whether it had to
/// wait for the batch.
pub(crate) async fn next_batch<T, U>(
    input: &mut Consumer<Item<T>>,
    done: usize,
    taken: &mut VecDeque<Item<T>>,
    output: &mut Producer<U>,
    max: usize,
    fair: bool,
    looks: usize,
) -> Option<bool> {
    let waited = match input.done_and_try_take(done, max, fair, taken) {
        Some(took) => return took.then_some(false),
        None => {
            output.idle();
            for _ in 0..looks {
                // Parked meanwhile, as any waiting worker is: a batch queued while this worker
                // waits behind its thread's other tasks wakes it where the batch was queued.
                let parked =
                    std::future::poll_fn(|cx| Poll::Ready(input.poll_take(cx, max, fair, taken)));
                if let Poll::Ready(took) = parked.await {
                    return took.then_some(true);
                }
                tokio::task::yield_now().await;
                if let Some(took) = input.try_take(max, fair, taken) {
                    return took.then_some(true);
                }
            }
            input.take(max, fair, taken).await
        }
    };
    waited.then_some(true)
}

/// Items that take less than this each (and never wait) are cheap: a worker then takes a whole batch
/// rather than its fair share, since splitting cheap items between workers costs more than it saves.
/// Measured on the CPU's counter where tokio's clock runs, and on tokio's clock where it may be
/// paused, so that a paused clock drives this choice in tests as it drives every other (there every
/// item looks cheap, which only changes how items are split, never what comes out): see
/// [`Shared::batches_on_counter`].
const CHEAP: Duration = Duration::from_micros(2);

/// When a batch began, on the clock its worker times batches on.
#[derive(Clone, Copy)]
enum Mark {
    Counter(Stamp),
    Tokio(Instant),
}

impl Mark {
    fn now(on_counter: bool) -> Self {
        match on_counter {
            true => Mark::Counter(Stamp::now()),
            false => Mark::Tokio(Instant::now()),
        }
    }

    /// Now, on the same clock, and the time since `self`.
    fn elapsed(self) -> (Self, Duration) {
        match self {
            Mark::Counter(stamp) => {
                let (now, spent) = stamp.elapsed();
                (Mark::Counter(now), spent)
            }
            Mark::Tokio(at) => {
                let now = Instant::now();
                (Mark::Tokio(now), now.saturating_duration_since(at))
            }
        }
    }
}

/// One worker of a `map` or `filter_map` stage. It ends when its input ends (the stage before is done),
/// or when the pipeline aborts it.
pub(crate) async fn run<T, U, E, F, Fut>(
    shared: Arc<Shared<E>>,
    counters: Arc<Counters>,
    input: Arc<Link<Item<T>>>,
    mut output: Producer<Item<U>>,
    f: Arc<F>,
) where
    E: Send + 'static,
    F: Fn(Context, T) -> Fut,
    Fut: Future<Output = Result<Option<U>, E>>,
{
    let mut input = input.consumer();
    // Cloned for every item: an alias of its own keeps the workers of every stage, on every thread,
    // from moving one reference count between them.
    let ctx = shared.ctx.alias();
    let mut taken = VecDeque::with_capacity(MAX_BATCH);
    // Until a batch has shown that the items are cheap, take only a fair share, so that CPU-heavy
    // items spread over the workers.
    let mut cheap = false;
    // When the last batch ended, if the next one is taken without waiting: one clock read serves as
    // the end of one batch and the start of the next.
    let mut ended: Option<Mark> = None;
    // Counted from the first call of a batch to its end, except while the worker waits for room:
    // two counts per batch rather than two per item.
    let mut busy = Busy::new(&counters);
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    let on_counter = shared.batches_on_counter(threads);
    let looks = looks_before_parking();
    // Once an item has waited, the next are taken one at a time (and their places downstream
    // reserved one at a time) until one finishes without waiting: a worker whose items wait would
    // otherwise give back the rest of each batch, and of each run of places, at every item.
    let mut last_waited = false;
    let mut sampler = Sampler::new();
    // The items of the last batch, whose places are freed under the lock of the next take.
    let mut done = 0;
    'work: while let Some(waited) = next_batch(
        &mut input,
        done,
        &mut taken,
        &mut output,
        if last_waited { 1 } else { MAX_BATCH },
        !cheap,
        looks,
    )
    .await
    {
        // It left items behind and woke another worker for them, which sits in this thread's
        // next-task slot: if these items may compute (the last batch neither proved them cheap nor
        // waited), it steps aside so that the idle thread takes one of the two, instead of the woken
        // worker waiting out this whole batch.
        if input.handed_on() && threads > 1 && !cheap && !last_waited {
            step_aside().await;
        }
        // The one item taken after an item that waited is not timed: it is not cheap, whatever
        // it takes, so that a worker whose items wait reads no clock.
        let started = match (last_waited, waited, ended.take()) {
            (true, _, _) => None,
            (false, false, Some(at)) => Some(at),
            _ => Some(Mark::now(on_counter)),
        };
        counters.add_in(taken.len());
        let (mut finished, mut passed, mut waited) = (0u32, 0, false);
        while let Some(item) = taken.pop_front() {
            if !output.has_place() {
                busy.set(false);
                match last_waited {
                    true => output.reserve_one().await,
                    false => output.reserve().await,
                }
            }
            busy.set(true);
            let index = item.index;
            // Called and polled here rather than through `call`, so that the item and the call's
            // future are not first stored in a future of their own and read straight back.
            let mut item = Some(item);
            let mut fut = std::pin::pin!(None::<Fut>);
            // Some calls are timed, while the stage may be hosted (see `host`).
            let timed = sampler.start(&counters);
            let first = std::future::poll_fn(|cx| {
                let started = start(cx, &shared, &counters, &ctx, &*f, &mut item, fut.as_mut());
                Poll::Ready(started)
            })
            .await;
            if let Some(timed) = timed {
                sampler.sampled(timed, &counters);
            }
            let step = match first {
                Some(step) => step,
                None => {
                    // This item has to wait: pass on what is finished, and give the items not yet
                    // started back to the queue, so that no item waits behind a slow one while
                    // another worker is idle. A batch is only held while its items finish without
                    // waiting.
                    waited = true;
                    output.flush_keeping_one();
                    let returned = taken.len() as u64;
                    counters.items_in.fetch_sub(returned, Ordering::Relaxed);
                    input.give_back(&mut taken);
                    match timed.is_some() {
                        true => finish_sampled(&shared, &counters, index, fut, &mut sampler).await,
                        false => finish(&shared, &counters, index, fut).await,
                    }
                }
            };
            finished += 1;
            match step {
                Step::Pass(value) => {
                    output.push(Item { index, value });
                    passed += 1;
                }
                Step::Drop => output.unreserve(),
                Step::Stop => break 'work,
            }
        }
        busy.set(false);
        counters.add_out(passed);
        done = finished as usize;
        (cheap, ended) = match started {
            Some(started) => {
                let (now, spent) = started.elapsed();
                (!waited && spent < CHEAP * finished, Some(now))
            }
            None => (false, None),
        };
        last_waited = waited;
    }
    // Before `output` closes: a parameter, it is dropped after everything in the body.
    let_go(f, &shared, &counters);
}

/// One worker of a `flat_map` stage: one item at a time, each call's items passed on one place at a
/// time, in the order its iterator yields them.
pub(crate) async fn run_flat<T, I, E, F, Fut>(
    shared: Arc<Shared<E>>,
    counters: Arc<Counters>,
    input: Arc<Link<Item<T>>>,
    mut output: Producer<Item<I::Item>>,
    f: Arc<F>,
) where
    E: Send + 'static,
    I: IntoIterator,
    F: Fn(Context, T) -> Fut,
    Fut: Future<Output = Result<Option<I>, E>>,
{
    let mut input = input.consumer();
    let ctx = shared.ctx.alias();
    let looks = looks_before_parking();
    let mut taken = VecDeque::with_capacity(1);
    // Never times a call: a `flat_map` stage is not hosted, and so spread from the start.
    let mut sampler = Sampler::new();
    // The last item, done with: its place is freed under the lock of the next take.
    let mut done = 0;
    'work: loop {
        let took = next_batch(&mut input, done, &mut taken, &mut output, 1, true, looks).await;
        let Some(item) = taken.pop_front().filter(|_| took.is_some()) else {
            break 'work;
        };
        counters.add_in(1);
        let index = item.index;
        let iter = match call(&shared, &ctx, &counters, &*f, item, true, &mut sampler).await {
            Step::Pass(items) => items,
            Step::Drop => {
                done = 1;
                continue;
            }
            Step::Stop => break 'work,
        };
        // The iterator is the caller's code, made, advanced and dropped: a panic in any of it is
        // the pipeline's failure, on this item, as a panic in `f` is.
        let panicked = |payload: Box<dyn std::any::Any + Send>| {
            shared.fail(PipelineError::Panicked {
                stage: counters.name.clone(),
                index,
                payload: payload.into(),
            });
        };
        let mut iter = match std::panic::catch_unwind(AssertUnwindSafe(|| iter.into_iter())) {
            Ok(iter) => iter,
            Err(payload) => {
                panicked(payload);
                break 'work;
            }
        };
        loop {
            let next = match std::panic::catch_unwind(AssertUnwindSafe(|| iter.next())) {
                Ok(next) => next,
                Err(payload) => {
                    panicked(payload);
                    // The failure is recorded; a second panic as the iterator goes adds nothing.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(iter)));
                    break 'work;
                }
            };
            let Some(value) = next else { break };
            output.reserve().await;
            output.push(Item { index, value });
            counters.add_out(1);
        }
        if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(iter))) {
            panicked(payload);
            break 'work;
        }
        done = 1;
    }
    // Before `output` closes: a parameter, it is dropped after everything in the body.
    let_go(f, &shared, &counters);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A worker's wait for its next batch from an empty link, as the runtime it runs on sets its
    /// looks, counting how often it is polled: it ends with what `next_batch` answered and the value
    /// of the item it took.
    async fn counted_wait(
        mut consumer: Consumer<Item<u32>>,
        polls: Arc<AtomicUsize>,
    ) -> (Option<bool>, Option<u32>) {
        let mut output = Link::<u32>::new(16, 1).producer();
        let mut taken = VecDeque::new();
        let looks = looks_before_parking();
        let took = {
            let next = next_batch(
                &mut consumer,
                0,
                &mut taken,
                &mut output,
                MAX_BATCH,
                true,
                looks,
            );
            tokio::pin!(next);
            std::future::poll_fn(|cx| {
                polls.fetch_add(1, Ordering::SeqCst);
                next.as_mut().poll(cx)
            })
            .await
        };
        (took, taken.pop_front().map(|item| item.value))
    }

    async fn feed_one(feed: &mut Producer<Item<u32>>) {
        feed.reserve().await;
        feed.push(Item { index: 0, value: 7 });
        feed.flush();
    }

    /// On a multi-thread runtime a worker whose input is empty looks again a bounded number of times,
    /// then parks: polled once, then once after each of its yields, and no more until an item comes,
    /// which it takes when woken.
    #[test]
    fn a_worker_looks_again_a_few_times_then_parks_until_an_item_comes() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        assert_eq!(
            rt.block_on(async { looks_before_parking() }),
            LOOKS_BEFORE_PARKING
        );
        let input = Link::<Item<u32>>::new(16, 1);
        let mut feed = input.producer();
        let polls = Arc::new(AtomicUsize::new(0));
        let worker = rt.spawn(counted_wait(input.consumer(), polls.clone()));
        // The looks take microseconds; on a busy machine, give them up to ten seconds.
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while polls.load(Ordering::SeqCst) < LOOKS_BEFORE_PARKING + 1
            && std::time::Instant::now() < give_up
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        // An unbounded look would keep counting.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            polls.load(Ordering::SeqCst),
            LOOKS_BEFORE_PARKING + 1,
            "polled once, then once after each look, then parked"
        );
        rt.block_on(feed_one(&mut feed));
        assert_eq!(rt.block_on(worker).unwrap(), (Some(true), Some(7)));
        assert_eq!(polls.load(Ordering::SeqCst), LOOKS_BEFORE_PARKING + 2);
    }

    /// On a runtime of one thread nothing else could bring an item while the worker looked: it parks
    /// at once, and its thread's other task yielding does not poll it again.
    #[tokio::test(flavor = "current_thread")]
    async fn a_worker_on_a_current_thread_runtime_parks_at_once() {
        assert_eq!(looks_before_parking(), 0);
        let input = Link::<Item<u32>>::new(16, 1);
        let mut feed = input.producer();
        let polls = Arc::new(AtomicUsize::new(0));
        let worker = tokio::spawn(counted_wait(input.consumer(), polls.clone()));
        for _ in 0..2 * LOOKS_BEFORE_PARKING {
            tokio::task::yield_now().await;
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1, "polled once, then parked");
        feed_one(&mut feed).await;
        assert_eq!(worker.await.unwrap(), (Some(true), Some(7)));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
