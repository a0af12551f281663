use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bounded_cancel::{Cancelled, Cause, Context};
use bounded_sync::runtime::BoxIfLarge;
use bounded_sync::slots::Take;

use crate::error::SpawnError;
use crate::executor::WaitingSpawn;
use crate::group::{Limit, Task};
use crate::task::Boxed;
use crate::{Group, TaskFn};
use bounded_sync::own::OwnWait;

/// Future returned by [`Group::spawn`] and [`Group::spawn_with`]: resolves once the task is admitted.
///
/// It holds no slot until it resolves: dropping it mid-wait gives up its place in line and runs nothing.
///
/// # Examples
///
/// ```
/// use bounded_group::Group;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let group = Group::<String>::new();
/// let spawn = group.spawn(|_ctx| async { Ok(()) }); // nothing happens yet
/// spawn.await.unwrap(); // admitted now
/// group.wait().await.unwrap();
/// # }
/// ```
#[must_use = "futures do nothing unless polled; the task is not spawned until this is awaited"]
pub struct Spawn<'a, E, F> {
    admit: Admitting<'a, E, F>,
}

/// A spawn as it is made. A closure larger than tokio's threshold for boxing a task's future is put
/// in a box of its own, before anything else moves it, so that what the spawn's frames move from
/// then on is the box, and a refusal hands the closure back out of it: in a debug build each move is
/// a copy on the stack, and the spawn's frames move the closure many times.
enum Admitting<'a, E, F> {
    AsIs(Admit<'a, E, F>),
    // Boxed whole, so that this variant is a pointer the other's unused values can tell apart: the
    // future stays the size it is without this choice.
    Boxed(Box<Admit<'a, E, Boxed<F>>>),
}

/// A spawn of the task `F`, until it is admitted.
struct Admit<'a, E, F> {
    group: &'a Group<E>,
    caller: Option<&'a Context>,
    job: Option<F>,
    wait: Option<SlotWait<'a>>,
}

/// A spawn's wait for a slot. The group's context ending closes the slots (the executor's watcher,
/// kept running while `_watched` lives), which ends the wait with the group's cause; only a caller's
/// own context needs a waiter here (boxed: only `spawn_with` has one, and every spawn's future has
/// room for this wait).
struct SlotWait<'a> {
    caller_ended: Option<Pin<Box<Cancelled<'a>>>>,
    take: Take<'a>,
    _watched: WaitingSpawn<'a>,
    _own: Option<OwnWait<'a>>,
}

impl SlotWait<'_> {
    /// The slot, or the cause that ended the wait: the caller's context first, as it was asked.
    fn poll(&mut self, group: &Context, cx: &mut TaskContext<'_>) -> Poll<Result<(), Cause>> {
        if let Some(ended) = &mut self.caller_ended
            && let Poll::Ready(cause) = ended.as_mut().poll(cx)
        {
            return Poll::Ready(Err(cause));
        }
        // The slot is the task's from here; the task gives it back as it ends. The slots close
        // only when the group's context has ended.
        Pin::new(&mut self.take)
            .poll(cx)
            .map_err(|_| group.cause().unwrap_or(Cause::Cancelled))
    }
}

// The closure is moved in and out, never pinned, so `Spawn` can be moved freely whatever `F` is.
impl<E, F> Unpin for Spawn<'_, E, F> {}

impl<'a, E, F> Spawn<'a, E, F> {
    pub(crate) fn new(group: &'a Group<E>, caller: Option<&'a Context>, job: F) -> Self {
        let admit = if BoxIfLarge::<F>::YES {
            Admitting::Boxed(Box::new(Admit::new(group, caller, Boxed::new(job))))
        } else {
            Admitting::AsIs(Admit::new(group, caller, job))
        };
        Spawn { admit }
    }
}

impl<E, F> Future for Spawn<'_, E, F>
where
    E: Send + 'static,
    F: TaskFn<E>,
{
    type Output = Result<(), SpawnError<F>>;

    // The guards are constants: each `F` compiles the one arm it can take.
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().admit {
            Admitting::AsIs(admit) if !BoxIfLarge::<F>::YES => admit.poll(cx),
            Admitting::Boxed(admit) if BoxIfLarge::<F>::YES => admit
                .poll(cx)
                .map(|admitted| admitted.map_err(|refused| refused.map(Boxed::into_inner))),
            _ => unreachable!("a task is boxed when it is large, and only then"),
        }
    }
}

impl<'a, E, F> Admit<'a, E, F> {
    fn new(group: &'a Group<E>, caller: Option<&'a Context>, job: F) -> Self {
        Admit {
            group,
            caller,
            job: Some(job),
            wait: None,
        }
    }
}

impl<E, F> Admit<'_, E, F>
where
    E: Send + 'static,
    F: TaskFn<E>,
{
    fn poll(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), SpawnError<F>>> {
        let this = self;
        // First, so that a spawn outside a runtime panics before it takes a slot.
        let executor = this.group.executor();
        // A spawn that finds a slot (or needs none) does not wait, so it spends the caller's tokio
        // budget as a send on a tokio channel does: a loop of spawns yields every so often, so that
        // the group's runners (and everything else on the thread) run and tasks do not pile up
        // unstarted behind the loop. A spawn woken from its wait for a slot has waited already.
        let coop = match this.wait {
            None => Some(std::task::ready!(tokio::task::coop::poll_proceed(cx))),
            Some(_) => None,
        };
        let job = this.job.take().expect("Spawn polled after completion");
        let group = this.group;
        let slot = match (&group.limit, &mut this.wait) {
            (_, Some(wait)) => {
                let Poll::Ready(waited) = wait.poll(group.context(), cx) else {
                    this.job = Some(job);
                    return Poll::Pending;
                };
                // The wait is over: it stops counting among the waiting spawns now, not when the
                // spawn is dropped.
                this.wait = None;
                match waited {
                    // A slot freed by a task whose failure then ended the context: the context
                    // wins, as it did for every spawn that looked after it ended, and the slot
                    // goes back.
                    Ok(()) => match ended(group.context(), this.caller) {
                        Some(cause) => {
                            group.shared().slots.give_back();
                            return Poll::Ready(Err(SpawnError::Cancelled { job, cause }));
                        }
                        None => true,
                    },
                    Err(cause) => return Poll::Ready(Err(SpawnError::Cancelled { job, cause })),
                }
            }
            (Limit::Zero, None) => return Poll::Ready(Err(SpawnError::LimitZero(job))),
            (limit, None) => {
                if let Some(cause) = ended(group.context(), this.caller) {
                    return Poll::Ready(Err(SpawnError::Cancelled { job, cause }));
                }
                let slots = &group.shared().slots;
                match limit {
                    Limit::Slots(limit) => match slots.try_take() {
                        Ok(()) => true,
                        Err(_) => {
                            // A spawn from one of the group's own tasks, which holds a slot while
                            // it waits for another: refused when every slot is held so.
                            let own = match group.calling_task() {
                                None => None,
                                Some(task) => match group.shared().own_waits.enter(task, *limit) {
                                    Some(own) => Some(own),
                                    None => return Poll::Ready(Err(SpawnError::Deadlock(job))),
                                },
                            };
                            this.wait = Some(SlotWait {
                                caller_ended: this.caller.map(|ctx| Box::pin(ctx.cancelled())),
                                take: slots.take(),
                                _watched: group.watch_slots(executor),
                                _own: own,
                            });
                            this.job = Some(job);
                            // Poll the new wait at once so that it registers for a wake-up.
                            return this.poll(cx);
                        }
                    },
                    _ => false,
                }
            }
        };
        group.admit(executor, Task::new(job, slot));
        if let Some(coop) = coop {
            coop.made_progress();
        }
        Poll::Ready(Ok(()))
    }
}

fn ended(group: &Context, caller: Option<&Context>) -> Option<Cause> {
    group.cause().or_else(|| caller.and_then(Context::cause))
}

impl<E, F> fmt::Debug for Spawn<'_, E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (waiting, done) = match &self.admit {
            Admitting::AsIs(admit) => (admit.wait.is_some(), admit.job.is_none()),
            Admitting::Boxed(admit) => (admit.wait.is_some(), admit.job.is_none()),
        };
        f.debug_struct("Spawn")
            .field("waiting", &waiting)
            .field("done", &done)
            .finish()
    }
}
