//! Envoy end to end, loaded exactly the way Istio's control plane configures Dial from a
//! WasmPlugin: plugin name `<namespace>.<name>`, root_id from pluginName, empty vm_id, V8,
//! failure_policy from failStrategy, and pluginConfig as the JSON string istiod renders. The
//! settings come from the manifests under istio/: the tests derive them by running
//! tests/istio/check_manifests.mjs (Node.js, with the npm packages `make istio-tools` installs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use dial::core::policy::Policy;
use support::{repo_root, scratch_dir, Backend, Client, Envoy, EnvoyConfig};

#[derive(Clone)]
struct IstioPlugin {
    name: String,
    root_id: String,
    failure_policy: String,
    configuration: Option<String>,
}

/// The settings istiod would give each WasmPlugin under istio/, derived once per test binary.
fn derived_plugins() -> Vec<(PathBuf, IstioPlugin)> {
    static DERIVED: OnceLock<Vec<(PathBuf, IstioPlugin)>> = OnceLock::new();
    DERIVED.get_or_init(derive_plugins).clone()
}

/// Runs `node tests/istio/check_manifests.mjs --derive <scratch dir>`, which validates istio/
/// and writes one JSON file per valid WasmPlugin, and reads those files.
fn derive_plugins() -> Vec<(PathBuf, IstioPlugin)> {
    let dir = scratch_dir("istio-derive");
    let script = repo_root().join("tests/istio/check_manifests.mjs");
    let output = Command::new("node")
        .arg(&script)
        .arg("--derive")
        .arg(&dir)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `node` ({e}): Node.js is required to derive istiod's settings from \
                 istio/, with the npm packages `make istio-tools` installs"
            )
        });
    assert!(
        output.status.success(),
        "node {} --derive {} failed ({}); run `make istio-tools` if its npm packages are \
         missing:\n{}{}",
        script.display(),
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut out: Vec<(PathBuf, IstioPlugin)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let plugin = IstioPlugin {
                name: v["name"].as_str().unwrap().to_string(),
                root_id: v["rootId"].as_str().unwrap().to_string(),
                failure_policy: v["failurePolicy"].as_str().unwrap().to_string(),
                configuration: v["configuration"].as_str().map(str::to_string),
            };
            (p, plugin)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 3,
        "expected the WasmPlugins of istio/, found {}",
        out.len()
    );
    out
}

fn istio_style(plugin: &IstioPlugin, subsets: &[(&str, u16)]) -> EnvoyConfig {
    let mut c = EnvoyConfig::new(plugin.configuration.as_deref().unwrap_or_default(), subsets);
    c.plugin_name = plugin.name.clone();
    c.root_id = plugin.root_id.clone();
    c.vm_id = String::new();
    c.failure_policy = plugin.failure_policy.clone();
    c.omit_configuration = plugin.configuration.is_none();
    c.vm_env = vec![("ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION".into(), "1".into())];
    c
}

#[test]
fn every_wasmplugin_policy_in_istio_is_valid_for_dial() {
    for (path, plugin) in derived_plugins() {
        let config = plugin.configuration.as_deref().expect("a pluginConfig");
        if let Err(e) = Policy::parse(config.as_bytes()) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn dial_steers_when_configured_the_way_istio_does() {
    let (_, plugin) = derived_plugins()
        .into_iter()
        .find(|(_, p)| p.name == "shop.dial")
        .expect("istio/sidecar/wasmplugin.yaml");
    assert_eq!(
        (plugin.root_id.as_str(), plugin.failure_policy.as_str()),
        ("dial", "FAIL_OPEN")
    );
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let envoy = Envoy::start(&istio_style(
        &plugin,
        &[("stable", stable.port), ("canary", canary.port)],
    ));
    let mut client = Client::new(envoy.port);

    let r = client.get("checkout", "/", &[("x-user-id", "alice")]);
    assert_eq!(r.backend(), "canary");
    assert_eq!(
        canary
            .seen()
            .pop()
            .unwrap()
            .header("x-dial-version")
            .as_deref(),
        Some("v2")
    );
    let r = client.get(
        "checkout.shop.svc.cluster.local:8080",
        "/",
        &[("x-beta", "true"), ("x-user-id", "u1")],
    );
    assert_eq!(r.backend(), "canary");
    let on_canary = (0..2000)
        .filter(|i| {
            client
                .get("checkout", "/", &[("x-user-id", &format!("u{i}"))])
                .backend()
                == "canary"
        })
        .count();
    assert!(
        (150..250).contains(&on_canary),
        "{on_canary} of 2000 on the 10% canary"
    );
    // Another host is outside the release: untouched.
    assert_eq!(
        client
            .get("payments", "/", &[("x-user-id", "alice")])
            .backend(),
        "stable"
    );

    let log = envoy.log();
    assert!(
        log.contains("dial: policy loaded: 1 release(s): checkout"),
        "{log}"
    );
    assert!(
        log.contains(&format!("dial {} (git ", env!("CARGO_PKG_VERSION"))),
        "no version line:\n{log}"
    );
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
}

/// Istio sends no configuration at all for an empty pluginConfig. Dial refuses it (a policy is
/// required), so the proxy refuses the plugin; it never traps.
#[test]
fn an_empty_plugin_config_is_refused_without_a_trap() {
    let stable = Backend::start("stable");
    for failure_policy in ["FAIL_CLOSED", "FAIL_OPEN"] {
        let plugin = IstioPlugin {
            name: "shop.dial".into(),
            root_id: "dial".into(),
            failure_policy: failure_policy.into(),
            configuration: None,
        };
        let (status, log) =
            Envoy::start_expecting_failure(&istio_style(&plugin, &[("stable", stable.port)]));
        assert!(
            !status.success(),
            "{failure_policy}: Envoy accepted an empty configuration"
        );
        assert!(
            log.contains("dial: policy rejected (1 problem): $: the configuration is empty")
                && log.contains("Plugin shop.dial failed to load"),
            "{failure_policy}:\n{log}"
        );
        for word in ["panicked", "Uncaught", "unreachable"] {
            assert!(
                !log.contains(word),
                "{failure_policy}: the VM trapped:\n{log}"
            );
        }
    }
}
