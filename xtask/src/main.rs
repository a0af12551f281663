//! `cargo xtask`: the workspace's developer commands, in plain Rust with no dependencies.

mod bench;
mod ci;
mod history;
mod stress;
mod test;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [ARGS..]      every test of the workspace: installs redis-server when missing (for the fleet
                     limiter's tests), then `cargo test --workspace --all-features ARGS`
  ci                 run everything CI runs (.ci/run): fmt, clippy, tests, Windows and wasm32
                     checks, loom models, docs, bench build
  bench [PATTERN..] [--quick] [--go] [--docs]
                     run the criterion benches (cancel, group, pool, pipeline, ratelimit; or those
                     named) and write target/bench/summary.md and summary.json: each case beside the
                     best hand-written tokio baseline and, with --go, beside the same case in Go, with
                     its bar; --quick runs only the bar's criterion groups, with fewer samples;
                     --docs (with every pattern) also puts the summary in docs/benchmarks.md in
                     place of the latest run
  history [--since \"YYYY-MM-DD HH:MM\"]
                     every run of the bar whose summary docs/benchmarks.md has held (read from its
                     git history), then each row that fell short in any of them: in how many, and
                     its ratio over the runs (median, lowest, highest)
  stress             run the stress tests in release mode, many times over
  help               print this message (also -h, --help)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("ci") => ci::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("history") => history::run(&args[1..]),
        Some("stress") => stress::run(&args[1..]),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's directory.
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Runs `cmd` in the workspace root and turns a non-zero exit into an error naming the command.
fn exec(mut cmd: Command) -> Result<(), String> {
    cmd.current_dir(root());
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

/// What `program` with `args`, run in the workspace's root, printed on stdout; an error naming the
/// command and what it printed on stderr if it could not run or failed.
pub(crate) fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|err| format!("could not run {program}: {err}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
