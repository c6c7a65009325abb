//! docs/metrics.md's table of series against what src/core/stats.rs defines: every series (name,
//! type, labels) the catalog gives a policy that uses every feature, the policy counters and the
//! VM memory gauge, is a row, and every row is one of them. The label values the code
//! enumerates (the reasons of `dial_requests_total`, of `dial_lane_rejected_total` and of
//! `dial_fleet_query_failures_total`) are the ones the row's Meaning names.

use std::collections::BTreeMap;

use dial::core::catalog::Catalog;
use dial::core::decide::Reason;
use dial::core::fleet::Failure;
use dial::core::lane::Rejection;
use dial::core::policy::Policy;
use dial::core::stats::{self, Kind, Metric};

use super::checks::{Docs, Problem};

pub const PAGE: &str = "docs/metrics.md";

/// A series as the table documents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub kind: String,
    /// In the order they appear in the metric name.
    pub labels: Vec<String>,
    /// For a label whose values the code enumerates: the values the Meaning cell must name.
    pub values: Vec<String>,
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    }
}

/// `release=.=checkout;.;subset=.=canary;.;dial_requests_total` -> (name, label names).
fn split(name: &str) -> (String, Vec<String>) {
    let mut parts: Vec<&str> = name.split(";.;").collect();
    let metric = parts.pop().unwrap_or_default().to_string();
    let labels = parts
        .iter()
        .map(|p| p.split_once("=.=").map_or(*p, |(t, _)| t).to_string())
        .collect();
    (metric, labels)
}

/// Every series Dial can define: the catalog of a policy with every feature (a mirror, a guard
/// with both rates and the fleet verdict, lanes that are followed), plus the policy-level ones.
pub fn emitted() -> BTreeMap<String, Series> {
    let policy = Policy::parse(super::policy_limits::base().to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut metrics: Vec<Metric> = Catalog::for_policy(&policy).metrics;
    metrics.extend(stats::policy_counters());
    metrics.push(stats::vm_memory_gauge());
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    for m in metrics {
        let (name, labels) = split(&m.name);
        let series = Series {
            kind: kind(m.kind).to_string(),
            labels,
            values: Vec::new(),
        };
        if let Some(seen) = out.get(&name) {
            assert_eq!(
                *seen, series,
                "{name} is defined with two sets of labels or types"
            );
        }
        out.insert(name, series);
    }
    let values = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
    for (name, v) in [
        (
            stats::REQUESTS,
            values(Reason::ALL.iter().map(|r| r.as_str()).collect()),
        ),
        (
            stats::LANE_REJECTED,
            values(Rejection::ALL.iter().map(|r| r.as_str()).collect()),
        ),
        (
            stats::FLEET_FAILURES,
            values(Failure::ALL.iter().map(|f| f.as_str()).collect()),
        ),
    ] {
        out.get_mut(name)
            .unwrap_or_else(|| panic!("{name} is not in the catalog"))
            .values = v;
    }
    // A metric stats.rs names but the policy above does not make: extend the policy.
    let source = include_str!("../../src/core/stats.rs");
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let Some((_, value)) = rest.split_once("&str = \"") else {
            continue;
        };
        let name = value.trim_end_matches("\";");
        assert!(
            out.contains_key(name),
            "src/core/stats.rs names {name}, which the policy of tests/docs/policy_limits.rs::base() does not define: give it what makes {name}"
        );
    }
    out
}

/// The table whose first column is `Name`: every series a row, with its type and labels, and
/// the enumerated label values in its Meaning.
pub fn check(docs: &Docs, emitted: &BTreeMap<String, Series>) -> Vec<Problem> {
    let problem = |line: usize, message: String| Problem {
        file: PAGE.to_string(),
        line,
        message,
    };
    let Some(page) = docs.page(PAGE) else {
        return vec![problem(1, "missing: it lists every series".into())];
    };
    let Some(table) = page.tables.iter().find(|t| {
        t.header
            .first()
            .is_some_and(|c| c.text.trim().eq_ignore_ascii_case("name"))
    }) else {
        return vec![problem(
            1,
            "no table of series (first column `Name`)".into(),
        )];
    };
    let (Some(ty), Some(labels), Some(meaning)) = (
        table.column("type"),
        table.column("labels"),
        table.column("meaning"),
    ) else {
        return vec![problem(
            table.line,
            "the table of series needs columns Name, Type, Labels, Meaning".into(),
        )];
    };
    let mut problems = Vec::new();
    let mut documented: BTreeMap<String, usize> = BTreeMap::new();
    for (line, cells) in &table.rows {
        let Some(name) = cells.first().and_then(|c| c.code.first()) else {
            continue;
        };
        let cell = |i: usize| {
            cells
                .get(i)
                .map(|c| c.text.trim().to_string())
                .unwrap_or_default()
        };
        if let Some(first) = documented.insert(name.clone(), *line) {
            problems.push(problem(
                *line,
                format!("`{name}`: a second row (line {first})"),
            ));
        }
        let Some(series) = emitted.get(name) else {
            problems.push(problem(
                *line,
                format!("`{name}`: src/core/stats.rs defines no such series"),
            ));
            continue;
        };
        if cell(ty) != series.kind {
            problems.push(problem(
                *line,
                format!(
                    "`{name}`: documented as {}; it is a {}",
                    cell(ty),
                    series.kind
                ),
            ));
        }
        let shown: Vec<String> = cell(labels)
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if shown != series.labels {
            problems.push(problem(
                *line,
                format!(
                    "`{name}`: documented with labels [{}]; it has [{}]",
                    shown.join(", "),
                    series.labels.join(", ")
                ),
            ));
        }
        if !series.values.is_empty() {
            let named: Vec<String> = cells
                .get(meaning)
                .map(|c| {
                    c.code
                        .iter()
                        .filter(|v| !series.labels.contains(v))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let mut want = series.values.clone();
            let mut got = named.clone();
            want.sort();
            got.sort();
            if got != want {
                problems.push(problem(
                    *line,
                    format!(
                        "`{name}`: its Meaning names the values {}; the code's are {}",
                        named.join(" "),
                        series.values.join(" ")
                    ),
                ));
            }
        }
    }
    for name in emitted.keys() {
        if !documented.contains_key(name) {
            problems.push(problem(
                table.line,
                format!(
                    "`{name}` ({}) is defined by src/core/stats.rs but has no row",
                    emitted[name].kind
                ),
            ));
        }
    }
    problems
}
