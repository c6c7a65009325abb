//! Envoy end to end: a bad policy is refused as a whole, with the JSON path and the bad value
//! in Envoy's log; at startup Envoy does not start, on reload the running policy stays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use support::{free_port, Backend, Client, Envoy, EnvoyConfig};

const TABLE: &str = include_str!("data/bad-policies.json");

fn table() -> serde_json::Value {
    serde_json::from_str(TABLE).unwrap()
}

/// A case's configuration text: its `raw` text, or the base with one JSON pointer `set`.
fn case_policy(case: &serde_json::Value) -> String {
    if let Some(raw) = case["raw"].as_str() {
        return raw.to_string();
    }
    let mut doc = table()["base"].clone();
    let path = case["set"].as_str().unwrap();
    let (parent, last) = path.rsplit_once('/').unwrap();
    let value = case["value"].clone();
    match doc.pointer_mut(parent).unwrap() {
        serde_json::Value::Array(items) => {
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

#[test]
fn envoy_refuses_to_start_with_a_bad_policy() {
    let stable = Backend::start("stable");
    let bad = r#"{ "releases": [{ "name": "checkout", "key": [{ "header": "x-user-id" }],
        "subsets": [{ "name": "stable", "version": "v1", "weight": 90 },
                    { "name": "canary", "version": "v2", "weight": -5 }] }] }"#;
    let (status, log) =
        Envoy::start_expecting_failure(&EnvoyConfig::new(bad, &[("stable", stable.port)]));
    assert!(!status.success(), "Envoy started with a bad policy");
    assert!(
        log.contains(
            "dial: policy rejected (1 problem): $.releases[0].subsets[1].weight: weight must be 0 or more, got -5"
        ),
        "the log does not name the path:\n{log}"
    );
    assert!(log.contains("Unable to create Wasm plugin dial"), "{log}");
}

#[test]
fn every_bad_policy_is_refused_on_reload_and_the_running_one_stays() {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let good = table()["base"].to_string();
    let mut config = EnvoyConfig::new(&good, &[("stable", stable.port), ("canary", canary.port)]);
    config.port = free_port();
    let (envoy, lds) = Envoy::start_lds(&config);

    let mut client = Client::new(envoy.port);
    let before: Vec<String> = (0..200)
        .map(|i| {
            client
                .get("h", "/", &[("x-user-id", &format!("u{i}"))])
                .backend()
                .to_string()
        })
        .collect();
    assert!(before.iter().any(|b| b == "canary"));

    let cases = table()["cases"].as_array().unwrap().clone();
    assert!(cases.len() >= 20);
    for case in &cases {
        let mut bad = config.clone();
        bad.policy = case_policy(case);
        envoy.reload_lds(&lds, &bad.lds_file(), false);
        let want = "dial: policy rejected";
        let log = envoy.log();
        let error = case["error"].as_str().unwrap();
        assert!(
            log.lines().any(|l| l.contains(want) && l.contains(error)),
            "{}: no log line with {error:?}; log tail:\n{}",
            case["name"],
            log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
    }
    assert_eq!(
        envoy.stat("listener_manager.lds.update_rejected"),
        cases.len() as u64
    );

    // The running policy kept serving, unchanged, on new connections too.
    let mut client = Client::new(envoy.port);
    let after: Vec<String> = (0..200)
        .map(|i| {
            client
                .get("h", "/", &[("x-user-id", &format!("u{i}"))])
                .backend()
                .to_string()
        })
        .collect();
    assert_eq!(before, after);
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
}
