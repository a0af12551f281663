//! The public futures and handles can cross threads.

use bounded_ratelimit::{
    Acquire, AcquireError, AcquireN, AcquireOwned, AcquireWith, Call, KeyedAcquire, KeyedAcquireN,
    KeyedAcquireWith, KeyedLimiter, Limiter, Metrics, Quota, Ready, Reservation, Throttle,
    Throttled,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn unpin<T: Unpin>() {}

#[test]
fn futures_and_handles_are_send_and_sync() {
    send_sync::<Limiter>();
    send_sync::<KeyedLimiter<String>>();
    send_sync::<Throttle<String>>();
    send_sync::<Quota>();
    send_sync::<Throttled<fn()>>();
    send_sync::<Metrics>();
    send_sync::<AcquireError>();
    send_sync::<Acquire<'static>>();
    send_sync::<AcquireN<'static>>();
    send_sync::<AcquireWith<'static>>();
    send_sync::<AcquireOwned>();
    send_sync::<Reservation>();
    send::<Ready<'static>>();
    unpin::<AcquireOwned>();
    send::<KeyedAcquire<'static, String>>();
    send::<KeyedAcquireWith<'static, String>>();
    send::<KeyedAcquireN<'static, String>>();
    send::<
        Call<
            'static,
            String,
            fn(&'static String) -> std::future::Ready<()>,
            std::future::Ready<()>,
        >,
    >();
    unpin::<Acquire<'static>>();
    unpin::<AcquireN<'static>>();
    unpin::<Limiter>();
}

#[cfg(feature = "tower")]
#[test]
fn the_tower_services_and_their_response_futures_can_cross_threads() {
    use bounded_ratelimit::tower::{Grpc, RateLimit, ResponseFuture};

    type Inner = tower::util::BoxCloneSyncService<
        http::Request<()>,
        http::Response<String>,
        std::convert::Infallible,
    >;
    send_sync::<RateLimit<Inner>>();
    send_sync::<RateLimit<Inner, Grpc>>();
    send::<ResponseFuture<Inner, http::Request<()>>>();
    send::<ResponseFuture<Inner, http::Request<()>, Grpc>>();
}
