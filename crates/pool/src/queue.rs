//! The pool's queue: its slots, the jobs accepted into them in order, the submitters waiting for a
//! slot and the workers parked waiting for a job, under one lock.
//!
//! A submitter reserves a slot before its job exists, then pushes the job; a worker frees the slot
//! as it takes the job. The bound is on slots, not storage: the deque holds only what was accepted,
//! so its memory follows what it holds, not its capacity.
//!
//! # Invariants
//!
//! Everything is under one lock, with no atomics of its own; no waker is woken and no item dropped
//! while it is held (bounded-sync's rule).
//!
//! 1. Every item pushed is taken exactly once, by one worker, in order, or handed back by `drain`.
//! 2. `taken` counts the slots held: reserved by a submitter that has not pushed yet, or holding a
//!    queued item. It never exceeds `capacity`. A slot freed while a submitter waits goes straight to
//!    the first in line (`Granted`, `taken` unchanged), so waiting submitters are served in order and a
//!    `try_reserve` never overtakes them.
//! 3. A worker is *parked* exactly when its key is in `idle` (its waker stored). It parks only after
//!    finding the queue empty, under the lock, and after its `stop` check (so a shrink that sets its
//!    target and then wakes the parked workers under this lock is never missed).
//! 4. `searching` counts workers woken (or new) that have not looked at the queue yet. A push wakes a
//!    parked worker only when none is searching. A worker that takes an item and leaves others behind
//!    owes them a worker. If its previous job waited (the next one likely will too), or under
//!    invariant 7, it wakes a parked worker as it takes the item, unless one is searching. Otherwise
//!    it is told it owes one (`Took::Job(_, true)`): it comes back for the next item as soon as its
//!    job finishes, and if its job waits first (its first poll is `Pending`) it calls
//!    [`JobQueue::pass_on`] before it waits, which does the same wake then. So a queued item always
//!    has a worker coming: a searching one, a worker whose job has not waited yet, or, with none
//!    parked, every worker is busy or between jobs and looks before it parks. A run of pushes wakes
//!    one worker, and a run of jobs that finish at their first poll wakes no other: the worker runs
//!    them one after another, with no hand-over between threads.
//! 5. After `refuse`, no slot is reserved and every waiting submitter is refused; once `taken` is
//!    then 0 (every reserved slot pushed and taken, or given back), the queue closes: no push is
//!    accepted, and a worker that finds it empty ends. So a job whose slot was reserved before the
//!    refusal is never refused by the queue. `drain` refuses and closes at once. Closing wakes every
//!    parked worker, each counted as searching until it looks.
//! 6. A submitter's wait dropped while in line is marked `Left` and skipped (its key freed) when the
//!    line reaches it; dropped after its grant, it frees the slot again (which may grant the next in
//!    line).
//! 7. A job that never returns `Pending` (it burns CPU) holds its worker's thread until it ends. So a
//!    worker that takes an item and leaves others behind also wakes a parked worker at once when
//!    `hand_on_now` says so: on a multi-thread runtime, while fewer of the pool's workers are being
//!    polled than the runtime has threads, and when the job may compute (the worker's last job held
//!    its thread for `LONG_POLL` or more at its first poll, or the worker was just woken with no
//!    quick job before it). It then steps aside once before it runs its job (`handed_on`), so that
//!    the idle thread takes it while the worker it woke runs here. After a quick job it does not ask:
//!    a run of quick jobs stays on one thread, and a job that computes after them holds back the
//!    items behind it only until it ends.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bounded_sync::line::{Answer, Leave, Line};
use bounded_sync::{Mutex, MutexGuard};

/// On a cache line of its own (two, with the adjacent-line prefetch): the lock every submitter and
/// worker takes shares it with no counter that they move.
#[repr(align(128))]
pub(crate) struct JobQueue<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    items: VecDeque<T>,
    /// Keys of parked workers.
    idle: Vec<usize>,
    /// A parked worker's waker, by its key.
    wakers: Vec<Option<Waker>>,
    free_keys: Vec<usize>,
    searching: usize,
    closed: bool,
    capacity: usize,
    /// Slots reserved or holding an item (invariant 2).
    taken: usize,
    /// No slot is reserved any more (invariant 5).
    refusing: bool,
    /// Submitters waiting for a slot (invariants 2 and 6).
    line: Line,
}

/// A worker's place at the queue.
#[derive(Debug)]
pub(crate) struct Seat {
    key: usize,
    parked: bool,
    /// Counted in `searching`. A new worker starts searching: it looks at its first poll.
    searching: bool,
    /// Its last job waited: it passes the search on as it takes the next one (invariant 4).
    pub(crate) eager: bool,
    /// It woke a worker as it took its job: on a multi-thread runtime it steps aside once before it
    /// runs the job (invariant 7).
    pub(crate) handed_on: bool,
}

/// What a worker gets from [`JobQueue::poll_take`].
pub(crate) enum Took<T> {
    /// An item, and whether the worker owes the items left behind it a [`JobQueue::pass_on`] if its
    /// job waits (invariant 4).
    Job(T, bool),
    /// Closed and empty: the pool is draining or stopped.
    Closed,
    /// The worker's `stop` check said so (it retires).
    Stop,
}

/// Why no slot was reserved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every slot is taken (only from `try_reserve`).
    Full,
    /// The queue refuses new jobs: the pool was closed or aborted.
    Closed,
}

/// Wakers collected under the lock, woken after it is released.
#[derive(Default)]
struct Wakes {
    worker: Option<Waker>,
    submitter: Option<Waker>,
    all: Vec<Waker>,
}

impl Wakes {
    fn wake(self) {
        self.worker.into_iter().for_each(Waker::wake);
        self.submitter.into_iter().for_each(Waker::wake);
        self.all.into_iter().for_each(Waker::wake);
    }
}

impl<T> State<T> {
    /// Wakes one parked worker unless one is searching (invariant 4).
    fn search(&mut self) -> Option<Waker> {
        if self.searching > 0 {
            return None;
        }
        let key = self.idle.pop()?;
        self.searching += 1;
        self.wakers[key].take()
    }

    /// Wakes every parked worker, each counted as searching (invariant 5).
    fn unpark_all(&mut self, wakes: &mut Wakes) {
        self.searching += self.idle.len();
        let wakers = &mut self.wakers;
        wakes
            .all
            .extend((self.idle.drain(..)).filter_map(|key| wakers[key].take()));
    }

    /// A slot is free: it goes to the first submitter in line, or back (invariant 2), and the
    /// queue closes if it was the last one out after a refusal (invariant 5).
    fn free_slot(&mut self, wakes: &mut Wakes) {
        if let Some(waker) = self.line.grant_first() {
            wakes.submitter = Some(waker);
            return;
        }
        self.taken -= 1;
        self.close_if_home(wakes);
    }

    fn close_if_home(&mut self, wakes: &mut Wakes) {
        if self.refusing && self.taken == 0 && !self.closed {
            self.closed = true;
            self.unpark_all(wakes);
        }
    }

    /// Refuses every submitter in line (invariant 5).
    fn refuse_line(&mut self, wakes: &mut Wakes) {
        self.line.refuse_all(&mut wakes.all);
    }

    /// A free slot, if there is one and nobody is in line for it (invariant 2).
    fn try_reserve(&mut self) -> Result<(), Refused> {
        if self.refusing {
            return Err(Refused::Closed);
        }
        if self.taken < self.capacity && self.line.is_empty() {
            self.taken += 1;
            return Ok(());
        }
        Err(Refused::Full)
    }
}

impl<T> JobQueue<T> {
    /// A queue of `capacity` slots (at least one: the builder refuses 0).
    pub(crate) fn new(capacity: usize) -> Self {
        JobQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                idle: Vec::new(),
                wakers: Vec::new(),
                free_keys: Vec::new(),
                searching: 0,
                closed: false,
                capacity,
                taken: 0,
                refusing: false,
                line: Line::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock()
    }

    /// Reserves a slot now, if one is free and nobody is waiting for one.
    pub(crate) fn try_reserve(&self) -> Result<(), Refused> {
        self.lock().try_reserve()
    }

    /// Reserves a slot, waiting in line for one. Cancel-safe (invariant 6).
    pub(crate) fn reserve(&self) -> Reserve<'_, T> {
        Reserve {
            queue: self,
            key: None,
        }
    }

    /// Whether the queue refuses new jobs.
    pub(crate) fn is_refusing(&self) -> bool {
        self.lock().refusing
    }

    /// Every slot is free: no job is queued and no submitter holds a reservation.
    pub(crate) fn slots_home(&self) -> bool {
        self.lock().taken == 0
    }

    /// A place for a new worker, counted as searching until its first look.
    pub(crate) fn seat(&self) -> Seat {
        let mut state = self.lock();
        state.searching += 1;
        let key = match state.free_keys.pop() {
            Some(key) => key,
            None => {
                state.wakers.push(None);
                state.wakers.len() - 1
            }
        };
        Seat {
            key,
            parked: false,
            searching: true,
            eager: false,
            handed_on: false,
        }
    }

    /// A worker is gone, whether it ended or was dropped while parked or searching.
    pub(crate) fn leave(&self, seat: &Seat) {
        let mut state = self.lock();
        let woken = seat.parked && state.wakers[seat.key].is_none();
        if seat.searching || woken {
            state.searching -= 1;
        }
        if seat.parked && !woken {
            state.idle.retain(|&key| key != seat.key);
            state.wakers[seat.key] = None;
        }
        state.free_keys.push(seat.key);
    }

    /// Queues an item into the slot its caller reserved, or, once the queue is closed (by `drain`),
    /// hands it back and frees the slot.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut state = self.lock();
        if state.closed {
            state.taken -= 1;
            return Err(item);
        }
        state.items.push_back(item);
        let waker = state.search();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Takes the next item, freeing its slot, and parks the worker while there is none. `stop` is
    /// asked first, under the lock (invariant 3). `hand_on_now` is asked when a worker leaves items
    /// behind the one it takes, with whether it was just woken: whether to wake another worker for
    /// them at once (invariant 7).
    pub(crate) fn poll_take(
        &self,
        seat: &mut Seat,
        cx: &mut Context<'_>,
        stop: impl FnOnce() -> bool,
        hand_on_now: impl FnOnce(bool) -> bool,
    ) -> Poll<Took<T>> {
        let mut state = self.lock();
        if seat.parked {
            match &mut state.wakers[seat.key] {
                // Still parked: nobody woke it, this poll is spurious.
                Some(stored) => {
                    if !stored.will_wake(cx.waker()) {
                        *stored = cx.waker().clone();
                    }
                    return Poll::Pending;
                }
                // Woken, and counted as searching by whoever woke it.
                None => {
                    seat.parked = false;
                    seat.searching = true;
                }
            }
        }
        let was_searching = std::mem::take(&mut seat.searching);
        if was_searching {
            state.searching -= 1;
        }
        if stop() {
            return Poll::Ready(Took::Stop);
        }
        if let Some(item) = state.items.pop_front() {
            let mut more = !state.items.is_empty();
            let mut wakes = Wakes::default();
            if more && seat.eager {
                wakes.worker = state.search();
                more = false;
            } else if more && hand_on_now(was_searching) {
                wakes.worker = state.search();
                seat.handed_on = wakes.worker.is_some();
                more = false;
            }
            state.free_slot(&mut wakes);
            drop(state);
            wakes.wake();
            return Poll::Ready(Took::Job(item, more));
        }
        if state.closed {
            return Poll::Ready(Took::Closed);
        }
        state.wakers[seat.key] = Some(cx.waker().clone());
        state.idle.push(seat.key);
        seat.parked = true;
        Poll::Pending
    }

    /// The caller took an item that others were left behind and its job now waits: wakes a parked
    /// worker for them, unless one is searching or none is left (invariant 4).
    pub(crate) fn pass_on(&self) {
        let mut state = self.lock();
        let waker = match state.items.is_empty() {
            true => None,
            false => state.search(),
        };
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes every parked worker to look again (after a shrink, to check whether to retire).
    pub(crate) fn wake_all(&self) {
        let mut wakes = Wakes::default();
        self.lock().unpark_all(&mut wakes);
        wakes.wake();
    }

    /// Refuses new jobs; the queue closes, and workers end, once every slot is free (invariant 5).
    pub(crate) fn refuse(&self) {
        let mut wakes = Wakes::default();
        let mut state = self.lock();
        state.refusing = true;
        state.refuse_line(&mut wakes);
        state.close_if_home(&mut wakes);
        drop(state);
        wakes.wake();
    }

    /// Refuses and closes at once, and takes every item still queued (the caller drops them).
    pub(crate) fn drain(&self) -> VecDeque<T> {
        let mut wakes = Wakes::default();
        let mut state = self.lock();
        state.refusing = true;
        state.refuse_line(&mut wakes);
        let items = std::mem::take(&mut state.items);
        state.taken -= items.len();
        if !state.closed {
            state.closed = true;
            state.unpark_all(&mut wakes);
        }
        drop(state);
        wakes.wake();
        items
    }
}

/// Future of [`JobQueue::reserve`]: a slot, or `Refused::Closed`.
pub(crate) struct Reserve<'a, T> {
    queue: &'a JobQueue<T>,
    /// Its key among the submitters, once it has waited.
    key: Option<usize>,
}

impl<T> std::future::Future for Reserve<'_, T> {
    type Output = Result<(), Refused>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.queue.lock();
        let Some(key) = self.key else {
            match state.try_reserve() {
                Err(Refused::Full) => {}
                done => return Poll::Ready(done),
            }
            let key = state.line.join(cx.waker());
            drop(state);
            self.key = Some(key);
            return Poll::Pending;
        };
        let answer = std::task::ready!(state.line.poll(key, cx.waker()));
        drop(state);
        self.key = None;
        Poll::Ready(match answer {
            Answer::Granted => Ok(()),
            Answer::Refused => Err(Refused::Closed),
        })
    }
}

impl<T> Drop for Reserve<'_, T> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut wakes = Wakes::default();
        let mut state = self.queue.lock();
        let left = state.line.leave(key);
        // Granted but never seen: the slot goes to the next in line, or back (invariant 6).
        if let Leave::Granted = left {
            state.free_slot(&mut wakes);
        }
        drop(state);
        // Dropped outside the lock, as every waker here.
        drop(left);
        wakes.wake();
    }
}

#[cfg(all(test, not(bounded_loom)))]
mod tests {
    use super::{JobQueue, Refused, Seat, Took};
    use std::task::{Context, Poll, Waker};

    /// A queue of 4 with two workers parked on it, then three items pushed: the first push woke one
    /// worker (`b`, the last to park), the others woke nobody.
    fn two_parked_then_three_pushed() -> (JobQueue<u32>, Seat, Seat) {
        let queue = JobQueue::new(4);
        let cx = &mut Context::from_waker(Waker::noop());
        let (mut a, mut b) = (queue.seat(), queue.seat());
        for seat in [&mut a, &mut b] {
            assert!(queue.poll_take(seat, cx, || false, |_| false).is_pending());
        }
        for item in [1, 2, 3] {
            queue.try_reserve().unwrap();
            queue.push(item).unwrap();
        }
        {
            let state = queue.lock();
            assert_eq!(
                (state.searching, state.idle.as_slice()),
                (1, [a.key].as_slice())
            );
        }
        (queue, a, b)
    }

    fn take(queue: &JobQueue<u32>, seat: &mut Seat) -> (u32, bool) {
        let cx = &mut Context::from_waker(Waker::noop());
        match queue.poll_take(seat, cx, || false, |_| false) {
            std::task::Poll::Ready(Took::Job(item, owed)) => (item, owed),
            _ => panic!("an item is queued"),
        }
    }

    #[test]
    fn a_worker_whose_last_job_finished_at_once_wakes_nobody_until_its_job_waits() {
        let (queue, a, mut b) = two_parked_then_three_pushed();
        assert_eq!(take(&queue, &mut b), (1, true));
        // Items are left, but `a` stays parked while `b`'s job has not waited.
        assert_eq!(queue.lock().idle, [a.key]);
        assert_eq!(queue.lock().searching, 0);
        // Its job waits: it passes the search on, to `a`.
        queue.pass_on();
        let state = queue.lock();
        assert_eq!((state.searching, state.idle.len()), (1, 0));
        assert!(state.wakers[a.key].is_none(), "a was woken");
    }

    #[test]
    fn a_worker_whose_last_job_waited_wakes_another_as_it_takes_one() {
        let (queue, a, mut b) = two_parked_then_three_pushed();
        b.eager = true;
        assert_eq!(take(&queue, &mut b), (1, false));
        let state = queue.lock();
        assert_eq!((state.searching, state.idle.len()), (1, 0));
        assert!(state.wakers[a.key].is_none(), "a was woken");
    }

    #[test]
    fn a_woken_worker_wakes_another_as_it_takes_one_while_a_thread_is_spare() {
        for spare in [true, false] {
            let (queue, a, mut b) = two_parked_then_three_pushed();
            let cx = &mut Context::from_waker(Waker::noop());
            let Poll::Ready(Took::Job(1, owed)) =
                queue.poll_take(&mut b, cx, || false, |searching| searching && spare)
            else {
                panic!("an item is queued");
            };
            let state = queue.lock();
            assert_eq!(owed, !spare, "owes a search only when none was made");
            assert_eq!(b.handed_on, spare);
            assert_eq!(state.wakers[a.key].is_none(), spare, "a woken only then");
            drop(state);
            // Back for the next item, no longer just woken, after a quick job: it wakes nobody.
            let took = queue.poll_take(
                &mut b,
                cx,
                || false,
                |searching| {
                    assert!(!searching, "no longer just woken");
                    false
                },
            );
            assert!(matches!(took, Poll::Ready(Took::Job(2, true))));
        }
    }

    #[test]
    fn a_push_after_a_drain_is_handed_back_and_its_slot_freed() {
        let queue = JobQueue::new(2);
        queue.try_reserve().unwrap();
        queue.push(1).unwrap();
        // A submitter between its slot and its push when the drain comes.
        queue.try_reserve().unwrap();
        assert_eq!(queue.drain(), [1]);
        assert_eq!(queue.push(2), Err(2));
        let state = queue.lock();
        assert!(state.items.is_empty() && state.closed);
        assert_eq!(state.taken, 0, "every slot is free again");
        drop(state);
        assert_eq!(queue.try_reserve(), Err(Refused::Closed));
    }

    #[test]
    fn a_refused_queue_closes_only_once_every_reserved_slot_is_pushed_and_taken() {
        let queue = JobQueue::new(2);
        let cx = &mut Context::from_waker(Waker::noop());
        let mut seat = queue.seat();
        queue.try_reserve().unwrap();
        queue.refuse();
        assert_eq!(queue.try_reserve(), Err(Refused::Closed));
        assert!(!queue.lock().closed, "a slot is still reserved");
        queue
            .push(7)
            .expect("a slot reserved before the refusal is honoured");
        assert!(matches!(
            queue.poll_take(&mut seat, cx, || false, |_| false),
            Poll::Ready(Took::Job(7, false))
        ));
        assert!(queue.lock().closed);
        assert!(matches!(
            queue.poll_take(&mut seat, cx, || false, |_| false),
            Poll::Ready(Took::Closed)
        ));
    }

    #[test]
    fn nothing_is_passed_on_when_no_item_is_left() {
        let (queue, a, mut b) = two_parked_then_three_pushed();
        assert_eq!(take(&queue, &mut b), (1, true));
        assert_eq!(take(&queue, &mut b), (2, true));
        assert_eq!(take(&queue, &mut b), (3, false));
        queue.pass_on();
        assert_eq!(queue.lock().idle, [a.key]);
    }
}

#[cfg(all(test, bounded_loom))]
mod model {
    use super::{JobQueue, Refused, Seat, Took};
    use bounded_sync::Arc;
    use bounded_sync::atomic::{AtomicBool, Ordering};
    use std::future::poll_fn;

    /// A worker loop: takes items until the queue closes or `stop` says so, then leaves.
    fn worker(queue: Arc<JobQueue<u32>>, stop: Arc<AtomicBool>) -> Vec<u32> {
        let mut seat: Seat = queue.seat();
        let mut seen = Vec::new();
        loop {
            let took = loom::future::block_on(poll_fn(|cx| {
                queue.poll_take(&mut seat, cx, || stop.load(Ordering::Acquire), |_| false)
            }));
            match took {
                Took::Job(item, _) => seen.push(item),
                Took::Closed | Took::Stop => break,
            }
        }
        queue.leave(&seat);
        seen
    }

    /// Two workers, two pushes, then a refusal: every item is taken exactly once, both workers end
    /// once the slots are free, and nothing is left parked or searching (invariants 1 to 5).
    #[test]
    fn every_item_is_taken_once_and_every_worker_ends_at_the_close() {
        loom::model(|| {
            let queue = Arc::new(JobQueue::new(2));
            let stop = Arc::new(AtomicBool::new(false));
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (queue, stop) = (queue.clone(), stop.clone());
                    loom::thread::spawn(move || worker(queue, stop))
                })
                .collect();
            for item in [1, 2] {
                queue.try_reserve().unwrap();
                queue.push(item).unwrap();
            }
            queue.refuse();
            assert_eq!(
                queue.try_reserve(),
                Err(Refused::Closed),
                "a closed queue refuses"
            );
            let mut seen: Vec<u32> = workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, [1, 2]);
            let state = queue.lock();
            assert_eq!((state.searching, state.idle.len()), (0, 0));
        });
    }

    /// With no refusal to wake it, a parked worker is woken by the pushes themselves: it takes both
    /// items whichever way its parking and the pushes interleave (invariant 3).
    #[test]
    fn a_push_wakes_a_parked_worker() {
        loom::model(|| {
            let queue = Arc::new(JobQueue::new(2));
            let w = {
                let queue = queue.clone();
                loom::thread::spawn(move || {
                    let mut seat = queue.seat();
                    let mut taken = 0;
                    loop {
                        let took = loom::future::block_on(poll_fn(|cx| {
                            queue.poll_take(&mut seat, cx, || taken == 2, |_| false)
                        }));
                        match took {
                            Took::Job(..) => taken += 1,
                            Took::Closed | Took::Stop => break,
                        }
                    }
                    queue.leave(&seat);
                })
            };
            for item in [1, 2] {
                queue.try_reserve().unwrap();
                queue.push(item).unwrap();
            }
            w.join().unwrap();
            let state = queue.lock();
            assert!(state.items.is_empty());
            assert_eq!((state.searching, state.idle.len()), (0, 0));
        });
    }

    /// Two items pushed while two workers park: the worker that takes the first item waits until the
    /// second is taken by the other. When the second was queued behind the first, the push of the
    /// second woke nobody (a worker was searching), so the first must pass the search on before it
    /// waits; without the pass-on, the model deadlocks (invariant 4).
    #[test]
    fn a_job_that_waits_passes_the_search_on() {
        // Eager workers (their last job waited) pass the search on as they take an item.
        for eager in [false, true] {
            a_job_that_waits_passes_the_search_on_when(eager);
        }
    }

    fn a_job_that_waits_passes_the_search_on_when(eager: bool) {
        the_second_item_is_taken_while_the_first_job_runs(eager, true);
    }

    /// As above, but the first job never waits (it burns CPU until the second is taken), so it never
    /// passes the search on: a worker just woken that takes it, leaving the second queued while a
    /// thread is spare, must wake the other worker as it takes it. Without that, the model
    /// deadlocks (invariant 7).
    #[test]
    fn a_job_that_never_waits_has_the_items_behind_it_taken_while_a_thread_is_spare() {
        the_second_item_is_taken_while_the_first_job_runs(false, false);
    }

    /// Two workers, two items pushed while they park; the first job ends only once the second is
    /// taken. A job that `waits` passes the search on if it owes one (invariant 4); one that does not
    /// relies on a thread being spare, which it always is here (invariant 7).
    fn the_second_item_is_taken_while_the_first_job_runs(eager: bool, waits: bool) {
        loom::model(move || {
            let queue = Arc::new(JobQueue::new(2));
            let second_taken = Arc::new(loom::sync::Notify::new());
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (queue, second_taken) = (queue.clone(), second_taken.clone());
                    loom::thread::spawn(move || {
                        let mut seat = queue.seat();
                        seat.eager = eager;
                        let took = loom::future::block_on(poll_fn(|cx| {
                            queue.poll_take(
                                &mut seat,
                                cx,
                                || false,
                                |searching| !waits && searching,
                            )
                        }));
                        match took {
                            Took::Job(1, owed) => {
                                if waits && owed {
                                    queue.pass_on();
                                }
                                second_taken.wait();
                            }
                            Took::Job(_, _) => second_taken.notify(),
                            Took::Closed | Took::Stop => unreachable!("never closed here"),
                        }
                        queue.leave(&seat);
                    })
                })
                .collect();
            for item in [1, 2] {
                queue.try_reserve().unwrap();
                queue.push(item).unwrap();
            }
            workers.into_iter().for_each(|w| w.join().unwrap());
            let state = queue.lock();
            assert!(state.items.is_empty());
            assert_eq!((state.searching, state.idle.len(), state.taken), (0, 0, 0));
        });
    }

    /// A stop (a shrink) set and then announced with `wake_all` reaches a worker however the two
    /// race with its parking: the worker ends without a close (invariant 2).
    #[test]
    fn a_stop_announced_with_wake_all_is_never_missed() {
        loom::model(|| {
            let queue = Arc::new(JobQueue::new(2));
            let stop = Arc::new(AtomicBool::new(false));
            let w = {
                let (queue, stop) = (queue.clone(), stop.clone());
                loom::thread::spawn(move || worker(queue, stop))
            };
            stop.store(true, Ordering::Release);
            queue.wake_all();
            assert!(w.join().unwrap().is_empty());
            let state = queue.lock();
            assert_eq!((state.searching, state.idle.len()), (0, 0));
        });
    }

    /// A submitter that finds the one slot taken waits in line and is given the slot when a worker
    /// takes the job in it; after the refusal the queue closes only once that second job is taken
    /// too, so the worker sees both (invariants 2 and 5).
    #[test]
    fn a_waiting_submitter_gets_the_slot_a_worker_frees() {
        loom::model(|| {
            let queue = Arc::new(JobQueue::new(1));
            let stop = Arc::new(AtomicBool::new(false));
            let w = {
                let (queue, stop) = (queue.clone(), stop.clone());
                loom::thread::spawn(move || worker(queue, stop))
            };
            queue.try_reserve().unwrap();
            queue.push(1).unwrap();
            loom::future::block_on(queue.reserve()).unwrap();
            queue.push(2).unwrap();
            queue.refuse();
            assert_eq!(w.join().unwrap(), [1, 2]);
            let state = queue.lock();
            assert_eq!((state.taken, state.closed), (0, true));
        });
    }

    /// A drain (an abort) racing a push and a worker: every item ends in exactly one place (taken
    /// by the worker, taken by the drain, or handed back to its pusher), and every slot comes back
    /// (invariants 1 and 5).
    #[test]
    fn a_drain_racing_a_push_leaves_every_item_in_exactly_one_place() {
        loom::model(|| {
            let queue = Arc::new(JobQueue::new(2));
            let stop = Arc::new(AtomicBool::new(false));
            queue.try_reserve().unwrap();
            queue.push(1).unwrap();
            queue.try_reserve().unwrap();
            let pusher = {
                let queue = queue.clone();
                loom::thread::spawn(move || queue.push(2).err())
            };
            let w = {
                let (queue, stop) = (queue.clone(), stop.clone());
                loom::thread::spawn(move || worker(queue, stop))
            };
            let mut everywhere: Vec<u32> = queue.drain().into();
            everywhere.extend(pusher.join().unwrap());
            everywhere.extend(w.join().unwrap());
            everywhere.sort_unstable();
            assert_eq!(everywhere, [1, 2]);
            let state = queue.lock();
            assert!(state.items.is_empty());
            assert_eq!((state.taken, state.closed), (0, true));
        });
    }

    /// A refusal racing a submitter in line and a worker freeing the slot: the submitter either gets
    /// the slot (and its job is taken) or is refused, never both and never neither; the queue ends
    /// closed with every slot free.
    #[test]
    fn a_refusal_answers_every_submitter_in_line() {
        loom::model(|| {
            let queue = Arc::new(JobQueue::new(1));
            let stop = Arc::new(AtomicBool::new(false));
            queue.try_reserve().unwrap();
            queue.push(1).unwrap();
            let submitter = {
                let queue = queue.clone();
                loom::thread::spawn(move || match loom::future::block_on(queue.reserve()) {
                    Ok(()) => queue.push(2).is_ok(),
                    Err(Refused::Closed) => false,
                    Err(Refused::Full) => unreachable!("a wait is never told full"),
                })
            };
            let w = {
                let (queue, stop) = (queue.clone(), stop.clone());
                loom::thread::spawn(move || worker(queue, stop))
            };
            queue.refuse();
            let pushed = submitter.join().unwrap();
            let seen = w.join().unwrap();
            assert_eq!(seen, if pushed { vec![1, 2] } else { vec![1] });
            let state = queue.lock();
            assert_eq!((state.taken, state.closed), (0, true));
            assert!(state.line.is_empty());
        });
    }
}
