//! docs/policy.md's defaults and limits against the code. A default is read from the policy the
//! parser builds when the field is left out, and its row must show it; a limit is a claim (the
//! row's words) that the parser is asked to confirm at both edges: the values at the limit are
//! accepted, the values just past it refused, with a problem at that field. So a limit changed
//! in the code, or on the page, fails here.

use dial::core::policy::Policy;
use serde_json::{json, Value};

use super::checks::{Docs, Problem};
use super::markdown::Table;
use super::policy_fields::PAGE;

/// A policy that uses every part of a release, accepted as it is.
pub fn base() -> Value {
    json!({
      "headers": { "response": "x-dial-assignment" },
      "releases": [{
        "name": "checkout",
        "match": { "hosts": ["shop.example.com"], "pathPrefixes": ["/"] },
        "subsets": [ { "name": "stable", "version": "v1", "weight": 90 },
                     { "name": "canary", "version": "v2", "weight": 10 } ],
        "key": [ { "header": "x-user-id" } ],
        "rules": [ { "header": { "name": "x-beta", "equals": "true" }, "subset": "canary" } ],
        "whenNoKey": { "stickyCookie": { "name": "dial-sticky", "maxAgeSeconds": 3600,
                                         "secret": "sticky-secret-0123456789" } },
        "override": { "header": "x-dial-override", "token": "qa-token-0123456789" },
        "mirror": { "version": "v3", "percent": 1 },
        "ramp": { "subset": "canary", "start": "2026-12-01T09:00:00Z",
                  "steps": [ { "weight": 10, "hold": "1h" }, { "weight": 50 } ] },
        "guard": { "subset": "canary", "fallback": "stable", "window": "10s", "minRequests": 20,
                   "maxErrorRate": 0.05, "maxSlowRate": { "overMs": 500, "rate": 0.1 },
                   "fleet": { "cluster": "prometheus", "authority": "prometheus:9090" } },
        "lanes": { "secret": "lane-secret-0123456789", "issue": true, "follow": true,
                   "base": "stable" }
      }]
    })
}

fn parse(v: &Value) -> Result<Policy, Vec<String>> {
    Policy::parse(v.to_string().as_bytes())
        .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect())
}

/// `n` releases, each a copy of the base's with its own name.
pub fn releases(n: usize) -> Value {
    let one = base()["releases"][0].clone();
    Value::Array(
        (0..n)
            .map(|i| {
                let mut r = one.clone();
                r["name"] = json!(format!("r{i}"));
                r
            })
            .collect(),
    )
}

/// `n` subsets (at least 2): stable, canary, then more of weight 0.
fn subsets(n: usize) -> Value {
    let mut s = base()["releases"][0]["subsets"].as_array().unwrap().clone();
    for i in 2..n {
        s.push(json!({ "name": format!("s{i}"), "version": format!("v{i}"), "weight": 0 }));
    }
    Value::Array(s)
}

/// The base's two subsets with these weights.
fn weights(stable: i64, canary: i64) -> Value {
    let mut s = subsets(2);
    s[0]["weight"] = json!(stable);
    s[1]["weight"] = json!(canary);
    s
}

/// A limit as the docs state it, and the values the parser must accept and refuse for it.
pub struct Limit {
    /// The field as documented (a row of a table of fields).
    pub field: &'static str,
    /// Words its row shows (Default and Meaning cells, inline code as plain text).
    pub shows: &'static str,
    /// Where the field is in `base()` (a JSON pointer).
    pub at: &'static str,
    pub accepted: Vec<Value>,
    pub refused: Vec<Value>,
}

pub fn limits() -> Vec<Limit> {
    let limit = |field, shows, at, accepted, refused| Limit {
        field,
        shows,
        at,
        accepted,
        refused,
    };
    let long = |n: usize| json!("a".repeat(n));
    vec![
        limit(
            "releases",
            "1–64",
            "/releases",
            vec![releases(1), releases(64)],
            vec![releases(0), releases(65)],
        ),
        limit(
            "releases[].name",
            "1–63 chars",
            "/releases/0/name",
            vec![long(1), long(63)],
            vec![long(0), long(64)],
        ),
        limit(
            "releases[].subsets",
            "1–16",
            "/releases/0/subsets",
            vec![subsets(2), subsets(16)],
            vec![subsets(17)],
        ),
        limit(
            "subsets[].weight",
            "0–1,000,000",
            "/releases/0/subsets/1/weight",
            vec![json!(0)],
            vec![json!(-1), json!(1_000_001)],
        ),
        limit(
            "subsets[].weight",
            "the total must be 1–1,000,000",
            "/releases/0/subsets",
            vec![weights(999_990, 10)],
            vec![weights(999_991, 10), weights(0, 0)],
        ),
        limit(
            "stickyCookie.maxAgeSeconds",
            "1 to 34,560,000",
            "/releases/0/whenNoKey/stickyCookie/maxAgeSeconds",
            vec![json!(1), json!(34_560_000)],
            vec![json!(0), json!(34_560_001)],
        ),
        limit(
            "stickyCookie.secret",
            "at least 16 printable characters",
            "/releases/0/whenNoKey/stickyCookie/secret",
            vec![long(16)],
            vec![long(15)],
        ),
        limit(
            "override.token",
            "at least 16 printable characters",
            "/releases/0/override/token",
            vec![long(16)],
            vec![long(15)],
        ),
        limit(
            "mirror.percent",
            "0–100, fractions allowed",
            "/releases/0/mirror/percent",
            vec![json!(0), json!(0.5), json!(100)],
            vec![json!(-0.5), json!(100.5)],
        ),
        limit(
            "steps[].weight",
            "0–100, fractions allowed",
            "/releases/0/ramp/steps/1/weight",
            vec![json!(12.5), json!(100)],
            vec![json!(100.5)],
        ),
        limit(
            "guard.window",
            "1s to 10m",
            "/releases/0/guard/window",
            vec![json!("1s"), json!("10m")],
            vec![json!("999ms"), json!("601s")],
        ),
        limit(
            "guard.minRequests",
            "At least 1",
            "/releases/0/guard/minRequests",
            vec![json!(1)],
            vec![json!(0)],
        ),
        limit(
            "guard.maxErrorRate",
            "0–1",
            "/releases/0/guard/maxErrorRate",
            vec![json!(0), json!(1)],
            vec![json!(-0.01), json!(1.01)],
        ),
        limit(
            "maxSlowRate.overMs",
            "1 or more",
            "/releases/0/guard/maxSlowRate/overMs",
            vec![json!(1)],
            vec![json!(0)],
        ),
        limit(
            "maxSlowRate.rate",
            "0–1",
            "/releases/0/guard/maxSlowRate/rate",
            vec![json!(0), json!(1)],
            vec![json!(-0.01), json!(1.01)],
        ),
        limit(
            "fleet.every",
            "1s to 10m",
            "/releases/0/guard/fleet/every",
            vec![json!("1s"), json!("10m")],
            vec![json!("999ms"), json!("601s")],
        ),
        limit(
            "fleet.window",
            "1s to 1h",
            "/releases/0/guard/fleet/window",
            vec![json!("1s"), json!("1h")],
            vec![json!("999ms"), json!("3601s")],
        ),
        // `every` is 5s by default.
        limit(
            "fleet.timeout",
            "100ms up to every",
            "/releases/0/guard/fleet/timeout",
            vec![json!("100ms"), json!("5s")],
            vec![json!("99ms"), json!("5001ms")],
        ),
        limit(
            "lanes.maxAge",
            "1s to 24h, whole seconds",
            "/releases/0/lanes/maxAge",
            vec![json!("1s"), json!("24h")],
            vec![json!("0s"), json!("1500ms"), json!("86401s")],
        ),
    ]
}

/// The row of `field` in docs/policy.md's tables of fields: (line, its cells' text joined).
fn row(tables: &[Table], field: &str) -> Option<(usize, String)> {
    tables
        .iter()
        .filter(|t| {
            t.header
                .first()
                .is_some_and(|c| c.text.trim().eq_ignore_ascii_case("field"))
        })
        .flat_map(|t| t.rows.iter())
        .find(|(_, cells)| {
            cells
                .first()
                .and_then(|c| c.code.first())
                .is_some_and(|c| c == field)
        })
        .map(|(line, cells)| {
            (
                *line,
                cells
                    .iter()
                    .map(|c| c.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" | "),
            )
        })
}

/// Writes `v` at the JSON pointer `at`, adding the last key if it is not there.
fn set(doc: &mut Value, at: &str, v: Value) {
    let (parent, key) = at.rsplit_once('/').unwrap();
    let parent = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent} not in the base policy"));
    match parent {
        Value::Object(o) => {
            o.insert(key.to_string(), v);
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = v,
        _ => panic!("{at}: not in an object or a list"),
    }
}

fn problem(line: usize, message: String) -> Problem {
    Problem {
        file: PAGE.to_string(),
        line,
        message,
    }
}

/// Each limit: its row shows it, and the parser holds to it at both edges.
pub fn check_limits(docs: &Docs, limits: &[Limit]) -> Vec<Problem> {
    let Some(page) = docs.page(PAGE) else {
        return vec![problem(1, "missing".into())];
    };
    let mut problems = Vec::new();
    if let Err(p) = parse(&base()) {
        panic!("the base policy of tests/docs/policy_limits.rs is refused: {p:?}");
    }
    for l in limits {
        let Some((line, text)) = row(&page.tables, l.field) else {
            problems.push(problem(
                1,
                format!("`{}`: no row, but it has a limit ({})", l.field, l.shows),
            ));
            continue;
        };
        if !text.contains(l.shows) {
            problems.push(problem(
                line,
                format!(
                    "`{}`: the row does not show its limit \"{}\"",
                    l.field, l.shows
                ),
            ));
        }
        let field_path =
            l.at.trim_start_matches('/')
                .split('/')
                .fold("$".to_string(), |p, s| {
                    if s.chars().all(|c| c.is_ascii_digit()) {
                        format!("{p}[{s}]")
                    } else {
                        format!("{p}.{s}")
                    }
                });
        for (want_ok, values) in [(true, &l.accepted), (false, &l.refused)] {
            for v in values {
                let mut doc = base();
                set(&mut doc, l.at, v.clone());
                let shown = if v.is_array() {
                    format!("{} items", v.as_array().unwrap().len())
                } else {
                    v.to_string()
                };
                match (want_ok, parse(&doc)) {
                    (true, Ok(_)) => {}
                    (true, Err(p)) => problems.push(problem(
                        line,
                        format!(
                            "`{}`: the page says {}, but the parser refuses {shown}: {}",
                            l.field,
                            l.shows,
                            p.join("; ")
                        ),
                    )),
                    (false, Ok(_)) => problems.push(problem(
                        line,
                        format!(
                            "`{}`: the page says {}, but the parser accepts {shown}",
                            l.field, l.shows
                        ),
                    )),
                    (false, Err(p)) => {
                        if !p.iter().any(|p| p.starts_with(&field_path)) {
                            problems.push(problem(
                                line,
                                format!(
                                    "`{}`: {shown} is refused, but not at {field_path}: {}",
                                    l.field,
                                    p.join("; ")
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    problems
}

fn duration(nanos: u64) -> String {
    let s = nanos / 1_000_000_000;
    match (nanos % 1_000_000_000, s % 3600, s % 60) {
        (0, 0, _) => format!("{}h", s / 3600),
        (0, _, 0) => format!("{}m", s / 60),
        (0, _, _) => format!("{s}s"),
        (rest, _, _) if rest % 1_000_000 == 0 => format!("{}ms", nanos / 1_000_000),
        _ => format!("{nanos}ns"),
    }
}

/// The defaults the code gives a field left out, as the Default cell must show them:
/// (field, text), read from policies parsed without it.
pub fn defaults() -> Vec<(&'static str, String)> {
    let mut doc = base();
    // The base leaves the defaulted fields out but for these.
    doc["releases"][0]["whenNoKey"]["stickyCookie"]
        .as_object_mut()
        .unwrap()
        .remove("maxAgeSeconds");
    let p = parse(&doc).unwrap_or_else(|e| panic!("{e:?}"));
    let release = &p.releases[0];
    let sticky = match &release.when_no_key {
        dial::core::policy::WhenNoKey::Sticky(s) => s,
        other => panic!("a sticky cookie, got {other:?}"),
    };
    let guard = release.guard.as_ref().unwrap();
    let fleet = guard.fleet.as_ref().unwrap();
    let lanes = release.lanes.as_ref().unwrap();
    let mirror = release.mirror.as_ref().unwrap();
    let code = |s: &str| s.to_string();
    let mut out = vec![
        ("headers.subset", code(&p.headers.subset)),
        ("headers.version", code(&p.headers.version)),
        ("headers.mirror", code(&p.headers.mirror)),
        ("stickyCookie.path", code(&sticky.path)),
        ("stickyCookie.secure", sticky.secure.to_string()),
        ("fleet.path", code(&fleet.path)),
        ("fleet.every", duration(fleet.every)),
        ("fleet.timeout", duration(fleet.timeout)),
        ("lanes.baggage", code(&lanes.member)),
        (
            "mirror.methods",
            format!(
                "[{}]",
                mirror
                    .methods
                    .iter()
                    .map(|m| format!("\"{m}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ];
    if sticky.max_age_seconds.is_none() {
        out.push(("stickyCookie.maxAgeSeconds", "session cookie".into()));
    }
    if fleet.window == guard.window {
        out.push(("fleet.window", "the guard's window".into()));
    }
    out
}

/// Each default's row shows it in its Default column.
pub fn check_defaults(docs: &Docs, defaults: &[(&str, String)]) -> Vec<Problem> {
    let Some(page) = docs.page(PAGE) else {
        return vec![problem(1, "missing".into())];
    };
    let mut problems = Vec::new();
    for (field, value) in defaults {
        let found = page
            .tables
            .iter()
            .filter(|t| {
                t.header
                    .first()
                    .is_some_and(|c| c.text.trim().eq_ignore_ascii_case("field"))
            })
            .find_map(|t| {
                let col = t.column("default")?;
                t.rows.iter().find_map(|(line, cells)| {
                    (cells.first()?.code.first()? == field).then(|| {
                        (
                            *line,
                            cells
                                .get(col)
                                .map(|c| c.text.trim().to_string())
                                .unwrap_or_default(),
                        )
                    })
                })
            });
        match found {
            None => problems.push(problem(1, format!("`{field}`: no row with a Default column, but the code defaults it to {value}"))),
            Some((line, shown)) if shown != *value => problems.push(problem(line, format!(
                "`{field}`: the Default column says \"{shown}\"; the code's default is \"{value}\""))),
            Some(_) => {}
        }
    }
    problems
}
