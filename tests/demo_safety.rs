//! `make demo`'s "Rules and safety" lines, in `make test`: the example configuration prepared as
//! the demo prepares it (its ramp moved to an hour from now, fresh secrets in Envoy's
//! environment), in real Envoy, for both builds' example configs; the same lines the demo prints
//! (tests/demo/showcase.rs) must show spoofed requests landing exactly where the honest one
//! does, and the override with its token on the canary. Before the demo moved the ramp, the
//! example's ramp had reached 100% on 2026-12-01 and these lines showed nothing: that case is
//! `showcase`'s own unit test, run here too.
//!
//! And the README's copy of what `make demo` prints (the ```text block after `<!-- demo-output
//! -->`): the demo's first part (`first_part.rs`, the code `make demo` runs) against this test's
//! Envoy with the example as the demo prepares it, and its Unleash part (`unleash.rs`, with the
//! official SDK); its timeline (16 s of load) is not run: its intro is printed as planned and
//! its rows and outcome are compared by their format (`timeline.rs`). Line by line, with what
//! depends on the clock or on random values masked (`readme_output.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#[path = "demo/first_part.rs"]
mod first_part;
#[path = "docs/markdown.rs"]
#[allow(dead_code)]
mod markdown;
#[path = "demo/prepare.rs"]
mod prepare;
#[path = "demo/readme_output.rs"]
mod readme_output;
#[path = "demo/showcase.rs"]
mod showcase;
mod support;
// The demo's timeline and Unleash parts: the timeline's formatting (its run is the demo's),
// the Unleash part run as the demo runs it.
#[path = "demo/svg.rs"]
#[allow(dead_code)]
mod svg;
#[path = "demo/timeline.rs"]
#[allow(dead_code)]
mod timeline;
#[path = "demo/unleash.rs"]
mod unleash;

use first_part::assignment_field;

/// The demo's bookkeeping of the Envoys to stop on a panic (`unleash.rs` reports its own); here
/// each Envoy stops when dropped.
fn envoy_started(_pid: u32) {}
fn envoy_stopped(_pid: u32) {}

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::policies::embedded_policy;
use support::{
    envoy_binary, module_path, native_module_path, repo_root, yaml, Backend, Client, Envoy,
};

const HOST: &str = "shop.example.com";

/// The demo's configuration, runnable beside other tests: listener and admin on ports the
/// kernel picks, each cluster at the backend of its name, the module by absolute path.
fn runnable(config: &str, backends: &BTreeMap<String, Backend>) -> Value {
    let dir = support::scratch_dir("demo-safety");
    let file = dir.join("envoy.yaml");
    std::fs::write(&file, config).unwrap();
    let mut bootstrap = yaml::load_all(&file).remove(0);
    bootstrap["admin"] =
        json!({ "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } });
    let listener = &mut bootstrap["static_resources"]["listeners"][0];
    listener["address"]["socket_address"]["port_value"] = json!(0);
    for filter in listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        .as_array_mut()
        .unwrap()
    {
        // (pointer_mut: indexing a Value mutably would add the fields it looks for.)
        if let Some(code) = filter.pointer_mut("/typed_config/config/vm_config/code/local") {
            code["filename"] = json!(support::module_path());
        }
        if let Some(module) = filter.pointer_mut("/typed_config/dynamic_module_config/module/local")
        {
            module["filename"] = json!(native_module_path());
        }
    }
    for cluster in bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap()
    {
        let name = cluster["name"].as_str().unwrap().to_string();
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"]["port_value"] = json!(backends[&name].port);
    }
    bootstrap
}

/// The demo's backends, and Envoy running `config` against them with `secrets` in its
/// environment, as `make demo` starts them.
fn start_demo(
    name: &str,
    config: &str,
    secrets: &[(String, String)],
) -> (BTreeMap<String, Backend>, Envoy) {
    let backends: BTreeMap<String, Backend> = [
        "checkout-v1",
        "checkout-v2",
        "search-a",
        "search-b",
        "checkout-v3-shadow",
    ]
    .iter()
    .map(|n| (n.to_string(), Backend::start(n)))
    .collect();
    let envoy = Envoy::start_yaml_with_env(name, &runnable(config, &backends).to_string(), secrets);
    (backends, envoy)
}

fn demo_lines_hold(config_file: &str) {
    let shipped = std::fs::read_to_string(repo_root().join(config_file)).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let config = prepare::with_ramp_from_now(&shipped, now.as_secs());
    let secrets = prepare::fresh_secrets();
    let policy_text = embedded_policy(&config);
    let policy: Value = serde_json::from_str(&policy_text).unwrap();
    let checkout = policy["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "checkout")
        .unwrap();

    // The demo's honest user: the first the core puts on stable now.
    let core = prepare::parse(&policy_text, &secrets);
    let user = prepare::first_user_on(&core, HOST, "/checkout", "stable", now.as_nanos() as u64)
        .expect("a user on stable while the ramp has not started");
    let token_variable = checkout["override"]["token"]["fromEnv"].as_str().unwrap();
    let token = secrets
        .iter()
        .find(|(k, _)| k == token_variable)
        .map(|(_, v)| v.clone())
        .unwrap();
    let cases = showcase::cases(checkout, &user, "stable", "canary", Some(&token));

    let (_backends, envoy) = start_demo("demo-safety", &config, &secrets);
    let mut client = Client::new(envoy.port);
    let outcomes: Vec<showcase::Outcome> = cases
        .iter()
        .map(|case| {
            let headers: Vec<(&str, &str)> = case
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let r = client.get(HOST, "/checkout", &headers);
            let field = |key: &str| {
                r.header("x-dial-assignment")
                    .unwrap_or_default()
                    .split("; ")
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or("-")
                    .to_string()
            };
            showcase::Outcome {
                subset: field("subset"),
                reason: field("reason"),
                backend: r.backend().to_string(),
            }
        })
        .collect();
    assert!(cases.len() >= 7, "{cases:?}");
    assert_eq!(
        showcase::check(&cases, &outcomes, "canary"),
        Ok(()),
        "{config_file}: {outcomes:?}"
    );
    assert_eq!(outcomes[0].backend, "checkout-v1");
    let log = envoy.log();
    for (_, value) in &secrets {
        assert!(!log.contains(value.as_str()), "a secret in Envoy's log");
    }
}

#[test]
fn the_demo_lines_tell_spoofed_requests_apart_in_the_wasm_example() {
    demo_lines_hold("envoy-config/envoy.yaml");
}

#[test]
fn the_demo_lines_tell_spoofed_requests_apart_in_the_native_example() {
    demo_lines_hold("envoy-config/native.yaml");
}

/// The demo output blocks of README.md and docs/**/*.md: (file, line, text).
fn demo_output_blocks() -> Vec<(String, usize, String)> {
    fn pages(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pages(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![repo_root().join("README.md")];
    pages(&repo_root().join("docs"), &mut files);
    let mut blocks = Vec::new();
    for file in files {
        let name = file
            .strip_prefix(repo_root())
            .unwrap()
            .display()
            .to_string();
        for b in markdown::parse(&std::fs::read_to_string(&file).unwrap()).blocks() {
            if b.comment_before.as_deref() == Some("<!-- demo-output -->") {
                assert_eq!(
                    b.info, "text",
                    "{name}:{}: the demo output block is ```text",
                    b.line
                );
                blocks.push((name.clone(), b.line, b.text.clone()));
            }
        }
    }
    blocks
}

#[test]
fn the_readme_shows_what_the_demo_prints() {
    let shown = demo_output_blocks();
    assert!(
        shown.iter().any(|(file, ..)| file == "README.md"),
        "README.md has no ```text block after a line <!-- demo-output -->: what the demo prints, compared here"
    );
    let shipped = std::fs::read_to_string(repo_root().join("envoy-config/envoy.yaml")).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let config = prepare::with_ramp_from_now(&shipped, now.as_secs());
    let secrets = prepare::fresh_secrets();
    let policy_text = embedded_policy(&config);
    let (backends, envoy) = start_demo("demo-output", &config, &secrets);
    let started = Instant::now();
    let mut printed = format!("{}\n", first_part::header(&envoy_binary(), &module_path()));
    let target = first_part::Target {
        port: envoy.port,
        admin_port: envoy.admin_port,
    };
    let requests = first_part::run(
        &mut |line| {
            printed.push_str(&line);
            printed.push('\n');
        },
        &target,
        &policy_text,
        &secrets,
        &backends["checkout-v3-shadow"],
    );
    printed.push_str(&first_part::summary(
        requests,
        started.elapsed().as_secs_f64(),
    ));
    printed.push('\n');
    drop(envoy);
    unleash::run(&mut |line| {
        printed.push_str(&line);
        printed.push('\n');
    });
    println!("{printed}");
    let policy: serde_json::Value = serde_json::from_str(&policy_text).unwrap();
    let expected: Vec<readme_output::Expect> = readme_output::lines(&printed)
        .into_iter()
        .chain(readme_output::lines(&timeline::intro_as_planned(&policy)))
        .chain([readme_output::Expect::Rows])
        .chain(readme_output::numbers(&timeline::outcome_template()))
        .chain(readme_output::numbers(&first_part::took(0.0)))
        .collect();
    for (file, line, text) in &shown {
        if let Err(e) = readme_output::compare(text, &expected, &timeline::is_row) {
            panic!("{file}:{line}: the demo output: {e}\nThe demo printed (above; then the timeline, whose lines come from tests/demo/timeline.rs)");
        }
    }
}
