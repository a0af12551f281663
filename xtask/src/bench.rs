//! `cargo xtask bench [PATTERN..]`: criterion benches, one target per pattern.

use std::process::Command;

pub(crate) fn run(patterns: &[String]) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["bench", "--package", "bounded-benches"]);
    for pattern in patterns {
        cmd.args(["--bench", pattern]);
    }
    crate::exec(cmd)?;
    eprintln!("xtask: reports are in target/criterion/");
    Ok(())
}
