//! The order service the tour runs: every pattern of `bounded` holding one service steady under more
//! orders than it can take. `main.rs` draws it; `tests/tour.rs` runs it on a paused clock, and
//! `tests/tour_random.rs` under random settings.
//!
//! An order arrives, is admitted by a `Pool` (or shed when its queue is full), fans out to three
//! backends under a limited `Group` with the order's deadline, calls the pricing backend through a fair
//! `Limiter`, and is stored by a three-stage `Pipeline`. A `Shutdown` owns the service's tasks and drains
//! them when it is triggered.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bounded::cancel::{ShutdownReport, live};
use bounded::group::MapError;
use bounded::pipeline::{MetricsHandle, StageMetrics};
use bounded::pool::{JobFailure, PoolReport, SubmitError, TrySubmitError};
use bounded::prelude::*;
use bounded::ratelimit::AcquireError;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep};

/// What the tour is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// How long orders arrive before the service drains.
    pub(crate) run_for: Duration,
    /// Orders arriving per second: more than the service can take.
    pub(crate) rate: u32,
    /// Stop after this many orders, if sooner.
    pub(crate) orders: Option<u64>,
    /// Calls per second the pricing backend accepts.
    pub(crate) pricing_rate: u32,
    /// How long an order may take from arrival to its last backend answer.
    pub(crate) deadline: Duration,
    /// How long draining may take before what is left is stopped.
    pub(crate) grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            run_for: Duration::from_secs(15),
            rate: 5_000,
            orders: None,
            pricing_rate: 2_000,
            deadline: Duration::from_millis(250),
            grace: Duration::from_secs(5),
        }
    }
}

/// The order whose fraud check panics, to show where a panic goes.
pub(crate) const PANICKING_ORDER: u64 = 777;

/// Counts kept as orders move; read live by the display and at the end by the summary.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) taken: AtomicU64,
    pub(crate) shed: AtomicU64,
    pub(crate) admitted: AtomicU64,
    /// Backend answered with an error (out of stock).
    pub(crate) failed: AtomicU64,
    /// The order's deadline passed: waiting for room, in line for pricing, or at a slow backend.
    pub(crate) past_deadline: AtomicU64,
    /// Handed to the pipeline after every backend answered.
    pub(crate) handed: AtomicU64,
    /// Refused by the pipeline's validate stage.
    pub(crate) invalid: AtomicU64,
    pub(crate) stored: AtomicU64,
    /// Waiting for room when the service began to drain.
    pub(crate) stopped_at_admission: AtomicU64,
    /// The fraud model has crashed its once.
    pub(crate) fraud_crashed: Arc<AtomicBool>,
}

/// What the monitor saw while the service ran.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peaks {
    pub(crate) tasks_alive: usize,
    pub(crate) pool_queued: u64,
    pub(crate) pool_running: u64,
    pub(crate) pricing_waiting: usize,
    /// Per pipeline stage: the most items queued in front of it.
    pub(crate) stage_queued: Vec<(String, u64)>,
    /// Per pipeline stage: the share of its workers busy, averaged over the samples.
    pub(crate) stage_busy: Vec<(String, f64)>,
}

/// One look at the running service, for the display.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) elapsed: Duration,
    pub(crate) taken: u64,
    pub(crate) admitted: u64,
    pub(crate) shed: u64,
    pub(crate) queued: u64,
    pub(crate) in_flight: u64,
    pub(crate) failed: u64,
    pub(crate) past_deadline: u64,
    pub(crate) stored: u64,
    pub(crate) pricing_calls: u64,
    pub(crate) pricing_waiting: usize,
    pub(crate) stages: Vec<StageMetrics>,
    pub(crate) draining: bool,
    /// What the pool's error hook reported since the last snapshot.
    pub(crate) events: Vec<String>,
}

/// How every order ended, and what each pattern did.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) ran_for: Duration,
    pub(crate) drained_in: Duration,
    pub(crate) taken: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) invalid: u64,
    pub(crate) panicked: u64,
    pub(crate) past_deadline: u64,
    pub(crate) shed: u64,
    pub(crate) cancelled: u64,
    /// Of the cancelled: handed to the pipeline, and stopped there when its drain ran out of grace.
    pub(crate) stopped_in_pipeline: u64,
    pub(crate) pool: PoolReport,
    pub(crate) pricing_calls: u64,
    pub(crate) pricing_rate: u32,
    pub(crate) peaks: Peaks,
    pub(crate) tasks: String,
    pub(crate) left_running: Vec<String>,
}

impl Summary {
    /// Every order in exactly one row.
    pub(crate) fn accounted(&self) -> u64 {
        self.completed
            + self.failed
            + self.invalid
            + self.panicked
            + self.past_deadline
            + self.shed
            + self.cancelled
    }

    /// The pipeline stage whose workers were busiest.
    pub(crate) fn bottleneck(&self) -> Option<(&str, f64)> {
        self.peaks
            .stage_busy
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(name, busy)| (name.as_str(), *busy))
    }

    /// Pricing calls per second, over the run and the drain.
    pub(crate) fn pricing_achieved(&self) -> f64 {
        self.pricing_calls as f64 / (self.ran_for + self.drained_in).as_secs_f64().max(1e-9)
    }
}

/// What the service shares between its tasks and the display.
pub(crate) struct Service {
    pub(crate) config: Config,
    pub(crate) tally: Arc<Tally>,
    pub(crate) pool: Arc<Pool>,
    pub(crate) pricing: Limiter,
    /// The pipeline's metrics, readable while the store task reads its output and after.
    stages: Arc<Mutex<Option<MetricsHandle>>>,
    peaks: Arc<Mutex<Peaks>>,
    busy_sums: Arc<Mutex<(u64, Vec<f64>)>>,
    pool_report: Arc<Mutex<Option<PoolReport>>>,
    started: Instant,
    draining_since: Arc<Mutex<Option<Instant>>>,
    events: Arc<Mutex<Vec<String>>>,
}

/// The three backends an order fans out to.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Inventory,
    Pricing,
    Fraud,
}

#[derive(Debug)]
enum OrderError {
    OutOfStock(u64),
    PastDeadline,
    Stopped,
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::OutOfStock(order) => write!(f, "order {order}: out of stock"),
            OrderError::PastDeadline => f.write_str("past the order's deadline"),
            OrderError::Stopped => f.write_str("stopped: the service is draining"),
        }
    }
}

impl OrderError {
    fn from_cause(cause: &Cause) -> Self {
        if cause.is_deadline_exceeded() {
            OrderError::PastDeadline
        } else {
            OrderError::Stopped
        }
    }
}

/// A small deterministic hash, so that which orders fail is the same on every run.
fn roll(order: u64, salt: u64) -> u64 {
    let mut x = order.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 32)
}

async fn call(
    ctx: Context,
    pricing: Limiter,
    panicked: Arc<AtomicBool>,
    order: u64,
    backend: Backend,
) -> Result<u64, OrderError> {
    let work = match backend {
        Backend::Inventory => {
            if roll(order, 1).is_multiple_of(250) {
                return Err(OrderError::OutOfStock(order));
            }
            Duration::from_millis(4 + roll(order, 2) % 8)
        }
        Backend::Pricing => {
            // Held to the backend's rate, in arrival order; a call that could not be granted before
            // the order's deadline fails at once instead of waiting for it.
            pricing.acquire_with(&ctx).await.map_err(|err| match err {
                AcquireError::Cancelled(cause) => OrderError::from_cause(&cause),
                _ => OrderError::PastDeadline,
            })?;
            Duration::from_millis(3)
        }
        Backend::Fraud => {
            // Once, from order 777 on, the fraud model crashes.
            if order >= PANICKING_ORDER && !panicked.swap(true, Relaxed) {
                panic!("fraud model crashed on order {order}");
            }
            // Now and then the fraud check is slow: past any order's deadline.
            let slow = roll(order, 3).is_multiple_of(100);
            Duration::from_millis(if slow { 400 } else { 2 + roll(order, 4) % 6 })
        }
    };
    ctx.run(sleep(work))
        .await
        .map_err(|cause| OrderError::from_cause(&cause))?;
    Ok(order)
}

impl Service {
    /// Builds the service's parts; nothing runs until [`run`](Service::run).
    pub(crate) fn new(config: Config) -> Self {
        let events: Arc<Mutex<Vec<String>>> = Arc::default();
        let hooked = events.clone();
        let pool = Pool::builder()
            .workers(64)
            .queue(256)
            .name("orders")
            .error_hook(move |failure: JobFailure| {
                hooked
                    .lock()
                    .unwrap()
                    .push(format!("pool error hook: {failure}"));
            })
            .build()
            .expect("64 workers, queue 256");
        let pricing = Limiter::new(Quota::per_second(config.pricing_rate).burst(20))
            .expect("a pricing rate of at least 1");
        Service {
            config,
            tally: Arc::default(),
            pool: Arc::new(pool),
            pricing,
            stages: Arc::default(),
            peaks: Arc::default(),
            busy_sums: Arc::default(),
            pool_report: Arc::default(),
            started: Instant::now(),
            draining_since: Arc::default(),
            events,
        }
    }

    fn stage_metrics(&self) -> Vec<StageMetrics> {
        let handle = self.stages.lock().unwrap().clone();
        handle.map(|h| h.snapshot()).unwrap_or_default()
    }

    /// Live counts, for the display.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let t = &self.tally;
        let pool = self.pool.metrics();
        let pricing = self.pricing.metrics();
        Snapshot {
            elapsed: self.started.elapsed(),
            taken: t.taken.load(Relaxed),
            admitted: t.admitted.load(Relaxed),
            shed: t.shed.load(Relaxed),
            queued: pool.queued,
            in_flight: pool.running,
            failed: t.failed.load(Relaxed) + t.invalid.load(Relaxed) + pool.panicked,
            past_deadline: t.past_deadline.load(Relaxed),
            stored: t.stored.load(Relaxed),
            pricing_calls: pricing.granted,
            pricing_waiting: pricing.waiting,
            stages: self.stage_metrics(),
            draining: self.draining_since.lock().unwrap().is_some(),
            events: std::mem::take(&mut *self.events.lock().unwrap()),
        }
    }

    /// Runs the service until `shutdown` is triggered (or the configured time or order count is
    /// reached), drains it, and reports how every order ended.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: Shutdown) -> Summary {
        let (to_pipeline, from_pool) = mpsc::channel::<u64>(256);

        let service = self.clone();
        shutdown.spawn("store", move |_ctx| service.store(from_pool));
        let service = self.clone();
        shutdown.spawn("orders", move |ctx| service.take_orders(ctx, to_pipeline));
        let service = self.clone();
        shutdown.spawn("monitor", move |ctx| service.monitor(ctx));

        // Arrivals end by themselves after `run_for`; so does the run.
        let _ = shutdown.context().run(sleep(self.config.run_for)).await;
        let ran_for = self.started.elapsed();
        shutdown.trigger();
        let drain_started = Instant::now();
        *self.draining_since.lock().unwrap() = Some(drain_started);
        let report = shutdown.wait(self.config.grace).await;
        let drained_in = drain_started.elapsed();
        // The orders task stores the pool's report once it has drained; if the grace ran out first,
        // the pool is stopped here, and its report still counts every job it took.
        let stored_report = self.pool_report.lock().unwrap().take();
        let pool = match stored_report {
            Some(report) => report,
            None => {
                self.pool.abort();
                self.pool.shutdown().await
            }
        };
        live::settle(Duration::from_secs(1)).await.ok();
        self.summary(ran_for, drained_in, pool, &report, live::names())
    }

    /// Orders arrive at the configured rate; each is admitted by the pool or shed.
    async fn take_orders(
        self: Arc<Self>,
        ctx: Context,
        to_pipeline: mpsc::Sender<u64>,
    ) -> Result<(), String> {
        let config = &self.config;
        let start = Instant::now();
        // One timer for the whole loop: orders due since the last tick arrive together.
        let mut tick = interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut order = 0u64;
        'arrivals: while ctx.run(tick.tick()).await.is_ok() {
            let due = (start.elapsed().as_secs_f64() * f64::from(config.rate)) as u64;
            while order < due {
                if config.orders.is_some_and(|n| order >= n) {
                    break 'arrivals;
                }
                order += 1;
                self.tally.taken.fetch_add(1, Relaxed);
                let deadline = Instant::now() + config.deadline;
                let job = self.order_job(order, deadline, to_pipeline.clone());
                // Every tenth order is wholesale: it waits for room (backpressure) until its
                // deadline; the rest are shed at once when the queue is full.
                if order.is_multiple_of(10) {
                    let admission = ctx.with_deadline(deadline);
                    // If the drain runs out of grace while this order waits for room, this task is
                    // aborted mid-wait: the order then counts as stopped at admission.
                    let waiting = Admitting(Some(&self.tally.stopped_at_admission));
                    let admitted = self.pool.submit_with(&admission, job).await;
                    waiting.ended();
                    match admitted {
                        Ok(handle) => {
                            handle.detach();
                            self.tally.admitted.fetch_add(1, Relaxed);
                        }
                        Err(err) if ctx.is_cancelled() || matches!(err, SubmitError::Closed(_)) => {
                            self.tally.stopped_at_admission.fetch_add(1, Relaxed);
                            break 'arrivals;
                        }
                        Err(_) => {
                            self.tally.past_deadline.fetch_add(1, Relaxed);
                        }
                    }
                } else {
                    match self.pool.try_submit(job) {
                        Ok(handle) => {
                            handle.detach();
                            self.tally.admitted.fetch_add(1, Relaxed);
                        }
                        Err(TrySubmitError::Full(_)) => {
                            self.tally.shed.fetch_add(1, Relaxed);
                        }
                        Err(_) => {
                            self.tally.stopped_at_admission.fetch_add(1, Relaxed);
                            break 'arrivals;
                        }
                    }
                }
            }
        }
        // Drain what was admitted, within the grace; then the pipeline's input ends with the jobs.
        let report = self.pool.shutdown_timeout(config.grace / 2).await;
        *self.pool_report.lock().unwrap() = Some(report);
        drop(to_pipeline);
        Ok(())
    }

    /// One order's work, as a pool job.
    fn order_job(
        &self,
        order: u64,
        deadline: Instant,
        to_pipeline: mpsc::Sender<u64>,
    ) -> impl FnOnce(
        Context,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), OrderError>> + Send>,
    > + Send
    + 'static {
        let (tally, pricing) = (self.tally.clone(), self.pricing.clone());
        let crashed = tally.fraud_crashed.clone();
        move |ctx: Context| {
            Box::pin(async move {
                let order_ctx = ctx.with_deadline(deadline);
                let backends = [Backend::Inventory, Backend::Pricing, Backend::Fraud];
                // At most two backend calls at once per order; the first failure (or the deadline)
                // cancels the others. A panic is re-raised here, after the other calls have ended,
                // and the pool reports it.
                let answered =
                    bounded::group::map_with(&order_ctx, backends, 2, move |ctx, backend| {
                        call(ctx, pricing.clone(), crashed.clone(), order, backend)
                    })
                    .await;
                let outcome = match answered {
                    Ok(_) => None,
                    Err(MapError::Failed(err)) => Some(err),
                    // The deadline (or the pool's stop) came before every backend was asked.
                    Err(MapError::Cancelled(cause)) => Some(OrderError::from_cause(&cause)),
                    Err(other) => unreachable!("a limit of 2 is valid: {other}"),
                };
                match outcome {
                    None => {
                        // Accepted: the pipeline stores it. Waiting here for room is backpressure
                        // from the store.
                        if to_pipeline.send(order).await.is_err() {
                            return Err(OrderError::Stopped);
                        }
                        tally.handed.fetch_add(1, Relaxed);
                        Ok(())
                    }
                    Some(OrderError::OutOfStock(_)) => {
                        tally.failed.fetch_add(1, Relaxed);
                        Ok(())
                    }
                    Some(OrderError::PastDeadline) => {
                        tally.past_deadline.fetch_add(1, Relaxed);
                        Ok(())
                    }
                    // The pool stopped this job: the pool counts it as cancelled.
                    Some(OrderError::Stopped) => Err(OrderError::Stopped),
                }
            })
        }
    }

    /// The pipeline that stores accepted orders: enrich, then validate, then store, in order.
    async fn store(self: Arc<Self>, from_pool: mpsc::Receiver<u64>) -> Result<(), String> {
        let tally = self.tally.clone();
        let invalid = tally.clone();
        let mut from_pool = from_pool;
        let orders = futures_util::stream::poll_fn(move |cx| from_pool.poll_recv(cx));
        // The pipeline's context is its own, so that it drains what the pool handed over.
        let mut out = Pipeline::new(&Context::new())
            .skip_errors(move |_index, _err: String| {
                invalid.invalid.fetch_add(1, Relaxed);
            })
            .source_stream(orders)
            .map(4, |_ctx, order: u64| async move {
                sleep(Duration::from_millis(1)).await; // customer and address lookups
                Ok(order)
            })
            .named("enrich")
            .map(2, |_ctx, order: u64| async move {
                if roll(order, 5).is_multiple_of(500) {
                    return Err(format!("order {order}: address does not validate"));
                }
                Ok(order)
            })
            .named("validate")
            .map_ordered(4, |_ctx, order: u64| async move {
                sleep(Duration::from_millis(1)).await; // the database write
                Ok(order)
            })
            .named("store")
            .output();
        *self.stages.lock().unwrap() = Some(out.metrics_handle());
        while let Some(stored) = out.next().await {
            stored.map_err(|e| e.to_string())?;
            tally.stored.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Samples the peaks and the pipeline's busy workers every 50 ms until the service drains.
    async fn monitor(self: Arc<Self>, ctx: Context) -> Result<(), String> {
        let mut tick = interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        while ctx.run(tick.tick()).await.is_ok() {
            let tasks: usize = live::names().iter().map(|name| task_count(name)).sum();
            let pool = self.pool.metrics();
            let pricing = self.pricing.metrics();
            let stages = self.stage_metrics();
            let mut peaks = self.peaks.lock().unwrap();
            peaks.tasks_alive = peaks.tasks_alive.max(tasks);
            peaks.pool_queued = peaks.pool_queued.max(pool.queued);
            peaks.pool_running = peaks.pool_running.max(pool.running);
            peaks.pricing_waiting = peaks.pricing_waiting.max(pricing.waiting);
            if peaks.stage_queued.len() != stages.len() {
                peaks.stage_queued = stages.iter().map(|s| (s.name.clone(), 0)).collect();
            }
            for (peak, stage) in peaks.stage_queued.iter_mut().zip(&stages) {
                peak.1 = peak.1.max(stage.queued);
            }
            let mut sums = self.busy_sums.lock().unwrap();
            if sums.1.len() != stages.len() {
                *sums = (0, vec![0.0; stages.len()]);
            }
            sums.0 += 1;
            for (sum, stage) in sums.1.iter_mut().zip(&stages) {
                *sum += stage.busy as f64 / stage.workers.max(1) as f64;
            }
        }
        Ok(())
    }

    fn summary(
        &self,
        ran_for: Duration,
        drained_in: Duration,
        pool: PoolReport,
        tasks: &ShutdownReport,
        left: Vec<String>,
    ) -> Summary {
        let t = &self.tally;
        let stored = t.stored.load(Relaxed);
        let invalid = t.invalid.load(Relaxed);
        let handed = t.handed.load(Relaxed);
        // Orders handed over but neither stored nor refused were stopped in the pipeline.
        let lost_in_pipeline = handed.saturating_sub(stored + invalid);
        let mut peaks = self.peaks.lock().unwrap().clone();
        let (samples, sums) = self.busy_sums.lock().unwrap().clone();
        let stages = self.stage_metrics();
        peaks.stage_busy = stages
            .iter()
            .zip(sums)
            .map(|(stage, sum)| (stage.name.clone(), sum / samples.max(1) as f64))
            .collect();
        Summary {
            ran_for,
            drained_in,
            taken: t.taken.load(Relaxed),
            completed: stored,
            failed: t.failed.load(Relaxed),
            invalid,
            panicked: pool.panicked,
            past_deadline: t.past_deadline.load(Relaxed),
            shed: t.shed.load(Relaxed),
            cancelled: pool.cancelled
                + pool.never_started
                + pool.failed
                + lost_in_pipeline
                + t.stopped_at_admission.load(Relaxed),
            stopped_in_pipeline: lost_in_pipeline,
            pool,
            pricing_calls: self.pricing.metrics().granted,
            pricing_rate: self.config.pricing_rate,
            peaks,
            tasks: tasks.to_string(),
            left_running: left,
        }
    }
}

/// An order waiting for room in the pool, counted as stopped at admission if the wait is dropped
/// before it ends.
struct Admitting<'a>(Option<&'a AtomicU64>);

impl Admitting<'_> {
    /// The wait ended; what became of the order is counted where it is known.
    fn ended(mut self) {
        self.0 = None;
    }
}

impl Drop for Admitting<'_> {
    fn drop(&mut self) {
        if let Some(stopped) = self.0 {
            stopped.fetch_add(1, Relaxed);
        }
    }
}

/// How many tasks one line of `live::names()` stands for ("pool worker (x64)" is 64).
fn task_count(name: &str) -> usize {
    name.rsplit_once(" (x")
        .and_then(|(_, n)| n.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}
