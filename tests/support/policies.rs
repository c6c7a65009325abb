//! Test policies, from `tests/data/` (written out once there, never inline in a test), and what
//! Dial's core decides under them: the same `decide` the filter runs, so an end-to-end test can
//! predict, user by user, where Envoy must send each request.

use dial::core::decide::{decide, Assignment, Context, Decision};
use dial::core::policy::Policy;
use dial::core::request::HeaderList;
use serde_json::Value;

/// The example policy: the checkout release of `envoy-config/envoy.yaml`, with a test token.
pub const CHECKOUT: &str = include_str!("../data/checkout.json");

/// The benchmark's policy: two releases, five rules, an allowlist, a mirror.
pub const BENCH: &str = include_str!("../data/bench.json");

/// The host and path prefix of the example's checkout release.
pub const HOST: &str = "shop.example.com";
pub const PATH: &str = "/checkout";

/// The example policy as a JSON tree, for tests that need a variant of it.
pub fn checkout() -> Value {
    serde_json::from_str(CHECKOUT).unwrap()
}

/// The example policy with `changes` applied to its (only) release, as policy text.
pub fn checkout_with(changes: &[(&str, Value)]) -> String {
    let mut doc = checkout();
    for (field, value) in changes {
        doc["releases"][0][*field] = value.clone();
    }
    doc.to_string()
}

/// The proxy environment variables the shipped examples read their secrets from
/// (`{"fromEnv": ...}`), with the values the tests give them.
pub const EXAMPLE_ENV: [(&str, &str); 3] = [
    (
        "DIAL_CHECKOUT_OVERRIDE_TOKEN",
        "example-override-token-0123456789",
    ),
    (
        "DIAL_CHECKOUT_COOKIE_SECRET",
        "example-cookie-secret-0123456789",
    ),
    (
        "DIAL_CHECKOUT_COOKIE_SECRET_PREVIOUS",
        "example-cookie-secret-before-0123456789",
    ),
];

/// A shipped example's policy as a proxy with `EXAMPLE_ENV` reads it.
pub fn parse_with_example_env(text: &str) -> Result<Policy, dial::core::policy::PolicyError> {
    let lookup = |name: &str| {
        EXAMPLE_ENV
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    Policy::parse_in(
        text.as_bytes(),
        dial::core::secret::Environment::proxy(&lookup),
    )
}

/// The policy embedded in `envoy-config/envoy.yaml` (the filter's `configuration` value), as
/// the demo runs it.
pub fn envoy_example() -> String {
    let yaml = std::fs::read_to_string(super::repo_root().join("envoy-config/envoy.yaml")).unwrap();
    embedded_policy(&yaml)
}

/// The policy an Envoy configuration like `envoy-config/envoy.yaml` embeds as `value: |`.
pub fn embedded_policy(yaml: &str) -> String {
    let mut lines = yaml.lines();
    lines
        .by_ref()
        .find(|l| l.trim() == "value: |")
        .expect("envoy.yaml embeds the policy as `value: |`");
    let block: Vec<&str> = lines.collect();
    let indent = block
        .first()
        .map(|l| l.len() - l.trim_start().len())
        .unwrap_or(0);
    block
        .iter()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Dial's core for one policy: predicts what the filter does with a request.
pub struct Core {
    pub policy: Policy,
}

impl Core {
    pub fn new(policy: &str) -> Core {
        Core {
            policy: Policy::parse(policy.as_bytes()).unwrap(),
        }
    }

    /// The decision for a request with these headers (`:method` GET unless given).
    pub fn decide(&self, headers: &[(&str, &str)]) -> Option<Assignment> {
        let mut pairs = headers.to_vec();
        if !headers.iter().any(|(n, _)| *n == ":method") {
            pairs.push((":method", "GET"));
        }
        match decide(
            &self.policy,
            &Context::default(),
            &HeaderList::from_strs(&pairs),
        ) {
            Decision::Assign(a) => Some(a),
            Decision::Pass => None,
        }
    }

    /// The decision at a time (nanoseconds since the Unix epoch), as a proxy whose clock reads
    /// it decides: ramps follow their schedule (`decide` has no clock: written weights).
    pub fn decide_at(&self, headers: &[(&str, &str)], now_nanos: u64) -> Option<Assignment> {
        let mut pairs = headers.to_vec();
        if !headers.iter().any(|(n, _)| *n == ":method") {
            pairs.push((":method", "GET"));
        }
        match decide(
            &self.policy,
            &Context::at(now_nanos),
            &HeaderList::from_strs(&pairs),
        ) {
            Decision::Assign(a) => Some(a),
            Decision::Pass => None,
        }
    }

    /// The subset the core gives `user` on `host` `path` at a time (see `decide_at`).
    pub fn subset_at(&self, host: &str, path: &str, user: &str, now_nanos: u64) -> String {
        let a = self
            .decide_at(
                &[(":authority", host), (":path", path), ("x-user-id", user)],
                now_nanos,
            )
            .unwrap_or_else(|| panic!("no release applies to {host}{path}"));
        self.subset_name(&a).to_string()
    }

    /// The subset name an assignment stands for.
    pub fn subset_name(&self, a: &Assignment) -> &str {
        &self.policy.releases[a.release].subsets[a.subset].name
    }

    /// The assignment of a GET on `host` `path` by `user` (key in `x-user-id`).
    pub fn user(&self, host: &str, path: &str, user: &str) -> Assignment {
        self.decide(&[(":authority", host), (":path", path), ("x-user-id", user)])
            .unwrap_or_else(|| panic!("no release applies to {host}{path}"))
    }

    /// The subset the core gives `user` on `host` `path`.
    pub fn subset_of(&self, host: &str, path: &str, user: &str) -> String {
        let a = self.user(host, path, user);
        self.subset_name(&a).to_string()
    }

    /// The first `n` of `user-0`, `user-1`, ... that the core puts on `subset`.
    pub fn users_on(&self, host: &str, path: &str, subset: &str, n: usize) -> Vec<String> {
        let users: Vec<String> = (0..1_000_000)
            .map(|i| format!("user-{i}"))
            .filter(|u| self.subset_of(host, path, u) == subset)
            .take(n)
            .collect();
        assert_eq!(users.len(), n, "too few users on {subset}");
        users
    }
}

/// A release lane's baggage member (`dial-lane=v1.<lane>.<issued>.<tag>`) as an issuer with
/// `secret` writes it at `at` (seconds since the epoch), through the core's own issuer.
pub fn lane_member(secret: &str, lane: &str, at: u64) -> String {
    let lanes = dial::core::lane::Lanes::new(
        "dial-lane".into(),
        dial::core::secret::Secret::inline(secret),
        None,
        true,
        false,
        None,
        None,
        vec![],
        None,
    );
    format!("dial-lane={}", lanes.issue_value(lane, at).unwrap())
}
