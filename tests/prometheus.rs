//! Seen in real tools: a real Prometheus (Debian's package, `make prometheus-tools`), started by
//! the test on loopback, scrapes a real Envoy running Dial and evaluates every PromQL expression
//! Dial ships, read from the shipped files themselves: docs/metrics.md's queries, the Flagger
//! MetricTemplates and the Argo Rollouts AnalysisTemplate in istio/analysis/, the alerting rules
//! in istio/analysis/prometheus/dial-alerts.rules.yml (loaded as Prometheus' rule file) and
//! every panel of istio/analysis/grafana-dashboard.json. The traffic is known request by request
//! (each response says where Dial put it), so rates, shares and quantiles are asserted exactly.
//! `promtool check rules` and `promtool test rules` run on the rules too.
//!
//! The YAML files are read with the js-yaml that `make istio-tools` installs for the manifest
//! checks (the crate has no YAML parser), through `node`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::policies::{checkout_with, Core, HOST, PATH};
use support::prometheus::value;
use support::prometheus_server::{http_get, tool, urlencode, PrometheusServer};
use support::{free_port, repo_root, Backend, Client, Envoy, EnvoyConfig};

const RULES: &str = "istio/analysis/prometheus/dial-alerts.rules.yml";
const RULES_TEST: &str = "tests/prometheus/dial-alerts.test.yml";
const FLAGGER: &str = "istio/analysis/flagger-metric-templates.yaml";
const ARGO: &str = "istio/analysis/argo-analysis-template.yaml";
const DASHBOARD: &str = "istio/analysis/grafana-dashboard.json";
const TOKEN: &str = "qa-token-0123456789";

/// What the templates' variables become here. The hard-coded windows (`[5m]`, `[2m]`) stay as
/// shipped: they reach back before Prometheus' first scrape, so every rate covers the whole run.
const RATE_WINDOW: &str = "1m";

// --- Tools -----------------------------------------------------------------------------------

/// Every document of a YAML file, as JSON, parsed by js-yaml.
fn yaml_documents(path: &str) -> Vec<Value> {
    let checks = repo_root().join("tests/istio");
    assert!(
        checks.join("node_modules/js-yaml").exists(),
        "tests/istio/node_modules/js-yaml is missing: run `make istio-tools` (or `make test`)"
    );
    let output = Command::new("node")
        .current_dir(&checks)
        .args([
            "-e",
            "const fs = require('fs'); const yaml = require('js-yaml'); \
             process.stdout.write(JSON.stringify(yaml.loadAll(fs.readFileSync(process.argv[1], 'utf8'))));",
        ])
        .arg(repo_root().join(path))
        .output()
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): Node.js reads the YAML here"));
    assert!(
        output.status.success(),
        "reading {path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

// --- Prometheus --------------------------------------------------------------------------------

/// A Prometheus on 127.0.0.1, scraping one Envoy's admin API every second, with Dial's rules.
struct Prometheus {
    server: PrometheusServer,
    port: u16,
}

impl Prometheus {
    fn start(envoy_admin_port: u16) -> Prometheus {
        let port = free_port();
        Prometheus {
            server: PrometheusServer::start(
                "prometheus",
                port,
                &[envoy_admin_port],
                &[repo_root().join(RULES)],
            ),
            port,
        }
    }

    fn log(&self) -> String {
        self.server.log()
    }

    fn api(&self, path: &str) -> Value {
        let (status, body) = self
            .server
            .get(path)
            .unwrap_or_else(|| panic!("Prometheus does not answer {path}"));
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {status} {body}"));
        assert_eq!(
            (status, v["status"].as_str()),
            (200, Some("success")),
            "{path}: {body}"
        );
        v["data"].clone()
    }

    /// An instant query (`/api/v1/query`), at `at` (Unix seconds) or now.
    fn query(&self, expr: &str, at: Option<f64>) -> Vec<Sample> {
        let time = at.map(|t| format!("&time={t:.3}")).unwrap_or_default();
        let data = self.api(&format!("/api/v1/query?query={}{time}", urlencode(expr)));
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    labels: s["metric"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect(),
                    value: number(&s["value"][1]),
                })
                .collect(),
            Some("scalar") => vec![Sample {
                labels: BTreeMap::new(),
                value: number(&data["result"][1]),
            }],
            other => panic!("{expr}: unexpected result type {other:?}"),
        }
    }

    /// The value of a query that must return exactly one sample.
    fn scalar(&self, expr: &str, at: Option<f64>) -> Option<f64> {
        let samples = self.query(expr, at);
        assert!(samples.len() <= 1, "{expr}: {samples:?}");
        samples.first().map(|s| s.value)
    }
}

#[derive(Debug, Clone)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Prometheus writes sample values as strings: "0.25", "NaN", "+Inf".
fn number(v: &Value) -> f64 {
    let s = v.as_str().unwrap();
    s.parse()
        .unwrap_or_else(|_| panic!("not a sample value: {s}"))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until `ok` holds, or fails with `what`.
fn wait_until(what: &str, seconds: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

// --- The shipped queries -----------------------------------------------------------------------

/// One PromQL expression as shipped, with its templates' variables filled in.
#[derive(Debug)]
struct Shipped {
    /// Where it comes from, e.g. "flagger dial-canary-success-rate".
    name: String,
    expr: String,
    /// Argo's successCondition, for Argo metrics.
    condition: Option<String>,
}

/// Replaces every `{{ name }}` (Flagger, Argo) by its value; an unknown one is an error.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed {{{{ in {template}"))
            + open;
        let name = rest[open + 2..close].trim();
        let value = vars
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no test value for template variable {name} in {template}"))
            .1;
        out.push_str(value);
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    out
}

/// docs/metrics.md's ```promql blocks, one expression per `#` comment.
fn docs_queries() -> Vec<Shipped> {
    let page = std::fs::read_to_string(repo_root().join("docs/metrics.md")).unwrap();
    let mut queries = Vec::new();
    let mut in_block = false;
    for line in page.lines() {
        match line.trim() {
            "```promql" => in_block = true,
            "```" if in_block => in_block = false,
            l if in_block && l.starts_with('#') => queries.push(Shipped {
                name: format!("docs {}", l.trim_start_matches('#').trim()),
                expr: String::new(),
                condition: None,
            }),
            l if in_block && !l.is_empty() => {
                let q = queries
                    .last_mut()
                    .expect("a docs promql block starts with a # comment");
                q.expr.push_str(line);
                q.expr.push('\n');
            }
            _ => {}
        }
    }
    assert!(!queries.is_empty(), "no ```promql block in docs/metrics.md");
    queries
}

fn flagger_queries(release: &str) -> Vec<Shipped> {
    let vars = [
        ("variables.release", release),
        ("interval", RATE_WINDOW),
        ("target", "checkout"),
        ("name", "checkout"),
        ("namespace", "shop"),
        ("service", "checkout"),
        ("ingress", "checkout"),
    ];
    yaml_documents(FLAGGER)
        .into_iter()
        .map(|doc| {
            assert_eq!(doc["kind"], "MetricTemplate", "{doc}");
            assert_eq!(doc["spec"]["provider"]["type"], "prometheus", "{doc}");
            Shipped {
                name: format!("flagger {}", doc["metadata"]["name"].as_str().unwrap()),
                expr: fill(doc["spec"]["query"].as_str().unwrap(), &vars),
                condition: None,
            }
        })
        .collect()
}

fn argo_queries(release: &str) -> Vec<Shipped> {
    let docs = yaml_documents(ARGO);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["kind"], "AnalysisTemplate");
    let vars = [
        ("args.release", release),
        ("args.prometheus-address", "http://127.0.0.1"),
    ];
    docs[0]["spec"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Shipped {
            name: format!("argo {}", m["name"].as_str().unwrap()),
            expr: fill(
                m["provider"]["prometheus"]["query"].as_str().unwrap(),
                &vars,
            ),
            condition: Some(m["successCondition"].as_str().unwrap().to_string()),
        })
        .collect()
}

fn alert_rules() -> Vec<Shipped> {
    let docs = yaml_documents(RULES);
    assert_eq!(docs.len(), 1);
    docs[0]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| Shipped {
            name: format!(
                "alert {}",
                r["alert"].as_str().expect("alerting rules only")
            ),
            expr: r["expr"].as_str().unwrap().to_string(),
            condition: None,
        })
        .collect()
}

fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_root().join(DASHBOARD)).unwrap()).unwrap()
}

/// Every panel target's expr, with the dashboard's variables and Grafana's `$__rate_interval`.
fn dashboard_queries(release: &str) -> Vec<Shipped> {
    let d = dashboard();
    let vars: Vec<String> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(vars, ["datasource", "release"], "the dashboard's variables");
    let mut queries = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{target}");
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("${release}", release)
                .replace("$release", release)
                .replace("${__rate_interval}", RATE_WINDOW)
                .replace("$__rate_interval", RATE_WINDOW);
            assert!(!expr.contains('$'), "an unknown variable in {expr}");
            queries.push(Shipped {
                name: format!(
                    "dashboard {} {}",
                    panel["title"].as_str().unwrap(),
                    target["refId"].as_str().unwrap()
                ),
                expr,
                condition: None,
            });
        }
    }
    queries
}

// --- Argo's successCondition ---------------------------------------------------------------------

/// Argo Rollouts evaluates successCondition with expr-lang, `result` being the Prometheus
/// vector as a list of float64 (empty when no series matched). This evaluates, in Rust, the
/// small part of that language the shipped conditions use: terms joined by `||`, evaluated
/// left to right and short-circuiting, each one of `len(result) == 0`, `isNaN(result[0])`,
/// `result[0] <op> <number>`. As in expr-lang, `result[0]` on an empty list is an error (an
/// Argo measurement Error), and a comparison with NaN is false. Any other term fails the test,
/// so a changed condition must be taught here first.
fn argo_condition(condition: &str, result: &[f64]) -> Result<bool, String> {
    let first = || {
        result
            .first()
            .copied()
            .ok_or_else(|| format!("{condition}: index out of range: result[0] of []"))
    };
    for term in condition.split("||").map(str::trim) {
        let holds = if term == "len(result) == 0" {
            result.is_empty()
        } else if term == "isNaN(result[0])" {
            first()?.is_nan()
        } else if let Some(comparison) = term.strip_prefix("result[0]") {
            let comparison = comparison.trim();
            let (op, bound) = ["<=", ">=", "==", "<", ">"]
                .iter()
                .find_map(|op| Some((*op, comparison.strip_prefix(op)?)))
                .unwrap_or_else(|| panic!("unsupported comparison in {condition}"));
            let bound: f64 = bound.trim().parse().unwrap();
            let x = first()?;
            match op {
                "<=" => x <= bound,
                ">=" => x >= bound,
                "==" => x == bound,
                "<" => x < bound,
                _ => x > bound,
            }
        } else {
            panic!("unsupported term {term:?} in {condition}: teach argo_condition")
        };
        if holds {
            return Ok(true);
        }
    }
    Ok(false)
}

// --- Expected values -----------------------------------------------------------------------------

/// Prometheus' histogram_quantile on cumulative bucket counts (upper bound, count), as in its
/// promql/quantile.go: linear interpolation in the bucket holding the rank, the first bucket
/// starting at 0, the +Inf bucket answered with the highest finite bound. Rates of buckets that
/// all start at 0 on the same scrapes are the counts times one factor, which cancels.
fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let mut b = buckets.to_vec();
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap());
    assert!(b.last().unwrap().0.is_infinite());
    let observations = b.last().unwrap().1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let i = b[..b.len() - 1]
        .iter()
        .position(|(_, c)| *c >= rank)
        .unwrap_or(b.len() - 1);
    if i == b.len() - 1 {
        return b[b.len() - 2].0;
    }
    let (start, count) = if i > 0 {
        rank -= b[i - 1].1;
        (b[i - 1].0, b[i].1 - b[i - 1].1)
    } else {
        (0.0, b[0].1)
    };
    start + (b[i].0 - start) * (rank / count)
}

/// Equal as computed values are: exactly, or within float rounding; NaN equals NaN.
fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// The samples, keyed by one label, must be exactly `want`.
fn assert_by(name: &str, got: &[Sample], label: &str, want: &[(&str, f64)]) {
    let got: BTreeMap<String, f64> = got
        .iter()
        .map(|s| (s.labels.get(label).cloned().unwrap_or_default(), s.value))
        .collect();
    let want_map: BTreeMap<String, f64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want_map.keys().collect::<Vec<_>>(),
        "{name}: {got:?}, expected {want_map:?}"
    );
    for (k, v) in &want_map {
        assert!(
            same(got[k], *v),
            "{name}: {label}={k} is {}, expected {v}",
            got[k]
        );
    }
}

fn assert_one(name: &str, got: &[Sample], want: f64) {
    assert_eq!(got.len(), 1, "{name}: {got:?}, expected one sample {want}");
    assert!(
        same(got[0].value, want),
        "{name}: {} expected {want}",
        got[0].value
    );
}

/// What a shipped query must return at one moment.
enum Want {
    /// Exactly these samples, keyed by one label (`assert_by`).
    By(&'static str, Vec<(&'static str, f64)>),
    /// Exactly one sample (`assert_one`).
    One(f64),
    /// No sample, for the reason given.
    Nothing(&'static str),
    /// Exactly one sample, with these labels and exactly this value.
    Labelled(Vec<(&'static str, &'static str)>, f64),
}

impl Want {
    fn check(&self, name: &str, got: &[Sample]) {
        match self {
            Want::By(label, want) => assert_by(name, got, label, want),
            Want::One(want) => assert_one(name, got, *want),
            Want::Nothing(why) => assert!(got.is_empty(), "{name}: {why}: {got:?}"),
            Want::Labelled(labels, want) => {
                assert_eq!(got.len(), 1, "{name}: {got:?}");
                for (k, v) in labels {
                    assert_eq!(got[0].labels[*k].as_str(), *v, "{name}: {got:?}");
                }
                assert_eq!(got[0].value, *want, "{name}: {got:?}");
            }
        }
    }
}

/// A shipped query's expected values before any traffic and after the known traffic.
struct Expect {
    name: &'static str,
    idle: Want,
    done: Want,
    /// An Argo metric: its successCondition passes before the traffic and fails after.
    argo: bool,
}

/// What Dial did, request by request, as its responses tell (`x-dial-assignment`).
#[derive(Default)]
struct Tally {
    /// (subset, reason) -> requests.
    requests: HashMap<(String, String), u64>,
    /// (subset, status class) -> responses.
    responses: HashMap<(String, String), u64>,
}

impl Tally {
    fn record(&mut self, r: &support::http::Response) -> (String, String) {
        let assignment = r.header("x-dial-assignment").expect("x-dial-assignment");
        let field = |key: &str| {
            assignment
                .split("; ")
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .unwrap()
                .to_string()
        };
        let (subset, reason) = (field("subset"), field("reason"));
        assert_eq!(r.backend(), subset, "{assignment}");
        *self
            .requests
            .entry((subset.clone(), reason.clone()))
            .or_default() += 1;
        let class = format!("{}xx", r.status / 100);
        *self.responses.entry((subset.clone(), class)).or_default() += 1;
        (subset, reason)
    }

    fn requests_on(&self, subset: &str) -> f64 {
        self.requests
            .iter()
            .filter(|((s, _), _)| s == subset)
            .map(|(_, n)| *n as f64)
            .sum()
    }

    fn responses_on(&self, subset: &str) -> f64 {
        self.responses
            .iter()
            .filter(|((s, _), _)| s == subset)
            .map(|(_, n)| *n as f64)
            .sum()
    }

    fn errors_on(&self, subset: &str) -> f64 {
        *self
            .responses
            .get(&(subset.to_string(), "5xx".to_string()))
            .unwrap_or(&0) as f64
    }

    fn total(&self) -> f64 {
        self.requests.values().map(|n| *n as f64).sum()
    }
}

// --- The tests -----------------------------------------------------------------------------------

#[test]
fn promtool_checks_and_unit_tests_the_alerting_rules() {
    let promtool = tool("promtool");
    for args in [
        vec!["check", "rules", RULES],
        vec!["test", "rules", RULES_TEST],
    ] {
        let output = Command::new(&promtool)
            .current_dir(repo_root())
            .args(&args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        println!("$ promtool {}\n{text}", args.join(" "));
        assert!(
            output.status.success(),
            "promtool {}: {text}",
            args.join(" ")
        );
        assert!(text.contains("SUCCESS"), "{text}");
    }
}

#[test]
fn every_shipped_query_evaluates_as_expected_in_a_real_prometheus() {
    let started = Instant::now();
    // A guarded canary (window 2s) and a mirror, on the example policy.
    let policy = checkout_with(&[
        (
            "guard",
            json!({ "subset": "canary", "fallback": "stable", "window": "2s",
                    "minRequests": 20, "maxErrorRate": 0.05 }),
        ),
        ("mirror", json!({ "version": "v3", "percent": 50 })),
    ]);
    let core = Core::new(&policy);
    let stable_users = core.users_on(HOST, PATH, "stable", 200);
    let canary_users = core.users_on(HOST, PATH, "canary", 40);

    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let envoy = Envoy::start(&EnvoyConfig::new(
        &policy,
        &[("stable", stable.port), ("canary", canary.port)],
    ));
    let prometheus = Prometheus::start(envoy.admin_port);
    let version = http_get(prometheus.port, "/api/v1/status/buildinfo")
        .map(|(_, b)| serde_json::from_str::<Value>(&b).unwrap()["data"]["version"].clone())
        .unwrap();
    println!("Prometheus {version} on 127.0.0.1:{}", prometheus.port);

    // The rules file loaded, both rules healthy.
    let groups = prometheus.api("/api/v1/rules");
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(rules.len(), alert_rules().len(), "{groups}");
    for rule in &rules {
        assert_eq!(rule["type"], "alerting", "{rule}");
        assert_ne!(rule["health"], "err", "{rule}");
    }

    // Two scrapes of the untouched proxy: every Dial series exists, at 0.
    wait_until("two scrapes of Envoy", 20, || {
        prometheus.scalar("count_over_time(dial_policy_loads_total[1m])", None) >= Some(2.0)
    });
    let idle_at = unix_now();
    // A scrape stamped just before `idle_at` may still be reading Envoy: let it finish before
    // any traffic, so that every sample up to `idle_at` is of the untouched proxy.
    thread::sleep(Duration::from_millis(300));

    // --- Known traffic. Stable: 200 users, the first 10 answered 500. Canary: 40 users twice,
    // answered 200; then the canary fails (503, 30 ms late) until the guard trips; then
    // failing override requests until the canary has 40 failures; then each canary user once
    // more, which the tripped guard sends to stable. Every response says where Dial put it.
    let mut tally = Tally::default();
    let mut client = Client::new(envoy.port);
    let mut get = |tally: &mut Tally, user: &str, extra: Option<(&str, &str)>| {
        let mut headers = vec![("x-user-id", user)];
        headers.extend(extra);
        let r = client.get(HOST, PATH, &headers);
        tally.record(&r)
    };
    stable.set_status(500);
    for (i, u) in stable_users.iter().enumerate() {
        if i == 10 {
            stable.set_status(200);
        }
        assert_eq!(get(&mut tally, u, None), ("stable".into(), "hash".into()));
        if i % 5 == 0 {
            let c = &canary_users[(i / 5) % canary_users.len()];
            assert_eq!(get(&mut tally, c, None), ("canary".into(), "hash".into()));
            assert_eq!(get(&mut tally, c, None), ("canary".into(), "hash".into()));
        }
    }
    canary.set_status(503);
    canary.set_delay(Duration::from_millis(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failed_before_trip = 0;
    for u in canary_users.iter().cycle() {
        assert!(Instant::now() < deadline, "the guard did not trip");
        match get(&mut tally, u, None) {
            (s, r) if s == "canary" && r == "hash" => failed_before_trip += 1,
            (s, r) if s == "stable" && r == "guardrail" => break,
            other => panic!("{other:?}"),
        }
    }
    // What the guard judged, from its log line: "error rate X% against Y% for stable over N
    // responses in the last M ms". It trips on a window of at least minRequests (20) canary
    // responses with more than 5 points more failures than stable: so at least 2 failures
    // (1 of 20 is 5%, not above it). Each was an answer the loop above saw as canary's before
    // the trip: at most `failed_before_trip`. And by the 20th failure the window holds enough
    // (20 responses; 20 failures of at most 100 answers is 20%, stable's share at most 10 of
    // its 200); the VM that serves judges within its next tick (500 ms), in which at most 17
    // more 30 ms late failures fit: at most 37, within the 40 failures the expected values
    // below are built on (the override requests that follow top the failures up to 40).
    let judged_failures = {
        let log = envoy.log();
        let line = log
            .lines()
            .find(|l| l.contains("dial: guard tripped: release checkout, subset canary"))
            .unwrap_or_else(|| panic!("no trip in the log:\n{log}"));
        let after = |key: &str| -> f64 {
            let rest =
                &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
            rest.split(['%', ' '])
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{key} in {line}"))
        };
        let (rate, responses) = (after("error rate "), after(" over "));
        assert!(responses >= 20.0, "{line}");
        (rate * responses / 100.0).round() as u64
    };
    assert!(
        (2..=failed_before_trip).contains(&judged_failures) && failed_before_trip <= 40,
        "the guard judged {judged_failures} failures; {failed_before_trip} failed before the trip"
    );
    while tally.errors_on("canary") < 40.0 {
        let r = get(
            &mut tally,
            &canary_users[0],
            Some(("x-dial-override", &format!("canary; token={TOKEN}"))),
        );
        assert_eq!(r, ("canary".into(), "override".into()));
    }
    for u in &canary_users {
        assert_eq!(
            get(&mut tally, u, None),
            ("stable".into(), "guardrail".into())
        );
    }
    let mirrored = stable
        .seen()
        .iter()
        .chain(canary.seen().iter())
        .filter(|s| s.header("x-dial-mirror").is_some())
        .count() as f64;
    println!(
        "traffic: {} requests; {failed_before_trip} canary failures before the guard tripped \
         ({judged_failures} in the window it tripped on); \
         requests {:?}; responses {:?}; {mirrored} marked for the mirror",
        tally.total(),
        tally.requests,
        tally.responses
    );

    // Envoy's own exposition agrees with the tally, histograms flushed.
    let final_count = |subset: &str| {
        value(
            &envoy.prometheus(),
            "dial_request_duration_milliseconds_count",
            &[
                ("release", "checkout"),
                ("subset", subset),
                ("version", if subset == "stable" { "v1" } else { "v2" }),
            ],
        )
    };
    wait_until("Envoy's histograms to flush", 10, || {
        final_count("stable") == Some(tally.responses_on("stable"))
            && final_count("canary") == Some(tally.responses_on("canary"))
    });
    let exposition = envoy.prometheus();
    assert_eq!(
        value(
            &exposition,
            "dial_mirrored_requests_total",
            &[("release", "checkout"), ("version", "v3")]
        ),
        Some(mirrored)
    );
    let buckets = |subset: &str| -> Vec<(f64, f64)> {
        exposition
            .iter()
            .filter(|s| {
                s.name == "dial_request_duration_milliseconds_bucket"
                    && s.labels["subset"] == subset
            })
            .map(|s| {
                let le = &s.labels["le"];
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (bound, s.value)
            })
            .collect()
    };
    let p99_stable = histogram_quantile(0.99, &buckets("stable"));
    let p99_canary = histogram_quantile(0.99, &buckets("canary"));
    println!(
        "p99 from Envoy's buckets: stable {p99_stable} ms, canary {p99_canary} ms; buckets: \
         stable {:?} canary {:?}",
        buckets("stable"),
        buckets("canary")
    );
    assert!(
        p99_canary > 25.0,
        "the canary answered 30 ms late: p99 {p99_canary} ms (stable {p99_stable} ms)"
    );

    // Prometheus has scraped the final state.
    wait_until("Prometheus to scrape the final state", 15, || {
        prometheus.scalar(
            "sum(dial_request_duration_milliseconds_count{release=\"checkout\"})",
            None,
        ) == Some(tally.total())
            && prometheus.scalar(
                "dial_guard_tripped{release=\"checkout\",subset=\"canary\"}",
                None,
            ) == Some(1.0)
    });
    let done_at = unix_now();

    // The expected values, from the tally.
    let (s_total, c_total) = (tally.responses_on("stable"), tally.responses_on("canary"));
    let (s_errors, c_errors) = (tally.errors_on("stable"), tally.errors_on("canary"));
    let success = |s: &str| 1.0 - tally.errors_on(s) / tally.responses_on(s);
    let error_rate = |s: &str| tally.errors_on(s) / tally.responses_on(s);
    let excess = c_errors / c_total - s_errors / s_total;
    assert!(excess > 0.05);
    let all_requests_rate = prometheus
        .scalar(
            &format!("sum(rate(dial_requests_total{{release=\"checkout\"}}[{RATE_WINDOW}]))"),
            Some(done_at),
        )
        .unwrap();

    let shipped: Vec<Shipped> = docs_queries()
        .into_iter()
        .chain(flagger_queries("checkout"))
        .chain(argo_queries("checkout"))
        .chain(alert_rules())
        .chain(dashboard_queries("checkout"))
        .collect();
    println!("{} shipped queries", shipped.len());
    let nan2 = || Want::By("subset", vec![("canary", f64::NAN), ("stable", f64::NAN)]);
    let per_subset = |f: &dyn Fn(&str) -> f64| {
        Want::By(
            "subset",
            vec![("canary", f("canary")), ("stable", f("stable"))],
        )
    };
    let p99s = || {
        Want::By(
            "subset",
            vec![("canary", p99_canary), ("stable", p99_stable)],
        )
    };
    let expect = |name, idle, done| Expect {
        name,
        idle,
        done,
        argo: false,
    };
    let argo = |name, idle, done| Expect {
        name,
        idle,
        done,
        argo: true,
    };
    // Before traffic, a rate is 0/0 (Dial defines its series at 0): NaN.
    let expectations = [
        expect(
            "docs Success rate (non-5xx share) per subset",
            nan2(),
            per_subset(&success),
        ),
        expect(
            "docs p99 latency per subset, in milliseconds",
            nan2(),
            p99s(),
        ),
        expect(
            "flagger dial-canary-success-rate",
            Want::One(f64::NAN),
            Want::One(100.0 * success("canary")),
        ),
        expect(
            "flagger dial-canary-p99-latency-ratio",
            Want::One(f64::NAN),
            Want::One(p99_canary / p99_stable),
        ),
        expect(
            "flagger dial-canary-guard-tripped",
            Want::One(0.0),
            Want::One(1.0),
        ),
        argo(
            "argo canary-success-rate",
            Want::One(f64::NAN),
            Want::One(success("canary")),
        ),
        argo(
            "argo canary-p99-vs-stable",
            Want::One(f64::NAN),
            Want::One(p99_canary / p99_stable),
        ),
        argo(
            "argo canary-guard-not-tripped",
            Want::One(0.0),
            Want::One(1.0),
        ),
        expect(
            "alert DialGuardTripped",
            Want::Nothing("not tripped, no alert"),
            // Tripped on one proxy.
            Want::Labelled(vec![("release", "checkout"), ("subset", "canary")], 1.0),
        ),
        expect(
            "alert DialCanaryErrorRateAboveStable",
            Want::Nothing("no traffic, no alert"),
            Want::By("release", vec![("checkout", excess)]),
        ),
        expect(
            "dashboard Share of requests per subset A",
            nan2(),
            per_subset(&|s| tally.requests_on(s) / tally.total()),
        ),
        expect(
            "dashboard Effective weight per subset A",
            Want::By("subset", vec![("canary", 10.0), ("stable", 90.0)]),
            Want::By("subset", vec![("canary", 0.0), ("stable", 100.0)]),
        ),
        expect(
            "dashboard Error rate per subset (5xx share) A",
            nan2(),
            per_subset(&error_rate),
        ),
        // The fleet verdict's expression (tests/fleet.rs), minRequests 20.
        expect(
            "dashboard Error rate per subset (5xx share) B",
            Want::Nothing("no canary traffic, no sample"),
            Want::By("release", vec![("checkout", excess)]),
        ),
        expect("dashboard p99 latency per subset A", nan2(), p99s()),
        expect(
            "dashboard Guard A",
            Want::By("subset", vec![("canary", 0.0)]),
            Want::By("subset", vec![("canary", 1.0)]),
        ),
        expect(
            "dashboard Guard B",
            Want::By("subset", vec![("canary", 0.0)]),
            Want::By("subset", vec![("canary", 1.0)]),
        ),
        // A rate: its share of all requests' rate is the share of requests marked.
        expect(
            "dashboard Mirrored requests A",
            Want::By("version", vec![("v3", 0.0)]),
            Want::By(
                "version",
                vec![("v3", all_requests_rate * mirrored / tally.total())],
            ),
        ),
    ];
    let mut unused: BTreeSet<&str> = expectations.iter().map(|e| e.name).collect();
    for q in &shipped {
        let idle = prometheus.query(&q.expr, Some(idle_at));
        let done = prometheus.query(&q.expr, Some(done_at));
        let show = |v: &[Sample]| {
            v.iter()
                .map(|s| {
                    let labels: Vec<String> = s
                        .labels
                        .iter()
                        .filter(|(k, _)| *k != "__name__")
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    format!("{{{}}} {}", labels.join(","), s.value)
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "- {}\n    before traffic: [{}]\n    after:          [{}]",
            q.name,
            show(&idle),
            show(&done)
        );
        let want = expectations
            .iter()
            .find(|e| e.name == q.name)
            .unwrap_or_else(|| {
                panic!("no expectation for the shipped query {:?}: add one", q.name)
            });
        unused.remove(want.name);
        want.idle.check(&q.name, &idle);
        want.done.check(&q.name, &done);
        if want.argo {
            let values = |v: &[Sample]| v.iter().map(|s| s.value).collect::<Vec<f64>>();
            let condition = q.condition.as_deref().unwrap();
            // No traffic yet (NaN, or 0 trips): not a failure. The known traffic: the
            // canary fails 40 of its answers, answers 30 ms late and tripped its guard.
            assert_eq!(
                argo_condition(condition, &values(&idle)),
                Ok(true),
                "{}",
                q.name
            );
            assert_eq!(
                argo_condition(condition, &values(&done)),
                Ok(false),
                "{}",
                q.name
            );
        }
    }
    assert!(
        unused.is_empty(),
        "expectations for queries no longer shipped: {unused:?}"
    );

    // Argo on a release no scraped proxy has (or before Prometheus holds two samples): no
    // series, an empty vector, which the conditions must take as "no data", not index.
    for q in argo_queries("payments") {
        let got = prometheus.query(&q.expr, Some(done_at));
        assert!(got.is_empty(), "{}: {got:?}", q.name);
        let condition = q.condition.as_deref().unwrap();
        assert_eq!(argo_condition(condition, &[]), Ok(true), "{}", q.name);
        // Without the length check first, Argo's measurement would be an Error.
        let unguarded = condition.replace("len(result) == 0 || ", "");
        assert!(argo_condition(&unguarded, &[]).is_err(), "{unguarded}");
    }

    // Flagger on that release: no sample ("no values found", a failed check) for the rates,
    // 0 for the guard, whose query falls back to vector(0).
    for q in flagger_queries("payments") {
        let got = prometheus.query(&q.expr, Some(done_at));
        println!("- {} on a release nobody has: {got:?}", q.name);
        match q.name.as_str() {
            "flagger dial-canary-guard-tripped" => assert_one(&q.name, &got, 0.0),
            _ => assert!(got.is_empty(), "{}: {got:?}", q.name),
        }
    }

    // The dashboard's release variable, as Grafana's label_values() asks Prometheus.
    let releases = prometheus.api("/api/v1/label/release/values?match[]=dial_requests_total");
    assert_eq!(releases, json!(["checkout"]));

    // Alerts: the guard's fires at once; the error rate's waits out its `for: 2m`, pending.
    wait_until("the alerts", 10, || {
        let alerts = prometheus.api("/api/v1/alerts");
        let state = |name: &str| {
            alerts["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["alertname"] == name)
                .map(|a| {
                    (
                        a["state"].as_str().unwrap().to_string(),
                        number(&a["value"]),
                    )
                })
        };
        match (
            state("DialGuardTripped"),
            state("DialCanaryErrorRateAboveStable"),
        ) {
            (Some((g, gv)), Some((e, ev))) => {
                g == "firing" && gv == 1.0 && e == "pending" && same(ev, excess)
            }
            _ => false,
        }
    });
    let alerts = prometheus.query("ALERTS", None);
    println!("ALERTS: {alerts:?}");
    let state_of = |name: &str| {
        alerts
            .iter()
            .find(|s| s.labels["alertname"] == name)
            .map(|s| s.labels["alertstate"].clone())
    };
    assert_eq!(state_of("DialGuardTripped").as_deref(), Some("firing"));
    assert_eq!(
        state_of("DialCanaryErrorRateAboveStable").as_deref(),
        Some("pending")
    );
    let guard_alert = alerts
        .iter()
        .find(|s| s.labels["alertname"] == "DialGuardTripped")
        .unwrap();
    assert_eq!(
        (
            guard_alert.labels["release"].as_str(),
            guard_alert.labels["subset"].as_str(),
            guard_alert.labels["severity"].as_str()
        ),
        ("checkout", "canary", "warning")
    );

    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
    let log = prometheus.log();
    assert!(
        !log.contains("level=error"),
        "Prometheus logged errors:\n{log}"
    );
    println!("done in {:?}", started.elapsed());
}
