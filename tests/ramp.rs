//! Envoy end to end: raising the canary's weight by reloading the policy moves only stable users
//! into the canary; no canary user is ever moved back. User by user: before and after the
//! reload, Envoy sends each user where Dial's core puts it under the policy then running, and
//! exactly the users the core predicts move in.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::BTreeSet;

use serde_json::json;
use support::policies::{checkout_with, Core, HOST, PATH};
use support::{for_each_build, free_port, Backend, Build, Client, Envoy, EnvoyConfig};

const USERS: usize = 2_000;

/// The example policy at these weights.
fn policy(stable: u32, canary: u32) -> String {
    checkout_with(&[(
        "subsets",
        json!([
            { "name": "stable", "version": "v1", "weight": stable },
            { "name": "canary", "version": "v2", "weight": canary }
        ]),
    )])
}

/// Where the core puts each user under `policy`.
fn predicted(policy: &str) -> Vec<String> {
    let core = Core::new(policy);
    (0..USERS)
        .map(|i| core.subset_of(HOST, PATH, &format!("user-{i}")))
        .collect()
}

/// Envoy sent every user where the core puts it.
fn assert_agrees(when: &str, routed: &[String], predicted: &[String]) {
    let wrong: Vec<String> = (0..routed.len())
        .filter(|&i| routed[i] != predicted[i])
        .map(|i| format!("user-{i}: Envoy {}, core {}", routed[i], predicted[i]))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "{when}, Envoy and the core disagree: {wrong:?}"
    );
}

fn share(of: &str, backends: &[String]) -> f64 {
    backends.iter().filter(|b| *b == of).count() as f64 * 100.0 / backends.len() as f64
}

/// The users on `from` in `before` and on `to` in `after`.
fn moved(before: &[String], after: &[String], from: &str, to: &str) -> BTreeSet<usize> {
    (0..before.len())
        .filter(|&i| before[i] == from && after[i] == to)
        .collect()
}

for_each_build!(raising_the_canary_weight_moves_only_stable_users);

fn raising_the_canary_weight_moves_only_stable_users(build: Build) {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let mut config = EnvoyConfig::for_build(
        build,
        &policy(90, 10),
        &[("stable", stable.port), ("canary", canary.port)],
    );
    config.port = free_port();
    let (envoy, lds) = Envoy::start_lds(&config);

    let before = Client::new(envoy.port).backends_of_users(HOST, PATH, USERS);
    assert_agrees("before the ramp", &before, &predicted(&policy(90, 10)));
    assert!((share("canary", &before) - 10.0).abs() <= 1.0);

    config.policy = policy(75, 25);
    envoy.reload_lds(&lds, &config.lds_file(), true);
    assert!(
        envoy.log().matches("dial: policy loaded").count() >= 2,
        "{}",
        envoy.log()
    );
    let loads = support::prometheus::value(&envoy.prometheus(), "dial_policy_loads_total", &[]);
    assert_eq!(loads, Some(2.0));

    let after = Client::new(envoy.port).backends_of_users(HOST, PATH, USERS);
    assert_agrees("after the ramp", &after, &predicted(&policy(75, 25)));
    assert!(
        (share("canary", &after) - 25.0).abs() <= 1.0,
        "{}",
        share("canary", &after)
    );

    let moved_back = moved(&before, &after, "canary", "stable");
    assert!(
        moved_back.is_empty(),
        "canary users moved back: {moved_back:?}"
    );
    // Exactly the users the core moves from stable to canary, and no one else, moved.
    let moved_in = moved(&before, &after, "stable", "canary");
    let predicted_in = moved(
        &predicted(&policy(90, 10)),
        &predicted(&policy(75, 25)),
        "stable",
        "canary",
    );
    assert_eq!(moved_in, predicted_in);
    assert!(
        moved_in.len() > USERS / 10,
        "only {} users moved into the canary",
        moved_in.len()
    );
    assert_eq!(
        after.iter().filter(|a| *a == "canary").count(),
        before.iter().filter(|b| *b == "canary").count() + moved_in.len()
    );
}
