//! The table of bad policies (tests/data/bad-policies.json): each case is the base policy with
//! one change, or a raw configuration, the text its rejection must contain and the kind of that
//! problem. Shared by the unit tests (src/core/policy/tests.rs includes this file) and the Envoy
//! suite (tests/bad_policy.rs).

use serde_json::Value;

pub const TABLE: &str = include_str!("../data/bad-policies.json");

pub fn table() -> Value {
    serde_json::from_str(TABLE).unwrap()
}

pub fn base() -> Value {
    table()["base"].clone()
}

/// The kind of problem each case must report (`ProblemKind::as_str`), in the order of `cases()`.
pub fn kinds() -> Vec<String> {
    table()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| case["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Every case: (name, configuration text, expected error text).
pub fn cases() -> Vec<(String, String, String)> {
    table()["cases"]
        .as_array()
        .unwrap()
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
