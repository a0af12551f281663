//! The article's four-stage order pipeline (fetch, enrich, validate, store), each stage with its own
//! parallelism, printing per-stage metrics while it runs and naming the bottleneck at the end.
//!
//! Run it with `cargo run -p bounded-pipeline --example orders`.

use std::fmt;
use std::time::Duration;

use bounded_cancel::Context;
use bounded_pipeline::{Pipeline, PipelineError, StageMetrics};
use futures_util::StreamExt;

/// An order as fetched.
#[derive(Debug)]
pub struct Order {
    id: u32,
}

/// An order with its customer.
#[derive(Debug)]
pub struct Enriched {
    id: u32,
    customer: String,
}

/// A stage's failure.
#[derive(Debug)]
pub struct OrderError(String);

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OrderError {}

/// Stand-ins for the service's calls: their latencies make `enrich` the slow stage.
async fn fetch(id: u32) -> Result<Order, OrderError> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    Ok(Order { id })
}

async fn enrich(order: Order) -> Result<Enriched, OrderError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(Enriched {
        id: order.id,
        customer: format!("customer-{}", order.id % 17),
    })
}

async fn store(order: Enriched) -> Result<u32, OrderError> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    if order.customer.is_empty() {
        return Err(OrderError(format!("order {} has no customer", order.id)));
    }
    Ok(order.id)
}

/// What a run saw.
#[derive(Debug)]
pub struct Report {
    /// Orders stored.
    pub stored: usize,
    /// Each stage's final counters.
    pub stages: Vec<StageMetrics>,
    /// The stage whose workers were busiest on average.
    pub bottleneck: String,
}

/// Runs `orders` orders through the pipeline, sampling the metrics every `every` (and printing them if
/// `print`). The bottleneck is the stage whose workers were busiest on average.
pub async fn run(
    ctx: &Context,
    orders: u32,
    every: Duration,
    print: bool,
) -> Result<Report, PipelineError<OrderError>> {
    let mut out = Pipeline::new(ctx)
        .source(1..=orders)
        .named("orders")
        .map(4, |_ctx, id| fetch(id))
        .named("fetch")
        .map(4, |_ctx, order| enrich(order))
        .named("enrich")
        .filter_map(2, |_ctx, order: Enriched| async move {
            // Every tenth order is a test order: dropped here, counted in the metrics.
            Ok((!order.id.is_multiple_of(10)).then_some(order))
        })
        .named("validate")
        .map(2, |_ctx, order| store(order))
        .named("store")
        .output();

    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut busy_sum = vec![0.0; out.metrics().len()];
    let mut stored = 0;
    loop {
        tokio::select! {
            item = out.next() => match item {
                Some(result) => {
                    result?;
                    stored += 1;
                }
                None => break,
            },
            _ = ticker.tick() => {
                let stages = out.metrics();
                for (sum, stage) in busy_sum.iter_mut().zip(&stages) {
                    *sum += stage.busy as f64 / stage.workers as f64;
                }
                if print {
                    println!("--");
                    stages.iter().for_each(|stage| println!("{stage}"));
                }
            }
        }
    }
    let stages = out.metrics();
    let bottleneck = stages
        .iter()
        .zip(&busy_sum)
        .skip(1) // the source waits on the stages, it is never the bottleneck here
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(stage, _)| stage.name.clone())
        .unwrap_or_default();
    Ok(Report {
        stored,
        stages,
        bottleneck,
    })
}

#[tokio::main]
async fn main() {
    let app = Context::new();
    match run(&app, 400, Duration::from_millis(250), true).await {
        Ok(report) => {
            println!("== done: {} orders stored", report.stored);
            report.stages.iter().for_each(|stage| println!("{stage}"));
            println!(
                "bottleneck: `{}` (its workers were the busiest; give it more, or make it cheaper)",
                report.bottleneck
            );
        }
        Err(err) => {
            eprintln!("pipeline failed: {err}");
            std::process::exit(1);
        }
    }
}
