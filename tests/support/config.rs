//! Builds Envoy configurations for a test as data: Dial in front of the router, routes that
//! match the subset header, one static cluster per backend. The shape follows
//! `envoy-config/envoy.yaml`. Every part is a `serde_json::Value`, written out as JSON: Envoy
//! reads it as YAML (YAML 1.2 is a superset of JSON), so no indentation or quoting can break a
//! configuration, and a policy reaches the filter's StringValue byte for byte.

use std::path::Path;

use serde_json::{json, Value};

use super::Build;

/// A route: requests whose `header` equals `value` go to `cluster`.
#[derive(Debug, Clone)]
pub struct Route {
    pub header: String,
    pub value: String,
    pub cluster: String,
}

#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    pub policy: String,
    /// Listener port; 0 lets the kernel choose (read back from the admin API).
    pub port: u16,
    pub routes: Vec<Route>,
    pub default_cluster: String,
    /// Cluster name → backend port on 127.0.0.1.
    pub clusters: Vec<(String, u16)>,
    /// Plugin `name`, `root_id`, `vm_id` as Envoy gets them.
    pub plugin_name: String,
    pub root_id: String,
    pub vm_id: String,
    /// Envoy's `failure_policy` (`FAIL_CLOSED`, `FAIL_OPEN`, `FAIL_RELOAD`), as istiod derives
    /// it from failStrategy.
    pub failure_policy: String,
    /// No `configuration` at all: what Istio sends for an empty pluginConfig.
    pub omit_configuration: bool,
    /// `vm_config.environment_variables.key_values`, as istiod sets them.
    pub vm_env: Vec<(String, String)>,
    /// Variables set on Envoy's process: the native build reads them there, the Wasm VM gets
    /// them through `vm_config.environment_variables.host_env_keys` (Istio's `valueFrom: HOST`).
    pub host_env: Vec<(String, String)>,
    /// Shadow cluster: requests Dial marks with `x-dial-mirror` are mirrored there.
    pub mirror_cluster: Option<String>,
    /// Another module than the release build (the panic probe's).
    pub module: Option<std::path::PathBuf>,
    /// Which build of Dial runs: the Wasm filter (the default) or the native dynamic module.
    /// The native filter takes `plugin_name` as its `filter_name` and the same policy; the
    /// Wasm-only settings (`root_id`, `vm_id`, `vm_env`, `failure_policy`) do not apply to it;
    /// `host_env` does (Envoy's process environment).
    pub build: Build,
    /// The connection manager's `use_remote_address` (`None`: unset, Envoy's default).
    pub use_remote_address: Option<bool>,
    /// HTTP filters ahead of Dial's in the chain (e.g. a `jwt_authn` that verifies the key).
    pub filters_before_dial: Vec<Value>,
}

impl EnvoyConfig {
    /// Dial with `policy`, routing `x-dial-subset: <name>` to the backend of that name.
    pub fn new(policy: &str, subsets: &[(&str, u16)]) -> EnvoyConfig {
        EnvoyConfig {
            policy: policy.to_string(),
            port: 0,
            routes: subsets
                .iter()
                .map(|(name, _)| Route {
                    header: "x-dial-subset".into(),
                    value: name.to_string(),
                    cluster: name.to_string(),
                })
                .collect(),
            default_cluster: subsets
                .first()
                .map(|(n, _)| n.to_string())
                .unwrap_or_default(),
            clusters: subsets.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            plugin_name: "dial".into(),
            root_id: "dial".into(),
            vm_id: "dial".into(),
            failure_policy: "FAIL_CLOSED".into(),
            omit_configuration: false,
            vm_env: Vec::new(),
            host_env: Vec::new(),
            mirror_cluster: None,
            module: None,
            build: Build::Wasm,
            use_remote_address: None,
            filters_before_dial: Vec::new(),
        }
    }

    /// The same, for `build`.
    pub fn for_build(build: Build, policy: &str, subsets: &[(&str, u16)]) -> EnvoyConfig {
        EnvoyConfig {
            build,
            ..EnvoyConfig::new(policy, subsets)
        }
    }

    /// Dial's entry in `http_filters`, for the configured build.
    pub fn dial_filter(&self) -> Value {
        let module = self.module.clone().unwrap_or_else(|| self.build.module());
        let configuration = (!self.omit_configuration).then(|| string_value(&self.policy));
        match self.build {
            Build::Wasm => {
                let mut vm_config = json!({
                    "vm_id": self.vm_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": module.display().to_string() } },
                });
                if let Some(variables) = self.environment_variables() {
                    vm_config["environment_variables"] = variables;
                }
                let mut plugin = json!({
                    "name": self.plugin_name,
                    "root_id": self.root_id,
                    "failure_policy": self.failure_policy,
                    "vm_config": vm_config,
                });
                if let Some(configuration) = configuration {
                    plugin["configuration"] = configuration;
                }
                wasm_filter(plugin)
            }
            Build::Native => {
                dynamic_module_filter("dial", &module, &self.plugin_name, configuration)
            }
        }
    }

    /// The Wasm VM's `environment_variables`, if any.
    fn environment_variables(&self) -> Option<Value> {
        let mut variables = serde_json::Map::new();
        if !self.host_env.is_empty() {
            let keys: Vec<&str> = self.host_env.iter().map(|(k, _)| k.as_str()).collect();
            variables.insert("host_env_keys".into(), json!(keys));
        }
        if !self.vm_env.is_empty() {
            let pairs: serde_json::Map<String, Value> = self
                .vm_env
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            variables.insert("key_values".into(), Value::Object(pairs));
        }
        (!variables.is_empty()).then_some(Value::Object(variables))
    }

    /// The route table. Each route comes in two: with Dial's mirror mark (mirrored to the
    /// shadow, which is told it is a shadow and of which version) and without.
    fn routes(&self) -> Vec<Value> {
        let subset_routes = self.routes.iter().map(|r| {
            (
                vec![json!({ "name": r.header, "string_match": { "exact": r.value } })],
                r.cluster.as_str(),
            )
        });
        let default_route = std::iter::once((Vec::new(), self.default_cluster.as_str()));
        let mut routes = Vec::new();
        for (headers, cluster) in subset_routes.chain(default_route) {
            if let Some(shadow) = &self.mirror_cluster {
                let mut marked = headers.clone();
                marked.push(json!({ "name": "x-dial-mirror", "present_match": true }));
                routes.push(json!({
                    "match": { "prefix": "/", "headers": marked },
                    "route": {
                        "cluster": cluster,
                        "request_mirror_policies": [{
                            "cluster": shadow,
                            "request_headers_mutations": [{ "append": {
                                "header": { "key": "x-dial-shadow-of", "value": "%REQ(x-dial-version)%" },
                                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                            } }],
                        }],
                    },
                }));
            }
            let mut route_match = json!({ "prefix": "/" });
            if !headers.is_empty() {
                route_match["headers"] = json!(headers);
            }
            routes.push(json!({ "match": route_match, "route": { "cluster": cluster } }));
        }
        routes
    }

    /// The listener resource (inline in a static bootstrap, or the resource of an LDS file).
    pub fn listener(&self) -> Value {
        let mut filters = self.filters_before_dial.clone();
        filters.push(self.dial_filter());
        let mut manager = connection_manager(
            "ingress",
            json!({
                "name": "local",
                "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": self.routes() }],
            }),
            filters,
        );
        if let Some(on) = self.use_remote_address {
            manager["use_remote_address"] = json!(on);
        }
        listener(self.port, manager)
    }

    fn static_clusters(&self) -> Vec<Value> {
        self.clusters
            .iter()
            .map(|(name, port)| static_cluster(name, *port))
            .collect()
    }

    /// A bootstrap with the listener inline.
    pub fn static_bootstrap(&self) -> Value {
        bootstrap(
            self.build,
            json!({ "static_resources": {
                "listeners": [self.listener()],
                "clusters": self.static_clusters(),
            } }),
        )
    }

    /// A bootstrap whose listener comes from `lds_path` (rewritten by reload tests).
    pub fn lds_bootstrap(&self, lds_path: &Path) -> Value {
        bootstrap(
            self.build,
            json!({
                "node": { "id": "dial-test", "cluster": "dial-test" },
                "dynamic_resources": { "lds_config": {
                    "resource_api_version": "V3",
                    "path_config_source": { "path": lds_path.display().to_string() },
                } },
                "static_resources": { "clusters": self.static_clusters() },
            }),
        )
    }

    /// The LDS file's content: one listener resource.
    pub fn lds(&self) -> Value {
        let mut listener = self.listener();
        listener["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
        json!({ "resources": [listener] })
    }

    /// `static_bootstrap` as the text Envoy reads.
    pub fn bootstrap_static(&self) -> String {
        text(&self.static_bootstrap())
    }

    /// `lds_bootstrap` as the text Envoy reads.
    pub fn bootstrap_lds(&self, lds_path: &Path) -> String {
        text(&self.lds_bootstrap(lds_path))
    }

    /// `lds` as the text Envoy reads.
    pub fn lds_file(&self) -> String {
        text(&self.lds())
    }
}

/// A configuration as the text Envoy reads from a `.yaml` file: JSON, which is YAML.
pub fn text(config: &Value) -> String {
    let mut out = serde_json::to_string_pretty(config).unwrap();
    out.push('\n');
    out
}

/// `text` as a `google.protobuf.StringValue`: how Dial gets its policy, in both builds.
pub fn string_value(text: &str) -> Value {
    json!({ "@type": "type.googleapis.com/google.protobuf.StringValue", "value": text })
}

/// Envoy's Wasm HTTP filter with `plugin` as its `config` (a `PluginConfig`).
pub fn wasm_filter(plugin: Value) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": plugin,
        },
    })
}

/// Envoy's dynamic-module HTTP filter: `module` loaded as `module_name`, its filter
/// `filter_name` given `configuration` (none: no `filter_config` at all).
pub fn dynamic_module_filter(
    module_name: &str,
    module: &Path,
    filter_name: &str,
    configuration: Option<Value>,
) -> Value {
    let mut filter = json!({
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {
                "name": module_name,
                "module": { "local": { "filename": module.display().to_string() } },
            },
            "filter_name": filter_name,
        },
    });
    if let Some(configuration) = configuration {
        filter["typed_config"]["filter_config"] = configuration;
    }
    filter
}

/// An HTTP connection manager's `typed_config`: `route_config`, then `filters` and the router.
pub fn connection_manager(stat_prefix: &str, route_config: Value, filters: Vec<Value>) -> Value {
    let mut http_filters = filters;
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
    }));
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "route_config": route_config,
        "http_filters": http_filters,
    })
}

/// The listener `main` on 127.0.0.1:`port`, its one filter the connection `manager`.
pub fn listener(port: u16, manager: Value) -> Value {
    json!({
        "name": "main",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": manager,
        }] }],
    })
}

/// A cluster of one endpoint, 127.0.0.1:`port`.
pub fn static_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": "127.0.0.1", "port_value": port },
            } } }] }],
        },
    })
}

/// A bootstrap of `resources` (an object: `static_resources`, `dynamic_resources`, `node`...)
/// with the stats settings of every test Envoy and the runtime `build` needs.
pub fn bootstrap(build: Build, resources: Value) -> Value {
    let mut out = json!({ "stats_flush_interval": "1s", "stats_config": stats_config() });
    if build == Build::Native {
        out["layered_runtime"] = native_runtime();
    }
    let Value::Object(resources) = resources else {
        panic!("a bootstrap's resources are an object, not {resources}");
    };
    for (key, value) in resources {
        out[key] = value;
    }
    out
}

/// The runtime the native build needs: Envoy 1.40's flag that strips the dynamic modules' stat
/// namespace in `/stats/prometheus` (as Envoy does for Wasm's), so both builds' metrics have
/// the same names there.
pub fn native_runtime() -> Value {
    json!({ "layers": [{
        "name": "dial",
        "static_layer": {
            "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix": true,
        },
    }] })
}

/// Turns Dial's `tag=.=value;.;` metric names into Prometheus labels, as `envoy-config/` does.
/// Histograms reach the admin API at each stats flush: every second here (the bootstrap's
/// `stats_flush_interval`; Envoy's default is 5 s).
pub fn stats_config() -> Value {
    let tags: Vec<Value> = dial::core::stats::TAGS
        .iter()
        .map(|tag| json!({ "tag_name": tag, "regex": format!(r"({tag}=\.=(.*?);\.;)") }))
        .collect();
    json!({ "stats_tags": tags })
}
