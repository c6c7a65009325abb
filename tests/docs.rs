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
//!   what `make demo` prints);
//! - the reference pages list what the code has, no more and no less: docs/policy.md every field
//!   the policy parser accepts (found by probing the parser), with its type, the defaults the
//!   code gives and the limits the parser enforces (tests/docs/policy_fields.rs,
//!   policy_limits.rs); docs/metrics.md every series src/core/stats.rs defines, with its type,
//!   labels and enumerated label values (metrics.rs); docs/assignment.md's precedence table
//!   every assignment reason, docs/cli.md and where-dial-runs.md every `dial validate` warning
//!   kind (lists.rs).
//!
//! Each check also runs on fixtures (tests/data/docs/): a good tree it must pass, and a broken
//! one where it must report exactly the planted problems, so a checker that passes everything
//! fails here (the reference pages' checks against made-up facts, `Facts::of_the_fixtures`;
//! the limits and defaults against wrong claims).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "docs/checks.rs"]
mod checks;
#[path = "docs/lists.rs"]
mod lists;
#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/metrics.rs"]
mod metrics;
#[path = "docs/policy_fields.rs"]
mod policy_fields;
#[path = "docs/policy_limits.rs"]
mod policy_limits;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use checks::{CliHelp, Docs, Makefile, Problem};
use policy_fields::Accepted;

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

/// What the code says, for the pages to agree with: the policy fields the parser accepts, the
/// series stats.rs defines, the assignment reasons, `dial validate`'s warning kinds.
struct Facts {
    fields: Vec<Accepted>,
    series: BTreeMap<String, metrics::Series>,
    reasons: BTreeSet<String>,
    warning_kinds: BTreeSet<String>,
}

impl Facts {
    fn of_the_code() -> Facts {
        Facts {
            fields: policy_fields::accepted(),
            series: metrics::emitted(),
            reasons: dial::core::decide::Reason::ALL
                .iter()
                .map(|r| r.as_str().to_string())
                .collect(),
            warning_kinds: lists::warning_kinds(&dial(), &scratch("kinds")),
        }
    }

    /// The small made-up code the fixtures' pages describe (tests/data/docs/*/docs/).
    fn of_the_fixtures() -> Facts {
        let field = |path: &str, ty: &str| Accepted {
            path: path.into(),
            ty: ty.into(),
        };
        let series = |kind: &str, labels: &[&str], values: &[&str]| metrics::Series {
            kind: kind.into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            values: values.iter().map(|s| s.to_string()).collect(),
        };
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Facts {
            fields: vec![
                field("releases", "array"),
                field("releases[].name", "string"),
                field("releases[].weight", "integer"),
                field("releases[].token", "secret"),
                field("releases[].token.fromEnv", "string"),
                field("releases[].rule", "object"),
                field("releases[].rule.name", "string"),
                field("releases[].rule.equals", "string"),
            ],
            series: [
                (
                    "dial_requests_total".to_string(),
                    series("counter", &["release", "reason"], &["hash", "fallback"]),
                ),
                ("dial_up".to_string(), series("gauge", &[], &[])),
            ]
            .into(),
            reasons: set(&["hash", "fallback", "override"]),
            warning_kinds: set(&["inline_secret", "allow_anyone"]),
        }
    }
}

/// Every check on one tree of docs.
fn all_problems(root: &Path, makefile: &Makefile, facts: &Facts, label: &str) -> Vec<Problem> {
    let docs = Docs::load(root);
    let cli = CliHelp::from_binary(&dial());
    let mut problems = checks::links(&docs);
    problems.extend(checks::policies(&docs, &dial(), &scratch(label)));
    problems.extend(checks::commands(&docs, makefile, &cli));
    problems.extend(checks::test_list(&docs, makefile));
    problems.extend(policy_fields::check(&docs, &facts.fields));
    problems.extend(metrics::check(&docs, &facts.series));
    problems.extend(lists::reasons(&docs, &facts.reasons));
    problems.extend(lists::warnings(&docs, &facts.warning_kinds));
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
    let mut problems = all_problems(&root, &makefile, &Facts::of_the_code(), "repo");
    let docs = Docs::load(&root);
    problems.extend(policy_limits::check_limits(&docs, &policy_limits::limits()));
    problems.extend(policy_limits::check_defaults(
        &docs,
        &policy_limits::defaults(),
    ));
    problems.sort();
    assert!(
        problems.is_empty(),
        "{} problem(s) in README.md and docs/:\n{}",
        problems.len(),
        show(&problems)
    );
    // Not vacuous: the pages hold policies, links and commands to check.
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
    let problems = all_problems(
        &fixture("good"),
        &fixture_makefile(),
        &Facts::of_the_fixtures(),
        "good",
    );
    assert!(problems.is_empty(), "{}", show(&problems));
    let docs = Docs::load(&fixture("good"));
    assert_eq!(
        docs.pages.len(),
        9,
        "README.md, docs/*.md (7), BENCHMARKS.md"
    );
}

/// Each planted problem of tests/data/docs/broken/ is reported, at its line (a command continued
/// with `\\` at its first line; a block at its opening fence), and nothing else.
#[test]
fn a_broken_tree_fails_each_check_at_the_right_line() {
    let problems = all_problems(
        &fixture("broken"),
        &fixture_makefile(),
        &Facts::of_the_fixtures(),
        "broken",
    );
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
        "docs/assignment.md:3: the precedence table's reasons differ from the code's (src/core/decide): missing `fallback`; no such reason `sticky`",
        "docs/assignment.md:7: reason `hash` twice in the precedence table",
        "docs/cli.md:3: the warning kinds differ from `dial validate`'s: missing `allow_anyone`; no such warning kind `old_kind`",
        "docs/guide.md:5: link ../README.md#run-it: no heading or id #run-it in README.md",
        "docs/metrics.md:5: `dial_up` (gauge) is defined by src/core/stats.rs but has no row",
        "docs/metrics.md:7: `dial_requests_total`: documented with labels [release]; it has [release, reason]",
        "docs/metrics.md:7: `dial_requests_total`: its Meaning names the values hash; the code's are hash fallback",
        "docs/metrics.md:8: `dial_gone_total`: src/core/stats.rs defines no such series",
        "docs/policy.md:3: `releases[].token.fromEnv` (string) is accepted by the policy parser but has no row in a table of fields",
        "docs/policy.md:3: `releases[].weight` (integer) is accepted by the policy parser but has no row in a table of fields",
        "docs/policy.md:6: `releases[].name` is documented as integer; the parser reads string",
        "docs/policy.md:7: `releases[].color`: the policy parser accepts no such field",
        "docs/policy.md:8: `name` could be `releases[].name`, `releases[].rule.name`: write more of its path",
        "docs/policy.md:18: `prefix`: the policy parser accepts no field `releases[].rule.prefix`",
        "docs/testing.md:1: the list of what `make test` runs names unit-test lint; the Makefile's `test:` runs lint unit-test",
        "docs/where-dial-runs.md:1: names no warning `allow_anyone`: say where it applies",
        "docs/where-dial-runs.md:3: warns `no_such_kind`: `dial validate` has no such warning kind",
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

/// The field list is the parser's, found by probing it: not vacuous, and with the types read.
#[test]
fn the_policy_fields_are_read_from_the_parser() {
    let fields = policy_fields::accepted();
    let ty = |path: &str| {
        fields
            .iter()
            .find(|a| a.path == path)
            .map(|a| a.ty.as_str())
    };
    assert!(
        fields.len() > 80,
        "{} fields found: {fields:?}",
        fields.len()
    );
    assert_eq!(ty("releases"), Some("array"));
    assert_eq!(ty("releases[].subsets[].weight"), Some("integer"));
    assert_eq!(ty("releases[].guard.fleet.timeout"), Some("string"));
    assert_eq!(ty("releases[].override.token"), Some("secret"));
    assert_eq!(ty("releases[].override.token.fromEnv"), Some("string"));
    assert_eq!(ty("releases[].mirror.methods"), Some("array of string"));
    assert_eq!(ty("releases[].mirror.percent"), Some("number"));
    assert_eq!(ty("releases[].rules[].header.present"), Some("bool"));
}

/// A limit the page states and the parser contradicts, a limit the row does not show, and a
/// default the page gets wrong are each reported.
#[test]
fn limits_and_defaults_that_do_not_hold_are_reported() {
    let docs = Docs::load(&repo_root());
    let wrong = [
        // The page says 1–64, the claim (wrongly) that 64 is refused and 65 accepted.
        policy_limits::Limit {
            field: "releases",
            shows: "1–64",
            at: "/releases",
            accepted: vec![policy_limits::releases(65)],
            refused: vec![policy_limits::releases(64)],
        },
        policy_limits::Limit {
            field: "guard.window",
            shows: "1s to 20m",
            at: "/releases/0/guard/window",
            accepted: vec![],
            refused: vec![],
        },
    ];
    let got: Vec<String> = policy_limits::check_limits(&docs, &wrong)
        .iter()
        .map(|p| p.message.split(';').next().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        [
            "`releases`: the page says 1–64, but the parser refuses 65 items: $.releases: 65 releases",
            "`releases`: the page says 1–64, but the parser accepts 64 items",
            "`guard.window`: the row does not show its limit \"1s to 20m\"",
        ]
    );
    let got = policy_limits::check_defaults(&docs, &[("headers.subset", "x-dial-route".into())]);
    assert_eq!(got.len(), 1, "{}", show(&got));
    assert!(got[0].message.ends_with(
        "the Default column says \"x-dial-subset\"; the code's default is \"x-dial-route\""
    ));
}
