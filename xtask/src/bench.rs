//! `cargo xtask bench [PATTERN..] [--quick] [--go] [--docs]`: the criterion benches, one target per
//! pattern, then a summary of one run: `target/bench/summary.json` and `target/bench/summary.md`, each
//! case's cost per item beside the best hand-written tokio construction in the same group and, with
//! `--go`, beside the same case written in Go (`benches/go/bench.go`), with the bar each must meet.
//! With `--docs`, the summary also replaces the latest run in `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The patterns whose benches feed the summary.
const PATTERNS: [&str; 5] = ["cancel", "group", "pool", "pipeline", "ratelimit"];
const RUNTIMES: [&str; 2] = ["multi_thread", "current_thread"];
/// The options `bench` takes besides pattern names.
const OPTIONS: [&str; 3] = ["--quick", "--go", "--docs"];

/// The lines of `docs/benchmarks.md` between which `--docs` writes the summary, replacing what was
/// there; everything outside them is left as written.
pub(crate) const DOCS_BEGIN: &str =
    "<!-- The summary of the latest run, written by `cargo xtask bench --docs`: -->";
pub(crate) const DOCS_END: &str = "<!-- End of the summary. -->";

/// One case of the summary: a criterion group, our function, the best hand-written baseline in the
/// same group and the ratio ours / baseline must stay under, and the ratio ours / Go must stay under
/// (a case with neither bar is shown beside the others for what it tells, and counts in no tally).
struct Case {
    group: &'static str,
    ours: &'static str,
    baseline: &'static str,
    baseline_target: Option<f64>,
    go_target: Option<f64>,
    /// Measured against constructions that hand each job's result back (`*_results` in the
    /// criterion group and in Go), not against the group's result-less ones.
    results: bool,
}

/// The floor of a case, measured in the same criterion group: the least a construction of its kind
/// costs (a bare spawn, a bare channel hop), shown beside rows that fall short of their bar.
const FLOORS: [(&str, &str); 10] = [
    ("group/limit_8", "bare_spawn"),
    ("group/limit_8_yield", "bare_spawn"),
    ("group/unlimited", "bare_spawn"),
    ("group/unlimited_yield", "bare_spawn"),
    ("pool/w8_q16", "bare_hop"),
    ("pool/w8_q16_yield", "bare_hop"),
    ("pipeline/one_stage", "bare_hop"),
    ("pipeline/three_stages", "bare_hop"),
    ("cancel/fanout_10k", "bare_wake"),
    ("ratelimit/try_acquire_unlimited", "counter_read"),
];

const CASES: [Case; 17] = [
    case(
        "group/limit_8",
        "bounded_group",
        "tasktracker_semaphore",
        Some(0.75),
        Some(0.75),
    ),
    case(
        "group/limit_8_yield",
        "bounded_group",
        "tasktracker_semaphore",
        Some(0.75),
        Some(0.75),
    ),
    case(
        "group/unlimited",
        "bounded_group",
        "tasktracker",
        Some(0.75),
        Some(0.75),
    ),
    case(
        "group/unlimited_yield",
        "bounded_group",
        "tasktracker",
        Some(0.75),
        Some(0.75),
    ),
    case(
        "pool/w8_q16",
        "bounded_pool",
        "async_channel",
        Some(1.0),
        Some(0.75),
    ),
    case(
        "pool/w8_q16_yield",
        "bounded_pool",
        "async_channel",
        Some(1.0),
        Some(0.75),
    ),
    case(
        "pool/w8_q16",
        "bounded_pool_detached",
        "async_channel",
        Some(1.0),
        Some(0.75),
    ),
    case(
        "pool/w8_q16_yield",
        "bounded_pool_detached",
        "async_channel",
        Some(1.0),
        Some(0.75),
    ),
    // Outside the bar: jobs with a handle beside pools that hand each job's result back too.
    with_results("pool/w8_q16"),
    with_results("pool/w8_q16_yield"),
    // Outside the bar: the pool given the boxed jobs the baselines need, for what the box costs.
    case(
        "pool/w8_q16",
        "bounded_pool_boxed_detached",
        "async_channel",
        None,
        None,
    ),
    case(
        "pool/w8_q16_yield",
        "bounded_pool_boxed_detached",
        "async_channel",
        None,
        None,
    ),
    case(
        "pipeline/one_stage",
        "bounded",
        "async_channel",
        None,
        Some(0.75),
    ),
    case(
        "pipeline/three_stages",
        "bounded",
        "async_channel",
        None,
        Some(0.75),
    ),
    case(
        "cancel/fanout_10k",
        "bounded_context",
        "tokio_util_token",
        Some(1.0),
        Some(1.0),
    ),
    case(
        "cancel/with_timeout",
        "bounded_context",
        "token_and_timer_task",
        None,
        Some(1.0),
    ),
    case(
        "ratelimit/try_acquire_unlimited",
        "bounded",
        "governor_check",
        Some(1.2),
        None,
    ),
];

impl Case {
    /// The group, and the function measured when it is not the group's usual one.
    fn label(&self) -> String {
        match (self.ours.strip_prefix("bounded_pool_"), self.results) {
            (_, true) => format!("{} (with results)", self.group),
            (Some(variant), false) => format!("{} ({variant})", self.group),
            (None, false) => self.group.to_owned(),
        }
    }

    /// The function in the case's group that measures its floor, if it has one.
    fn floor(&self) -> Option<String> {
        let (_, floor) = FLOORS.iter().find(|(group, _)| *group == self.group)?;
        Some(match self.results {
            true => format!("{floor}_results"),
            false => (*floor).to_owned(),
        })
    }

    /// The name of the same case in Go's output.
    fn go_case(&self) -> String {
        match self.results {
            true => format!("{}_results", self.group),
            false => self.group.to_owned(),
        }
    }
}

const fn case(
    group: &'static str,
    ours: &'static str,
    baseline: &'static str,
    baseline_target: Option<f64>,
    go_target: Option<f64>,
) -> Case {
    Case {
        group,
        ours,
        baseline,
        baseline_target,
        go_target,
        results: false,
    }
}

/// A pool case of jobs with a handle, beside the `async-channel` pool and the bare hop handing each
/// job's result back through a `oneshot`, and Go's pool handing it back through a channel: what a
/// handle costs against what a user writes for results by hand. Outside the bar.
const fn with_results(group: &'static str) -> Case {
    Case {
        results: true,
        ..case(group, "bounded_pool", "async_channel_results", None, None)
    }
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let go = args.iter().any(|a| a == "--go");
    let docs = args.iter().any(|a| a == "--docs");
    if let Some(unknown) = args
        .iter()
        .find(|a| a.starts_with('-') && !OPTIONS.contains(&a.as_str()))
    {
        return Err(format!(
            "unknown option `{unknown}` for bench; it takes pattern names and {}",
            OPTIONS.join(", ")
        ));
    }
    let patterns: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if docs && !patterns.is_empty() {
        return Err(
            "--docs replaces the whole table in docs/benchmarks.md, so it runs every pattern: \
             leave out the pattern names"
                .to_owned(),
        );
    }
    let docs_path = crate::root().join("docs").join("benchmarks.md");
    let read_doc = || {
        std::fs::read_to_string(&docs_path)
            .map_err(|e| format!("read {}: {e}", docs_path.display()))
    };
    // Checked before the benches run, so that a run of many minutes does not end on a doc it cannot
    // write to.
    if docs {
        splice(&read_doc()?, "")?;
    }
    let benches = || {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["bench", "--package", "bounded-benches"]);
        let named: &[&str] = if patterns.is_empty() {
            &PATTERNS
        } else {
            &patterns
        };
        for pattern in named {
            cmd.args(["--bench", pattern]);
        }
        cmd
    };
    // Built first, on its own: the first group measured should not share the machine with the
    // build's last steps (linking, writing the binaries out), nor the round trip before it.
    let mut build = benches();
    build.arg("--no-run");
    crate::exec(build)?;
    let mut cmd = benches();
    if quick {
        // Only the bar's cases, so that the whole set takes minutes: see `bar_filter`.
        cmd.args([
            "--",
            &bar_filter(),
            "--warm-up-time",
            "1",
            "--measurement-time",
            "2",
            "--sample-size",
            "10",
        ]);
    }
    let started = std::time::SystemTime::now();
    let described = describe(args, go);
    let before = round_trip_ns();
    crate::exec(cmd)?;
    let out = crate::root().join("target").join("bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let go_runs = if go {
        run_go(&out, quick)?
    } else {
        BTreeMap::new()
    };
    let go_figures: BTreeMap<String, f64> = go_runs
        .iter()
        .filter_map(|(case, figures)| Some((case.clone(), median(figures)?)))
        .collect();
    // Only this run's results: criterion keeps every earlier one beside them.
    let ours = read_criterion(&crate::root().join("target").join("criterion"), started)?;
    let mut rows = summarize(&ours, &go_figures);
    let wants = |p: &str| patterns.is_empty() || patterns.contains(&p);
    if cfg!(target_os = "linux") && (wants("group") || wants("pool")) {
        rows.extend(bursts()?);
    }
    let machine = Machine {
        described,
        round_trip_ns: before.zip(round_trip_ns()),
    };
    let md = to_markdown(&rows, go, &go_runs, &machine);
    std::fs::write(out.join("summary.json"), to_json(&rows)).map_err(|e| e.to_string())?;
    std::fs::write(out.join("summary.md"), &md).map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: criterion reports in target/criterion/; summary in target/bench/summary.md and summary.json"
    );
    if docs {
        // Read again: the page may have been edited while the benches ran.
        std::fs::write(&docs_path, splice(&read_doc()?, &md)?)
            .map_err(|e| format!("write {}: {e}", docs_path.display()))?;
        eprintln!("xtask: the summary replaced the latest run in docs/benchmarks.md");
    }
    print!("{md}");
    Ok(())
}

/// What the run was and what the machine was like around it, for reading its figures later.
struct Machine {
    /// The command, when it started, the code it measured and the machine: see [`describe`].
    described: String,
    /// [`round_trip_ns`] just before the benches and just after them, with two threads to run on.
    round_trip_ns: Option<(f64, f64)>,
}

/// A criterion filter (a regular expression over `group/function/input`) that runs every function of
/// the bar's criterion groups and nothing else: `--quick` runs these, the rest only without it.
fn bar_filter() -> String {
    let mut groups: Vec<&str> = Vec::new();
    for case in &CASES {
        if !groups.contains(&case.group) {
            groups.push(case.group);
        }
    }
    format!("^({})/", groups.join("|"))
}

/// One paragraph naming the run: the command, its start in UTC, the commit (and whether the work tree
/// had changes), the processor, how many threads the machine offers, the kernel, and Go's version.
/// Whatever cannot be found out is left out rather than guessed.
fn describe(args: &[String], go: bool) -> String {
    let run = |program: &str, args: &[&str]| {
        crate::output(program, args)
            .ok()
            .map(|out| out.trim().to_owned())
            .filter(|out| !out.is_empty())
    };
    let command = std::iter::once("cargo xtask bench")
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let mut parts = vec![format!("`{command}`")];
    parts.extend(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|since| utc(since.as_secs())),
    );
    if let Some(commit) = run("git", &["rev-parse", "--short", "HEAD"]) {
        let changed = run("git", &["status", "--porcelain", "--untracked-files=no"]).is_some();
        parts.push(match changed {
            true => format!("the code at `{commit}` with uncommitted changes"),
            false => format!("the code at `{commit}`"),
        });
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        });
    let threads = std::thread::available_parallelism().map_or(0, usize::from);
    let threads = match threads {
        1 => "1 thread".to_owned(),
        n => format!("{n} threads"),
    };
    parts.push(match cpu {
        Some(cpu) => format!("{threads} of {cpu}"),
        None => threads,
    });
    parts.extend(run("uname", &["-sr"]));
    if go {
        parts.extend(run("go", &["version"]));
    }
    format!("{}.", parts.join(", "))
}

/// A time in seconds since 1970 in UTC, to the minute (`2026-12-02 21:12 UTC`).
fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a date of the (proleptic) Gregorian calendar, counted in 400-year
    // eras that start on 1 March, so that a leap day is the last day of its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60
    )
}

/// How long two threads take to hand one cache line to each other and back, in nanoseconds: the
/// median of seven rounds of 100,000 round trips. On a shared virtual machine the two cores are not
/// always equally near each other, so this can move from one minute to the next (`docs/benchmarks.md`
/// says by how much on the machine its figures come from), and every hand-over between the threads of
/// a multi_thread runtime pays it. `None` with one thread to run on, where the two spinning threads
/// would take turns by the scheduler's time slice instead.
fn round_trip_ns() -> Option<f64> {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return None;
    }
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    const TRIPS: u64 = 100_000;
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let line = Arc::new(AtomicU64::new(0));
            let other = line.clone();
            let start = std::time::Instant::now();
            // The other thread answers each odd value with the next even one.
            let echo = std::thread::spawn(move || {
                for trip in 0..TRIPS {
                    while other.load(Ordering::Acquire) != 2 * trip + 1 {
                        std::hint::spin_loop();
                    }
                    other.store(2 * trip + 2, Ordering::Release);
                }
            });
            for trip in 0..TRIPS {
                line.store(2 * trip + 1, Ordering::Release);
                while line.load(Ordering::Acquire) != 2 * trip + 2 {
                    std::hint::spin_loop();
                }
            }
            echo.join().expect("the echo thread does not panic");
            start.elapsed().as_nanos() as f64 / TRIPS as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    median(&rounds)
}

/// How many processes of the Go cases a run takes the median of.
const GO_PROCESSES: usize = 5;

/// Builds the Go cases and runs them in [`GO_PROCESSES`] processes: each case's figures, one a process,
/// in ascending order. An empty map, with a word on how to install Go, when there is no Go.
fn run_go(out: &Path, quick: bool) -> Result<BTreeMap<String, Vec<f64>>, String> {
    let has_go = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_go {
        eprintln!(
            "xtask: no Go toolchain, so the Go column is empty. On Debian: `sudo apt-get install golang-go \
             golang-golang-x-sync-dev golang-golang-x-time-dev` (built in GOPATH mode, no module proxy)"
        );
        return Ok(BTreeMap::new());
    }
    let binary = out.join("go-bench");
    // GOPATH mode: golang.org/x/sync and x/time come from Debian's packages under /usr/share/gocode.
    let gopath = std::env::var("GOPATH")
        .map(|p| format!("{p}:/usr/share/gocode"))
        .unwrap_or_else(|_| "/usr/share/gocode".to_owned());
    let mut build = Command::new("go");
    build
        .args(["build", "-o"])
        .arg(&binary)
        .arg("benches/go/bench.go")
        .env("GO111MODULE", "off")
        .env("GOPATH", gopath)
        .env("GOCACHE", out.join("gocache"));
    crate::exec(build)?;
    // Go's pool cases move by four times and more from one process to the next (docs/benchmarks.md,
    // "How far Go's pace moves"), so Go's figure is the median over `GO_PROCESSES` processes, and the
    // summary shows their spread.
    let mut runs: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..GO_PROCESSES {
        let mut run = Command::new(&binary);
        if quick {
            run.arg("--quick");
        }
        // Two threads, as the Rust multi-thread runtime has two workers.
        let output = run
            .env("GOMAXPROCS", "2")
            .output()
            .map_err(|e| format!("run the Go benches: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "the Go benches failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some((case, ns)) = line.split_once('\t')
                && let Ok(ns) = ns.trim().parse::<f64>()
            {
                runs.entry(case.to_owned()).or_default().push(ns);
            }
        }
    }
    for figures in runs.values_mut() {
        figures.sort_by(f64::total_cmp);
    }
    Ok(runs)
}

/// The median of figures sorted in ascending order (the upper of the two middle ones for an even count).
fn median(sorted: &[f64]) -> Option<f64> {
    sorted.get(sorted.len() / 2).copied()
}

/// The peak memory of a one-million burst through a limited group and a pool, each in a process of its
/// own (`benches/src/bin/burst_rss.rs`), beside a `JoinSet` reaped only at the end and the bar of 16 MiB.
fn bursts() -> Result<Vec<Row>, String> {
    let mut build = Command::new(env!("CARGO"));
    build.args([
        "build",
        "--release",
        "--package",
        "bounded-benches",
        "--bin",
        "burst_rss",
    ]);
    crate::exec(build)?;
    let binary = crate::root()
        .join("target")
        .join("release")
        .join("burst_rss");
    let measure = |case: &str| -> Result<f64, String> {
        let out = Command::new(&binary)
            .args(["--case", case])
            .output()
            .map_err(|e| format!("run burst_rss: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split('\t')
            .nth(1)
            .and_then(|mib| mib.trim().parse().ok())
            .ok_or_else(|| format!("burst_rss --case {case} printed {text:?}"))
    };
    let joinset = measure("joinset")?;
    let mut rows = Vec::new();
    for case in ["group", "pool"] {
        let mib = measure(case)?;
        for (baseline, baseline_mib, target) in [
            ("joinset_unreaped", joinset, None),
            ("bar_16_mib", 16.0, Some(1.0)),
        ] {
            rows.push(Row {
                case: format!("{case}/burst_1m_rss"),
                runtime: "multi_thread".to_owned(),
                unit: "MiB",
                ours_ns: mib,
                baseline: baseline.to_owned(),
                baseline_ns: baseline_mib,
                target,
            });
        }
    }
    Ok(rows)
}

/// Nanoseconds per item of every benchmark criterion has results for, by full id
/// (`group/function/runtime`): the median time per iteration over the group's elements per iteration.
fn read_criterion(
    dir: &Path,
    since: std::time::SystemTime,
) -> Result<BTreeMap<String, f64>, String> {
    let mut figures = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.ends_with("new/benchmark.json") {
                let fresh = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified >= since);
                if !fresh {
                    continue;
                }
                if let Some((id, ns)) = read_one(&path) {
                    figures.insert(id, ns);
                }
            }
        }
    }
    Ok(figures)
}

fn read_one(benchmark: &Path) -> Option<(String, f64)> {
    let meta = std::fs::read_to_string(benchmark).ok()?;
    let estimates = std::fs::read_to_string(benchmark.with_file_name("estimates.json")).ok()?;
    let id = string_field(&meta, "full_id")?;
    let elements = number_after(&meta, "\"Elements\":").unwrap_or(1.0);
    let median = &estimates[estimates.find("\"median\"")?..];
    let ns = number_after(median, "\"point_estimate\":")?;
    Some((id, ns / elements))
}

fn string_field(json: &str, field: &str) -> Option<String> {
    let start = json.find(&format!("\"{field}\":\""))? + field.len() + 4;
    let end = json[start..].find('"')?;
    Some(json[start..start + end].to_owned())
}

fn number_after(json: &str, key: &str) -> Option<f64> {
    let start = json.find(key)? + key.len();
    let rest = &json[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// One line of the summary: ours against one baseline (hand-written tokio, Go, or a bar) on one runtime.
/// `ours_ns` and `baseline_ns` are in `unit`: nanoseconds per item, or MiB for a burst's peak memory.
struct Row {
    case: String,
    runtime: String,
    /// `ns/item` for the criterion cases, `MiB` for the burst's peak memory.
    unit: &'static str,
    ours_ns: f64,
    baseline: String,
    baseline_ns: f64,
    target: Option<f64>,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.ours_ns / self.baseline_ns
    }

    fn met(&self) -> Option<bool> {
        self.target.map(|t| self.ratio() <= t)
    }
}

fn summarize(ours: &BTreeMap<String, f64>, go: &BTreeMap<String, f64>) -> Vec<Row> {
    let mut rows = Vec::new();
    for case in &CASES {
        for runtime in RUNTIMES {
            let Some(&ours_ns) = ours.get(&format!("{}/{}/{runtime}", case.group, case.ours))
            else {
                continue;
            };
            if let Some(&baseline_ns) =
                ours.get(&format!("{}/{}/{runtime}", case.group, case.baseline))
            {
                rows.push(Row {
                    case: case.label(),
                    runtime: runtime.to_owned(),
                    unit: "ns/item",
                    ours_ns,
                    baseline: case.baseline.to_owned(),
                    baseline_ns,
                    target: case.baseline_target,
                });
            }
            if let Some(floor) = case.floor()
                && let Some(&floor_ns) = ours.get(&format!("{}/{floor}/{runtime}", case.group))
            {
                rows.push(Row {
                    case: case.label(),
                    runtime: runtime.to_owned(),
                    unit: "ns/item",
                    ours_ns,
                    baseline: floor,
                    baseline_ns: floor_ns,
                    target: None,
                });
            }
            if let Some(&go_ns) = go.get(&case.go_case()) {
                rows.push(Row {
                    case: case.label(),
                    runtime: runtime.to_owned(),
                    unit: "ns/item",
                    ours_ns,
                    baseline: "go".to_owned(),
                    baseline_ns: go_ns,
                    target: case.go_target,
                });
            }
        }
    }
    rows
}

fn to_json(rows: &[Row]) -> String {
    let mut json = String::from("[\n");
    for (i, row) in rows.iter().enumerate() {
        let target = row.target.map_or("null".to_owned(), |t| t.to_string());
        let met = row.met().map_or("null".to_owned(), |m| m.to_string());
        let _ = write!(
            json,
            "  {{\"case\": \"{}\", \"runtime\": \"{}\", \"unit\": \"{}\", \"ours_ns\": {:.1}, \"baseline\": \"{}\", \
             \"baseline_ns\": {:.1}, \"ratio\": {:.3}, \"target\": {target}, \"met\": {met}}}",
            row.case,
            row.runtime,
            row.unit,
            row.ours_ns,
            row.baseline,
            row.baseline_ns,
            row.ratio()
        );
        json.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    json.push_str("]\n");
    json
}

/// The summary: `go` says whether `--go` was given, `go_runs` holds each Go case's figures, one a
/// process (empty when no Go toolchain was found).
fn to_markdown(
    rows: &[Row],
    go: bool,
    go_runs: &BTreeMap<String, Vec<f64>>,
    machine: &Machine,
) -> String {
    let mut md = format!("{}\n\n", machine.described);
    let barred = rows.iter().filter(|row| row.target.is_some()).count();
    let met = rows.iter().filter(|row| row.met() == Some(true)).count();
    let short = barred - met;
    let fall = if short == 1 { "falls" } else { "fall" };
    let _ = writeln!(
        md,
        "{met} of the {barred} rows with a bar meet it; {short} {fall} short.\n"
    );
    md.push_str(
        "| case | runtime | unit | bounded | baseline | baseline's | ratio | target | met |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in rows {
        let target = row.target.map_or("–".to_owned(), |t| format!("≤ {t:.2}×"));
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {} | {:.1} | {:.2}× | {target} | {met} |",
            row.case,
            row.runtime,
            row.unit,
            row.ours_ns,
            row.baseline,
            row.baseline_ns,
            row.ratio()
        );
    }
    if !go {
        md.push_str("\n(No Go column: run with `--go` on a machine with a Go toolchain.)\n");
    } else if go_runs.is_empty() {
        md.push_str(
            "\n(No Go column: `--go` found no Go toolchain. On Debian: `sudo apt-get install golang-go \
             golang-golang-x-sync-dev golang-golang-x-time-dev`.)\n",
        );
    } else {
        let processes = go_runs.values().map(Vec::len).max().unwrap_or(0);
        let spread: Vec<String> = go_runs
            .iter()
            .map(|(case, figures)| {
                let list: Vec<String> = figures.iter().map(|ns| format!("{ns:.1}")).collect();
                format!("`{case}` {}", list.join(", "))
            })
            .collect();
        let _ = writeln!(
            md,
            "\nGo's figure for each case is the median over {processes} processes of the Go cases, \
             run one after another, since its figures move a lot from one process to the next; \
             each process's figure, ns per item, in ascending order: {}.",
            spread.join("; ")
        );
    }
    if let Some((before, after)) = machine.round_trip_ns {
        let _ = writeln!(
            md,
            "\nTwo threads handing one cache line to each other and back took {before:.0} ns a round \
             trip before the benches and {after:.0} ns after them (the median of seven rounds of \
             100,000): every hand-over between the threads of a multi_thread runtime pays it."
        );
    }
    md
}

/// Where in `doc` the summary lies: the bytes between the lines [`DOCS_BEGIN`] and [`DOCS_END`].
pub(crate) fn summary_span(doc: &str) -> Option<std::ops::Range<usize>> {
    let begin = doc.find(DOCS_BEGIN)? + DOCS_BEGIN.len();
    let end = begin + doc[begin..].find(DOCS_END)?;
    Some(begin..end)
}

/// `doc` with what lies between the lines [`DOCS_BEGIN`] and [`DOCS_END`] replaced by `generated`.
fn splice(doc: &str, generated: &str) -> Result<String, String> {
    let std::ops::Range { start: begin, end } = summary_span(doc).ok_or_else(|| {
        format!(
            "docs/benchmarks.md has no place for the summary: it needs the line `{DOCS_BEGIN}`, \
             then later the line `{DOCS_END}`"
        )
    })?;
    Ok(format!(
        "{}\n\n{}\n{}",
        &doc[..begin],
        generated.trim(),
        &doc[end..]
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{
        DOCS_BEGIN, DOCS_END, Machine, Row, bar_filter, median, splice, summarize, to_markdown, utc,
    };

    #[test]
    fn go_figures_are_the_median_process() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[58.0]), Some(58.0));
        // A slow process among fast ones does not move the figure, nor a fast one among slow ones.
        assert_eq!(median(&[58.0, 60.0, 61.0, 240.0, 250.0]), Some(61.0));
        assert_eq!(median(&[58.0, 230.0, 240.0, 245.0, 250.0]), Some(240.0));
    }

    #[test]
    fn the_summary_replaces_only_what_lies_between_the_markers() {
        let doc =
            format!("# Title\n\nBefore.\n\n{DOCS_BEGIN}\n\nold table\n\n{DOCS_END}\n\nAfter.\n");
        let once = splice(&doc, "new table\n").unwrap();
        assert_eq!(
            once,
            format!("# Title\n\nBefore.\n\n{DOCS_BEGIN}\n\nnew table\n{DOCS_END}\n\nAfter.\n")
        );
        // Written again with the same summary, the doc does not change.
        assert_eq!(splice(&once, "new table\n").unwrap(), once);
        assert!(!splice(&once, "newer").unwrap().contains("new table"));
    }

    #[test]
    fn a_doc_without_both_markers_in_order_is_refused() {
        for doc in [
            "no markers".to_owned(),
            format!("{DOCS_BEGIN}\nonly the first"),
            format!("{DOCS_END}\nthe second first\n{DOCS_BEGIN}\n"),
        ] {
            let err = splice(&doc, "table").unwrap_err();
            assert!(err.contains("no place for the summary"), "{err}");
        }
    }

    #[test]
    fn the_quick_filter_names_each_group_of_the_bar_once_and_whole() {
        assert_eq!(
            bar_filter(),
            "^(group/limit_8|group/limit_8_yield|group/unlimited|group/unlimited_yield|pool/w8_q16|\
             pool/w8_q16_yield|pipeline/one_stage|pipeline/three_stages|cancel/fanout_10k|\
             cancel/with_timeout|ratelimit/try_acquire_unlimited)/"
        );
    }

    #[test]
    fn a_summary_without_go_says_why_and_how_to_get_it() {
        let machine = Machine {
            described: "run".to_owned(),
            round_trip_ns: None,
        };
        let rows = [Row {
            case: "pool/w8_q16".to_owned(),
            runtime: "current_thread".to_owned(),
            unit: "ns/item",
            ours_ns: 90.0,
            baseline: "async_channel".to_owned(),
            baseline_ns: 120.0,
            target: Some(1.0),
        }];
        let none = BTreeMap::new();
        let not_asked = to_markdown(&rows, false, &none, &machine);
        assert!(not_asked.contains("run with `--go`"), "{not_asked}");
        let not_found = to_markdown(&rows, true, &none, &machine);
        assert!(
            not_found.contains("found no Go toolchain") && not_found.contains("golang-go"),
            "{not_found}"
        );
        let go_runs: BTreeMap<String, Vec<f64>> = [(
            "pool/w8_q16".to_owned(),
            vec![58.0, 61.5, 70.0, 240.0, 250.0],
        )]
        .into();
        let ran = to_markdown(&rows, true, &go_runs, &machine);
        assert!(!ran.contains("No Go column"), "{ran}");
        assert!(
            ran.contains("median over 5 processes")
                && ran.contains("`pool/w8_q16` 58.0, 61.5, 70.0, 240.0, 250.0."),
            "{ran}"
        );
        assert!(
            ran.contains("1 of the 1 rows with a bar meet it; 0 fall short."),
            "{ran}"
        );
        let slower = [Row {
            case: "pool/w8_q16".to_owned(),
            runtime: "current_thread".to_owned(),
            unit: "ns/item",
            ours_ns: 150.0,
            baseline: "async_channel".to_owned(),
            baseline_ns: 120.0,
            target: Some(1.0),
        }];
        let one_short = to_markdown(&slower, true, &go_runs, &machine);
        assert!(
            one_short.contains("0 of the 1 rows with a bar meet it; 1 falls short."),
            "{one_short}"
        );
    }

    #[test]
    fn jobs_with_a_handle_meet_their_bar_against_result_less_pools_and_are_shown_beside_pools_with_results()
     {
        let ours: BTreeMap<String, f64> = [
            ("bounded_pool", 300.0),
            ("async_channel", 180.0),
            ("bare_hop", 185.0),
            ("async_channel_results", 580.0),
            ("bare_hop_results", 350.0),
        ]
        .into_iter()
        .map(|(f, ns)| (format!("pool/w8_q16/{f}/multi_thread"), ns))
        .collect();
        let go: BTreeMap<String, f64> = [("pool/w8_q16", 310.0), ("pool/w8_q16_results", 600.0)]
            .into_iter()
            .map(|(case, ns)| (case.to_owned(), ns))
            .collect();
        let rows = summarize(&ours, &go);
        let beside = |case: &str| -> Vec<(String, f64, Option<f64>)> {
            rows.iter()
                .filter(|row| row.case == case)
                .map(|row| (row.baseline.clone(), row.baseline_ns, row.target))
                .collect()
        };
        let bar = vec![
            ("async_channel".to_owned(), 180.0, Some(1.0)),
            ("bare_hop".to_owned(), 185.0, None),
            ("go".to_owned(), 310.0, Some(0.75)),
        ];
        assert_eq!(beside("pool/w8_q16"), bar);
        let with_results = vec![
            ("async_channel_results".to_owned(), 580.0, None),
            ("bare_hop_results".to_owned(), 350.0, None),
            ("go".to_owned(), 600.0, None),
        ];
        assert_eq!(beside("pool/w8_q16 (with results)"), with_results);
    }

    #[test]
    fn utc_dates_across_leap_days_and_centuries() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_764_710_000), "2025-12-02 21:13 UTC");
        assert_eq!(utc(1_798_761_600), "2027-01-01 00:00 UTC");
        assert_eq!(utc(4_107_542_399), "2100-02-28 23:59 UTC");
    }
}
