//! Tokio's coop budget: an answer that needs no round trip to Redis (an unlimited quota) is ready at
//! once, and still spends the caller's budget, as the local limiter's does: a loop of them yields
//! every so often instead of keeping its thread.

use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::RedisLimiter;
use bounded_testkit::Ticker;
use bounded_testkit::redis_server::RedisServer;

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_answers_that_need_no_round_trip_yields_every_so_often() {
    let server = RedisServer::start();
    let limiter = RedisLimiter::new(server.connect().await, "budget", Quota::unlimited()).unwrap();
    let ticker = Ticker::start();
    tokio::task::yield_now().await;

    let before = ticker.ticks();
    for _ in 0..1_000 {
        limiter.acquire().await.unwrap();
        limiter.try_acquire().await.unwrap();
    }
    let during = ticker.ticks() - before;
    assert!(
        (8..=40).contains(&during),
        "the other task ran {during} times during 2,000 answers"
    );

    // Unconstrained, the same loop runs through: the yields come from tokio's budget.
    let before = ticker.ticks();
    tokio::task::unconstrained(async {
        for _ in 0..1_000 {
            limiter.acquire().await.unwrap();
        }
    })
    .await;
    assert_eq!(ticker.ticks(), before);
    assert_eq!(limiter.metrics().unavailable, 0);
}
