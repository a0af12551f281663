//! Redis killed in the middle of a run and started again, under each `OnUnavailable` policy: while it
//! is down the policy decides, and once it is back the shared bucket does.

use std::error::Error;
use std::time::Duration;

use bounded_cancel::live;
use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::{AcquireError, OnUnavailable, RedisLimiter, TryAcquireError};
use bounded_testkit::redis_server::RedisServer;
use tokio::time::Instant;

const CALL_TIMEOUT: Duration = Duration::from_millis(300);

async fn limiter(server: &RedisServer, policy: OnUnavailable) -> RedisLimiter {
    RedisLimiter::builder(
        server.connect().await,
        "outage",
        Quota::per_second(10).burst(2),
    )
    .timeout(CALL_TIMEOUT)
    .on_unavailable(policy)
    .build()
    .unwrap()
}

/// Calls `try_acquire_n(2)` until Redis answers again (a refusal or a grant from the shared bucket,
/// not the policy), within 10 s.
async fn until_redis_answers(limiter: &RedisLimiter) {
    let start = Instant::now();
    loop {
        let before = limiter.metrics().unavailable;
        let _ = limiter.try_acquire_n(2).await;
        if limiter.metrics().unavailable == before {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Redis was not reached again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With the bucket just emptied by `until_redis_answers`, a shared limit refuses the next unit.
async fn assert_limited_by_redis(limiter: &RedisLimiter) {
    let _ = limiter.try_acquire_n(2).await;
    match limiter.try_acquire().await {
        Err(TryAcquireError::RetryAfter(_)) => {}
        other => panic!("expected the shared bucket to refuse, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_fails_every_call_while_redis_is_down_and_recovers_after() {
    let mut server = RedisServer::start();
    let limiter = limiter(&server, OnUnavailable::Refuse).await;
    limiter.acquire().await.unwrap();
    server.kill();
    for _ in 0..3 {
        let start = Instant::now();
        match limiter.acquire().await {
            Err(AcquireError::Unavailable(err)) => {
                assert!(err.to_string().contains("nothing was granted"), "{err}");
                let chain: Vec<String> =
                    std::iter::successors(Some(&err as &(dyn Error + 'static)), |&e| e.source())
                        .map(ToString::to_string)
                        .collect();
                // Redis's I/O error is in the message, and not again below it.
                for (at, message) in chain.iter().enumerate() {
                    for below in &chain[at + 1..] {
                        assert!(!message.contains(below.as_str()), "{chain:#?}");
                    }
                }
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(
            start.elapsed() <= CALL_TIMEOUT + Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(
            limiter.try_acquire().await,
            Err(TryAcquireError::Unavailable(_))
        ));
    }
    let m = limiter.metrics();
    assert_eq!((m.granted, m.rejected), (1, 6), "{m:?}");
    server.restart();
    until_redis_answers(&limiter).await;
    assert_limited_by_redis(&limiter).await;
    live::settle(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_grants_everything_while_redis_is_down_and_limits_again_after() {
    let mut server = RedisServer::start();
    let limiter = limiter(&server, OnUnavailable::Allow).await;
    server.kill();
    for _ in 0..20 {
        limiter.acquire().await.expect("fail open");
        limiter.try_acquire().await.expect("fail open");
    }
    assert_eq!(limiter.metrics().granted, 40, "far beyond the burst of 2");
    server.restart();
    until_redis_answers(&limiter).await;
    assert_limited_by_redis(&limiter).await;
    live::settle(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_falls_back_to_its_own_share_while_redis_is_down() {
    let mut server = RedisServer::start();
    let local = Quota::per_second(5).burst(1);
    let limiter = limiter(&server, OnUnavailable::Local(local)).await;
    server.kill();
    // The local limiter's burst of 1 first (the first call also learns that Redis is gone).
    limiter
        .try_acquire()
        .await
        .expect("the local share's one unit");
    match limiter.try_acquire().await {
        Err(TryAcquireError::RetryAfter(retry)) => {
            assert!(retry.wait() <= Duration::from_millis(200), "{retry:?}");
        }
        other => panic!("expected the local limiter to refuse, got {other:?}"),
    }
    // A wait is spaced by the local quota: 200 ms a unit.
    let start = Instant::now();
    limiter.acquire().await.unwrap();
    limiter.acquire().await.unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "two local units took {took:?}"
    );
    server.restart();
    until_redis_answers(&limiter).await;
    assert_limited_by_redis(&limiter).await;
    live::settle(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_is_unavailable_after_the_call_timeout() {
    let server = RedisServer::start();
    let limiter = limiter(&server, OnUnavailable::Refuse).await;
    limiter.acquire().await.unwrap();
    server.pause();
    let start = Instant::now();
    let err = limiter.acquire().await.unwrap_err();
    let took = start.elapsed();
    match err {
        AcquireError::Unavailable(err) => assert_eq!(err.timeout(), Some(CALL_TIMEOUT)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        took >= CALL_TIMEOUT && took < CALL_TIMEOUT + Duration::from_millis(200),
        "{took:?}"
    );
    server.resume();
    live::settle(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_in_full_flow_ride_through_a_crash_and_a_restart() {
    let mut server = RedisServer::start();
    let limiter = RedisLimiter::builder(
        server.connect().await,
        "flow",
        Quota::per_second(100).burst(1),
    )
    .timeout(CALL_TIMEOUT)
    .on_unavailable(OnUnavailable::Local(Quota::per_second(20).burst(1)))
    .build()
    .unwrap();
    let run = bounded_cancel::Context::new();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (limiter, run) = (limiter.clone(), run.clone());
        callers.spawn(async move {
            let mut granted = 0u32;
            loop {
                match limiter.acquire_with(&run).await {
                    Ok(()) => granted += 1,
                    Err(AcquireError::Cancelled(_)) => return granted,
                    Err(other) => panic!("a caller saw {other}"),
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_crash = limiter.metrics().granted;
    server.kill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = limiter.metrics().granted - before_crash;
    server.restart();
    // Back on the shared bucket: the policy stops being asked.
    let start = Instant::now();
    let mut unavailable = limiter.metrics().unavailable;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = limiter.metrics().unavailable;
        if now == unavailable {
            break;
        }
        unavailable = now;
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Redis was not used again within 10 s"
        );
    }
    let before = limiter.metrics().granted;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_restart = limiter.metrics().granted - before;
    run.cancel();
    let mut total = 0;
    while let Some(granted) = callers.join_next().await {
        total += granted.unwrap();
    }
    assert_eq!(u64::from(total), limiter.metrics().granted);
    // 100/s for 500 ms before the crash; 20/s (the local share) for the second it was down; 100/s again.
    assert!(
        (35..=60).contains(&before_crash),
        "{before_crash} granted before the crash"
    );
    // In the outage: the reservations the 8 callers held when Redis died (granted by Redis before it),
    // then the local burst of 1 and 20 a second.
    assert!(
        during <= 8 + 1 + 20 + 2,
        "{during} granted in the 1 s outage: more than the local 20/s"
    );
    assert!(
        during >= 5,
        "{during} granted in the 1 s outage: the fallback served nobody"
    );
    assert!(
        (35..=60).contains(&after_restart),
        "{after_restart} granted in 500 ms after the restart"
    );
    live::settle(Duration::from_secs(2)).await.unwrap();
}
