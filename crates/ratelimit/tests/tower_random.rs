//! Clients of a rate-limited tower service that call, that make the service ready and drop it, that
//! give up while their request waits for its unit (giving its place, or a unit granted and not yet
//! used, back), or that call with a deadline (refused at once when their unit would come later), on the paused clock, in waiting and in shedding mode: the inner service is never
//! called more often than the quota allows, `burst + (window + 1 ms) / interval` in every window.
#![cfg(feature = "tower")]

#[path = "../../group/tests/support/paused.rs"]
mod paused;
#[path = "support/windows.rs"]
mod windows;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded_cancel::Context;
use bounded_ratelimit::tower::RateLimitLayer;
use bounded_ratelimit::{Limiter, Quota};
use paused::paused_runtime;
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use windows::within_quota;

#[derive(Debug, Clone, Copy)]
enum Use {
    /// Waits until the service is ready, then calls it.
    Call,
    /// Waits until the service is ready, holds it this many microseconds, and drops it uncalled.
    ReadyThenDrop(u32),
    /// Calls, and gives up waiting for the response after this many microseconds.
    GiveUp(u32),
    /// Calls with a context whose deadline is this many microseconds away: refused at once if its
    /// unit would come later, its reservation given back.
    CallWithin(u32),
    Pause(u32),
}

fn client_use() -> impl Strategy<Value = Use> {
    prop_oneof![
        3 => Just(Use::Call),
        1 => (0u32..30_000).prop_map(Use::ReadyThenDrop),
        1 => (0u32..30_000).prop_map(Use::GiveUp),
        1 => (0u32..30_000).prop_map(Use::CallWithin),
        1 => (0u32..30_000).prop_map(Use::Pause),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_inner_service_is_never_called_more_often_than_the_quota_allows(
        interval_ms in 1u64..20,
        burst in 1u32..=4,
        shed in any::<bool>(),
        clients in proptest::collection::vec(proptest::collection::vec(client_use(), 0..30), 1..=5),
    ) {
        let interval = Duration::from_millis(interval_ms);
        let calls: Arc<Mutex<Vec<(Duration, u32)>>> = Arc::default();
        let seen = calls.clone();
        paused_runtime().block_on(async move {
            let limiter = Limiter::new(Quota::every(interval).burst(burst)).unwrap();
            let layer = match shed {
                true => RateLimitLayer::shed(limiter),
                false => RateLimitLayer::new(limiter),
            };
            let start = Instant::now();
            let inner = tower::service_fn(move |_req: http::Request<()>| {
                seen.lock().unwrap().push((start.elapsed(), 1));
                async { Ok::<_, Infallible>(()) }
            });
            let service = ServiceBuilder::new().layer(layer).service(inner);
            let micros = |us| Duration::from_micros(u64::from(us));
            let tasks: Vec<_> = clients
                .into_iter()
                .map(|uses| {
                    let service = service.clone();
                    tokio::spawn(async move {
                        for used in uses {
                            let mut client = service.clone();
                            match used {
                                Use::Call => {
                                    // A shed call is refused with the retry-after: not a call.
                                    let ready = client.ready().await.unwrap();
                                    let _ = ready.call(http::Request::new(())).await;
                                }
                                Use::ReadyThenDrop(us) => {
                                    client.ready().await.unwrap();
                                    tokio::time::sleep(micros(us)).await;
                                    drop(client);
                                }
                                Use::GiveUp(us) => {
                                    let call = client.oneshot(http::Request::new(()));
                                    let _ = tokio::time::timeout(micros(us), call).await;
                                }
                                Use::CallWithin(us) => {
                                    let mut req = http::Request::new(());
                                    req.extensions_mut()
                                        .insert(Context::new().with_timeout(micros(us)));
                                    let _ = client.oneshot(req).await;
                                }
                                Use::Pause(us) => tokio::time::sleep(micros(us)).await,
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let calls = calls.lock().unwrap().clone();
        if let Err(over) = within_quota(calls, interval, burst) {
            prop_assert!(false, "{}", over);
        }
    }
}
