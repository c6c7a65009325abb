//! Every Envoy configuration shipped under envoy-config/ passes `envoy --mode validate`, with
//! the built module in place (validation loads it and runs Dial's policy checks).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::process::Command;

use serde_json::Value;
use support::policies::{checkout, envoy_example, parse_with_example_env, CHECKOUT, EXAMPLE_ENV};
use support::{envoy_binary, for_each_build, repo_root, Backend, Build, Envoy, EnvoyConfig};

#[test]
fn every_shipped_envoy_config_validates() {
    let dir = repo_root().join("envoy-config");
    let mut configs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    configs.sort();
    assert!(!configs.is_empty(), "no configs in {}", dir.display());
    for config in configs {
        // The configs name the module relative to the repository root: it must be there (or
        // validation would fail for a reason that is not the config's).
        let text = std::fs::read_to_string(&config).unwrap();
        let modules: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split("filename: ").nth(1))
            .map(|rest| rest.trim_end_matches(['}', ' ']))
            .collect();
        assert!(!modules.is_empty(), "{}: no module", config.display());
        for module in modules {
            assert!(
                repo_root().join(module).exists(),
                "{} names {module}, which is not built: run `make build`",
                config.display()
            );
        }
        // With the secrets the policy reads from Envoy's environment: valid.
        let (ok, text) = envoy_validate(&config, &EXAMPLE_ENV);
        assert!(ok, "{} does not validate:\n{text}", config.display());
        assert!(text.contains(" OK"), "{}: {text}", config.display());
        // Without them: refused, naming each variable, never a value.
        let (ok, text) = envoy_validate(&config, &[]);
        assert!(
            !ok,
            "{} validates without its secrets:\n{text}",
            config.display()
        );
        for (name, value) in EXAMPLE_ENV {
            assert!(
                text.contains(&format!("the environment variable \"{name}\" is not set")),
                "{}: {text}",
                config.display()
            );
            assert!(!text.contains(value));
        }
    }
}

/// `envoy --mode validate -c config` with `env` (and none of the examples' variables but those)
/// in Envoy's environment: whether it validated, and what it printed.
fn envoy_validate(config: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(envoy_binary());
    command
        .current_dir(repo_root())
        .args(["--mode", "validate", "--log-level", "warning", "-c"])
        .arg(config);
    for (name, _) in EXAMPLE_ENV {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn validation_runs_dials_policy_checks() {
    let example = std::fs::read_to_string(repo_root().join("envoy-config/envoy.yaml")).unwrap();
    let broken = example.replacen(r#""weight": 90 }"#, r#""weight": -90 }"#, 1);
    assert_ne!(broken, example);
    let dir = support::scratch_dir("validate");
    let path = dir.join("broken.yaml");
    std::fs::write(&path, broken).unwrap();
    let (ok, text) = envoy_validate(&path, &EXAMPLE_ENV);
    assert!(!ok, "a broken policy validated:\n{text}");
    assert!(
        text.contains("$.releases[0].subsets[0].weight: weight must be 0 or more, got -90"),
        "{text}"
    );
}

/// The example policy in `envoy-config/envoy.yaml` (what `make demo` runs) and the tests' copy in
/// `tests/data/checkout.json` cannot drift apart: the shipped one is a valid policy whose
/// checkout release is the tests' one, but for what an example adds: its own override token, a
/// mirror to the shadow, a ramp and a guard for the canary, and a second release (search).
#[test]
fn the_shipped_example_policy_is_the_tests_checkout_policy() {
    let text = envoy_example();
    if let Err(e) = parse_with_example_env(&text) {
        panic!("envoy-config/envoy.yaml: its policy is refused: {e}\n{text}");
    }
    let shipped: Value = serde_json::from_str(&text).unwrap();
    let tests = checkout();
    assert_eq!(shipped["headers"], tests["headers"]);
    let names = |doc: &Value| -> Vec<String> {
        doc["releases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&shipped), ["checkout", "search"]);
    assert_eq!(names(&tests), ["checkout"]);

    // The checkout release, without the fields the two may differ in.
    let routing = |release: &Value| {
        let mut r = release.clone();
        let fields = r.as_object_mut().unwrap();
        let added = ["mirror", "ramp", "guard"].map(|f| fields.remove(f));
        let token = fields
            .get_mut("override")
            .and_then(|o| o.as_object_mut()?.remove("token"));
        // The example signs its sticky cookie with a secret from the environment.
        if let Some(cookie) = fields
            .get_mut("whenNoKey")
            .and_then(|w| w.get_mut("stickyCookie")?.as_object_mut())
        {
            cookie.remove("secret");
            cookie.remove("previousSecret");
        }
        (r, added, token)
    };
    let (shipped_release, [mirror, ramp, guard], shipped_token) = routing(&shipped["releases"][0]);
    let (tests_release, not_added, tests_token) = routing(&tests["releases"][0]);
    assert_eq!(shipped_release, tests_release);
    assert_eq!(not_added, [None, None, None]);
    assert_eq!(
        mirror.map(|m| m["version"].clone()),
        Some(Value::from("v3")),
        "the example mirrors to v3, which its shadow route serves"
    );
    // The ramp takes the canary from its written share to everyone; the guard pulls the canary
    // back to stable (the policy check above has validated the rest of both).
    let ramp = ramp.expect("the example ramps the canary");
    let steps: Vec<f64> = ramp["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["weight"].as_f64().unwrap())
        .collect();
    assert_eq!(ramp["subset"], "canary");
    assert_eq!(
        (steps.first(), steps.last()),
        (Some(&10.0), Some(&100.0)),
        "the ramp starts at the canary's written 10% and ends at 100%"
    );
    let guard = guard.expect("the example guards the canary");
    assert_eq!(
        (&guard["subset"], &guard["fallback"]),
        (&Value::from("canary"), &Value::from("stable"))
    );
    // Both trust the override by token only (sourceCidrs and allowAnyone are compared above).
    assert!(shipped_token.is_some() && tests_token.is_some());

    // Every subset but a release's first (its default route's) has a route on Dial's header.
    let yaml = std::fs::read_to_string(repo_root().join("envoy-config/envoy.yaml")).unwrap();
    for release in shipped["releases"].as_array().unwrap() {
        for subset in release["subsets"].as_array().unwrap().iter().skip(1) {
            let name = subset["name"].as_str().unwrap();
            assert!(
                yaml.contains(&format!("string_match: {{ exact: {name} }}")),
                "no route in envoy.yaml for subset {name}"
            );
        }
    }
}

/// Every `google.protobuf.StringValue` in Envoy's `/config_dump`, by its `value`.
fn string_values(dump: &Value, out: &mut Vec<String>) {
    match dump {
        Value::Object(fields) => {
            let is_string_value = fields.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/google.protobuf.StringValue");
            match fields.get("value").and_then(Value::as_str) {
                Some(text) if is_string_value => out.push(text.to_string()),
                _ => fields.values().for_each(|v| string_values(v, out)),
            }
        }
        Value::Array(items) => items.iter().for_each(|v| string_values(v, out)),
        _ => {}
    }
}

/// The tests' configurations (tests/support/config.rs) are data written out as JSON, which
/// Envoy reads as YAML: a policy whose text holds what YAML or a string template would mangle
/// (quotes, escapes, a CRLF and a tab, YAML's indicators, characters beyond ASCII) reaches Dial
/// byte for byte, in both builds, in a static bootstrap and in an LDS file. Envoy's own
/// `/config_dump` says what the filter was given (the one StringValue in it); that Envoy
/// started says Dial accepted it.
fn a_policy_reaches_the_filter_byte_for_byte(build: Build) {
    // As JSON text: escapes stay escapes in the policy Dial reads.
    let user = r#"zoë \"the\" ☃ 𝄞 \u00e9 \\ # not: a comment {x}, 'y' & *z !w |> %v%"#;
    let policy = CHECKOUT.replacen(
        r#""users": ["alice", "bob"]"#,
        &format!("\"users\": [\"alice\",\r\n\t\"bob\", \"{user}\"]"),
        1,
    );
    assert_ne!(policy, CHECKOUT);
    let users =
        &serde_json::from_str::<Value>(&policy).unwrap()["releases"][0]["rules"][2]["users"];
    assert_eq!(
        users[2],
        "zoë \"the\" ☃ 𝄞 é \\ # not: a comment {x}, 'y' & *z !w |> %v%"
    );
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let mut config = EnvoyConfig::for_build(
        build,
        &policy,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    let given = |envoy: &Envoy| {
        let dump: Value = serde_json::from_str(&envoy.admin_get("/config_dump").unwrap()).unwrap();
        let mut values = Vec::new();
        string_values(&dump, &mut values);
        // (A static listener is in the dump twice: in the bootstrap and as a listener.)
        values.dedup();
        values
    };
    let envoy = Envoy::start(&config);
    assert_eq!(
        given(&envoy),
        std::slice::from_ref(&policy),
        "static bootstrap"
    );
    drop(envoy);
    config.port = support::free_port();
    let (envoy, _) = Envoy::start_lds(&config);
    assert_eq!(given(&envoy), [policy], "LDS file");
}

for_each_build!(a_policy_reaches_the_filter_byte_for_byte);
