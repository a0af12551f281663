//! A bucket per key, shared by every replica, each expiring by itself once full again.

use std::time::Duration;

use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::{OnUnavailable, RedisKeyedLimiter, TryAcquireError};
use bounded_testkit::redis_server::{RedisServer, get, pttl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_has_its_own_bucket_shared_by_every_replica() {
    let server = RedisServer::start();
    let quota = Quota::per_second(10).burst(2);
    let a = RedisKeyedLimiter::new(server.connect().await, "tenant", quota).unwrap();
    let b = RedisKeyedLimiter::new(server.connect().await, "tenant", quota).unwrap();
    a.try_acquire("acme").await.unwrap();
    b.try_acquire("acme").await.unwrap();
    // acme's burst is spent on both replicas; globex is untouched.
    assert!(matches!(
        a.try_acquire("acme").await,
        Err(TryAcquireError::RetryAfter(_))
    ));
    assert!(matches!(
        b.try_acquire("acme").await,
        Err(TryAcquireError::RetryAfter(_))
    ));
    b.try_acquire_n("globex", 2).await.unwrap();
    let mut conn = server.connect().await;
    assert!(get(&mut conn, "tenant:acme").await.is_some());
    assert!(get(&mut conn, "tenant:globex").await.is_some());
    assert_eq!(a.bucket("acme"), "tenant:acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_expires_once_its_bucket_is_full_again() {
    let server = RedisServer::start();
    let limiter = RedisKeyedLimiter::new(
        server.connect().await,
        "user",
        Quota::per_second(20).burst(2),
    )
    .unwrap();
    let mut conn = server.connect().await;
    limiter.acquire_n("ada", 2).await.unwrap();
    // Two units at 50 ms each: full again in 100 ms, and the key expires then (plus a millisecond).
    let ttl = pttl(&mut conn, "user:ada").await;
    assert!((1..=101).contains(&ttl), "ttl {ttl} ms");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(pttl(&mut conn, "user:ada").await, -2, "the key is gone");
    limiter
        .try_acquire_n("ada", 2)
        .await
        .expect("a full bucket again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_fallback_limits_each_key_apart() {
    let mut server = RedisServer::start();
    let limiter =
        RedisKeyedLimiter::builder(server.connect().await, "tenant", Quota::per_second(100))
            .timeout(Duration::from_millis(300))
            .on_unavailable(OnUnavailable::Local(Quota::per_second(1).burst(1)))
            .build()
            .unwrap();
    server.kill();
    limiter.try_acquire("acme").await.unwrap();
    assert!(matches!(
        limiter.try_acquire("acme").await,
        Err(TryAcquireError::RetryAfter(_))
    ));
    limiter
        .try_acquire("globex")
        .await
        .expect("another key has its own local bucket");
    assert_eq!(limiter.metrics().unavailable, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_wait_dropped_mid_wait_gives_its_instant_back() {
    let server = RedisServer::start();
    let mut conn = server.connect().await;
    let limiter = RedisKeyedLimiter::new(
        server.connect().await,
        "user",
        Quota::per_second(5).burst(1),
    )
    .unwrap();
    limiter.acquire("ada").await.unwrap();
    let first = get(&mut conn, "user:ada").await.unwrap();
    let waiting = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire("ada").await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_ne!(
        get(&mut conn, "user:ada").await.unwrap(),
        first,
        "the wait reserved its instant"
    );
    waiting.abort();
    let _ = waiting.await;
    bounded_cancel::live::settle(Duration::from_secs(2))
        .await
        .expect("the give-back task ends");
    assert_eq!(
        get(&mut conn, "user:ada").await.unwrap(),
        first,
        "given back"
    );
    assert_eq!(
        limiter.metrics().granted,
        1,
        "the dropped wait was granted nothing"
    );
}
