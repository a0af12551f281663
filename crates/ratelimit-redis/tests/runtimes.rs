//! A wait dropped away from the limiter's runtime (on no runtime, or on another that is shutting
//! down) still gives its reservation back: the give-back runs where the limiter was built.

use std::future::Future;
use std::task::{Context as TaskContext, Waker};
use std::time::Duration;

use bounded_cancel::live;
use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::RedisLimiter;
use bounded_testkit::redis_server::{RedisServer, get};
use redis::aio::ConnectionManager;
use tokio::runtime::{Builder, Runtime};

/// The limiter's runtime, a limiter of one unit a minute whose unit is spent, a connection to read
/// its bucket, and the bucket as the spent unit left it.
fn spent_limiter(
    server: &RedisServer,
    key: &str,
) -> (Runtime, RedisLimiter, ConnectionManager, String) {
    let home = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (limiter, conn, first) = home.block_on(async {
        let mut conn = server.connect().await;
        let limiter = RedisLimiter::builder(server.connect().await, key, Quota::per_minute(1))
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        limiter.acquire().await.unwrap();
        let first = get(&mut conn, key).await.unwrap();
        (limiter, conn, first)
    });
    (home, limiter, conn, first)
}

/// Waits on `home` for the give-back task to end, then checks the bucket is as the spent unit left it.
fn assert_given_back(home: &Runtime, conn: &mut ConnectionManager, key: &str, first: &str) {
    home.block_on(async {
        live::settle(Duration::from_secs(3))
            .await
            .expect("the give-back task ends");
        assert_eq!(
            get(conn, key).await.as_deref(),
            Some(first),
            "the dropped wait's reservation was given back"
        );
    });
}

#[test]
fn a_wait_dropped_outside_any_runtime_is_given_back() {
    let server = RedisServer::start();
    let (home, limiter, mut conn, first) = spent_limiter(&server, "no-runtime");

    // Polled on the limiter's runtime until Redis holds its reservation (a minute away)...
    let mut wait = Box::pin(limiter.acquire());
    let mut cx = TaskContext::from_waker(Waker::noop());
    for _ in 0..200 {
        let entered = home.enter();
        assert!(
            wait.as_mut().poll(&mut cx).is_pending(),
            "the next unit is a minute away"
        );
        drop(entered);
        if home.block_on(get(&mut conn, "no-runtime")).as_deref() != Some(first.as_str()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_ne!(
        home.block_on(get(&mut conn, "no-runtime")),
        Some(first.clone()),
        "the wait reserved"
    );
    // ...then dropped on this thread, where no runtime is current.
    drop(wait);
    assert_given_back(&home, &mut conn, "no-runtime", &first);
}

#[test]
fn a_wait_dropped_as_another_runtime_shuts_down_is_given_back() {
    let server = RedisServer::start();
    let (home, limiter, mut conn, first) = spent_limiter(&server, "other-runtime");

    // A caller on a runtime of its own reserves the next unit, a minute away, and its runtime is
    // dropped while it waits: its task, and the wait in it, are dropped as that runtime shuts down.
    let other = Builder::new_current_thread().enable_all().build().unwrap();
    other.block_on(async {
        tokio::spawn(async move { limiter.acquire().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    assert_ne!(
        home.block_on(get(&mut conn, "other-runtime")),
        Some(first.clone()),
        "the wait reserved"
    );
    drop(other);
    assert_given_back(&home, &mut conn, "other-runtime", &first);
}
