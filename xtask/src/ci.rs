//! `cargo xtask ci`: the same steps as CI, by running `.ci/run` itself so the two can never drift.

use std::process::Command;

pub(crate) fn run() -> Result<(), String> {
    let mut cmd = Command::new("bash");
    cmd.arg(".ci/run");
    crate::exec(cmd)
}
