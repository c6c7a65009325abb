//! Docs that cannot rot (`make docs-test`, in `make test`): README.md and every docs/**/*.md
//! are read as a forge renders them (pulldown-cmark) and checked against what ships:
//! - every ```json policy / ```yaml policy block is accepted by the real `dial validate`, every
//!   ```json policy-rejected block rejected, with the messages its ```text block shows;
//! - every relative link and image resolves, every anchor names a heading (GitHub's anchors);
//!   BENCHMARKS.md (written by `make bench`) for its links only;
//! - every `make <target>` in inline code or a sh/shell/bash/console block is a Makefile target,
//!   every `dial <subcommand> --flag` one that `dial <subcommand> --help` lists, and every
//!   repository path a command names exists (target/istio-quickstart/... as rendered from istio/);
//! - docs/testing.md's list of what `make test` runs is the Makefile's `test:` line, in order;
//! - the block after `<!-- demo-output -->` is ```text (tests/demo_safety.rs compares it with
//!   what `make demo` prints).
//!
//! Each check also runs on fixtures (tests/data/docs/): a good tree it must pass, and a broken
//! one where it must report exactly the planted problems, so a checker that passes everything
//! fails here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "docs/checks.rs"]
mod checks;
#[path = "docs/markdown.rs"]
mod markdown;

use std::path::{Path, PathBuf};

use checks::{CliHelp, Docs, Makefile, Problem};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dial() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dial"))
}

/// A fresh directory under target/ for the snippets `dial validate` reads.
fn scratch(label: &str) -> PathBuf {
    let dir = repo_root()
        .join("target/docs-test")
        .join(format!("{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/data/docs").join(name)
}

fn fixture_makefile() -> Makefile {
    Makefile::parse(&std::fs::read_to_string(fixture("Makefile")).unwrap())
}

/// Every check on one tree of docs.
fn all_problems(root: &Path, makefile: &Makefile, label: &str) -> Vec<Problem> {
    let docs = Docs::load(root);
    let cli = CliHelp::from_binary(&dial());
    let mut problems = checks::links(&docs);
    problems.extend(checks::policies(&docs, &dial(), &scratch(label)));
    problems.extend(checks::commands(&docs, makefile, &cli));
    problems.extend(checks::test_list(&docs, makefile));
    for (file, page, full) in &docs.pages {
        if let (true, Err(p)) = (*full, checks::demo_blocks(file, page)) {
            problems.extend(p);
        }
    }
    problems.sort();
    problems
}

fn show(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// --- The repository's docs -------------------------------------------------------------------

#[test]
fn the_readme_and_docs_hold_against_what_ships() {
    let root = repo_root();
    let makefile = Makefile::parse(&std::fs::read_to_string(root.join("Makefile")).unwrap());
    assert!(
        makefile.test.len() > 3,
        "the Makefile's test: line, read: {:?}",
        makefile.test
    );
    let problems = all_problems(&root, &makefile, "repo");
    assert!(
        problems.is_empty(),
        "{} problem(s) in README.md and docs/:\n{}",
        problems.len(),
        show(&problems)
    );
    // Not vacuous: the pages hold policies, links and commands to check.
    let docs = Docs::load(&root);
    let blocks: Vec<_> = docs.pages.iter().flat_map(|(_, p, _)| p.blocks()).collect();
    let policies = blocks
        .iter()
        .filter(|b| b.words().iter().any(|w| w.starts_with("policy")))
        .count();
    let links: usize = docs.pages.iter().map(|(_, p, _)| p.links.len()).sum();
    println!(
        "{} pages, {policies} policy blocks, {links} links checked",
        docs.pages.len()
    );
    assert!(
        policies > 0,
        "no ```json policy block in README.md or docs/"
    );
    assert!(links > 0, "no links in README.md or docs/");
    let readme = docs.page("README.md").unwrap();
    assert!(
        !checks::demo_blocks("README.md", readme).unwrap().is_empty(),
        "README.md has no {} block: the demo's output it shows is compared by tests/demo_safety.rs",
        checks::DEMO_MARKER
    );
}

// --- The checker itself, on fixtures ---------------------------------------------------------

#[test]
fn a_good_tree_passes_every_check() {
    let problems = all_problems(&fixture("good"), &fixture_makefile(), "good");
    assert!(problems.is_empty(), "{}", show(&problems));
    let docs = Docs::load(&fixture("good"));
    assert_eq!(docs.pages.len(), 4, "README.md, docs/*.md, BENCHMARKS.md");
}

/// Each planted problem of tests/data/docs/broken/ is reported, at its line (a command continued
/// with `\\` at its first line; a block at its opening fence), and nothing else.
#[test]
fn a_broken_tree_fails_each_check_at_the_right_line() {
    let problems = all_problems(&fixture("broken"), &fixture_makefile(), "broken");
    let got: Vec<String> = problems
        .iter()
        .map(|p| {
            // The first line of each message is enough to name it (dial's output follows).
            let first = p.message.lines().next().unwrap_or_default();
            format!("{}:{}: {first}", p.file, p.line)
        })
        .collect();
    let want = [
        "BENCHMARKS.md:3: link docs/gone.md: docs/gone.md does not exist",
        "README.md:11: link docs/missing.md: docs/missing.md does not exist",
        "README.md:12: link docs/guide.md#no-such-heading: no heading or id #no-such-heading in docs/guide.md",
        "README.md:13: link #intro-2: no heading or id #intro-2 in README.md",
        "README.md:14: image docs/images/missing.svg: docs/images/missing.svg does not exist",
        "README.md:15: link ../../../../Cargo.toml: leaves the repository",
        "README.md:16: link target/demo/timeline.svg: build output (target/), not in the repository",
        "README.md:20: `make no-such-target`: no such target in the Makefile",
        "README.md:21: `dial validate --no-such-flag`: `dial validate --help` lists no such option",
        "README.md:22: `dial frobnicate`: no such subcommand (`dial --help` lists diff, explain, help, simulate, validate)",
        "README.md:25: `make also-missing`: no such target in the Makefile",
        "README.md:26: `dial explain -Z`: `dial explain --help` lists no such option",
        "README.md:30: `dial simulate --userz`: `dial simulate --help` lists no such option",
        "README.md:30: docs/nope.md: no such file or directory in the repository",
        "README.md:30: target/istio/sidecar/nope.yaml: no such file or directory (istio/sidecar/nope.yaml is what it is rendered from)",
        "README.md:32: `dial validate policy.json` refuses this policy (exit 1):",
        "README.md:37: `dial validate policy.json` should reject this policy (exit 1), got exit 0:",
        "README.md:51: `dial validate policy.json` does not print \"$.releases[0].subsets[0].weight: weight must be\"; it prints:",
        "README.md:51: `dial validate policy.json` does not print \"policy.json:3:20: $.releases[0].subsets[0].weight: weight must be 0 or more, got -6\"; it prints:",
        "README.md:56: unknown marker \"policy-rejcted\": `policy` or `policy-rejected`",
        "README.md:60: a rejected policy needs a ```text block right after it, with the messages `dial validate` prints",
        "README.md:67: the block after <!-- demo-output --> is ```sh, not ```text",
        "docs/guide.md:5: link ../README.md#run-it: no heading or id #run-it in README.md",
        "docs/testing.md:1: the list of what `make test` runs names unit-test lint; the Makefile's `test:` runs lint unit-test",
    ];
    assert_eq!(got, want, "got:\n{}", show(&problems));
}

#[test]
fn shell_words_and_commands() {
    let words = |s: &str| -> Vec<Vec<String>> {
        checks::shell_commands(s)
            .into_iter()
            .map(|c| c.into_iter().map(|w| w.text).collect())
            .collect()
    };
    assert_eq!(
        words("make demo   # builds, installs\nmake test && dial validate -o json 'a b'"),
        [
            vec!["make", "demo"],
            vec!["make", "test"],
            vec!["dial", "validate", "-o", "json", "a b"]
        ]
    );
    assert_eq!(
        words("kustomize build x | dial validate -\ndial explain p.json \\\n  --host h"),
        [
            vec!["kustomize", "build", "x"],
            vec!["dial", "validate", "-"],
            vec!["dial", "explain", "p.json", "--host", "h"]
        ]
    );
    let quoted = checks::shell_commands("dial explain p.json -H '--not-a-flag'");
    assert!(quoted[0][4].quoted);
}

#[test]
fn makefile_targets_and_the_test_line() {
    let m = Makefile::parse(
        "X := 1\nexport Y := 2\n.PHONY: a b\na: b\n\techo a: b\nb:\ntest: a \\\n  b # c\n$(OUT): a\nq: VAR := 3\n",
    );
    assert_eq!(
        m.targets.iter().collect::<Vec<_>>(),
        [".PHONY", "a", "b", "q", "test"]
    );
    assert_eq!(m.test, ["a", "b"]);
}

#[test]
fn flags_from_clap_help() {
    let help = "Usage: dial validate [OPTIONS] <FILE>...\n\nOptions:\n  -o, --output <OUTPUT>\n          json\n      --strict\n          Warnings\n  -h, --help\n          Print help\n";
    assert_eq!(
        checks::help_flags(help).into_iter().collect::<Vec<_>>(),
        ["--help", "--output", "--strict", "-h", "-o"]
    );
}
