//! The demo's Unleash part: a release bucketed with `"scheme": "unleash"`, served by a real
//! Envoy, beside the official Unleash SDK (Python's UnleashClient, installed by `make flag-sdks`)
//! evaluating the matching flag for the same users. A table for a few users, then a count of
//! agreements over many; one disagreement fails the demo.

use serde_json::json;

use crate::support::flags::{ascii_keys, python};
use crate::support::{Backend, Client, Envoy, EnvoyConfig};

/// The flag's name, and the rollout's groupId (the Unleash UI sets one to the other).
const FLAG: &str = "new-checkout";
const ROLLOUT: u32 = 25;
/// Users shown one by one, of those sent.
const SHOWN: usize = 8;
const USERS: usize = 1000;

/// Prints through `say`, as `println!` would (a string may hold several lines).
pub fn run(say: &mut dyn FnMut(String)) {
    let policy = json!({ "headers": { "response": "x-dial-assignment" }, "releases": [ {
        "name": FLAG,
        "subsets": [ { "name": "stable", "version": "v1", "weight": 100 - ROLLOUT },
                     { "name": "canary", "version": "v2", "weight": ROLLOUT } ],
        "key": [ { "header": "x-user-id" } ],
        "bucketing": { "scheme": "unleash", "groupId": FLAG },
    } ] });
    // The same flag as the Unleash server would serve it (the client API's format).
    let feature = json!({ "name": FLAG, "enabled": true, "strategies": [ {
        "name": "flexibleRollout", "constraints": [],
        "parameters": { "rollout": ROLLOUT.to_string(), "stickiness": "userId", "groupId": FLAG } } ] });
    let users = ascii_keys(USERS);
    let sdk = python(
        &users,
        &[
            json!({ "id": FLAG, "sdk": "unleash", "toggle": FLAG, "kind": "enabled",
                  "features": [feature] }),
        ],
    );
    let enabled: Vec<bool> = sdk.answers[FLAG]
        .iter()
        .map(|a| {
            a.as_bool()
                .unwrap_or_else(|| panic!("UnleashClient answered {a}"))
        })
        .collect();

    let stable = Backend::start("checkout-v1");
    let canary = Backend::start("checkout-v2");
    let config = EnvoyConfig::new(
        &policy.to_string(),
        &[("stable", stable.port), ("canary", canary.port)],
    );
    let envoy = Envoy::start(&config);
    crate::envoy_started(envoy.pid());
    let mut client = Client::new(envoy.port);

    say(format!(
        "\nThe proxy and the app agree: release {FLAG} with \"bucketing\": {{\"scheme\": \"unleash\", \"groupId\": \"{FLAG}\"}},\n\
         stable {}/canary {ROLLOUT}, in a fresh Envoy; beside it UnleashClient {} (Python, yggdrasil-engine {}), the official SDK,\n\
         evaluating the flag {FLAG} (flexibleRollout {ROLLOUT}%, groupId {FLAG}, stickiness userId) offline for the same users.",
        100 - ROLLOUT,
        sdk.versions["UnleashClient"],
        sdk.versions["yggdrasil-engine"]
    ));
    say(format!(
        "  {:<10} {:<30} {:<28} agree",
        "x-user-id", "Envoy: subset, answered by", "UnleashClient: is_enabled"
    ));
    let mut agree = 0;
    let mut disagreements = Vec::new();
    for (i, (user, on)) in users.iter().zip(&enabled).enumerate() {
        let r = client.get("shop.example.com", "/checkout", &[("x-user-id", user)]);
        assert_eq!(r.status, 200, "{user}: {}", r.text());
        let routed = r.backend().to_string();
        let want = if *on { "checkout-v2" } else { "checkout-v1" };
        let same = routed == want;
        if same {
            agree += 1;
        } else {
            disagreements.push(format!("{user}: Envoy {routed}, UnleashClient {on}"));
        }
        if i < SHOWN {
            say(format!(
                "  {user:<10} {:<30} {:<28} {}",
                format!("{}, {routed}", crate::assignment_field(&r, "subset")),
                format!(
                    "{on} ({})",
                    if *on { "new checkout" } else { "old checkout" }
                ),
                if same { "yes" } else { "NO" }
            ));
        }
    }
    let in_canary = enabled.iter().filter(|on| **on).count();
    say(format!(
        "  {USERS} users (user-0 to user-{}): Envoy and UnleashClient agree on {agree} of {USERS} ({in_canary} enabled, {} not).",
        USERS - 1,
        USERS - in_canary
    ));
    crate::envoy_stopped(envoy.pid());
    drop(envoy);
    assert!(
        disagreements.is_empty(),
        "Envoy and UnleashClient disagree on {} users: {:?}",
        disagreements.len(),
        &disagreements[..disagreements.len().min(10)]
    );
}
