//! `cargo xtask test`: every test of the workspace on a fresh machine. The fleet limiter's tests start
//! their own `redis-server` (and, for a Redis Cluster, join three with `redis-cli`), so this installs
//! Debian's package, which brings both, when either is missing from PATH, then runs
//! `cargo test --workspace --all-features` (every optional integration too) with any further arguments.

use std::process::{Command, Stdio};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    ensure_redis_server()?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "--workspace", "--all-features"])
        .args(args);
    crate::exec(cmd)
}

fn found(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_redis_server() -> Result<(), String> {
    let present = || found("redis-server", "--version") && found("redis-cli", "--version");
    if present() {
        return Ok(());
    }
    const HOW: &str = "install a Redis server (Debian and Ubuntu: `sudo apt-get install redis-server`, \
                       macOS: `brew install redis`) and run this again";
    if !found("apt-get", "--version") {
        return Err(format!(
            "the fleet limiter's tests need redis-server and redis-cli on PATH and this machine has \
             no apt-get; {HOW}"
        ));
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    let sudo = !root && found("sudo", "-n") && found("sudo", "true");
    if !root && !sudo {
        return Err(format!(
            "the fleet limiter's tests need redis-server and redis-cli on PATH, and installing them \
             needs root; {HOW}"
        ));
    }
    eprintln!(
        "xtask: redis-server or redis-cli is not on PATH; installing Debian's package for the fleet \
         limiter's tests"
    );
    for args in [
        &["apt-get", "update", "-qq"][..],
        &["apt-get", "install", "-y", "-qq", "redis-server"][..],
    ] {
        let mut cmd = if sudo {
            let mut cmd = Command::new("sudo");
            cmd.arg("-n").args(args);
            cmd
        } else {
            let mut cmd = Command::new(args[0]);
            cmd.args(&args[1..]);
            cmd
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        crate::exec(cmd)?;
    }
    if present() {
        Ok(())
    } else {
        Err(format!(
            "apt-get installed redis-server, yet it or redis-cli is not on PATH; {HOW}"
        ))
    }
}
