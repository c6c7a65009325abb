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
    /// `vmConfig.env` with `valueFrom: HOST`: Envoy's `host_env_keys`.
    host_env_keys: Vec<String>,
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
                host_env_keys: v["hostEnvKeys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect(),
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
    c.host_env = plugin
        .host_env_keys
        .iter()
        .map(|k| (k.clone(), test_secret(k)))
        .collect();
    c
}

/// A value for a secret the proxy's environment holds in these tests, as a Kubernetes Secret
/// would give it: different for each variable.
fn test_secret(variable: &str) -> String {
    format!("test-secret-{}-0123456789", variable.to_lowercase())
}

/// The policy as the proxy reads it, with the environment the manifests give it.
fn parse_in_proxy(plugin: &IstioPlugin) -> Result<Policy, dial::core::policy::PolicyError> {
    let env: std::collections::HashMap<String, String> = plugin
        .host_env_keys
        .iter()
        .map(|k| (k.clone(), test_secret(k)))
        .collect();
    let lookup = |name: &str| env.get(name).cloned();
    Policy::parse_in(
        plugin
            .configuration
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
        dial::core::secret::Environment::proxy(&lookup),
    )
}

#[test]
fn every_wasmplugin_policy_in_istio_is_valid_for_dial() {
    for (path, plugin) in derived_plugins() {
        assert!(
            plugin.configuration.is_some(),
            "{}: a pluginConfig",
            path.display()
        );
        if let Err(e) = parse_in_proxy(&plugin) {
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
    // The override's token reaches the VM from the proxy's environment (vmConfig.env, valueFrom
    // HOST): honoured with it, not without it.
    let token = test_secret("DIAL_CHECKOUT_OVERRIDE_TOKEN");
    let stable_user = (0..100)
        .map(|i| format!("u{i}"))
        .find(|u| client.get("checkout", "/", &[("x-user-id", u)]).backend() == "stable")
        .unwrap();
    let with_token = format!("canary; token={token}");
    for (value, want) in [("canary", "stable"), (with_token.as_str(), "canary")] {
        let r = client.get(
            "checkout",
            "/",
            &[("x-user-id", &stable_user), ("x-dial-override", value)],
        );
        assert_eq!(r.backend(), want, "x-dial-override: {value}");
    }
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
            host_env_keys: Vec::new(),
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

/// Every `{"fromEnv": NAME}` in a value, with its JSON path.
fn env_names(value: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            if let (1, Some(name)) = (map.len(), map.get("fromEnv").and_then(|n| n.as_str())) {
                out.push((at.to_string(), name.to_string()));
            }
            for (k, v) in map {
                env_names(v, &format!("{at}.{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                env_names(v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The `istio-proxy` container's variables filled from a Secret, in a Deployment (patch) or in a
/// Gateway's parameters ConfigMap (`data.deployment`, a Deployment patch as text).
fn proxy_env_from_secrets(doc: &serde_json::Value) -> Vec<String> {
    let patch = match doc["kind"].as_str() {
        Some("Deployment") => doc.clone(),
        Some("ConfigMap") => match doc["data"]["deployment"].as_str() {
            Some(text) => {
                let dir = scratch_dir("istio-configmap");
                let file = dir.join("deployment.yaml");
                std::fs::write(&file, text).unwrap();
                support::yaml::load_all(&file).remove(0)
            }
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    patch["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"] == "istio-proxy")
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .filter(|e| {
            let from = &e["valueFrom"]["secretKeyRef"];
            from["name"].is_string()
                && from["key"].is_string()
                && from.get("optional").is_none_or(|o| o == false)
        })
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect()
}

/// A secret a policy reads from the environment must reach the Wasm VM: listed in the plugin's
/// `vmConfig.env` with `valueFrom: HOST` (else Envoy never hands it to the VM, and Dial refuses
/// the policy), and set on the proxy from a Secret by a manifest of the same namespace (else the
/// proxy has no such variable). Checked for every WasmPlugin under istio/.
#[test]
fn every_secret_a_policy_reads_from_the_environment_reaches_its_proxy() {
    let root = repo_root().join("istio");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    let docs: Vec<(PathBuf, serde_json::Value)> = files
        .iter()
        .flat_map(|f| {
            support::yaml::load_all(f)
                .into_iter()
                .map(move |d| (f.clone(), d))
        })
        .collect();
    let mut secrets_checked = 0;
    let mut plugins = 0;
    for (file, plugin) in docs.iter().filter(|(_, d)| d["kind"] == "WasmPlugin") {
        plugins += 1;
        let namespace = &plugin["metadata"]["namespace"];
        let mut wanted = Vec::new();
        env_names(&plugin["spec"]["pluginConfig"], "$", &mut wanted);
        let host: Vec<&str> = plugin["spec"]["vmConfig"]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["valueFrom"] == "HOST")
            .filter_map(|e| e["name"].as_str())
            .collect();
        let provided: Vec<String> = docs
            .iter()
            .filter(|(_, d)| &d["metadata"]["namespace"] == namespace)
            .flat_map(|(_, d)| proxy_env_from_secrets(d))
            .collect();
        for (at, name) in &wanted {
            let where_ = format!("{}: {at}: fromEnv {name}", file.display());
            assert!(
                host.contains(&name.as_str()),
                "{where_} is not in vmConfig.env with valueFrom: HOST ({host:?})"
            );
            assert!(
                provided.contains(name),
                "{where_} is set from a Secret by no manifest in namespace {namespace}"
            );
            secrets_checked += 1;
        }
        // A variable handed to the VM that no policy reads is a leftover: it only widens what
        // the plugin can see.
        for name in &host {
            assert!(
                wanted.iter().any(|(_, w)| w == name),
                "{}: vmConfig.env hands {name} to the VM, and no policy reads it",
                file.display()
            );
        }
    }
    assert_eq!(plugins, 4, "the four WasmPlugins of istio/");
    assert_eq!(
        secrets_checked, 11,
        "the example secrets: the sidecar's token; the gateway's token, two cookie secrets and lane secret; the classic gateway's two cookie secrets; the lane followers' two lane secrets, twice"
    );
}

/// Every fleet verdict in istio/ names a cluster istiod makes, `outbound|<port>||<host>`
/// (`BuildSubsetKey` in istiod): Istio's Prometheus addon Service in istio-system, or a
/// ServiceEntry shipped here (whose own comment names its cluster), on a port it declares.
#[test]
fn every_fleet_verdict_names_a_cluster_istiod_makes() {
    let mut files = Vec::new();
    for dir in ["istio/sidecar", "istio/gateway", "istio/mesh"] {
        for entry in std::fs::read_dir(repo_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "yaml") {
                files.push(path);
            }
        }
    }
    let docs: Vec<serde_json::Value> = files
        .iter()
        .flat_map(|f| support::yaml::load_all(f))
        .collect();
    let mut known: Vec<String> =
        vec!["outbound|9090||prometheus.istio-system.svc.cluster.local".into()];
    for entry in docs.iter().filter(|d| d["kind"] == "ServiceEntry") {
        for host in entry["spec"]["hosts"].as_array().unwrap() {
            for port in entry["spec"]["ports"].as_array().unwrap() {
                known.push(format!(
                    "outbound|{}||{}",
                    port["number"],
                    host.as_str().unwrap()
                ));
            }
        }
    }
    let external =
        std::fs::read_to_string(repo_root().join("istio/mesh/prometheus-outside-mesh.yaml"))
            .unwrap();
    assert!(
        external.contains(&format!("\"cluster\": \"{}\"", known[1])),
        "the ServiceEntry's comment names its cluster {}",
        known[1]
    );
    let mut fleets = 0;
    for plugin in docs.iter().filter(|d| d["kind"] == "WasmPlugin") {
        for release in plugin["spec"]["pluginConfig"]["releases"]
            .as_array()
            .unwrap()
        {
            let fleet = &release["guard"]["fleet"];
            if fleet.is_null() {
                continue;
            }
            let cluster = fleet["cluster"].as_str().unwrap();
            assert!(
                known.iter().any(|k| k == cluster),
                "{cluster} is not one of {known:?}"
            );
            let (host, port) = cluster
                .rsplit("||")
                .next()
                .zip(cluster.split('|').nth(1))
                .unwrap();
            assert_eq!(
                fleet["authority"].as_str().unwrap(),
                format!("{host}:{port}"),
                "the authority names the cluster's host and port"
            );
            fleets += 1;
        }
    }
    assert_eq!(
        fleets, 2,
        "the sidecar's and the gateway's guards ask the fleet"
    );
}
