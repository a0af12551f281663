//! `cargo xtask history [--since "YYYY-MM-DD HH:MM"]`: how often each row of the bar fell short,
//! counted from every summary `docs/benchmarks.md` has held in git.
//!
//! One run of the bar says little on a shared machine, where the same code meets a row in one run
//! and misses it in the next. Each run written into the page with `--docs` stays in the page's git
//! history; this reads every version of the page, takes the summary of each distinct run (its date
//! and commit), and prints the runs, then each row that fell short in any of them with the number
//! of runs it fell short in and its ratio over the runs (the median, the lowest and the highest), so
//! that a row at its bar, which noise meets in one run and misses in the next, stands apart from one
//! well short of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::bench::summary_span;

const PAGE: &str = "docs/benchmarks.md";

/// One run's summary, as the page held it.
#[derive(Debug, PartialEq)]
struct Run {
    /// `2026-12-07 13:49`, UTC.
    when: String,
    commit: String,
    processor: String,
    /// Each row with a bar: (case, runtime, baseline), its bar, whether it met it, and its ratio.
    rows: Vec<Row>,
}

/// One row with a bar in one run's summary.
#[derive(Debug, PartialEq)]
struct Row {
    key: (String, String, String),
    /// `≤ 0.75×`, as the summary writes it.
    target: String,
    met: bool,
    /// Ours / the baseline's, as the summary writes it (two decimals), if it reads as a number.
    ratio: Option<f64>,
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
    crate::output("git", args)
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
            if cells.len() != 11 || !cells[8].starts_with('≤') {
                return None;
            }
            Some(Row {
                key: (
                    cells[1].to_owned(),
                    cells[2].to_owned(),
                    cells[5].to_owned(),
                ),
                target: cells[8].to_owned(),
                met: cells[9] == "yes",
                ratio: cells[7].trim_end_matches('×').parse().ok(),
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

/// The runs, one a line, then the rows that fell short in any, most often first, each with its
/// ratio over the runs.
fn report<'a>(runs: impl IntoIterator<Item = &'a Run>) -> String {
    let mut out = String::new();
    // Each row in the order the summaries list them, with its bar, the runs it fell short in and
    // its ratio in each run.
    let mut rows: Vec<(&Row, usize, Vec<f64>)> = Vec::new();
    let mut count = 0;
    for run in runs {
        count += 1;
        let met = run.rows.iter().filter(|row| row.met).count();
        let _ = writeln!(
            out,
            "{} UTC  `{}`  {}  {met} of {}",
            run.when,
            run.commit,
            run.processor,
            run.rows.len()
        );
        for row in &run.rows {
            let at = match rows.iter().position(|(seen, ..)| seen.key == row.key) {
                Some(at) => at,
                None => {
                    rows.push((row, 0, Vec::new()));
                    rows.len() - 1
                }
            };
            rows[at].1 += usize::from(!row.met);
            rows[at].2.extend(row.ratio);
        }
    }
    let always = rows.iter().filter(|(_, short, _)| *short == 0).count();
    let _ = writeln!(
        out,
        "\n{always} of the {} rows met their bar in every one of the {count} runs; the others fell \
         short in:\n\n| case | runtime | against | bar | short in (of {count}) | ratio: median \
         (lowest–highest) |\n| --- | --- | --- | --- | --- | --- |",
        rows.len()
    );
    let mut fell: Vec<_> = rows.iter_mut().filter(|(_, short, _)| *short > 0).collect();
    // Most often first; a stable sort keeps the summary's own order among equals.
    fell.sort_by_key(|(_, short, _)| std::cmp::Reverse(*short));
    for (row, short, ratios) in fell {
        let (case, runtime, baseline) = &row.key;
        ratios.sort_by(f64::total_cmp);
        let spread = match (ratios.first(), ratios.last()) {
            (Some(lowest), Some(highest)) => {
                format!("{:.2}× ({lowest:.2}–{highest:.2}×)", median(ratios))
            }
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{case}` | {runtime} | {baseline} | {} | {short} | {spread} |",
            row.target
        );
    }
    out
}

/// The middle of `sorted` (not empty), or the mean of its two middle values.
fn median(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    match sorted.len() % 2 {
        1 => sorted[mid],
        _ => (sorted[mid - 1] + sorted[mid]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::{is_time_prefix, median, parse, report};
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
            .map(|row| {
                let (case, runtime, baseline) = &row.key;
                (
                    case.as_str(),
                    runtime.as_str(),
                    baseline.as_str(),
                    row.target.as_str(),
                    row.met,
                    row.ratio,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "pool/w8_q16",
                    "multi_thread",
                    "go",
                    "≤ 0.75×",
                    false,
                    Some(0.98)
                ),
                (
                    "group/limit_8",
                    "current_thread",
                    "go",
                    "≤ 0.75×",
                    true,
                    Some(0.34)
                ),
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
                "| b | multi_thread | ns/item | 1 | go | 1 | 1.30× | ≤ 0.75× | **no** |",
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
                "| `b` | multi_thread | go | ≤ 0.75× | 2 | 1.15× (1.00–1.30×) |",
                "| `a` | multi_thread | go | ≤ 0.75× | 1 | 0.75× (0.50–1.00×) |"
            ]
        );
    }

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_two_middle_ones() {
        assert_eq!(median(&[1.5]), 1.5);
        assert_eq!(median(&[0.5, 0.9, 1.4]), 0.9);
        assert_eq!(median(&[0.5, 0.75, 1.25, 4.0]), 1.0);
    }

    #[test]
    fn a_ratio_that_does_not_read_as_a_number_is_counted_short_and_left_out_of_the_spread() {
        let run = |ratio: &str, met: &str| {
            parse(&page(
                HEADER,
                &[&format!(
                    "| a | multi_thread | ns/item | 1 | go | 1 | {ratio} | ≤ 0.75× | {met} |"
                )],
            ))
            .expect("a run")
        };
        let out = report([run("n/a", "**no**")].iter());
        assert!(
            out.contains("| `a` | multi_thread | go | ≤ 0.75× | 1 | – |"),
            "{out}"
        );
        let out = report([run("n/a", "**no**"), run("0.90×", "**no**")].iter());
        assert!(
            out.contains("| `a` | multi_thread | go | ≤ 0.75× | 2 | 0.90× (0.90–0.90×) |"),
            "{out}"
        );
    }
}
