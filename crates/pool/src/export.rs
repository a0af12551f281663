//! The pool's counters on the `metrics` facade (feature `metrics`), for whatever exporter the service
//! installs. Handles are registered once, when the pool is built, with the pool's name as the label
//! `pool`; with no recorder installed they do nothing.
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `bounded_pool_submitted_total` | counter | jobs accepted into the queue |
//! | `bounded_pool_rejected_total` | counter | submissions refused (closed, full, caller cancelled) |
//! | `bounded_pool_jobs_total{outcome}` | counter | jobs ended: `completed`, `failed`, `panicked`, `cancelled`, `never_started` |
//! | `bounded_pool_queue_depth` | gauge | jobs waiting for a worker |
//! | `bounded_pool_busy_workers` | gauge | jobs running |
//! | `bounded_pool_queue_wait_seconds` | histogram | from submission to a worker taking the job |
//! | `bounded_pool_run_seconds` | histogram | from a worker taking the job to its end |

use std::time::Duration;

use bounded_sync::gauge::SharedGauge;
use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    histogram,
};

use crate::metrics::Ended;

pub(crate) struct Exported {
    submitted: Counter,
    rejected: Counter,
    completed: Counter,
    failed: Counter,
    panicked: Counter,
    cancelled: Counter,
    never_started: Counter,
    queued: SharedGauge,
    running: SharedGauge,
    queue_wait: Histogram,
    run: Histogram,
}

impl Exported {
    pub(crate) fn new(pool: &str) -> Self {
        describe();
        let pool = pool.to_owned();
        let outcome = |outcome: &'static str| counter!("bounded_pool_jobs_total", "pool" => pool.clone(), "outcome" => outcome);
        Exported {
            submitted: counter!("bounded_pool_submitted_total", "pool" => pool.clone()),
            rejected: counter!("bounded_pool_rejected_total", "pool" => pool.clone()),
            completed: outcome("completed"),
            failed: outcome("failed"),
            panicked: outcome("panicked"),
            cancelled: outcome("cancelled"),
            never_started: outcome("never_started"),
            queued: SharedGauge::register("bounded_pool_queue_depth", "pool", pool.clone()),
            running: SharedGauge::register("bounded_pool_busy_workers", "pool", pool.clone()),
            queue_wait: histogram!("bounded_pool_queue_wait_seconds", "pool" => pool.clone()),
            run: histogram!("bounded_pool_run_seconds", "pool" => pool),
        }
    }

    pub(crate) fn submitted(&self) {
        self.submitted.increment(1);
        self.queued.add(1);
    }

    pub(crate) fn rejected(&self) {
        self.rejected.increment(1);
    }

    pub(crate) fn taken(&self) {
        self.queued.add(-1);
        self.running.add(1);
    }

    pub(crate) fn waited(&self, waited: Duration) {
        self.queue_wait.record(waited.as_secs_f64());
    }

    pub(crate) fn ran(&self, ran: Duration) {
        self.run.record(ran.as_secs_f64());
    }

    pub(crate) fn never_started(&self) {
        self.never_started.increment(1);
        self.queued.add(-1);
    }

    /// A job taken to run (so counted running) and dropped before its first poll.
    pub(crate) fn never_started_after_take(&self) {
        self.never_started.increment(1);
        self.running.add(-1);
    }

    pub(crate) fn ended(&self, how: Ended) {
        let counter = match how {
            Ended::Completed => &self.completed,
            Ended::Failed => &self.failed,
            Ended::Panicked => &self.panicked,
            Ended::Cancelled => &self.cancelled,
        };
        counter.increment(1);
        self.running.add(-1);
    }
}

/// What each metric means, for exporters that show it (Prometheus's `# HELP`). Said again at each
/// registration: a recorder installed after the first would not know it otherwise.
fn describe() {
    describe_counter!(
        "bounded_pool_submitted_total",
        Unit::Count,
        "Jobs accepted into the pool's queue"
    );
    describe_counter!(
        "bounded_pool_rejected_total",
        Unit::Count,
        "Submissions refused: the pool closed, its queue full, or the caller's context ended"
    );
    describe_counter!(
        "bounded_pool_jobs_total",
        Unit::Count,
        "Jobs ended, by outcome: completed, failed, panicked, cancelled, never_started"
    );
    describe_gauge!(
        "bounded_pool_queue_depth",
        Unit::Count,
        "Jobs waiting in the queue for a worker"
    );
    describe_gauge!(
        "bounded_pool_busy_workers",
        Unit::Count,
        "Jobs running on the pool's workers"
    );
    describe_histogram!(
        "bounded_pool_queue_wait_seconds",
        Unit::Seconds,
        "Time from a job's submission to a worker taking it"
    );
    describe_histogram!(
        "bounded_pool_run_seconds",
        Unit::Seconds,
        "Time from a worker taking a job to its end"
    );
}
