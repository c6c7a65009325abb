//! `dial validate`: every Dial policy in the files, checked by the filter's own parser; every
//! problem with its file, line, document, JSON path and value, in the filter's words.

use serde_json::{json, Value};

use crate::common::{issue_line, parse_at, problem_line, Format, Outcome, OK, PROBLEMS, USAGE};
use crate::find::{self, Found, Issue};
use crate::modes::{self, Warning};
use crate::placement::{Mode, Placement};
use crate::report;
use crate::yaml::Position;

pub const EXAMPLES: &str = "\
Examples:
  dial validate tests/data/checkout.json --mode gateway
  dial validate --strict envoy-config/ istio/
  dial validate -o json istio/gateway/wasmplugin.yaml
  kustomize build overlays/prod | dial validate -

Each problem is a line `file:line:column: [what holds the policy: ]<JSON path>: <message>`, the
message being the one Envoy logs when it refuses the policy. Then what is wrong for where the
policy runs (a WasmPlugin's match mode, targetRefs or selector; an Envoy listener's
traffic_direction; or --mode), as `file:line:column: warning: <kind>: ...`. Exit code 1 on any
problem, and on any warning under --strict. A deliberate exception, written in the YAML:
  # dial-validate: allow <kind> -- <reason>        (this document)
  # dial-validate: allow-file <kind> -- <reason>   (the whole file; for JSON, in FILE.dial-validate)
is printed as `allowed: ...`.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy JSON files, Envoy configurations (YAML or JSON), Kubernetes YAML with WasmPlugins;
    /// directories are searched for .json, .yaml and .yml files; `-` reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// `json` for CI: every problem and warning as an object, with file, line, column, path
    /// and kind
    #[arg(long, short, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Where the policies run, for a bare policy (or over what their holders say): a sidecar's
    /// outbound side (client), its inbound side (server), an ingress gateway, a standalone Envoy
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<Mode>,
    /// Warnings are errors: exit code 1 on any
    #[arg(long)]
    pub strict: bool,
    /// The moment a ramp's start is judged against: RFC 3339, `now` (the default), or +DURATION
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

/// A warning placed in its file, and the marker that allows it, if one does.
struct Noted {
    file: String,
    seq: usize,
    document: Option<usize>,
    origin: Option<String>,
    /// The policy (index into `Scan::found`) it is about; `None` for a marker's own warning.
    owner: Option<usize>,
    warning: Warning,
    allowed_by: Option<usize>,
}

struct Findings {
    scan: find::Scan,
    placements: Vec<Placement>,
    noted: Vec<Noted>,
    problems: usize,
    nothing: bool,
    strict: bool,
    at: u64,
}

impl Findings {
    fn warnings(&self) -> impl Iterator<Item = &Noted> {
        self.noted.iter().filter(|n| n.allowed_by.is_none())
    }

    fn allowed(&self) -> impl Iterator<Item = &Noted> {
        self.noted.iter().filter(|n| n.allowed_by.is_some())
    }
}

pub fn run(args: &Args) -> Outcome {
    let at = parse_at(args.at.as_deref())?;
    let scan = find::scan(&args.files);
    let problems: usize = scan
        .found
        .iter()
        .map(|f| f.outcome.as_ref().err().map_or(0, |e| e.problems.len()))
        .sum::<usize>()
        + scan.issues.len();
    let nothing = scan.found.is_empty() && scan.issues.is_empty();
    let placements: Vec<Placement> = scan
        .found
        .iter()
        .map(|f| match args.mode {
            Some(m) => Placement::new(vec![m], format!("--mode {}", m.name()), None),
            None => f.site.placement.clone(),
        })
        .collect();
    let mut used = vec![false; scan.markers.len()];
    let mut noted = Vec::new();
    for (i, (found, placement)) in scan.found.iter().zip(&placements).enumerate() {
        for warning in modes::check(found, placement, at) {
            let allowed_by = found.allows.iter().copied().find(|&m| {
                scan.markers
                    .get(m)
                    .is_some_and(|marker| marker.allows(warning.kind))
            });
            if let Some(u) = allowed_by.and_then(|m| used.get_mut(m)) {
                *u = true;
            }
            noted.push(Noted {
                file: found.file.clone(),
                seq: found.seq,
                document: found.document,
                origin: Some(found.origin.to_string()),
                owner: Some(i),
                warning,
                allowed_by,
            });
        }
    }
    for (marker, used) in scan.markers.iter().zip(&used) {
        let (kind, message) = match &marker.bad {
            Some(why) => ("bad_allow_marker", format!("this allow marker cannot be read: {why}")),
            None if !used => (
                "unused_allow",
                format!(
                    "this allow marker excuses no warning here ({} not raised): remove it, or it will hide a future one unseen",
                    marker.kinds.join(", ")
                ),
            ),
            None => continue,
        };
        noted.push(Noted {
            file: marker.file.clone(),
            seq: marker.seq,
            document: None,
            origin: None,
            owner: None,
            warning: Warning {
                kind,
                path: String::new(),
                at: Position {
                    line: marker.line,
                    column: 1,
                },
                message,
            },
            allowed_by: None,
        });
    }
    let findings = Findings {
        scan,
        placements,
        noted,
        problems,
        nothing,
        strict: args.strict,
        at,
    };
    let warned = findings.warnings().count();
    let code = if findings.scan.issues.iter().any(Issue::is_unreadable) {
        USAGE
    } else if problems > 0 || nothing || (args.strict && warned > 0) {
        PROBLEMS
    } else {
        OK
    };
    match args.output {
        Format::Text => text(&findings),
        Format::Json => println!("{}", json_report(&findings, code)),
    }
    Ok(code)
}

/// `file:line:column: warning: <kind>: [holder: ][path: ]<message>`.
fn warning_line(n: &Noted, label: &str) -> String {
    let holder = n
        .origin
        .as_deref()
        .map_or(String::new(), |o| match n.document {
            Some(d) => format!("{o} (document {d}): "),
            None => format!("{o}: "),
        });
    let path = if n.warning.path.is_empty() {
        String::new()
    } else {
        format!("{}: ", n.warning.path)
    };
    format!(
        "{}:{}:{}: {label}: {}: {holder}{path}{}",
        n.file, n.warning.at.line, n.warning.at.column, n.warning.kind, n.warning.message
    )
}

/// Problem lines and each valid policy with where it runs, its warnings, in input order, then
/// a summary.
fn text(findings: &Findings) {
    let scan = &findings.scan;
    let severity = if findings.strict { "error" } else { "warning" };
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, (f, placement)) in scan.found.iter().zip(&findings.placements).enumerate() {
        match &f.outcome {
            Ok(policy) => lines.push((
                f.seq,
                format!(
                    "{}: valid ({}); {}",
                    f.label(),
                    releases(policy.releases.iter().map(|r| r.name.as_str())),
                    placement.describe()
                ),
            )),
            Err(e) => lines.extend(e.problems.iter().map(|p| (f.seq, problem_line(f, p)))),
        }
        for n in findings.noted.iter().filter(|n| n.owner == Some(i)) {
            lines.push((n.seq, noted_line(n, severity, scan)));
        }
    }
    for n in findings.noted.iter().filter(|n| n.owner.is_none()) {
        lines.push((n.seq, noted_line(n, severity, scan)));
    }
    lines.extend(scan.issues.iter().map(|i| (i.seq, issue_line(i))));
    lines.sort_by_key(|(seq, _)| *seq);
    for (_, line) in &lines {
        println!("{line}");
    }
    let rejected = scan.found.iter().filter(|f| f.outcome.is_err()).count();
    let policies = scan.found.len();
    if findings.nothing {
        println!(
            "no Dial policy found in {}: name a policy JSON, an Envoy configuration with Dial's wasm filter, or an Istio WasmPlugin for Dial",
            plural(scan.files, "file")
        );
        return;
    }
    let warned = findings.warnings().count();
    let allowed = findings.allowed().count();
    println!(
        "{}, {}: {} valid, {} rejected; {}; {}{}",
        plural(scan.files, "file"),
        plural(policies, "policy"),
        policies - rejected,
        rejected,
        plural(findings.problems, "problem"),
        plural(warned, severity),
        match (allowed, findings.strict) {
            (0, false) => String::new(),
            (0, true) => " (--strict)".into(),
            (n, false) => format!(", {n} allowed"),
            (n, true) => format!(" (--strict), {n} allowed"),
        }
    );
}

fn noted_line(n: &Noted, severity: &str, scan: &find::Scan) -> String {
    match n.allowed_by.and_then(|m| scan.markers.get(m)) {
        Some(marker) => format!(
            "{} -- allowed at {}:{}: {}",
            warning_line(n, "allowed"),
            marker.file,
            marker.line,
            marker.reason
        ),
        None => warning_line(n, severity),
    }
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

fn json_report(findings: &Findings, code: u8) -> Value {
    let scan = &findings.scan;
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
    let severity = if findings.strict { "error" } else { "warning" };
    let noted = |n: &Noted| {
        let mut v = json!({
            "file": n.file,
            "line": n.warning.at.line,
            "column": n.warning.at.column,
            "document": n.document,
            "source": n.origin,
            "path": if n.warning.path.is_empty() { Value::Null } else { Value::from(n.warning.path.clone()) },
            "kind": n.warning.kind,
            "message": n.warning.message,
            "severity": severity,
            "text": warning_line(n, severity),
        });
        if let Some(marker) = n.allowed_by.and_then(|m| scan.markers.get(m)) {
            if let Value::Object(map) = &mut v {
                map.insert("severity".into(), Value::from("allowed"));
                map.insert("text".into(), Value::from(noted_line(n, severity, scan)));
                map.insert("reason".into(), Value::from(marker.reason.clone()));
                map.insert(
                    "marker".into(),
                    json!({ "file": marker.file, "line": marker.line }),
                );
            }
        }
        v
    };
    let policies: Vec<Value> = scan
        .found
        .iter()
        .zip(&findings.placements)
        .map(|(f, placement)| {
            json!({
                "file": f.file,
                "document": f.document,
                "source": source(f),
                "valid": f.outcome.is_ok(),
                "releases": f.outcome.as_ref().map_or(Vec::new(), |p| {
                    p.releases.iter().map(|r| r.name.clone()).collect()
                }),
                "problems": f.outcome.as_ref().err().map_or(0, |e| e.problems.len()),
                "mode": {
                    "modes": placement.modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
                    "title": placement.title(),
                    "because": placement.because,
                    "line": placement.at.map(|a| a.line),
                },
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
        "strict": findings.strict,
        "at": report::instant(findings.at),
        "files": scan.files,
        "policies": policies,
        "problems": problems.into_iter().map(|(_, p)| p).collect::<Vec<_>>(),
        "warnings": findings.warnings().map(noted).collect::<Vec<_>>(),
        "allowed": findings.allowed().map(noted).collect::<Vec<_>>(),
        "skipped": skipped,
    })
}

fn source(f: &Found) -> String {
    f.origin.to_string()
}
