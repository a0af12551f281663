//! Bad input gets a clear error, as the local limiter gives it, never a panic or a call to Redis.

use std::time::Duration;

use bounded_cancel::{Cause, Context};
use bounded_ratelimit::{InsufficientCapacity, Quota, QuotaError};
use bounded_ratelimit_redis::{
    AcquireError, ConfigError, OnUnavailable, RedisKeyedLimiter, RedisLimiter, TryAcquireError,
};
use bounded_testkit::redis_server::{RedisServer, get};

#[tokio::test]
async fn quotas_keys_and_timeouts_that_cannot_work_are_refused_when_built() {
    let server = RedisServer::start();
    let conn = server.connect().await;
    let build = |quota: Quota| RedisLimiter::new(conn.clone(), "api", quota).map(drop);
    assert_eq!(
        build(Quota::per_second(0)),
        Err(ConfigError::Quota(QuotaError::ZeroRate))
    );
    assert_eq!(
        build(Quota::per_second(5).burst(0)),
        Err(ConfigError::Quota(QuotaError::ZeroBurst))
    );
    assert_eq!(
        build(Quota::new(5, Duration::ZERO)),
        Err(ConfigError::Quota(QuotaError::ZeroPeriod))
    );
    // Finer than the bucket's microseconds can keep exact: anything above 500,000 a second, which
    // rounding up to 2 µs a unit would cut to 500,000 (900,000 a second by 44 %).
    for rate in [500_001, 750_000, 900_000, 999_999, 1_000_000, u32::MAX] {
        let too_fast = Quota::per_second(rate);
        assert_eq!(
            build(too_fast),
            Err(ConfigError::TooFast { quota: too_fast }),
            "{rate} a second"
        );
    }
    let err = build(Quota::per_second(750_000)).unwrap_err().to_string();
    assert!(
        err.contains("faster than 500,000 units a second") && err.contains("lower the rate"),
        "{err}"
    );
    let too_fast = Quota::new(3, Duration::from_nanos(5_999));
    assert_eq!(
        build(too_fast),
        Err(ConfigError::TooFast { quota: too_fast }),
        "3 every 5,999 ns is just over 500,000 a second"
    );
    assert!(build(Quota::per_second(500_000)).is_ok());
    assert!(build(Quota::new(3, Duration::from_nanos(6_000))).is_ok());
    assert!(build(Quota::new(u32::MAX, Duration::MAX)).is_err());
    assert!(build(Quota::unlimited()).is_ok() && build(Quota::blocked()).is_ok());

    assert_eq!(
        RedisLimiter::new(conn.clone(), "", Quota::per_second(5)).unwrap_err(),
        ConfigError::EmptyKey
    );
    assert_eq!(
        RedisKeyedLimiter::new(conn.clone(), "", Quota::per_second(5)).unwrap_err(),
        ConfigError::EmptyKey
    );
    let zero_timeout = RedisLimiter::builder(conn.clone(), "api", Quota::per_second(5))
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(zero_timeout, ConfigError::ZeroTimeout);
    assert!(zero_timeout.to_string().contains("timeout of 0"));
    let bad_local = RedisLimiter::builder(conn.clone(), "api", Quota::per_second(5))
        .on_unavailable(OnUnavailable::Local(Quota::per_second(0)))
        .build()
        .unwrap_err();
    assert_eq!(bad_local, ConfigError::LocalQuota(QuotaError::ZeroRate));
    assert!(OnUnavailable::share_of(Quota::per_second(5), 0).is_err());
    assert!(OnUnavailable::share_of(Quota::per_second(5), 6).is_err());

    // The longest timeout there is works like any other.
    let patient = RedisLimiter::builder(conn.clone(), "api", Quota::per_second(5))
        .timeout(Duration::MAX)
        .build()
        .unwrap();
    patient.acquire().await.unwrap();
    // A rejected quota change leaves the old one in force.
    assert!(patient.set_rate(Quota::per_second(0)).is_err());
    let too_fast = Quota::per_second(600_000);
    assert_eq!(
        patient.set_rate(too_fast),
        Err(ConfigError::TooFast { quota: too_fast })
    );
    assert_eq!(patient.quota(), Quota::per_second(5));
}

#[tokio::test]
async fn more_units_than_the_burst_are_never_granted_and_never_asked_for() {
    let mut server = RedisServer::start();
    let mut conn = server.connect().await;
    let limiter = RedisLimiter::new(
        server.connect().await,
        "burst",
        Quota::per_second(10).burst(4),
    )
    .unwrap();
    let never = InsufficientCapacity {
        requested: 5,
        burst: 4,
    };
    assert!(
        matches!(limiter.acquire_n(5).await, Err(AcquireError::InsufficientCapacity(e)) if e == never)
    );
    assert!(
        matches!(limiter.try_acquire_n(5).await, Err(TryAcquireError::InsufficientCapacity(e)) if e == never)
    );
    assert!(matches!(
        limiter.acquire_n_with(&Context::new(), u32::MAX).await,
        Err(AcquireError::InsufficientCapacity(_))
    ));
    assert_eq!(get(&mut conn, "burst").await, None, "Redis was not asked");
    assert_eq!(limiter.metrics().rejected, 3);

    // Zero units, and a context that has already ended, are answered without Redis.
    server.kill();
    limiter.acquire_n(0).await.unwrap();
    limiter.try_acquire_n(0).await.unwrap();
    let ended = Context::new();
    ended.cancel();
    assert!(matches!(
        limiter.acquire_with(&ended).await,
        Err(AcquireError::Cancelled(Cause::Cancelled))
    ));
    assert_eq!(limiter.metrics().unavailable, 0);
}

#[tokio::test]
async fn unlimited_never_asks_redis_and_blocked_refuses_until_lifted() {
    let mut server = RedisServer::start();
    let limiter =
        RedisLimiter::new(server.connect().await, "switch", Quota::per_second(10)).unwrap();
    limiter.set_rate(Quota::blocked()).unwrap();
    assert!(matches!(
        limiter.try_acquire().await,
        Err(TryAcquireError::RetryAfter(_))
    ));
    let ctx = Context::new().with_timeout(Duration::from_secs(5));
    assert!(matches!(
        limiter.acquire_with(&ctx).await,
        Err(AcquireError::DeadlineTooSoon { .. })
    ));
    // A wait without a deadline waits for the block to be lifted.
    let waiting = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    limiter.set_rate(Quota::per_second(10)).unwrap();
    waiting.await.unwrap().expect("granted once lifted");

    limiter.set_rate(Quota::unlimited()).unwrap();
    server.kill();
    for _ in 0..100 {
        limiter
            .try_acquire()
            .await
            .expect("unlimited needs no Redis");
    }
    assert_eq!(limiter.metrics().unavailable, 0);
}
