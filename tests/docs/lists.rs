//! Lists the code keeps and the pages repeat: the assignment reasons (`x-dial-assignment`'s
//! `reason=`, `dial_requests_total{reason}`, `dial explain`) in docs/assignment.md's precedence
//! table, and the warning kinds of `dial validate` in docs/cli.md's table of them, in
//! docs/where-dial-runs.md, and wherever a page says "warns `<kind>`".

use std::collections::BTreeSet;
use std::path::Path;

use super::checks::{run_dial, Docs, Problem};

pub const ASSIGNMENT: &str = "docs/assignment.md";
pub const CLI: &str = "docs/cli.md";
pub const WHERE: &str = "docs/where-dial-runs.md";

fn problem(file: &str, line: usize, message: String) -> Problem {
    Problem {
        file: file.to_string(),
        line,
        message,
    }
}

fn differ(what: &str, shown: &BTreeSet<String>, code: &BTreeSet<String>) -> Option<String> {
    let missing: Vec<&String> = code.difference(shown).collect();
    let extra: Vec<&String> = shown.difference(code).collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    let list = |v: &[&String]| {
        v.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", list(&missing)));
    }
    if !extra.is_empty() {
        parts.push(format!("no such {what} {}", list(&extra)));
    }
    Some(parts.join("; "))
}

/// The precedence table (the one with a `reason` column) names each reason the code has, once.
pub fn reasons(docs: &Docs, code: &BTreeSet<String>) -> Vec<Problem> {
    let Some(page) = docs.page(ASSIGNMENT) else {
        return vec![problem(
            ASSIGNMENT,
            1,
            "missing: its precedence table names every reason".into(),
        )];
    };
    let Some((table, col)) = page
        .tables
        .iter()
        .find_map(|t| t.column("reason").map(|c| (t, c)))
    else {
        return vec![problem(
            ASSIGNMENT,
            1,
            "no table with a `reason` column (the precedence)".into(),
        )];
    };
    let mut problems = Vec::new();
    let mut shown = BTreeSet::new();
    for (line, cells) in &table.rows {
        for r in cells.get(col).map(|c| c.code.clone()).unwrap_or_default() {
            if !shown.insert(r.clone()) {
                problems.push(problem(
                    ASSIGNMENT,
                    *line,
                    format!("reason `{r}` twice in the precedence table"),
                ));
            }
        }
    }
    if let Some(d) = differ("reason", &shown, code) {
        problems.push(problem(
            ASSIGNMENT,
            table.line,
            format!("the precedence table's reasons differ from the code's (src/core/decide): {d}"),
        ));
    }
    problems
}

/// `dial validate`'s warning kinds, as it lists them for an allow marker naming an unknown one.
pub fn warning_kinds(dial: &Path, scratch: &Path) -> BTreeSet<String> {
    let file = scratch.join("kinds.yaml");
    std::fs::write(
        &file,
        "# dial-validate: allow-file no-such-kind -- asking for the kinds\n{\"releases\": []}\n",
    )
    .unwrap();
    let run = run_dial(dial, scratch, &["validate", "kinds.yaml"]);
    let list = run
        .output
        .split_once("the kinds: ")
        .and_then(|(_, rest)| rest.lines().next())
        .unwrap_or_else(|| {
            panic!(
                "`dial validate` did not list the warning kinds:\n{}",
                run.output
            )
        });
    let kinds: BTreeSet<String> = list.split(',').map(|k| k.trim().to_string()).collect();
    assert!(kinds.len() > 3, "warning kinds read: {kinds:?}");
    kinds
}

/// docs/cli.md's table of warning kinds (first column `Warning kind`) is the code's list;
/// docs/where-dial-runs.md names each; "warns `<kind>`" anywhere names one that exists.
pub fn warnings(docs: &Docs, code: &BTreeSet<String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    match docs.page(CLI) {
        None => problems.push(problem(
            CLI,
            1,
            "missing: it lists the warning kinds".into(),
        )),
        Some(page) => {
            let table = page.tables.iter().find(|t| {
                t.header
                    .first()
                    .is_some_and(|c| c.text.trim().eq_ignore_ascii_case("warning kind"))
            });
            match table {
                None => problems.push(problem(
                    CLI,
                    1,
                    "no table of warning kinds (first column `Warning kind`)".into(),
                )),
                Some(t) => {
                    let shown: BTreeSet<String> = t
                        .rows
                        .iter()
                        .filter_map(|(_, cells)| cells.first()?.code.first().cloned())
                        .collect();
                    if let Some(d) = differ("warning kind", &shown, code) {
                        problems.push(problem(
                            CLI,
                            t.line,
                            format!("the warning kinds differ from `dial validate`'s: {d}"),
                        ));
                    }
                }
            }
        }
    }
    match docs.page(WHERE) {
        None => problems.push(problem(
            WHERE,
            1,
            "missing: it says where each warning applies".into(),
        )),
        Some(page) => {
            let named: BTreeSet<String> = page.code_spans.iter().map(|(s, _)| s.clone()).collect();
            let missing: Vec<&String> = code.iter().filter(|k| !named.contains(*k)).collect();
            if !missing.is_empty() {
                problems.push(problem(
                    WHERE,
                    1,
                    format!(
                        "names no warning {}: say where it applies",
                        missing
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    // "warns `x`" anywhere: a kind that exists.
    for (file, _, full) in &docs.pages {
        if !full {
            continue;
        }
        let text = std::fs::read_to_string(docs.root.join(file)).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices("warns `") {
                let rest = &line[at + "warns `".len()..];
                let Some((kind, _)) = rest.split_once('`') else {
                    continue;
                };
                let looks_like_a_kind =
                    !kind.is_empty() && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                if looks_like_a_kind && !code.contains(kind) {
                    problems.push(problem(
                        file,
                        i + 1,
                        format!("warns `{kind}`: `dial validate` has no such warning kind"),
                    ));
                }
            }
        }
    }
    problems
}
