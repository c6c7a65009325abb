//! Envoy end to end: the weighted split. One large run proves the distribution: 90/10 over
//! 10,000 distinct users lands within one percentage point of the weights, and each backend got
//! exactly the requests Dial sent it. Beyond that, agreement is proven user by user: Envoy sends
//! each user exactly where Dial's core (the code the filter runs) puts it, and again on a new
//! connection; the split's arithmetic itself is the core's unit tests' business.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::HashMap;

use serde_json::json;
use support::http::tally;
use support::policies::{checkout, checkout_with, Core, CHECKOUT, HOST, PATH};
use support::{for_each_build, Backend, Build, Client, Envoy, EnvoyConfig};

/// One backend per subset, named after it, behind Envoy with `policy`.
fn start(build: Build, policy: &str, subsets: &[&str]) -> (Vec<Backend>, Envoy) {
    let backends: Vec<Backend> = subsets.iter().map(|n| Backend::start(n)).collect();
    let routes: Vec<(&str, u16)> = backends.iter().map(|b| (b.name.as_str(), b.port)).collect();
    let envoy = Envoy::start(&EnvoyConfig::for_build(build, policy, &routes));
    (backends, envoy)
}

/// Users `user-0` to `user-<n-1>`: the backend Envoy sent each to, and where the core puts it.
fn routed_and_predicted(envoy: &Envoy, policy: &str, n: usize) -> (Vec<String>, Vec<String>) {
    let routed = Client::new(envoy.port).backends_of_users(HOST, PATH, n);
    let core = Core::new(policy);
    let predicted = (0..n)
        .map(|i| core.subset_of(HOST, PATH, &format!("user-{i}")))
        .collect();
    (routed, predicted)
}

fn assert_same_per_user(routed: &[String], predicted: &[String]) {
    let wrong: Vec<String> = routed
        .iter()
        .zip(predicted)
        .enumerate()
        .filter(|(_, (r, p))| r != p)
        .map(|(i, (r, p))| format!("user-{i}: Envoy {r}, core {p}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} users not where the core puts them: {:?}",
        wrong.len(),
        routed.len(),
        &wrong[..wrong.len().min(10)]
    );
}

/// Each backend saw exactly the requests Envoy answered with it (nothing lost, nothing doubled).
fn assert_backends_saw(backends: &[Backend], counts: &HashMap<String, usize>) {
    for b in backends {
        assert_eq!(
            b.count() as usize,
            counts.get(&b.name).copied().unwrap_or(0),
            "{}",
            b.name
        );
    }
}

for_each_build!(
    ninety_ten_split_of_ten_thousand_users,
    a_three_way_split_sends_each_user_where_the_core_does,
);

fn ninety_ten_split_of_ten_thousand_users(build: Build) {
    const USERS: usize = 10_000;
    // The example policy as it is: stable 90, canary 10.
    let doc = checkout();
    let weights: Vec<(&str, f64)> = doc["releases"][0]["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["weight"].as_f64().unwrap()))
        .collect();
    let names: Vec<&str> = weights.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["stable", "canary"]);
    let (backends, envoy) = start(build, CHECKOUT, &names);
    let (routed, predicted) = routed_and_predicted(&envoy, CHECKOUT, USERS);

    let counts = tally(routed.iter().map(String::as_str));
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    for (name, weight) in &weights {
        let share = counts.get(*name).copied().unwrap_or(0) as f64 * 100.0 / USERS as f64;
        let want = weight * 100.0 / total;
        assert!(
            (share - want).abs() <= 1.0,
            "{name}: {share:.2}% for a weight of {want}% ({counts:?})"
        );
    }
    assert_backends_saw(&backends, &counts);
    assert_same_per_user(&routed, &predicted);

    // Every user, asked again on a new connection, lands on the same subset (a sample: that
    // the first visit matched the core, user by user, already pins each user's subset).
    let again = Client::new(envoy.port).backends_of_users(HOST, PATH, 500);
    assert_eq!(again, routed[..500]);
}

fn a_three_way_split_sends_each_user_where_the_core_does(build: Build) {
    let policy = checkout_with(&[(
        "subsets",
        json!([
            { "name": "stable", "version": "v1", "weight": 50 },
            { "name": "canary", "version": "v2", "weight": 30 },
            { "name": "preview", "version": "v3", "weight": 20 }
        ]),
    )]);
    let (backends, envoy) = start(build, &policy, &["stable", "canary", "preview"]);
    let (routed, predicted) = routed_and_predicted(&envoy, &policy, 400);
    assert_same_per_user(&routed, &predicted);
    let counts = tally(routed.iter().map(String::as_str));
    assert_eq!(counts.len(), 3, "every subset gets users: {counts:?}");
    assert_backends_saw(&backends, &counts);

    let again = Client::new(envoy.port).backends_of_users(HOST, PATH, 400);
    assert_eq!(again, routed);
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
}
