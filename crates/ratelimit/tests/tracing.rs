//! With the `tracing` feature, a wait that queues (or, on a keyed limiter, sleeps until its instant) is
//! a `rate limit wait` span under the caller's span.
#![cfg(feature = "tracing")]

use bounded_ratelimit::{Limiter, Quota};
use bounded_testkit::Captured;
use tracing::Instrument;

/// The `rate limit wait` spans captured.
fn waits(captured: &Captured) -> Vec<bounded_testkit::SpanRecord> {
    captured
        .spans()
        .into_iter()
        .filter(|s| s.name == "rate limit wait")
        .collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_queued_wait_is_a_span_under_the_callers() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let limiter = Limiter::new(Quota::per_second(10).burst(1)).unwrap();
    limiter
        .acquire()
        .instrument(tracing::info_span!("first call"))
        .await;
    limiter
        .acquire_n(1)
        .instrument(tracing::info_span!("second call"))
        .await
        .unwrap();
    let waits = waits(&captured);
    assert_eq!(waits.len(), 1, "only the wait that queued: {waits:?}");
    assert_eq!(waits[0].parent.as_deref(), Some("second call"));
    assert_eq!(waits[0].fields, "units=1");
    assert_eq!(waits[0].target, "bounded_ratelimit");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_keyed_wait_that_sleeps_is_a_span_under_the_callers() {
    use bounded_ratelimit::KeyedLimiter;
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let limiter = KeyedLimiter::new(Quota::per_second(10).burst(1), 10).unwrap();
    limiter
        .acquire(&"a")
        .instrument(tracing::info_span!("first call"))
        .await;
    limiter
        .acquire(&"b")
        .instrument(tracing::info_span!("other key"))
        .await;
    limiter
        .acquire_n(&"a", 1)
        .instrument(tracing::info_span!("second call"))
        .await
        .unwrap();
    let waits = waits(&captured);
    assert_eq!(waits.len(), 1, "only the wait that slept: {waits:?}");
    assert_eq!(waits[0].parent.as_deref(), Some("second call"));
    assert_eq!(waits[0].fields, "units=1");
    assert_eq!(waits[0].target, "bounded_ratelimit");
}
