//! The limiters cross threads, and their futures can be spawned and moved freely.

use bounded_ratelimit_redis::{
    Acquire, AcquireError, Builder, ConfigError, OnUnavailable, RedisKeyedLimiter, RedisLimiter,
    RedisMetrics, TryAcquire, TryAcquireError, Unavailable,
};

fn send_sync<T: Send + Sync>() {}
fn send_unpin<T: Send + Unpin>() {}

#[test]
fn limiters_errors_and_futures_cross_threads() {
    send_sync::<RedisLimiter>();
    send_sync::<RedisKeyedLimiter>();
    send_sync::<Builder<RedisLimiter>>();
    send_sync::<OnUnavailable>();
    send_sync::<RedisMetrics>();
    send_sync::<AcquireError>();
    send_sync::<TryAcquireError>();
    send_sync::<ConfigError>();
    send_sync::<Unavailable>();
    send_unpin::<Acquire<'static>>();
    send_unpin::<TryAcquire<'static>>();
}
