//! The table of bad policies (tests/data/bad-policies.json): each case is the base policy with
//! one change, or a raw configuration, the text its rejection must contain and the kind of that
//! problem. Shared by the unit tests (src/core/policy/tests.rs includes this file) and the Envoy
//! suite (tests/bad_policy.rs). A case with `proxyEnv` is rejected for what the proxy's
//! environment holds: it is in `proxy_cases()`, not in `cases()` (which the CLI, away from the
//! proxy, rejects too).

use serde_json::Value;

pub const TABLE: &str = include_str!("../data/bad-policies.json");

pub fn table() -> Value {
    serde_json::from_str(TABLE).unwrap()
}

pub fn base() -> Value {
    table()["base"].clone()
}

/// The cases whose rejection does not depend on the proxy's environment (`proxy: false`), or
/// those whose does.
fn selected(proxy: bool) -> Vec<Value> {
    table()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|case| case.get("proxyEnv").is_some() == proxy)
        .cloned()
        .collect()
}

/// The kind of problem each case must report (`ProblemKind::as_str`), in the order of `cases()`.
pub fn kinds() -> Vec<String> {
    selected(false)
        .iter()
        .map(|case| case["kind"].as_str().unwrap().to_string())
        .collect()
}

/// One case rejected for the proxy's environment.
pub struct ProxyCase {
    pub name: String,
    pub policy: String,
    pub error: String,
    pub kind: String,
    /// The variables the proxy has for it.
    pub env: Vec<(String, String)>,
}

/// Every case rejected for what the proxy's environment holds (or lacks).
pub fn proxy_cases() -> Vec<ProxyCase> {
    selected(true)
        .iter()
        .map(|case| ProxyCase {
            name: case["name"].as_str().unwrap().to_string(),
            policy: case_policy(case),
            error: case["error"].as_str().unwrap().to_string(),
            kind: case["kind"].as_str().unwrap().to_string(),
            env: case["proxyEnv"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
        })
        .collect()
}

/// Every case whose rejection does not depend on the proxy's environment: (name, configuration
/// text, expected error text).
pub fn cases() -> Vec<(String, String, String)> {
    selected(false)
        .iter()
        .map(|case| {
            let name = case["name"].as_str().unwrap().to_string();
            let error = case["error"].as_str().unwrap().to_string();
            (name, case_policy(case), error)
        })
        .collect()
}

/// A case's configuration text: its `raw` text, or the base with one JSON pointer `set`.
fn case_policy(case: &Value) -> String {
    if let Some(raw) = case["raw"].as_str() {
        return raw.to_string();
    }
    let mut doc = base();
    let path = case["set"].as_str().unwrap();
    let (parent, last) = path.rsplit_once('/').unwrap();
    let value = case["value"].clone();
    match doc.pointer_mut(parent).unwrap() {
        Value::Array(items) => {
            let i: usize = last.parse().unwrap();
            if i == items.len() {
                items.push(value);
            } else {
                items[i] = value;
            }
        }
        parent => parent[last] = value,
    }
    doc.to_string()
}
