//! When Dial is not running, a client still cannot choose a subset. Under a fail-open policy a
//! module that cannot be fetched or loaded is skipped (Istio's FAIL_OPEN), and nothing of Dial
//! removes a client-sent `x-dial-subset`; the shipped configurations drop Dial's routing headers
//! in the connection manager before routing and before any filter (Envoy's early header
//! mutation), so the request takes the default route.
//!
//! Each test runs the shipped configuration in real Envoy with Dial removed from the filter
//! chain: a client-sent `x-dial-subset` reaches the default subset, and the upstream receives
//! none of Dial's headers. A control run of the same configuration without the early mutation
//! sends the same request to the canary, so the tests would fail if the defence went away.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use support::{repo_root, yaml, Backend, Client, Envoy};

const DIAL_HEADERS: [&str; 3] = ["x-dial-subset", "x-dial-version", "x-dial-mirror"];
const DIAL_FILTERS: [&str; 2] = [
    "envoy.filters.http.wasm",
    "envoy.filters.http.dynamic_modules",
];

/// The only listener's HTTP connection manager.
fn connection_manager(bootstrap: &mut Value) -> &mut Value {
    let listeners = bootstrap["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap();
    assert_eq!(listeners.len(), 1, "one listener expected");
    let filters = listeners[0]["filter_chains"][0]["filters"]
        .as_array_mut()
        .unwrap();
    let hcm = filters
        .iter_mut()
        .find(|f| f["name"] == "envoy.filters.network.http_connection_manager")
        .expect("an HTTP connection manager");
    &mut hcm["typed_config"]
}

/// The early header mutations that remove headers, as `[header names]`.
fn early_removals(hcm: &Value) -> Vec<String> {
    hcm["early_header_mutation_extensions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["typed_config"]["mutations"].as_array().cloned())
        .flatten()
        .filter_map(|m| m["remove"].as_str().map(str::to_string))
        .collect()
}

/// A shipped standalone configuration, made runnable beside other tests: the listener and admin
/// on ports the kernel picks, each cluster at the backend of its name, Dial removed from the
/// chain; and without the early mutation too, for the control run.
fn without_dial(
    mut bootstrap: Value,
    backends: &BTreeMap<String, Backend>,
    early_mutation: bool,
) -> Value {
    bootstrap["admin"] =
        json!({ "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } });
    bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] =
        json!(0);
    let hcm = connection_manager(&mut bootstrap);
    let filters = hcm["http_filters"].as_array_mut().unwrap();
    let before = filters.len();
    filters.retain(|f| !DIAL_FILTERS.contains(&f["name"].as_str().unwrap_or_default()));
    assert_eq!(
        filters.len(),
        before - 1,
        "Dial's filter was not in the chain"
    );
    if !early_mutation {
        hcm.as_object_mut()
            .unwrap()
            .remove("early_header_mutation_extensions");
    }
    for cluster in bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap()
    {
        let name = cluster["name"].as_str().unwrap().to_string();
        let port = backends
            .get(&name)
            .unwrap_or_else(|| panic!("no backend for cluster {name}"))
            .port;
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"]["port_value"] = json!(port);
    }
    bootstrap
}

fn backends(names: &[&str]) -> BTreeMap<String, Backend> {
    names
        .iter()
        .map(|n| (n.to_string(), Backend::start(n)))
        .collect()
}

/// Sends `headers` and returns who answered; asserts the upstream saw none of Dial's headers.
fn answered_by(
    envoy: &Envoy,
    backends: &BTreeMap<String, Backend>,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    for b in backends.values() {
        b.clear_seen();
    }
    let r = Client::new(envoy.port).get(host, path, headers);
    assert_eq!(r.status, 200, "{host}{path} {headers:?}: {}", r.text());
    let who = r.backend().to_string();
    let seen = backends[&who]
        .seen()
        .pop()
        .expect("the backend saw the request");
    for h in DIAL_HEADERS {
        if let Some(v) = seen.header(h) {
            panic!("{who} received a client-sent {h}: {v}");
        }
    }
    who
}

fn standalone(config: &str) {
    let path = repo_root().join("envoy-config").join(config);
    let shipped = yaml::load_all(&path).remove(0);
    let mut probe = shipped.clone();
    assert_eq!(
        early_removals(connection_manager(&mut probe)),
        DIAL_HEADERS,
        "{config}: the early mutation must drop exactly Dial's routing headers"
    );
    let backends = backends(&[
        "checkout-v1",
        "checkout-v2",
        "search-a",
        "search-b",
        "checkout-v3-shadow",
    ]);
    let spoof_canary = [("x-dial-subset", "canary"), ("x-dial-version", "v2")];
    let spoof_mirror = [("x-dial-subset", "canary"), ("x-dial-mirror", "v3")];
    let spoof_ranker = [("x-dial-subset", "ranker-b")];

    let envoy = Envoy::start_yaml(
        "fail-open-standalone",
        &without_dial(shipped.clone(), &backends, true).to_string(),
    );
    let host = "shop.example.com";
    for (path, headers, default) in [
        ("/checkout", &spoof_canary[..], "checkout-v1"),
        ("/checkout", &spoof_mirror[..], "checkout-v1"),
        ("/search", &spoof_ranker[..], "search-a"),
    ] {
        assert_eq!(
            answered_by(&envoy, &backends, host, path, headers),
            default,
            "{config} without Dial: {path} {headers:?}"
        );
    }
    drop(envoy);

    // Control: the same routes without the early mutation honour the client's header.
    let envoy = Envoy::start_yaml(
        "fail-open-standalone-control",
        &without_dial(shipped, &backends, false).to_string(),
    );
    let r = Client::new(envoy.port).get(host, "/checkout", &spoof_canary);
    assert_eq!(
        r.backend(),
        "checkout-v2",
        "{config}: the control run should reach the canary"
    );
}

#[test]
fn without_dial_the_standalone_example_ignores_client_sent_subsets() {
    standalone("envoy.yaml");
}

#[test]
fn without_dial_the_native_example_ignores_client_sent_subsets() {
    standalone("native.yaml");
}

/// Every document of every YAML file under `dir`.
fn documents(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files.iter().flat_map(|f| yaml::load_all(f)).collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The routes istiod would build from a VirtualService's `http` list, for what matters here:
/// exact header matches, and the destination subset as the cluster.
fn routes_of(virtual_service: &Value) -> Vec<Value> {
    virtual_service["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|http| {
            let headers: Vec<Value> = http["match"][0]["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, m)| {
                    let exact = m["exact"].as_str().expect("exact header matches only");
                    json!({ "name": name, "string_match": { "exact": exact } })
                })
                .collect();
            let subset = http["route"][0]["destination"]["subset"].as_str().unwrap();
            json!({ "match": { "prefix": "/", "headers": headers }, "route": { "cluster": subset } })
        })
        .collect()
}

/// An Envoy with the VirtualService's routes, the EnvoyFilter's connection-manager patch merged
/// in (or not), and no Dial: what a sidecar or gateway runs when the plugin was skipped.
fn istio_proxy_without_dial(
    virtual_service: &Value,
    envoy_filter: Option<&Value>,
    backends: &BTreeMap<String, Backend>,
) -> Envoy {
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "outbound",
        "route_config": { "virtual_hosts": [
            { "name": "checkout", "domains": ["*"], "routes": routes_of(virtual_service) }
        ] },
        "http_filters": [{ "name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }],
    });
    if let Some(filter) = envoy_filter {
        for patch in filter["spec"]["configPatches"].as_array().unwrap() {
            assert_eq!(patch["applyTo"], "NETWORK_FILTER");
            assert_eq!(patch["patch"]["operation"], "MERGE");
            for (k, v) in patch["patch"]["value"]["typed_config"].as_object().unwrap() {
                hcm[k] = v.clone();
            }
        }
    }
    let clusters: Vec<Value> = backends
        .iter()
        .map(|(name, b)| {
            json!({ "name": name, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": { "cluster_name": name, "endpoints": [{ "lb_endpoints": [
                    { "endpoint": { "address": { "socket_address":
                        { "address": "127.0.0.1", "port_value": b.port } } } }] }] } })
        })
        .collect();
    let bootstrap = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": {
            "listeners": [{ "name": "main",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm }] }] }],
            "clusters": clusters,
        },
    });
    Envoy::start_yaml("fail-open-istio", &bootstrap.to_string())
}

/// Where a WasmPlugin runs, as an EnvoyFilter must match it: (labels, context).
fn workload_of_plugin(plugin: &Value) -> (Value, &'static str) {
    let spec = &plugin["spec"];
    if spec["targetRefs"].is_array() {
        let gateway = spec["targetRefs"][0]["name"].as_str().unwrap();
        (
            json!({ "gateway.networking.k8s.io/gateway-name": gateway }),
            "GATEWAY",
        )
    } else if spec["selector"]["matchLabels"]["istio"] == "ingressgateway" {
        (spec["selector"]["matchLabels"].clone(), "GATEWAY")
    } else {
        let modes: Vec<&str> = spec["match"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["mode"].as_str())
            .collect();
        assert_eq!(
            modes,
            ["CLIENT"],
            "the example sidecar plugin runs in CLIENT mode"
        );
        (spec["selector"]["matchLabels"].clone(), "SIDECAR_OUTBOUND")
    }
}

#[test]
fn every_istio_plugin_has_a_filter_that_drops_client_sent_routing_headers_where_it_runs() {
    let mut checked = 0;
    for dir in ["istio/sidecar", "istio/gateway", "istio/lanes"] {
        let docs = documents(&repo_root().join(dir));
        let filters = kind(&docs, "EnvoyFilter");
        for plugin in kind(&docs, "WasmPlugin") {
            let name = format!("{dir}: WasmPlugin {}", plugin["metadata"]["name"]);
            let (labels, context) = workload_of_plugin(plugin);
            let filter = filters
                .iter()
                .find(|f| {
                    f["metadata"]["namespace"] == plugin["metadata"]["namespace"]
                        && f["spec"]["workloadSelector"]["labels"] == labels
                })
                .unwrap_or_else(|| panic!("{name}: no EnvoyFilter for workload {labels}"));
            for patch in filter["spec"]["configPatches"].as_array().unwrap() {
                assert_eq!(patch["match"]["context"], context, "{name}");
                assert_eq!(
                    early_removals(&patch["patch"]["value"]["typed_config"]),
                    DIAL_HEADERS,
                    "{name}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "the four WasmPlugins of istio/");
}

#[test]
fn without_dial_the_istio_routes_ignore_client_sent_subsets() {
    let sidecar = documents(&repo_root().join("istio/sidecar"));
    let gateway = documents(&repo_root().join("istio/gateway"));
    let vs = kind(&sidecar, "VirtualService")[0];
    let backends = backends(&["v1", "v2", "v3"]);
    let spoof = [("x-dial-subset", "canary")];
    let spoof_mirror = [("x-dial-subset", "canary"), ("x-dial-mirror", "v3")];
    let filters: Vec<(&str, &Value)> = kind(&sidecar, "EnvoyFilter")
        .into_iter()
        .map(|f| ("sidecar", f))
        .chain(
            kind(&gateway, "EnvoyFilter")
                .into_iter()
                .map(|f| ("gateway", f)),
        )
        .collect();
    assert_eq!(filters.len(), 3);
    for (at, filter) in filters {
        let envoy = istio_proxy_without_dial(vs, Some(filter), &backends);
        for headers in [&spoof[..], &spoof_mirror[..]] {
            assert_eq!(
                answered_by(
                    &envoy,
                    &backends,
                    "checkout.shop.svc.cluster.local",
                    "/",
                    headers
                ),
                "v1",
                "{at} {}: {headers:?}",
                filter["metadata"]["name"]
            );
        }
    }
    // Control: the VirtualService alone honours the client's header.
    let envoy = istio_proxy_without_dial(vs, None, &backends);
    let r = Client::new(envoy.port).get("checkout.shop.svc.cluster.local", "/", &spoof);
    assert_eq!(r.backend(), "v2", "the control run should reach the canary");
}
