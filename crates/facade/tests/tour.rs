//! The tour's service on a paused clock: every order is accounted for, and each pattern did its part.

#[allow(dead_code)]
#[path = "../examples/tour/service.rs"]
mod service;

use std::sync::Arc;
use std::time::Duration;

use bounded::prelude::Shutdown;
use service::{Config, Service};

async fn run(config: Config) -> service::Summary {
    let service = Arc::new(Service::new(config));
    service.run(Shutdown::new()).await
}

#[tokio::test(start_paused = true)]
async fn every_order_is_accounted_for_under_a_burst_the_service_cannot_absorb() {
    // The panic is expected; keep the test's output readable.
    std::panic::set_hook(Box::new(|_| {}));
    let config = Config {
        run_for: Duration::from_secs(3),
        ..Config::default()
    };
    let (rate, pricing_rate) = (config.rate, config.pricing_rate);
    let s = run(config).await;
    let _ = std::panic::take_hook();

    assert_eq!(s.accounted(), s.taken, "{s:#?}");
    assert!(
        s.taken > u64::from(rate),
        "orders kept arriving: {}",
        s.taken
    );
    assert!(s.shed > 0, "more orders than the pool can hold were shed");
    assert!(s.completed > 0 && s.failed > 0, "{s:#?}");
    assert_eq!(s.panicked, 1, "the one panic reached the pool");
    assert!(
        s.peaks.pool_queued <= 256,
        "the queue never grew past its bound"
    );
    assert!(s.peaks.pool_running <= 64);
    // The pricing backend never saw more than its rate (plus its burst of 20 and one timer tick).
    let window = (s.ran_for + s.drained_in).as_secs_f64();
    let allowed = f64::from(pricing_rate) * (window + 0.001) + 20.0;
    assert!(
        s.pricing_calls as f64 <= allowed,
        "{} calls in {window} s",
        s.pricing_calls
    );
    assert!(
        s.bottleneck().is_some(),
        "the pipeline's busiest stage is named"
    );
    assert!(
        s.left_running.is_empty(),
        "still running: {:?}",
        s.left_running
    );
    // The pool's own report agrees with the tour's counts.
    assert_eq!(
        s.pool.submitted,
        s.pool.completed
            + s.pool.failed
            + s.pool.panicked
            + s.pool.cancelled
            + s.pool.never_started
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_stopped_by_its_order_count_drains_clean() {
    let s = run(Config {
        run_for: Duration::from_secs(10),
        orders: Some(500),
        ..Config::default()
    })
    .await;
    assert_eq!(s.taken, 500);
    assert_eq!(s.accounted(), 500, "{s:#?}");
    assert!(s.left_running.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_order_waiting_for_room_when_the_grace_runs_out_is_accounted_for() {
    // No grace: the drain aborts the orders task while a wholesale order waits for room in the
    // pool, so that order was taken but never reached the pool.
    let s = run(Config {
        run_for: Duration::from_millis(22),
        rate: 18_096,
        pricing_rate: 201,
        deadline: Duration::from_millis(328),
        grace: Duration::ZERO,
        ..Config::default()
    })
    .await;
    assert!(
        s.pool.submitted + s.shed < s.taken,
        "an order was waiting for room: {s:#?}"
    );
    assert_eq!(s.accounted(), s.taken, "{s:#?}");
    assert!(s.left_running.is_empty());
}
