//! `cargo xtask stress [ROUNDS]`: the tests named `stress_*`, in release mode, repeated.

use std::process::Command;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let rounds: u32 = match args.first() {
        Some(n) => n
            .parse()
            .map_err(|_| format!("ROUNDS must be a number, got {n:?}"))?,
        None => 20,
    };
    for round in 1..=rounds {
        eprintln!("xtask: stress round {round} of {rounds}");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["test", "--workspace", "--release", "stress_"]);
        crate::exec(cmd)?;
    }
    Ok(())
}
