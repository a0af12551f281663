//! A `Throttle` keeps a downstream at its rate under 200 concurrent callers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_ratelimit::{AcquireError, Limiter, Quota, Throttle};
use tokio::time::Instant;

/// A downstream that records when each call reached it.
#[derive(Clone, Debug, Default)]
struct FakeApi {
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl FakeApi {
    async fn get(&self, _id: usize) -> Result<(), String> {
        self.calls.lock().unwrap().push(Instant::now());
        tokio::time::sleep(Duration::from_millis(30)).await; // the call's own latency
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn two_hundred_callers_keep_the_downstream_at_50_per_second() {
    let api = FakeApi::default();
    let client = Throttle::new(
        api.clone(),
        Limiter::new(Quota::per_second(50).burst(5)).unwrap(),
    );
    let start = Instant::now();
    let stop = start + Duration::from_secs(10);
    let mut callers = tokio::task::JoinSet::new();
    for id in 0..200 {
        let client = client.clone();
        callers.spawn(async move {
            let mut done = 0;
            while Instant::now() < stop {
                let request = Context::new().with_deadline(stop);
                match client.call(&request, |api| api.get(id)).await {
                    Ok(reply) => {
                        reply.unwrap();
                        done += 1;
                    }
                    Err(AcquireError::DeadlineTooSoon { .. } | AcquireError::Cancelled(_)) => break,
                    Err(other) => panic!("{other}"),
                }
            }
            done
        });
    }
    let done: usize = callers.join_all().await.into_iter().sum();
    let calls = api.calls.lock().unwrap().clone();
    assert_eq!(done, calls.len());
    // 10 s at 50/s plus the burst of 5.
    assert!(
        (500..=505).contains(&calls.len()),
        "{} calls in 10 s",
        calls.len()
    );
    // No one-second window saw more than 50 + 5.
    for (i, first) in calls.iter().enumerate() {
        let in_window = calls[i..]
            .iter()
            .take_while(|t| t.duration_since(*first) < Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 55,
            "{in_window} calls in the second after {:?}",
            first.duration_since(start)
        );
    }
    bounded_cancel::live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_call_never_runs_its_closure() {
    let api = FakeApi::default();
    let client = Throttle::new(
        api.clone(),
        Limiter::new(Quota::per_second(1).burst(1)).unwrap(),
    );
    client
        .call(&Context::new(), |api| api.get(0))
        .await
        .unwrap()
        .unwrap();
    let hurried = Context::new().with_timeout(Duration::from_millis(10));
    let err = client.call(&hurried, |api| api.get(1)).await.unwrap_err();
    assert!(matches!(err, AcquireError::DeadlineTooSoon { .. }), "{err}");
    assert_eq!(api.calls.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn try_call_runs_now_or_hands_the_call_back_unrun() {
    let api = FakeApi::default();
    let client = Throttle::new(
        api.clone(),
        Limiter::new(Quota::per_second(10).burst(1)).unwrap(),
    );
    let call = match client.try_call(|api| api.get(0)) {
        Ok(call) => call,
        Err(refused) => panic!("{refused}"),
    };
    let refused = match client.try_call(|api| api.get(1)) {
        Ok(_) => panic!("the bucket was empty"),
        Err(refused) => refused,
    };
    assert_eq!(refused.retry_after(), Some(Duration::from_millis(100)));
    call.await.unwrap(); // takes 30 ms
    assert_eq!(
        api.calls.lock().unwrap().len(),
        1,
        "the refused call did not run"
    );
    // The call handed back runs later, as it was.
    tokio::time::sleep(Duration::from_millis(70)).await;
    let again = refused.into_inner();
    client.try_call(again).ok().unwrap().await.unwrap();
    assert_eq!(api.calls.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_while_waiting_never_runs_and_takes_nothing() {
    let api = FakeApi::default();
    let client = Throttle::new(
        api.clone(),
        Limiter::new(Quota::per_second(10).burst(1)).unwrap(),
    );
    client
        .call(&Context::new(), |api| api.get(0))
        .await
        .unwrap()
        .unwrap();
    let ctx = Context::new();
    let waiting = client.call(&ctx, |api| api.get(1));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), waiting)
            .await
            .is_err()
    );
    assert_eq!(
        api.calls.lock().unwrap().len(),
        1,
        "the dropped call never ran"
    );
    // The unit it waited for is still there, at 100 ms.
    let start = Instant::now();
    client
        .call(&Context::new(), |api| api.get(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    bounded_cancel::live::assert_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn call_n_takes_n_units_before_the_call_runs() {
    let client = Throttle::new((), Limiter::new(Quota::per_second(10).burst(10)).unwrap());
    let start = tokio::time::Instant::now();
    client
        .call_n(&Context::new(), 10, |_| async {})
        .await
        .unwrap();
    let ran = std::sync::atomic::AtomicBool::new(false);
    client
        .call_n(&Context::new(), 5, |_| async {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
        })
        .await
        .unwrap();
    assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(start.elapsed(), std::time::Duration::from_millis(500));
    let never = client
        .call_n(&Context::new(), 11, |_| async { unreachable!() })
        .await;
    assert!(matches!(
        never,
        Err(bounded_ratelimit::AcquireError::InsufficientCapacity(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn try_call_n_runs_now_or_hands_the_call_back_saying_why() {
    use bounded_ratelimit::TryAcquireError;
    let client = Throttle::new((), Limiter::new(Quota::per_second(10).burst(10)).unwrap());
    client.try_call_n(6, |_| async {}).ok().unwrap().await;
    let ran = std::sync::atomic::AtomicBool::new(false);
    let not_yet = client
        .try_call_n(6, |_| async {
            ran.store(true, std::sync::atomic::Ordering::SeqCst)
        })
        .err()
        .unwrap();
    assert_eq!(not_yet.retry_after(), Some(Duration::from_millis(200)));
    let never = client.try_call_n(11, |_| async {}).err().unwrap();
    assert!(matches!(
        never.error(),
        TryAcquireError::InsufficientCapacity(_)
    ));
    assert_eq!(never.retry_after(), None);
    let _call = not_yet.into_inner();
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "a refused call never runs"
    );
    assert_eq!(client.limiter().tokens(), 4, "refusals take nothing");
}

/// `ctx` bounds the wait for the unit, and the call only if `f` races it: a call that takes 30 ms
/// under a context of 10 ms runs to its end as written, and ends at 10 ms with the context's cause
/// when `f` returns `ctx.run(..)`. Either way the unit was spent: the call reached the downstream.
#[tokio::test(start_paused = true)]
async fn a_call_ends_with_its_context_only_when_f_races_it() {
    let api = FakeApi::default();
    let client = Throttle::new(api.clone(), Limiter::new(Quota::per_second(10)).unwrap());

    let ctx = Context::new().with_timeout(Duration::from_millis(10));
    let started = Instant::now();
    client.call(&ctx, |c| c.get(1)).await.unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(30));

    let ctx = Context::new().with_timeout(Duration::from_millis(10));
    let started = Instant::now();
    let raced = client.call(&ctx, |c| ctx.run(c.get(2))).await.unwrap();
    assert_eq!(raced, Err(bounded_cancel::Cause::DeadlineExceeded));
    assert_eq!(started.elapsed(), Duration::from_millis(10));
    assert_eq!(api.calls.lock().unwrap().len(), 2);
    assert_eq!(client.limiter().tokens(), 8);
}
