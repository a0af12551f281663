//! With the `tracing` feature a fleet limiter says when Redis becomes unavailable (a warning naming the
//! limiter, the error and the policy) and when it answers again: once for each change, not once a call.
#![cfg(feature = "tracing")]

use std::time::Duration;

use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::{OnUnavailable, RedisLimiter};
use bounded_testkit::Captured;
use bounded_testkit::redis_server::RedisServer;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_and_the_recovery_are_one_event_each() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let mut server = RedisServer::start();
    let limiter = RedisLimiter::builder(
        server.connect().await,
        "partner",
        Quota::per_second(1_000).burst(100),
    )
    .timeout(Duration::from_millis(300))
    .on_unavailable(OnUnavailable::Allow)
    .build()
    .unwrap();
    limiter.try_acquire().await.unwrap();
    server.kill();
    for _ in 0..5 {
        limiter
            .try_acquire()
            .await
            .expect("allowed while Redis is down");
    }
    server.restart();
    // Until a call reaches Redis again (the connection comes back by itself).
    let start = Instant::now();
    loop {
        let before = limiter.metrics().unavailable;
        let _ = limiter.try_acquire().await;
        if limiter.metrics().unavailable == before {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Redis never answered again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        let _ = limiter.try_acquire().await;
    }
    let events: Vec<_> = captured
        .events()
        .into_iter()
        .filter(|e| e.fields.contains("limiter=partner"))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].level, "WARN");
    assert!(
        events[0].fields.contains("Redis is unavailable"),
        "{events:?}"
    );
    assert!(events[0].fields.contains("policy=allow"), "{events:?}");
    // The cause, without the words a refused caller gets ("nothing was granted"): here all is allowed.
    assert!(events[0].fields.contains("error="), "{events:?}");
    assert!(
        !events[0].fields.contains("nothing was granted"),
        "{events:?}"
    );
    assert_eq!(events[1].level, "INFO");
    // The crate's name, which a filter such as `RUST_LOG=bounded_ratelimit_redis=info` selects.
    assert!(
        events.iter().all(|e| e.target == "bounded_ratelimit_redis"),
        "{events:?}"
    );
    assert!(
        events[1].fields.contains("Redis answers again"),
        "{events:?}"
    );
}
