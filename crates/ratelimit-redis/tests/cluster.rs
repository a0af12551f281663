//! Buckets on a Redis Cluster of three primaries: each key's bucket on the node that holds its slot,
//! shared by every replica, given back there, and a failed node costing only its own keys.
#![cfg(feature = "cluster")]

use std::collections::BTreeSet;
use std::time::Duration;

use bounded_ratelimit::Quota;
use bounded_ratelimit_redis::{RedisKeyedLimiter, RedisLimiter, TryAcquireError};
use bounded_testkit::redis_cluster::{NODES, RedisCluster};
use tokio::time::Instant;

/// Slow enough that no unit comes back while a test runs.
const SPENT: Quota = Quota::per_minute(1).burst(3);

/// A call timeout no busy test machine reaches, where the timeout is not what a test is about.
const PATIENT: Duration = Duration::from_secs(3);

async fn limiter(cluster: &RedisCluster, key: &str, quota: Quota) -> RedisLimiter {
    RedisLimiter::builder(cluster.connect().await, key, quota)
        .timeout(PATIENT)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_is_limited_by_a_bucket_on_the_node_that_holds_it() {
    let cluster = RedisCluster::start();
    let limiter = RedisKeyedLimiter::builder(cluster.connect().await, "tenant", SPENT)
        .timeout(PATIENT)
        .build()
        .unwrap();
    let mut nodes = BTreeSet::new();
    for tenant in 0..30 {
        let key = format!("t{tenant}");
        limiter.try_acquire_n(&key, 2).await.unwrap();
        limiter.try_acquire(&key).await.unwrap();
        match limiter.try_acquire(&key).await {
            Err(TryAcquireError::RetryAfter(wait)) => {
                assert!(wait.wait() > Duration::from_secs(50), "{key}: {wait:?}");
            }
            other => panic!("{key}: its fourth unit was not refused by its bucket: {other:?}"),
        }
        let bucket = limiter.bucket(&key);
        assert!(cluster.get(&bucket).is_some(), "{bucket} is on its node");
        nodes.insert(cluster.node_of(&bucket));
    }
    assert_eq!(nodes.len(), NODES, "the buckets spread over every node");
    assert_eq!(limiter.metrics().unavailable, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_connections_of_their_own_share_one_bucket() {
    let cluster = RedisCluster::start();
    let replicas = [
        limiter(&cluster, "partner", SPENT).await,
        limiter(&cluster, "partner", SPENT).await,
        limiter(&cluster, "partner", SPENT).await,
    ];
    let mut granted = 0;
    for _ in 0..4 {
        for replica in &replicas {
            granted += usize::from(replica.try_acquire().await.is_ok());
        }
    }
    assert_eq!(granted, 3, "one burst for the three replicas together");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_are_paced_and_a_dropped_wait_is_given_back_on_its_node() {
    let cluster = RedisCluster::start();
    let paced = limiter(&cluster, "paced", Quota::per_second(20).burst(1)).await;
    let start = Instant::now();
    for _ in 0..5 {
        paced.acquire().await.unwrap();
    }
    // The first at once, then one every 50 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(195),
        "{:?}",
        start.elapsed()
    );

    let slow = limiter(&cluster, "slow", SPENT.burst(1)).await;
    slow.acquire().await.unwrap();
    let first = cluster.get("slow").expect("the bucket");
    let waiting = tokio::spawn({
        let slow = slow.clone();
        async move { slow.acquire().await }
    });
    let reserved = Instant::now();
    while cluster.get("slow").as_ref() == Some(&first) {
        assert!(
            reserved.elapsed() < Duration::from_secs(5),
            "the wait reserved nothing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    waiting.abort();
    let _ = waiting.await;
    let given_back = Instant::now();
    while cluster.get("slow").as_ref() != Some(&first) {
        assert!(
            given_back.elapsed() < Duration::from_secs(5),
            "the dropped wait's instant was not given back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(slow.metrics().granted, 1);
}

/// Takes units of `key` one at a time until its bucket refuses: the number granted, or the error
/// that was not a refusal. Redis decides each call; a bucket of [`SPENT`] holds at most three.
async fn spend(limiter: &RedisKeyedLimiter, key: &str) -> Result<usize, TryAcquireError> {
    for granted in 0..=3 {
        match limiter.try_acquire(key).await {
            Ok(()) => {}
            Err(TryAcquireError::RetryAfter(_)) => return Ok(granted),
            Err(err) => return Err(err),
        }
    }
    panic!("{key}: a fourth unit was granted from a burst of three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_node_leaves_its_keys_to_the_policy_until_it_is_back_and_the_rest_limited() {
    let mut cluster = RedisCluster::start();
    let timeout = Duration::from_millis(500);
    let limiter = RedisKeyedLimiter::builder(cluster.connect().await, "tenant", SPENT)
        .timeout(timeout)
        .build()
        .unwrap();
    // Twenty keys, each with the node that holds its bucket.
    let keys: Vec<(String, u16)> = (0..20)
        .map(|n| {
            let key = format!("t{n}");
            let node = cluster.node_of(&limiter.bucket(&key));
            (key, node)
        })
        .collect();
    let down = keys[0].1;
    let on = |up: bool| -> Vec<&String> {
        keys[1..]
            .iter()
            .filter(|(_, node)| (*node != down) == up)
            .map(|(key, _)| key)
            .collect()
    };
    let (others, same) = (on(true), on(false));
    let first = &keys[0].0;
    // The connection reaches every node before one fails (a first call may be slow on a busy machine).
    let warm = Instant::now();
    for key in [first, others[0]] {
        while let Err(err) = spend(&limiter, key).await {
            assert!(warm.elapsed() < Duration::from_secs(10), "{key}: {err}");
        }
    }
    cluster.kill(down);

    let start = Instant::now();
    match limiter.try_acquire(first).await {
        Err(TryAcquireError::Unavailable(_)) => {}
        other => panic!("a key on the failed node, refused by the policy: got {other:?}"),
    }
    assert!(
        start.elapsed() < timeout * 4,
        "decided within the call timeout: {:?}",
        start.elapsed()
    );
    // The other nodes still decide for their keys: a fresh bucket grants its burst, then refuses.
    assert_eq!(spend(&limiter, others[1]).await.unwrap(), 3);

    // Back (empty, as after a crash): its keys are limited by their buckets again.
    cluster.restart(down);
    let back = Instant::now();
    loop {
        match spend(&limiter, same[0]).await {
            Ok(_) => break,
            Err(err) => assert!(
                back.elapsed() < Duration::from_secs(10),
                "the node was not asked again within 10 s: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        limiter.try_acquire(first).await,
        Ok(()) | Err(TryAcquireError::RetryAfter(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_connection_to_one_node_says_how_to_reach_the_cluster() {
    let cluster = RedisCluster::start();
    let one_node = redis::Client::open(cluster.urls()[0].as_str())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let first = cluster.urls()[0].clone();
    let limiter = RedisKeyedLimiter::new(one_node, "tenant", SPENT).unwrap();
    let elsewhere = (0..100)
        .map(|n| format!("t{n}"))
        .find(|key| !first.contains(&format!(":{}/", cluster.node_of(&limiter.bucket(key)))))
        .expect("a key on another node");
    match limiter.try_acquire(&elsewhere).await {
        Err(TryAcquireError::Unavailable(err)) => {
            let message = err.to_string();
            assert!(
                message.contains("`ClusterConnection`") && message.contains("`cluster` feature"),
                "{message}"
            );
        }
        other => panic!("a key held by another node cannot be limited here: {other:?}"),
    }
}
