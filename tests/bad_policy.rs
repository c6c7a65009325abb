//! Envoy end to end: a bad policy is refused as a whole, with the JSON path and the bad value
//! in Envoy's log; at startup Envoy does not start, on reload the running policy stays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use support::{bad_policies, policies};
use support::{for_each_build, free_port, Backend, Build, Client, Envoy, EnvoyConfig};

for_each_build!(
    envoy_refuses_to_start_with_a_bad_policy,
    every_bad_policy_is_refused_on_reload_and_the_running_one_stays,
);

fn envoy_refuses_to_start_with_a_bad_policy(build: Build) {
    let stable = Backend::start("stable");
    // The example policy with one bad weight.
    let mut bad = policies::checkout();
    bad["releases"][0]["subsets"][1]["weight"] = (-5).into();
    let (status, log) = Envoy::start_expecting_failure(&EnvoyConfig::for_build(
        build,
        &bad.to_string(),
        &[("stable", stable.port)],
    ));
    assert!(!status.success(), "Envoy started with a bad policy");
    assert!(
        log.contains(
            "dial: policy rejected (1 problem): $.releases[0].subsets[1].weight: weight must be 0 or more, got -5"
        ),
        "the log does not name the path:\n{log}"
    );
    assert!(log.contains(build.refusal()), "{log}");
}

fn every_bad_policy_is_refused_on_reload_and_the_running_one_stays(build: Build) {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let good = bad_policies::base().to_string();
    let mut config = EnvoyConfig::for_build(
        build,
        &good,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    config.port = free_port();
    // The variables the environment cases read, on Envoy's process (and passed to the VM).
    let proxy_cases = bad_policies::proxy_cases();
    config.host_env = proxy_cases.iter().flat_map(|c| c.env.clone()).collect();
    assert!(!config.host_env.is_empty());
    let (envoy, lds) = Envoy::start_lds(&config);
    let before = Client::new(envoy.port).backends_of_users("h", "/", 200);
    assert!(before.iter().any(|b| b == "canary"));

    let mut cases = bad_policies::cases();
    assert!(cases.len() >= 20);
    cases.extend(
        proxy_cases
            .iter()
            .map(|c| (c.name.clone(), c.policy.clone(), c.error.clone())),
    );
    for (name, policy, error) in &cases {
        let mut bad = config.clone();
        bad.policy = policy.clone();
        envoy.reload_lds(&lds, &bad.lds_file(), false);
        let log = envoy.log();
        assert!(
            log.lines()
                .any(|l| l.contains("dial: policy rejected") && l.contains(error.as_str())),
            "{name}: no log line with {error:?}; log tail:\n{}",
            log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
    }
    assert_eq!(
        envoy.stat("listener_manager.lds.update_rejected"),
        cases.len() as u64
    );
    // Counted once per refused configuration, not once per VM.
    let metrics = envoy.prometheus();
    let counter = |name| support::prometheus::value(&metrics, name, &[]);
    assert_eq!(
        counter("dial_policy_rejections_total"),
        Some(cases.len() as f64)
    );
    assert_eq!(counter("dial_policy_loads_total"), Some(1.0));

    // The running policy kept serving, unchanged, on new connections too.
    let after = Client::new(envoy.port).backends_of_users("h", "/", 200);
    assert_eq!(before, after);
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
    // The variables' values reached no log line.
    let log = envoy.log();
    for (name, value) in &config.host_env {
        assert!(
            !log.contains(value.as_str()),
            "{name}'s value is in the log"
        );
    }
}
