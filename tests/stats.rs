//! Envoy end to end: Dial's metrics reach `/stats/prometheus` as real labelled series, with
//! exact values, and a canary's 5xx answers land in the canary's series only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use serde_json::json;
use support::policies::{checkout_with, Core, HOST, PATH};
use support::prometheus::value;
use support::{for_each_build, Backend, Build, Client, Envoy, EnvoyConfig};

/// The example policy, with a fixed subset for requests without a key (so they count under
/// `fallback`, exactly).
fn policy() -> String {
    checkout_with(&[("whenNoKey", json!({ "subset": "stable" }))])
}

/// The first `n` user ids that Dial's core assigns to `subset` (the same code the filter runs:
/// this also checks that native and in-Envoy assignments agree).
fn users_on(subset: &str, n: usize) -> Vec<String> {
    Core::new(&policy()).users_on(HOST, PATH, subset, n)
}

fn labels<'a>(
    subset: &'a str,
    version: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut l = vec![
        ("release", "checkout"),
        ("subset", subset),
        ("version", version),
    ];
    l.extend_from_slice(extra);
    l
}

for_each_build!(exact_counts_per_subset_reason_and_status_class);

fn exact_counts_per_subset_reason_and_status_class(build: Build) {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let envoy = Envoy::start(&EnvoyConfig::for_build(
        build,
        &policy(),
        &[("stable", stable.port), ("canary", canary.port)],
    ));
    let mut client = Client::new(envoy.port);

    for u in users_on("canary", 1000) {
        assert_eq!(
            client.get(HOST, PATH, &[("x-user-id", &u)]).backend(),
            "canary"
        );
    }
    for u in users_on("stable", 300) {
        assert_eq!(
            client.get(HOST, PATH, &[("x-user-id", &u)]).backend(),
            "stable"
        );
    }
    for _ in 0..25 {
        client.get(HOST, PATH, &[("x-beta", "true")]);
    }
    for _ in 0..7 {
        client.get(HOST, PATH, &[]);
    }
    // The canary starts failing: its 5xx must show up in its own series only.
    canary.set_status(503);
    let failing = users_on("canary", 1040);
    for u in &failing[1000..] {
        assert_eq!(client.get(HOST, PATH, &[("x-user-id", u)]).status, 503);
    }

    let m = envoy.prometheus();
    let requests = |s, v, reason| {
        value(
            &m,
            "dial_requests_total",
            &labels(s, v, &[("reason", reason)]),
        )
    };
    assert_eq!(requests("canary", "v2", "hash"), Some(1040.0));
    assert_eq!(requests("stable", "v1", "hash"), Some(300.0));
    assert_eq!(requests("canary", "v2", "header_rule"), Some(25.0));
    assert_eq!(requests("stable", "v1", "fallback"), Some(7.0));
    // Defined at configure time: a reason nobody hit is there, at 0.
    assert_eq!(requests("canary", "v2", "override"), Some(0.0));

    let responses = |s, v, class| {
        value(
            &m,
            "dial_responses_total",
            &labels(s, v, &[("status_class", class)]),
        )
    };
    assert_eq!(responses("canary", "v2", "2xx"), Some(1025.0));
    assert_eq!(responses("canary", "v2", "5xx"), Some(40.0));
    assert_eq!(responses("stable", "v1", "2xx"), Some(307.0));
    assert_eq!(responses("stable", "v1", "5xx"), Some(0.0));

    // Histograms are merged at each stats flush (every second in tests): wait for it.
    let count = |m: &[support::prometheus::Sample], s, v| {
        value(
            m,
            "dial_request_duration_milliseconds_count",
            &labels(s, v, &[]),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut h = envoy.prometheus();
    while count(&h, "canary", "v2") != Some(1065.0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        h = envoy.prometheus();
    }
    assert_eq!(count(&h, "canary", "v2"), Some(1065.0));
    assert_eq!(count(&h, "stable", "v1"), Some(307.0));
    // Loopback answers take well under 25 ms: every one falls in the first buckets.
    let le25 = value(
        &h,
        "dial_request_duration_milliseconds_bucket",
        &labels("canary", "v2", &[("le", "25")]),
    );
    assert!(le25.unwrap_or(0.0) >= 1000.0, "{le25:?}");

    assert_eq!(value(&m, "dial_policy_loads_total", &[]), Some(1.0));
    // No user id, path or other unbounded value became a label.
    for s in m.iter().filter(|s| s.name.starts_with("dial_")) {
        for k in s.labels.keys() {
            assert!(
                [
                    "release",
                    "subset",
                    "version",
                    "reason",
                    "status_class",
                    "le"
                ]
                .contains(&k.as_str()),
                "unexpected label {k} on {}",
                s.name
            );
        }
    }
}
