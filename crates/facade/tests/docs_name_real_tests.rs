//! The pages under `docs/` and the README back their promises with the names of the tests that show
//! them ("`crates/pool/tests/shutdown.rs`: `dropping_the_pool_cancels_queued_jobs_and_leaves_nothing_alive`").
//! A reader who goes looking must find each one where the page says: a test renamed or moved without its
//! page is caught here.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The pages to check: every page under `docs/` and the README.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("the workspace has a docs directory")
        .map(|entry| entry.expect("a readable docs entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    pages.push(root.join("README.md"));
    pages.sort();
    pages
}

/// A page cut where a bullet starts or a paragraph ends: a test's name and the file it is in are
/// written within one of these.
fn blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in page.lines() {
        let starts_bullet = line.trim_start().starts_with("- ");
        if line.trim().is_empty() || starts_bullet {
            if !current.trim().is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        blocks.push(current);
    }
    blocks
}

/// What a block writes between backticks.
fn spans(block: &str) -> Vec<&str> {
    block.split('`').skip(1).step_by(2).collect()
}

fn is_source_path(span: &str) -> bool {
    (span.starts_with("crates/") || span.starts_with("benches/")) && span.ends_with(".rs")
}

/// A test's name as the pages write one: snake case, four words or more (shorter spans are API names).
fn is_test_name(span: &str) -> bool {
    span.starts_with(|c: char| c.is_ascii_lowercase())
        && span
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && span.matches('_').count() >= 3
}

/// The files a path stands for: itself, or with `crates/*/` every crate's file of that name.
fn expand(root: &Path, path: &str) -> Vec<PathBuf> {
    let Some(rest) = path.strip_prefix("crates/*/") else {
        return vec![root.join(path)];
    };
    let mut files: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .expect("the workspace has a crates directory")
        .map(|entry| entry.expect("a readable crates entry").path().join(rest))
        .filter(|file| file.is_file())
        .collect();
    files.sort();
    files
}

fn defines(source: &str, name: &str) -> bool {
    let fn_name = format!("fn {name}");
    source.match_indices(&fn_name).any(|(at, _)| {
        let after = &source[at + fn_name.len()..];
        after.starts_with('(') || after.starts_with('<')
    })
}

/// Every path a page names, and every test named beside a path, for what is missing.
fn missing_in(root: &Path, page_name: &str, page: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for block in blocks(page) {
        let spans = spans(&block);
        let paths: Vec<&str> = spans
            .iter()
            .copied()
            .filter(|s| is_source_path(s))
            .collect();
        if paths.is_empty() {
            continue;
        }
        let mut sources = Vec::new();
        for path in &paths {
            let found: Vec<String> = expand(root, path)
                .iter()
                .filter_map(|file| fs::read_to_string(file).ok())
                .collect();
            if found.is_empty() {
                missing.push(format!("{page_name} names `{path}`, which does not exist"));
            }
            sources.extend(found);
        }
        for name in spans.iter().copied().filter(|s| is_test_name(s)) {
            if !sources.iter().any(|source| defines(source, name)) {
                missing.push(format!(
                    "{page_name} names `{name}` beside {paths:?}, but none of them defines it; \
                     point the page to where the test is now, or name the test that replaced it"
                ));
            }
        }
    }
    missing
}

#[test]
fn every_test_a_page_names_is_in_the_file_it_names() {
    let root = workspace_root();
    let mut missing = Vec::new();
    let mut named = 0;
    for path in pages(&root) {
        let page = fs::read_to_string(&path).expect("a readable page");
        let page_name = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        named += blocks(&page)
            .iter()
            .filter(|block| spans(block).iter().any(|s| is_source_path(s)))
            .map(|block| spans(block).iter().filter(|s| is_test_name(s)).count())
            .sum::<usize>();
        missing.extend(missing_in(&root, &page_name, &page));
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    // The pages do name their tests this way: a change that stopped the check from finding any would
    // pass it without checking anything.
    assert!(
        named >= 40,
        "only {named} tests named beside their files; has the pages' form changed?"
    );
}

#[test]
fn a_renamed_test_is_caught() {
    let root = workspace_root();
    let page = "- `crates/group/tests/group_wait.rs`: `first_error_wins_as_the_identical_value`\n\n\
                - `crates/group/tests/group_wait.rs`: `first_error_wins_under_another_name`\n\n\
                - `crates/group/tests/no_such_file.rs`: `first_error_wins_as_the_identical_value`\n";
    let missing = missing_in(&root, "page.md", page);
    assert_eq!(missing.len(), 3, "{missing:#?}");
    assert!(missing[0].contains("first_error_wins_under_another_name"));
    assert!(missing[1].contains("no_such_file.rs"));
    assert!(missing[2].contains("first_error_wins_as_the_identical_value"));
}
