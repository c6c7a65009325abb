//! Envoy end to end: raising the canary's weight by reloading the policy moves only stable users
//! into the canary; no canary user is ever moved back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use support::{free_port, Backend, Client, Envoy, EnvoyConfig};

const USERS: usize = 10_000;

fn policy(stable: u32, canary: u32) -> String {
    format!(
        r#"{{ "releases": [{{ "name": "checkout", "key": [{{ "header": "x-user-id" }}],
              "subsets": [{{ "name": "stable", "version": "v1", "weight": {stable} }},
                          {{ "name": "canary", "version": "v2", "weight": {canary} }}] }}] }}"#
    )
}

fn share(of: &str, backends: &[String]) -> f64 {
    backends.iter().filter(|b| *b == of).count() as f64 * 100.0 / backends.len() as f64
}

#[test]
fn raising_the_canary_weight_moves_only_stable_users() {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let mut config = EnvoyConfig::new(
        &policy(90, 10),
        &[("stable", stable.port), ("canary", canary.port)],
    );
    config.port = free_port();
    let (envoy, lds) = Envoy::start_lds(&config);

    let before = Client::new(envoy.port).backends_of_users("h", "/", USERS);
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

    let after = Client::new(envoy.port).backends_of_users("h", "/", USERS);
    assert!(
        (share("canary", &after) - 25.0).abs() <= 1.0,
        "{}",
        share("canary", &after)
    );
    let moved_back = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| *b == "canary" && *a != "canary")
        .count();
    let moved_in = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| *b == "stable" && *a == "canary")
        .count();
    assert_eq!(moved_back, 0, "canary users were moved back to stable");
    assert!(
        moved_in > 1_000,
        "only {moved_in} users moved into the canary"
    );
    assert_eq!(
        after.iter().filter(|a| *a == "canary").count(),
        before.iter().filter(|b| *b == "canary").count() + moved_in
    );
}
