//! `cargo xtask history [--since "YYYY-MM-DD HH:MM"]`: how often each row of the bar fell short,
//! counted from every summary `docs/benchmarks.md` has held in git.
//!
//! One run of the bar says little on a shared machine, where the same code meets a row in one run
//! and misses it in the next. Each run written into the page with `--docs` stays in the page's git
//! history; this reads every version of the page, takes the summary of each distinct run (its date
//! and commit), and prints the runs, then each row that fell short in any of them with the number
//! of runs it fell short in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use crate::bench::summary_span;

const PAGE: &str = "docs/benchmarks.md";

/// One run's summary, as the page held it.
#[derive(Debug, PartialEq)]
struct Run {
    /// `2026-12-07 13:49`, UTC.
    when: String,
    commit: String,
    processor: String,
    /// Each row with a bar: (case, runtime, baseline) and whether it met the bar.
    rows: Vec<((String, String, String), bool)>,
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let since = match args {
        [] => String::new(),
        [flag, when] if flag == "--since" => when.clone(),
        _ => return Err("usage: cargo xtask history [--since \"YYYY-MM-DD HH:MM\"]".to_owned()),
    };
    if !is_time_prefix(&since) {
        return Err(format!(
            "--since takes a UTC time as the summaries write it, such as \"2026-12-05 05:13\", or \
             the start of one, such as \"2026-12-05\"; got {since:?}"
        ));
    }
    let versions = git(&["log", "--format=%H", "--diff-filter=AMR", "--", PAGE])?;
    let mut runs: BTreeMap<(String, String), Run> = BTreeMap::new();
    for version in versions.lines() {
        let page = git(&["show", &format!("{version}:{PAGE}")])?;
        if let Some(run) = parse(&page).filter(|run| run.when >= since) {
            runs.entry((run.when.clone(), run.commit.clone()))
                .or_insert(run);
        }
    }
    if runs.is_empty() {
        return Err(format!(
            "no summary in the history of {PAGE} since {since:?}"
        ));
    }
    print!("{}", report(runs.values()));
    Ok(())
}

/// Whether `text` is the start of a time written `YYYY-MM-DD HH:MM`, so that comparing it with a
/// run's time as text compares the times.
fn is_time_prefix(text: &str) -> bool {
    const SHAPE: &[u8] = b"0000-00-00 00:00";
    text.len() <= SHAPE.len()
        && text.bytes().zip(SHAPE).all(|(byte, shape)| match shape {
            b'0' => byte.is_ascii_digit(),
            _ => byte == *shape,
        })
}

fn git(args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(crate::root())
        .output()
        .map_err(|err| format!("could not run git: {err}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The run whose summary lies between the page's markers, if it has one in today's layout.
fn parse(page: &str) -> Option<Run> {
    let summary = &page[summary_span(page)?];
    let header = summary
        .lines()
        .find(|line| line.starts_with("`cargo xtask bench"))?;
    let after_command = &header[header.find("`, ")? + 3..];
    let when = after_command.split(" UTC").next()?.to_owned();
    let commit = between(header, "the code at `", "`")?.to_owned();
    let processor = between(header, " threads of ", ",")?.to_owned();
    let rows = summary
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | case | runtime | unit | bounded | baseline | baseline's | ratio | target | met |
            (cells.len() == 11 && cells[8].starts_with('≤')).then(|| {
                let key = (
                    cells[1].to_owned(),
                    cells[2].to_owned(),
                    cells[5].to_owned(),
                );
                (key, cells[9] == "yes")
            })
        })
        .collect::<Vec<_>>();
    (!rows.is_empty()).then_some(Run {
        when,
        commit,
        processor,
        rows,
    })
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

/// The runs, one a line, then the rows that fell short in any, most often first.
fn report<'a>(runs: impl IntoIterator<Item = &'a Run>) -> String {
    let mut out = String::new();
    let mut order: Vec<&(String, String, String)> = Vec::new();
    let mut short: BTreeMap<&(String, String, String), usize> = BTreeMap::new();
    let mut count = 0;
    for run in runs {
        count += 1;
        let met = run.rows.iter().filter(|(_, met)| *met).count();
        let _ = writeln!(
            out,
            "{} UTC  `{}`  {}  {met} of {}",
            run.when,
            run.commit,
            run.processor,
            run.rows.len()
        );
        for (key, met) in &run.rows {
            if !order.contains(&key) {
                order.push(key);
            }
            *short.entry(key).or_default() += usize::from(!met);
        }
    }
    let always = order.iter().filter(|key| short[*key] == 0).count();
    let _ = writeln!(
        out,
        "\n{always} of the {} rows met their bar in every one of the {count} runs; the others fell \
         short in:\n\n| case | runtime | against | short in (of {count}) |\n| --- | --- | --- | --- |",
        order.len()
    );
    let mut fell: Vec<_> = order.iter().filter(|key| short[*key] > 0).collect();
    // Most often first; a stable sort keeps the summary's own order among equals.
    fell.sort_by_key(|key| std::cmp::Reverse(short[**key]));
    for key in fell {
        let (case, runtime, baseline) = key;
        let _ = writeln!(
            out,
            "| `{case}` | {runtime} | {baseline} | {} |",
            short[*key]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{is_time_prefix, parse, report};
    use crate::bench::{DOCS_BEGIN, DOCS_END};

    fn page(header: &str, rows: &[&str]) -> String {
        format!(
            "# Benchmarks\n\n{DOCS_BEGIN}\n{header}\n\n2 of the 3 rows with a bar meet it.\n\n\
             | case | runtime | unit | bounded | baseline | baseline's | ratio | target | met |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n{}\n{DOCS_END}\n",
            rows.join("\n")
        )
    }

    const HEADER: &str = "`cargo xtask bench --quick --go`, 2026-12-07 13:49 UTC, the code at \
                          `d6ea268`, 2 threads of AMD EPYC, Linux 6.18, go version go1.19.8.";

    #[test]
    fn a_summary_gives_its_run_and_only_the_rows_with_a_bar() {
        let run = parse(&page(
            HEADER,
            &[
                "| pool/w8_q16 | multi_thread | ns/item | 450.0 | go | 461.0 | 0.98× | ≤ 0.75× | **no** |",
                "| pool/w8_q16 | multi_thread | ns/item | 450.0 | bare_hop | 277.5 | 1.62× | – | – |",
                "| group/limit_8 | current_thread | ns/item | 235.2 | go | 691.0 | 0.34× | ≤ 0.75× | yes |",
            ],
        ))
        .expect("a run");
        assert_eq!(run.when, "2026-12-07 13:49");
        assert_eq!(run.commit, "d6ea268");
        assert_eq!(run.processor, "AMD EPYC");
        let rows: Vec<_> = run
            .rows
            .iter()
            .map(|((case, runtime, baseline), met)| {
                (case.as_str(), runtime.as_str(), baseline.as_str(), *met)
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("pool/w8_q16", "multi_thread", "go", false),
                ("group/limit_8", "current_thread", "go", true),
            ]
        );
    }

    #[test]
    fn an_older_header_and_a_work_tree_with_changes_still_parse() {
        let header = "`cargo xtask bench --quick --go --docs`, 2026-12-05 05:13 UTC, the code at \
                      `e42a59b` with uncommitted changes, 2 threads of Intel(R) Xeon(R) Processor, Linux.";
        let run = parse(&page(
            header,
            &["| cancel/fanout_10k | current_thread | ns/item | 1.0 | go | 2.0 | 0.50× | ≤ 1.00× | yes |"],
        ))
        .expect("a run");
        assert_eq!(run.when, "2026-12-05 05:13");
        assert_eq!(run.commit, "e42a59b");
        assert_eq!(run.processor, "Intel(R) Xeon(R) Processor");
    }

    #[test]
    fn since_takes_a_time_or_the_start_of_one_and_nothing_else() {
        for good in ["", "2026", "2026-12-05", "2026-12-05 05:13"] {
            assert!(is_time_prefix(good), "{good:?}");
        }
        for bad in [
            "bogus",
            "2026-12-05 5:13",
            "2026/12/05",
            "2026-12-05T05:13",
            "2026-12-05 05:13:00",
        ] {
            assert!(!is_time_prefix(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_page_without_a_summary_or_without_rows_gives_no_run() {
        assert_eq!(parse("# Benchmarks\n\nNo markers.\n"), None);
        assert_eq!(parse(&page(HEADER, &[])), None);
    }

    #[test]
    fn rows_are_counted_across_runs_most_often_first() {
        let a = parse(&page(
            HEADER,
            &[
                "| a | multi_thread | ns/item | 1 | go | 1 | 1.00× | ≤ 0.75× | **no** |",
                "| b | multi_thread | ns/item | 1 | go | 1 | 1.00× | ≤ 0.75× | **no** |",
                "| c | multi_thread | ns/item | 1 | go | 1 | 0.50× | ≤ 0.75× | yes |",
            ],
        ))
        .expect("a run");
        let b = parse(&page(
            &HEADER.replace("13:49", "14:00"),
            &[
                "| a | multi_thread | ns/item | 1 | go | 1 | 0.50× | ≤ 0.75× | yes |",
                "| b | multi_thread | ns/item | 1 | go | 1 | 1.00× | ≤ 0.75× | **no** |",
                "| c | multi_thread | ns/item | 1 | go | 1 | 0.50× | ≤ 0.75× | yes |",
            ],
        ))
        .expect("a run");
        let out = report([a, b].iter());
        assert!(
            out.contains("2026-12-07 13:49 UTC  `d6ea268`  AMD EPYC  1 of 3\n"),
            "{out}"
        );
        assert!(
            out.contains("2026-12-07 14:00 UTC  `d6ea268`  AMD EPYC  2 of 3\n"),
            "{out}"
        );
        assert!(
            out.contains("1 of the 3 rows met their bar in every one of the 2 runs"),
            "{out}"
        );
        let table: Vec<&str> = out.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(
            table,
            [
                "| `b` | multi_thread | go | 2 |",
                "| `a` | multi_thread | go | 1 |"
            ]
        );
    }
}
