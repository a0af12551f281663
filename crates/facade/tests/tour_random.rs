//! The tour's service under random settings, the edges included: no time to run, no deadline, no
//! grace, an order count of zero, one order or one pricing call a second. Whatever they are, every
//! order taken ends in exactly one row of the summary, the pool's report adds up, the queue and the
//! pool stay within their bounds, the pricing backend never sees more than its rate allows, and no
//! task is left once the service has drained. On the paused clock, and on two threads in real time.

#[allow(dead_code)]
#[path = "../examples/tour/service.rs"]
mod service;

use std::sync::Arc;
use std::time::Duration;

use bounded::prelude::Shutdown;
use proptest::prelude::*;
use service::{Config, Service, Summary};

fn config(
    run_for_ms: u64,
    rate: u32,
    orders: Option<u64>,
    pricing_rate: u32,
    deadline_ms: u64,
    grace_ms: u64,
) -> Config {
    Config {
        run_for: Duration::from_millis(run_for_ms),
        rate,
        orders,
        pricing_rate,
        deadline: Duration::from_millis(deadline_ms),
        grace: Duration::from_millis(grace_ms),
    }
}

/// Settings with their edges: zero where zero is allowed, and the smallest rates.
fn settings(max_run_ms: u64, max_grace_ms: u64) -> impl Strategy<Value = Config> {
    (
        prop_oneof![1 => Just(0), 6 => 1..=max_run_ms],
        prop_oneof![1 => Just(1), 6 => 1..=20_000u32],
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(0)),
            1 => Just(Some(1)),
            3 => (2..=3_000u64).prop_map(Some),
        ],
        prop_oneof![1 => Just(1), 6 => 1..=5_000u32],
        prop_oneof![1 => Just(0), 6 => 1..=500u64],
        prop_oneof![1 => Just(0), 6 => 1..=max_grace_ms],
    )
        .prop_map(|(run, rate, orders, pricing, deadline, grace)| {
            config(run, rate, orders, pricing, deadline, grace)
        })
}

/// Keeps the tour's one planned panic (its fraud model crashing) out of the log, and every other
/// panic in it.
fn quiet_fraud_crash() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = bounded::cancel::panic_message(info.payload());
            if !message.starts_with("fraud model crashed") {
                default(info);
            }
        }));
    });
}

/// Runs the service on a runtime from `builder` under `config`, then checks its summary.
fn run_and_check(
    mut builder: tokio::runtime::Builder,
    config: Config,
) -> Result<(), TestCaseError> {
    quiet_fraud_crash();
    let runtime = builder.enable_all().build().unwrap();
    let summary = runtime.block_on(async {
        let service = Arc::new(Service::new(config.clone()));
        service.run(Shutdown::new()).await
    });
    check(&config, &summary)
}

/// What holds for every run, whatever its settings.
fn check(config: &Config, s: &Summary) -> Result<(), TestCaseError> {
    prop_assert_eq!(s.accounted(), s.taken, "{:#?}", s);
    if let Some(orders) = config.orders {
        prop_assert!(s.taken <= orders, "{} taken of {}", s.taken, orders);
    }
    let pool = &s.pool;
    prop_assert_eq!(
        pool.submitted,
        pool.completed + pool.failed + pool.panicked + pool.cancelled + pool.never_started,
        "{}",
        pool
    );
    prop_assert!(pool.panicked <= 1, "one order panics, once: {}", pool);
    prop_assert!(s.peaks.pool_queued <= 256, "{:?}", s.peaks);
    prop_assert!(s.peaks.pool_running <= 64, "{:?}", s.peaks);
    // The pricing limiter's burst is 20; one millisecond covers a grant seen at a timer's tick.
    let window = (s.ran_for + s.drained_in).as_secs_f64();
    let allowed = f64::from(config.pricing_rate) * (window + 0.001) + 20.0;
    prop_assert!(
        s.pricing_calls as f64 <= allowed,
        "{} pricing calls in {} s at {} a second",
        s.pricing_calls,
        window,
        config.pricing_rate
    );
    // Orders stop inside the pipeline only when its drain is cut short: one that drained stored or
    // refused everything it was handed.
    if s.tasks.lines().any(|task| task == "store: completed") {
        prop_assert_eq!(s.stopped_in_pipeline, 0, "{:#?}", s);
    }
    prop_assert!(
        s.left_running.is_empty(),
        "still running: {:?}",
        s.left_running
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_order_is_accounted_for_on_the_paused_clock(config in settings(3_000, 2_000)) {
        let mut paused = tokio::runtime::Builder::new_current_thread();
        paused.start_paused(true);
        run_and_check(paused, config)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn every_order_is_accounted_for_on_two_threads(config in settings(300, 300)) {
        let mut two_threads = tokio::runtime::Builder::new_multi_thread();
        two_threads.worker_threads(2);
        run_and_check(two_threads, config)?;
    }
}
