//! A deadline that cannot be met is refused by the script and takes nothing; a wait that leaves gives
//! its reservation back only when no later reservation depends on it.

use std::time::Duration;

use bounded_cancel::{Cause, Context, live};
use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::{AcquireError, RedisLimiter};
use bounded_testkit::redis_server::{RedisServer, get};
use tokio::time::Instant;

async fn limiter(server: &RedisServer, key: &str, quota: Quota) -> RedisLimiter {
    RedisLimiter::builder(server.connect().await, key, quota)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_too_soon_is_refused_at_once_and_takes_nothing() {
    let server = RedisServer::start();
    let mut conn = server.connect().await;
    let limiter = limiter(&server, "deadline", Quota::per_second(10).burst(1)).await;
    limiter.acquire().await.unwrap();
    let before = get(&mut conn, "deadline").await.expect("the bucket exists");

    let ctx = Context::new().with_timeout(Duration::from_millis(50));
    let start = Instant::now();
    match limiter.acquire_with(&ctx).await {
        Err(AcquireError::DeadlineTooSoon { wait, remaining }) => {
            assert!(
                wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
                "{wait:?}"
            );
            assert!(remaining <= Duration::from_millis(50), "{remaining:?}");
        }
        other => panic!("expected DeadlineTooSoon, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_millis(40),
        "refused at once, not at the deadline"
    );
    assert_eq!(
        get(&mut conn, "deadline").await.as_ref(),
        Some(&before),
        "the refusal wrote nothing"
    );
    assert_eq!(limiter.metrics().rejected, 1);

    // A deadline that the grant meets is served.
    let ctx = Context::new().with_timeout(Duration::from_millis(500));
    limiter
        .acquire_with(&ctx)
        .await
        .expect("granted within 100 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_wait_gives_its_instant_to_the_next_caller() {
    let server = RedisServer::start();
    let mut conn = server.connect().await;
    let limiter = limiter(&server, "give-back", Quota::per_second(5).burst(1)).await;
    limiter.acquire().await.unwrap();
    let first = get(&mut conn, "give-back").await.unwrap();

    // A second caller reserves the instant 200 ms from now, then leaves after 30 ms.
    let leaving = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire().await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_ne!(
        get(&mut conn, "give-back").await.unwrap(),
        first,
        "the second caller reserved"
    );
    leaving.abort();
    let _ = leaving.await;
    live::settle(Duration::from_secs(2))
        .await
        .expect("the give-back task ends");
    assert_eq!(
        get(&mut conn, "give-back").await.unwrap(),
        first,
        "its reservation was given back"
    );

    // So a new caller is granted at the instant the leaver had, not one interval after it.
    let start = Instant::now();
    limiter.acquire().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "granted at {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_whose_context_ends_gives_back_too() {
    let server = RedisServer::start();
    let mut conn = server.connect().await;
    let limiter = limiter(&server, "ctx", Quota::per_second(5).burst(1)).await;
    limiter.acquire().await.unwrap();
    let first = get(&mut conn, "ctx").await.unwrap();

    let ctx = Context::new();
    let waiting = tokio::spawn({
        let (limiter, ctx) = (limiter.clone(), ctx.clone());
        async move { limiter.acquire_with(&ctx).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    ctx.cancel();
    assert!(matches!(
        waiting.await.unwrap(),
        Err(AcquireError::Cancelled(Cause::Cancelled))
    ));
    live::settle(Duration::from_secs(2))
        .await
        .expect("the give-back task ends");
    assert_eq!(get(&mut conn, "ctx").await.unwrap(), first);
    assert_eq!(limiter.metrics().abandoned, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_a_later_one_depends_on_stays_taken() {
    let server = RedisServer::start();
    let mut conn = server.connect().await;
    let limiter = limiter(&server, "depends", Quota::per_second(5).burst(1)).await;
    limiter.acquire().await.unwrap();

    let early = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire().await } // due at 200 ms
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire().await } // due at 400 ms, computed from the early one
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let after_late = get(&mut conn, "depends").await.unwrap();
    early.abort();
    let _ = early.await;
    live::settle(Duration::from_secs(2))
        .await
        .expect("the give-back task ends");
    // Giving the early instant back now would let a third caller share the late one's instant.
    assert_eq!(
        get(&mut conn, "depends").await.unwrap(),
        after_late,
        "nothing was given back"
    );
    let start = Instant::now();
    late.await.unwrap().unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "the late caller kept its own instant: granted after {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_while_redis_answers_is_given_back_in_the_background() {
    let server = RedisServer::start();
    let mut conn = server.connect().await;
    let limiter = limiter(&server, "in-flight", Quota::per_second(5).burst(1)).await;
    limiter.acquire().await.unwrap();
    let first = get(&mut conn, "in-flight").await.unwrap();

    server.pause();
    let call = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    call.abort(); // the script is queued in Redis's socket, not yet run
    let _ = call.await;
    assert_eq!(
        live::names(),
        ["fleet limiter give-back"],
        "a task waits for the reply"
    );
    server.resume();
    live::settle(Duration::from_secs(3))
        .await
        .expect("the give-back task ends");
    assert_eq!(
        get(&mut conn, "in-flight").await.unwrap(),
        first,
        "the late grant was given back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_never_holds_a_caller_past_its_context() {
    let server = RedisServer::start();
    let limiter = limiter(&server, "frozen", Quota::per_second(5)).await; // a 2 s call timeout
    limiter.acquire().await.unwrap();
    server.pause();
    let ctx = Context::new().with_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let err = limiter.acquire_with(&ctx).await.unwrap_err();
    assert!(err.is_deadline(), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "ended at {:?}",
        start.elapsed()
    );
    server.resume();
    live::settle(Duration::from_secs(5))
        .await
        .expect("the give-back task ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_acquire_takes_only_what_is_free_now_and_says_how_long_otherwise() {
    let server = RedisServer::start();
    let mut conn = server.connect().await;
    let limiter = limiter(&server, "try", Quota::per_second(10).burst(3)).await;
    limiter.try_acquire_n(3).await.unwrap();
    let before = get(&mut conn, "try").await.unwrap();
    let err = limiter.try_acquire().await.unwrap_err();
    let retry = err.retry_after().expect("not yet, not never");
    assert!(
        retry > Duration::from_millis(50) && retry <= Duration::from_millis(100),
        "{retry:?}"
    );
    assert_eq!(
        get(&mut conn, "try").await.unwrap(),
        before,
        "a refused try took nothing"
    );
    tokio::time::sleep(retry + Duration::from_millis(5)).await;
    limiter
        .try_acquire()
        .await
        .expect("free after the retry time");
    let m = limiter.metrics();
    assert_eq!((m.granted, m.rejected), (4, 1));
}
