//! The tour: an order service under a burst it cannot absorb, held steady by `bounded`.
//!
//! ```text
//! cargo run -p bounded --example tour                       # 15 s at 5,000 orders a second
//! cargo run -p bounded --example tour -- --for 5 --rate 20000
//! cargo run -p bounded --example tour -- --help
//! ```
//!
//! Orders arrive faster than the service can take them. A `Pool` admits them (64 workers, a queue of
//! 256): most orders are shed at once when the queue is full, every tenth waits for room until its
//! deadline (backpressure). Each admitted order fans out to three backends under a `Group` of at most
//! two calls at a time, all under the order's 250 ms deadline; the pricing backend is held to its rate
//! by a fair `Limiter`, which refuses at once a call that could not be granted before the deadline.
//! One backend is out of stock now and then, and one panics once. Accepted orders are stored by a
//! `Pipeline` (enrich, validate, store) whose busiest stage is the bottleneck. Ctrl-C, or the end of
//! `--for`, drains everything through a `Shutdown`, and the summary accounts for every order.

mod service;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bounded::prelude::*;
use service::{Config, PANICKING_ORDER, Service, Snapshot, Summary};
use tokio::time::{MissedTickBehavior, interval};

const USAGE: &str = "\
usage: tour [--for SECONDS] [--rate ORDERS_PER_SECOND] [--orders N]

  --for SECONDS     how long orders arrive before the service drains (default 15)
  --rate N          orders arriving per second (default 5000)
  --orders N        stop taking orders after N, if sooner
  -h, --help        print this message

Ctrl-C drains the service at once and prints the summary.";

fn parse() -> Result<Config, String> {
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let mut value = |what: &str| -> Result<u64, String> {
            let raw = args.next().ok_or(format!("{flag} needs {what}"))?;
            raw.parse()
                .map_err(|_| format!("{flag} takes {what}, got {raw:?}"))
        };
        match flag.as_str() {
            "--for" => config.run_for = Duration::from_secs(value("whole seconds")?),
            "--rate" => {
                let rate = value("a number of orders per second")?;
                config.rate = u32::try_from(rate)
                    .ok()
                    .filter(|r| *r > 0)
                    .ok_or(format!("--rate takes 1 to {}, got {rate}", u32::MAX))?;
            }
            "--orders" => config.orders = Some(value("a number of orders")?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("tour: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The one planned panic of the run is caught by `bounded` and reported by the pool's error hook
    // (shown in the status and the summary); any other panic prints as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = bounded::cancel::panic_message(info.payload());
        if !message.starts_with("fraud model crashed") {
            default_hook(info);
        }
    }));

    let mut shutdown = Shutdown::new();
    if let Err(err) = shutdown.on_signals() {
        eprintln!("tour: cannot listen for Ctrl-C: {err}");
        return ExitCode::FAILURE;
    }
    println!(
        "an order service taking {} orders a second for {} s (Ctrl-C drains it now); it can take far fewer",
        config.rate,
        config.run_for.as_secs()
    );
    let service = Arc::new(Service::new(config));
    let run = service.clone().run(shutdown);
    tokio::pin!(run);

    let terminal = std::io::stdout().is_terminal();
    let mut drawn = 0;
    let mut tick = interval(Duration::from_millis(if terminal { 200 } else { 1_000 }));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tick.tick().await;
    let summary = loop {
        tokio::select! {
            summary = &mut run => break summary,
            _ = tick.tick() => drawn = draw(&service.snapshot(), &service.config, terminal, drawn),
        }
    };
    draw(&service.snapshot(), &service.config, terminal, drawn);
    print_summary(&summary);
    if summary.accounted() == summary.taken && summary.left_running.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Draws the live status: redrawn in place on a terminal, a plain line a second otherwise.
fn draw(s: &Snapshot, config: &Config, terminal: bool, drawn: usize) -> usize {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let phase = if s.draining {
        "draining"
    } else {
        "taking orders"
    };
    if !terminal {
        for event in &s.events {
            println!("  {event}");
        }
        println!(
            "{:>5.1} s {phase}: taken {} admitted {} shed {} queued {} in flight {} stored {} past deadline {} failed {} pricing {:.0}/s",
            secs,
            s.taken,
            s.admitted,
            s.shed,
            s.queued,
            s.in_flight,
            s.stored,
            s.past_deadline,
            s.failed,
            s.pricing_calls as f64 / secs
        );
        return 0;
    }
    let mut lines = vec![
        format!(
            "{:>5.1} s of {} s   {phase}",
            secs,
            config.run_for.as_secs()
        ),
        format!(
            "  orders    taken {:>9}   admitted {:>9}   shed {:>9}",
            num(s.taken),
            num(s.admitted),
            num(s.shed)
        ),
        format!(
            "  pool      queued {:>4}/256   in flight {:>3}/64   past deadline {:>7}   failed {:>5}",
            s.queued,
            s.in_flight,
            num(s.past_deadline),
            num(s.failed)
        ),
        format!(
            "  pricing   {:>6.0}/s of {}/s   waiting in line {:>4}",
            s.pricing_calls as f64 / secs,
            config.pricing_rate,
            s.pricing_waiting
        ),
    ];
    for stage in s.stages.iter().skip(1) {
        lines.push(format!(
            "  {:<9} in {:>9}   out {:>9}   queued {:>4}   busy {}/{}",
            stage.name,
            num(stage.items_in),
            num(stage.items_out),
            stage.queued,
            stage.busy,
            stage.workers
        ));
    }
    lines.push(format!("  stored    {:>9}", num(s.stored)));
    let mut out = std::io::stdout().lock();
    if drawn > 0 {
        // Back to the first line of the last drawing.
        let _ = write!(out, "\x1b[{drawn}F");
    }
    // Events scroll above the status block, which is redrawn below them.
    for event in &s.events {
        let _ = writeln!(out, "\x1b[2K  {event}");
    }
    for line in &lines {
        let _ = writeln!(out, "\x1b[2K{line}");
    }
    let _ = out.flush();
    lines.len()
}

fn print_summary(s: &Summary) {
    let row = |name: &str, n: u64| println!("  {name:<28} {:>9}", num(n));
    println!("\nevery order, accounted for:");
    row("completed (stored)", s.completed);
    row("failed: out of stock", s.failed);
    row("failed: did not validate", s.invalid);
    row("failed: backend panicked", s.panicked);
    row("past their deadline", s.past_deadline);
    row("shed (queue full)", s.shed);
    row("cancelled by the drain", s.cancelled);
    if s.stopped_in_pipeline > 0 {
        row("  of them in the pipeline", s.stopped_in_pipeline);
    }
    println!("  {:<28} {:>9}", "", "---------");
    let check = if s.accounted() == s.taken {
        "= orders taken".to_owned()
    } else {
        format!("!= {} orders taken", num(s.taken))
    };
    println!("  {:<28} {:>9}  {check}", "", num(s.accounted()));

    let p = &s.peaks;
    println!(
        "\npeaks: {} tasks alive; pool queue {}/256 with {}/64 in flight; {} waiting for pricing",
        p.tasks_alive, p.pool_queued, p.pool_running, p.pricing_waiting
    );
    let queues: Vec<String> = p
        .stage_queued
        .iter()
        .skip(1)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!("pipeline queues at most: {}", queues.join(", "));
    println!(
        "pricing: {:.0} calls a second against a limit of {} ({} calls in {:.1} s)",
        s.pricing_achieved(),
        s.pricing_rate,
        num(s.pricing_calls),
        (s.ran_for + s.drained_in).as_secs_f64()
    );

    println!("\nwhat each pattern prevented:");
    println!(
        "  Pool      {} orders shed at the door and wholesale orders made to wait for room, instead of a queue that grows until memory runs out; never more than {} queued",
        num(s.shed),
        p.pool_queued
    );
    let panic = if s.panicked > 0 {
        format!(
            "the fraud check's panic went up through its order's group to the pool ({} panicked), and the worker lived on",
            s.panicked
        )
    } else {
        format!(
            "no order from {PANICKING_ORDER} on reached the fraud check, so its one panic never came"
        )
    };
    println!(
        "  Group     {} out-of-stock answers cancelled their order's other calls; {panic}",
        num(s.failed)
    );
    println!(
        "  Context   {} orders stopped at their deadline instead of holding a worker while the queue grew behind them",
        num(s.past_deadline)
    );
    println!(
        "  Limiter   the pricing backend saw {:.0}/s against its {}/s, granted in arrival order; calls that could not make their deadline failed at once",
        s.pricing_achieved(),
        s.pricing_rate
    );
    if let Some((name, busy)) = s.bottleneck() {
        println!(
            "  Pipeline  `{name}` is the bottleneck ({:.0}% of its workers busy); bounded buffers pushed back on the pool instead of piling up",
            busy * 100.0
        );
    }
    println!(
        "  Shutdown  drained in {:.2} s; {}",
        s.drained_in.as_secs_f64(),
        if s.left_running.is_empty() {
            "no task left running".to_owned()
        } else {
            format!("still running: {}", s.left_running.join(", "))
        }
    );
    println!("\npool: {}", s.pool);
    println!("tasks:\n{}", s.tasks);
}

/// 12345 as "12,345".
fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
