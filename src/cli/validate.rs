//! `dial validate`: every Dial policy in the files, checked by the filter's own parser; every
//! problem with its file, line, document, JSON path and value, in the filter's words.

use serde_json::{json, Value};

use crate::common::{issue_line, problem_line, Format, Outcome, OK, PROBLEMS, USAGE};
use crate::find::{self, Found, Issue};

pub const EXAMPLES: &str = "\
Examples:
  dial validate tests/data/checkout.json
  dial validate envoy-config/ istio/
  dial validate -o json istio/gateway/wasmplugin.yaml
  kustomize build overlays/prod | dial validate -

Each problem is a line `file:line:column: [what holds the policy: ]<JSON path>: <message>`, the
message being the one Envoy logs when it refuses the policy. Exit code 1 on any problem.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy JSON files, Envoy configurations (YAML or JSON), Kubernetes YAML with WasmPlugins;
    /// directories are searched for .json, .yaml and .yml files; `-` reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// `json` for CI: every problem as an object, with file, line, column, path, kind and value
    #[arg(long, short, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn run(args: &Args) -> Outcome {
    let scan = find::scan(&args.files);
    let problems: usize = scan
        .found
        .iter()
        .map(|f| f.outcome.as_ref().err().map_or(0, |e| e.problems.len()))
        .sum::<usize>()
        + scan.issues.len();
    let nothing = scan.found.is_empty() && scan.issues.is_empty();
    let code = if scan.issues.iter().any(Issue::is_unreadable) {
        USAGE
    } else if problems > 0 || nothing {
        PROBLEMS
    } else {
        OK
    };
    match args.output {
        Format::Text => text(&scan, problems, nothing),
        Format::Json => println!("{}", json_report(&scan, code)),
    }
    Ok(code)
}

/// Problem lines and each valid policy, in input order, then a summary.
fn text(scan: &find::Scan, problems: usize, nothing: bool) {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for f in &scan.found {
        match &f.outcome {
            Ok(policy) => lines.push((
                f.seq,
                format!(
                    "{}: valid ({})",
                    f.label(),
                    releases(policy.releases.iter().map(|r| r.name.as_str()))
                ),
            )),
            Err(e) => lines.extend(e.problems.iter().map(|p| (f.seq, problem_line(f, p)))),
        }
    }
    lines.extend(scan.issues.iter().map(|i| (i.seq, issue_line(i))));
    lines.sort_by_key(|(seq, _)| *seq);
    for (_, line) in &lines {
        println!("{line}");
    }
    let rejected = scan.found.iter().filter(|f| f.outcome.is_err()).count();
    let policies = scan.found.len();
    if nothing {
        println!(
            "no Dial policy found in {}: name a policy JSON, an Envoy configuration with Dial's wasm filter, or an Istio WasmPlugin for Dial",
            plural(scan.files, "file")
        );
        return;
    }
    println!(
        "{}, {}: {} valid, {} rejected; {}",
        plural(scan.files, "file"),
        plural(policies, "policy"),
        policies - rejected,
        rejected,
        plural(problems, "problem")
    );
}

fn releases<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    format!(
        "{} {}",
        if names.len() == 1 {
            "release"
        } else {
            "releases"
        },
        names.join(", ")
    )
}

fn plural(n: usize, word: &str) -> String {
    match (n, word) {
        (1, w) => format!("1 {w}"),
        (n, "policy") => format!("{n} policies"),
        (n, w) => format!("{n} {w}s"),
    }
}

fn json_report(scan: &find::Scan, code: u8) -> Value {
    let mut problems: Vec<(usize, Value)> = Vec::new();
    for f in &scan.found {
        if let Err(e) = &f.outcome {
            problems.extend(e.problems.iter().map(|p| {
                let at = f.position(p);
                (
                    f.seq,
                    json!({
                        "file": f.file,
                        "line": at.line,
                        "column": at.column,
                        "document": f.document,
                        "source": source(f),
                        "path": p.path.to_string(),
                        "kind": p.kind.as_str(),
                        "value": p.value,
                        "message": p.message,
                        "text": p.to_string(),
                    }),
                )
            }));
        }
    }
    problems.extend(scan.issues.iter().map(|i| {
        (
            i.seq,
            json!({
                "file": i.file,
                "line": i.at.map(|a| a.line),
                "column": i.at.map(|a| a.column),
                "document": i.document,
                "source": i.origin,
                "path": null,
                "kind": i.kind,
                "value": null,
                "message": i.message,
                "text": i.message,
            }),
        )
    }));
    problems.sort_by_key(|(seq, _)| *seq);
    let policies: Vec<Value> = scan
        .found
        .iter()
        .map(|f| {
            json!({
                "file": f.file,
                "document": f.document,
                "source": source(f),
                "valid": f.outcome.is_ok(),
                "releases": f.outcome.as_ref().map_or(Vec::new(), |p| {
                    p.releases.iter().map(|r| r.name.clone()).collect()
                }),
                "problems": f.outcome.as_ref().err().map_or(0, |e| e.problems.len()),
            })
        })
        .collect();
    let skipped: Vec<Value> = scan
        .skipped
        .iter()
        .map(|s| json!({ "file": s.file, "document": s.document, "why": s.why }))
        .collect();
    json!({
        "valid": code == OK,
        "exit_code": code,
        "files": scan.files,
        "policies": policies,
        "problems": problems.into_iter().map(|(_, p)| p).collect::<Vec<_>>(),
        "skipped": skipped,
    })
}

fn source(f: &Found) -> String {
    f.origin.to_string()
}
