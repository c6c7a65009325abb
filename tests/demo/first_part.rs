//! The demo's first part, against an Envoy running the prepared example: the split tables
//! (signed-in users, anonymous visitors, the search A/B test), the rules-and-safety lines
//! (`showcase`), what the shadow received and Dial's metrics. `make demo` prints it
//! (`demo.rs`); tests/demo_safety.rs runs the same code against its own Envoy and compares the
//! lines with the README's demo output (`readme_output.rs`).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::prepare;
use crate::showcase;
use crate::support::{self, Backend, Client};

/// Where `make demo` listens: what its lines show, whatever port a test's Envoy has.
pub const PORT: u16 = 10000;
pub const ADMIN_PORT: u16 = 9901;
pub const HOST: &str = "shop.example.com";
pub const SIGNED_IN: usize = 4000;
pub const ANONYMOUS: usize = 1000;
pub const SEARCHERS: usize = 2000;

/// The Envoy the lines are taken from: its listener and admin ports.
pub struct Target {
    pub port: u16,
    pub admin_port: u16,
}

/// The demo's first line.
pub fn header(envoy: &Path, module: &Path) -> String {
    format!(
        "Dial demo: Envoy ({}) with {} ({} bytes) on 127.0.0.1:{PORT}, policy from envoy-config/envoy.yaml (its ramp starting an hour from now, fresh secrets in Envoy's environment: target/demo/envoy.yaml)",
        envoy.display(),
        module.display(),
        std::fs::metadata(module).map(|m| m.len()).unwrap_or(0)
    )
}

/// The demo's last line.
pub fn took(seconds: f64) -> String {
    format!("\nThe whole demo took {seconds:.1}s.")
}

/// The line after the first part.
pub fn summary(requests: usize, seconds: f64) -> String {
    format!(
        "\n{requests} requests through Envoy in {seconds:.1}s. Envoy's log: target/demo/envoy.log"
    )
}

pub fn assignment_field<'a>(r: &'a support::http::Response, key: &str) -> &'a str {
    r.header("x-dial-assignment")
        .unwrap_or("")
        .split("; ")
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("-")
}

/// A release of the example policy, by name.
pub fn release<'a>(policy: &'a Value, name: &str) -> &'a Value {
    policy["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no release {name} in envoy-config/envoy.yaml"))
}

/// One row per subset: how many users landed there and whether they stayed.
#[derive(Default)]
struct Row {
    users: usize,
    stayed: usize,
    backends: HashMap<String, usize>,
}

/// A release's subsets: (name, version, effective weight in percent). The weight is Envoy's
/// `dial_subset_weight` gauge: the written weights, or a ramp's step once it has started.
fn subsets(target: &Target, release: &Value) -> Vec<(String, String, String)> {
    let samples = support::prometheus::parse(
        &support::envoy::admin_get(target.admin_port, "/stats/prometheus").unwrap_or_default(),
    );
    let name = release["name"].as_str().unwrap();
    release["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let subset = s["name"].as_str().unwrap();
            let weight = support::prometheus::value(
                &samples,
                "dial_subset_weight",
                &[("release", name), ("subset", subset)],
            )
            .map_or_else(|| "?".into(), |bp| (bp / 100.0).to_string());
            (
                subset.to_string(),
                s["version"].as_str().unwrap().to_string(),
                weight,
            )
        })
        .collect()
}

/// "90/10".
fn split(subsets: &[(String, String, String)]) -> String {
    subsets
        .iter()
        .map(|(_, _, w)| w.as_str())
        .collect::<Vec<_>>()
        .join("/")
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The ramp and guard of release `name`, in a line each, with where the ramp stands now.
fn progress(policy_text: &str, policy: &Value, name: &str, secrets: &[(String, String)]) -> String {
    let release = release(policy, name);
    let mut out = String::new();
    let ramp = &release["ramp"];
    if let Some(steps) = ramp["steps"].as_array() {
        let core = prepare::parse(policy_text, secrets);
        let written = core
            .releases
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.ramp.as_ref());
        let now = match written.and_then(|r| r.step_at(Some(now_nanos()))) {
            None => format!(
                "not started yet (the demo moves the start to {} min from now, on any date): the written weights apply",
                prepare::RAMP_DELAY_SECONDS / 60
            ),
            Some((i, _)) => format!("now at step {} of {}", i + 1, steps.len()),
        };
        let steps: Vec<String> = steps
            .iter()
            .map(|s| match s["hold"].as_str() {
                Some(hold) => format!("{}% for {hold}", s["weight"]),
                None => format!("then {}%", s["weight"]),
            })
            .collect();
        out.push_str(&format!(
            "\n  ramp: {} from {}: {}; {now}",
            ramp["subset"].as_str().unwrap_or_default(),
            ramp["start"].as_str().unwrap_or_default(),
            steps.join(", ")
        ));
    }
    let guard = &release["guard"];
    if guard.is_object() {
        let mut limits = Vec::new();
        let fallback = guard["fallback"].as_str().unwrap_or_default();
        let points = |rate: f64| {
            let p = rate * 100.0;
            format!("{p} point{}", if p == 1.0 { "" } else { "s" })
        };
        if let Some(rate) = guard["maxErrorRate"].as_f64() {
            limits.push(format!(
                "its 5xx rate exceeds {fallback}'s by {}",
                points(rate)
            ));
        }
        if let Some(slow) = guard["maxSlowRate"].as_object() {
            limits.push(format!(
                "its share slower than {} ms by {}",
                slow["overMs"],
                points(slow["rate"].as_f64().unwrap_or_default())
            ));
        }
        out.push_str(&format!(
            "\n  guard: {} -> {fallback} if, over {} (at least {} responses), {}",
            guard["subset"].as_str().unwrap_or_default(),
            guard["window"].as_str().unwrap_or_default(),
            guard["minRequests"],
            limits.join(", or ")
        ));
    }
    out
}

/// The first of `user-0`, `user-1`, ... that Dial puts on `subset` now (the ramp's step in
/// force applied), by the same core the filter runs.
fn user_on(policy_text: &str, subset: &str, secrets: &[(String, String)]) -> String {
    let policy = prepare::parse(policy_text, secrets);
    prepare::first_user_on(&policy, HOST, "/checkout", subset, now_nanos())
        .unwrap_or_else(|| "user-0".into())
}

fn table(
    say: &mut dyn FnMut(String),
    title: &str,
    weights: &[(String, String, String)],
    rows: &HashMap<String, Row>,
    total: usize,
) {
    say(format!("\n{title}"));
    say(format!(
        "  {:<9} {:<8} {:>6} {:>7} {:>7}  {:<13} same subset on 2nd visit",
        "subset", "version", "weight", "users", "share", "answered by"
    ));
    for (subset, version, weight) in weights {
        let row = rows.get(subset);
        let users = row.map_or(0, |r| r.users);
        let stayed = row.map_or(0, |r| r.stayed);
        let backend = row
            .and_then(|r| {
                r.backends
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(b, _)| b.clone())
            })
            .unwrap_or_else(|| "-".into());
        say(format!(
            "  {:<9} {:<8} {:>6} {:>7} {:>6.1}%  {:<13} {:.1}%",
            subset,
            version,
            weight,
            users,
            users as f64 * 100.0 / total as f64,
            backend,
            if users == 0 {
                0.0
            } else {
                stayed as f64 * 100.0 / users as f64
            }
        ));
    }
}

/// Each user visits twice (the second time on a new connection, with any cookie Dial set).
fn visit_twice(
    target: &Target,
    path: &str,
    users: usize,
    key: impl Fn(usize) -> Option<String>,
) -> HashMap<String, Row> {
    let mut first_client = Client::new(target.port);
    let mut second_client = Client::new(target.port);
    let mut rows: HashMap<String, Row> = HashMap::new();
    for i in 0..users {
        let user = key(i);
        let headers: Vec<(&str, &str)> = user.iter().map(|u| ("x-user-id", u.as_str())).collect();
        let first = first_client.get(HOST, path, &headers);
        let cookie = first
            .header("set-cookie")
            .map(|c| c.split(';').next().unwrap_or_default().to_string());
        let mut again: Vec<(&str, &str)> = headers.clone();
        if let Some(c) = &cookie {
            again.push(("cookie", c));
        }
        let second = second_client.get(HOST, path, &again);
        let subset = assignment_field(&first, "subset").to_string();
        let row = rows.entry(subset.clone()).or_default();
        row.users += 1;
        *row.backends.entry(first.backend().to_string()).or_default() += 1;
        if assignment_field(&second, "subset") == subset && second.backend() == first.backend() {
            row.stayed += 1;
        }
    }
    rows
}

/// One request per rule of the checkout release and per safety property (`showcase`), built
/// from the policy itself so the demo shows what the shipped example does; panics (the demo
/// fails) if the spoofed requests do not land exactly where the honest one does.
fn showcase(
    say: &mut dyn FnMut(String),
    target: &Target,
    policy_text: &str,
    policy: &Value,
    secrets: &[(String, String)],
) -> usize {
    say(format!("\nRules and safety, one request each (curl -H ... http://127.0.0.1:{PORT}/checkout -H 'host: {HOST}'):"));
    let checkout = release(policy, "checkout");
    let names: Vec<String> = subsets(target, checkout)
        .into_iter()
        .map(|(n, ..)| n)
        .collect();
    let (first, last) = (&names[0], &names[names.len() - 1]);
    let user = user_on(policy_text, first, secrets);
    let token = checkout["override"]["token"]["fromEnv"]
        .as_str()
        .and_then(|name| secrets.iter().find(|(k, _)| k == name))
        .map(|(_, v)| v.as_str());
    let cases = showcase::cases(checkout, &user, first, last, token);
    let mut c = Client::new(target.port);
    let mut outcomes = Vec::new();
    for case in &cases {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = c.get(HOST, "/checkout", &headers);
        let outcome = showcase::Outcome {
            subset: assignment_field(&r, "subset").to_string(),
            reason: assignment_field(&r, "reason").to_string(),
            backend: r.backend().to_string(),
        };
        say(format!(
            "  {:<38} -> {:<7} answered by {:<12} reason={}",
            case.what, outcome.subset, outcome.backend, outcome.reason
        ));
        outcomes.push(outcome);
    }
    if let Err(e) = showcase::check(&cases, &outcomes, last) {
        panic!("the rules and safety lines do not show what they claim: {e}");
    }
    say(format!(
        "  (checked: every spoofed request landed where {user}'s honest one did)"
    ));
    cases.len()
}

/// What the shadow received, and Dial's metrics as Prometheus scrapes them.
fn shadow_and_metrics(
    say: &mut dyn FnMut(String),
    target: &Target,
    shadow: &Backend,
    policy: &Value,
) {
    let text =
        || support::envoy::admin_get(target.admin_port, "/stats/prometheus").unwrap_or_default();
    // Mirrors are sent asynchronously: wait until the shadow has every copy Dial marked.
    let marked: f64 = support::prometheus::parse(&text())
        .iter()
        .filter(|s| s.name == "dial_mirrored_requests_total")
        .map(|s| s.value)
        .sum();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (shadow.count() as f64) < marked && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mirror = &release(policy, "checkout")["mirror"];
    let seen = shadow.seen();
    let gets = seen.iter().filter(|s| s.method == "GET").count();
    say(format!(
        "\nShadow traffic: checkout mirrors {}% of safe requests (by user) to {}. Dial marked {marked} requests; the shadow received {} copies ({} GET), each marked x-dial-mirror: {} and x-dial-shadow-of: {}",
        mirror["percent"],
        mirror["version"].as_str().unwrap_or_default(),
        seen.len(),
        gets,
        seen.first().and_then(|s| s.header("x-dial-mirror")).unwrap_or_default(),
        seen.first().and_then(|s| s.header("x-dial-shadow-of")).unwrap_or_default(),
    ));

    let text = text();
    say(format!(
        "\nDial's metrics from http://127.0.0.1:{ADMIN_PORT}/stats/prometheus (non-zero series):"
    ));
    for line in text.lines().filter(|l| {
        (l.starts_with("dial_requests_total")
            || l.starts_with("dial_responses_total")
            || l.starts_with("dial_mirrored_requests_total")
            || l.starts_with("dial_policy"))
            && !l.ends_with(" 0")
    }) {
        say(format!("  {line}"));
    }
}

/// The first part, each line given to `say` (a string may hold several lines, as `println!`
/// would print them); returns how many client requests it sent. `policy_text` is the policy
/// Envoy runs (`policy` parsed), `secrets` its environment, `shadow` the mirror's backend.
pub fn run(
    say: &mut dyn FnMut(String),
    target: &Target,
    policy_text: &str,
    secrets: &[(String, String)],
    shadow: &Backend,
) -> usize {
    let policy: Value = serde_json::from_str(policy_text).unwrap();
    let (checkout, search) = (
        subsets(target, release(&policy, "checkout")),
        subsets(target, release(&policy, "search")),
    );
    let rows = visit_twice(target, "/checkout", SIGNED_IN, |i| {
        Some(format!("user-{i}"))
    });
    table(
        say,
        &format!(
            "checkout: {SIGNED_IN} signed-in users (key: x-user-id), murmur3 split {}{}",
            split(&checkout),
            progress(policy_text, &policy, "checkout", secrets)
        ),
        &checkout,
        &rows,
        SIGNED_IN,
    );
    let rows = visit_twice(target, "/checkout", ANONYMOUS, |_| None);
    table(
        say,
        &format!("checkout: {ANONYMOUS} anonymous visitors (no key: Dial sets a sticky cookie)"),
        &checkout,
        &rows,
        ANONYMOUS,
    );
    let rows = visit_twice(target, "/search", SEARCHERS, |i| Some(format!("user-{i}")));
    table(
        say,
        &format!(
            "search: {SEARCHERS} users, A/B test {} (salted by release: independent of checkout)",
            split(&search)
        ),
        &search,
        &rows,
        SEARCHERS,
    );
    let shown = showcase(say, target, policy_text, &policy, secrets);
    shadow_and_metrics(say, target, shadow, &policy);
    // (The tables count client requests; the shadow copies are extra.)
    2 * (SIGNED_IN + ANONYMOUS + SEARCHERS) + shown
}
