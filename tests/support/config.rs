//! Builds Envoy bootstrap YAML for a test: Dial in front of the router, routes that match the
//! subset header, one static cluster per backend. The shape follows `envoy-config/envoy.yaml`.

use std::fmt::Write;

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
    pub build: super::Build,
    /// The connection manager's `use_remote_address` (`None`: unset, Envoy's default).
    pub use_remote_address: Option<bool>,
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
            build: super::Build::Wasm,
            use_remote_address: None,
        }
    }

    /// The same, for `build`.
    pub fn for_build(build: super::Build, policy: &str, subsets: &[(&str, u16)]) -> EnvoyConfig {
        EnvoyConfig {
            build,
            ..EnvoyConfig::new(policy, subsets)
        }
    }

    /// Dial's entry in `http_filters`, for the configured build (indented for the listener).
    fn dial_filter(&self) -> String {
        let policy = serde_json::to_string(&self.policy).unwrap();
        let module = self.module.clone().unwrap_or_else(|| self.build.module());
        match self.build {
            super::Build::Wasm => format!(
                "
      - name: envoy.filters.http.wasm
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
          config:
            name: {name}
            root_id: {root_id}
            failure_policy: {failure_policy}{configuration}
            vm_config:
              vm_id: \"{vm_id}\"{vm_env}
              runtime: envoy.wasm.runtime.v8
              code: {{ local: {{ filename: {module} }} }}",
                name = self.plugin_name,
                root_id = self.root_id,
                vm_id = self.vm_id,
                failure_policy = self.failure_policy,
                configuration = if self.omit_configuration {
                    String::new()
                } else {
                    format!(
                        "
            configuration:
              \"@type\": type.googleapis.com/google.protobuf.StringValue
              value: {policy}"
                    )
                },
                vm_env = self.environment_variables(),
                module = module.display(),
            ),
            super::Build::Native => format!(
                "
      - name: envoy.filters.http.dynamic_modules
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
          dynamic_module_config:
            name: dial
            module: {{ local: {{ filename: {module} }} }}
          filter_name: {name}{configuration}",
                name = self.plugin_name,
                configuration = if self.omit_configuration {
                    String::new()
                } else {
                    format!(
                        "
          filter_config:
            \"@type\": type.googleapis.com/google.protobuf.StringValue
            value: {policy}"
                    )
                },
                module = module.display(),
            ),
        }
    }

    /// The Wasm VM's `environment_variables`, if any.
    fn environment_variables(&self) -> String {
        let mut fields = Vec::new();
        if !self.host_env.is_empty() {
            let keys: Vec<&str> = self.host_env.iter().map(|(k, _)| k.as_str()).collect();
            fields.push(format!("host_env_keys: [{}]", keys.join(", ")));
        }
        if !self.vm_env.is_empty() {
            let pairs: Vec<String> = self
                .vm_env
                .iter()
                .map(|(k, v)| format!("{k}: \"{v}\""))
                .collect();
            fields.push(format!("key_values: {{ {} }}", pairs.join(", ")));
        }
        if fields.is_empty() {
            return String::new();
        }
        format!(
            "
              environment_variables: {{ {} }}",
            fields.join(", ")
        )
    }

    /// The listener resource (used inline, or as an LDS file for reload tests).
    pub fn listener_yaml(&self, indent: usize) -> String {
        // Each route comes in two: with Dial's mirror mark (mirrored to the shadow, which is
        // told it is a shadow and of which version) and without.
        let mut routes = String::new();
        let subset_routes = self.routes.iter().map(|r| {
            (
                format!(
                    "
                  - name: {}
                    string_match: {{ exact: {} }}",
                    r.header, r.value
                ),
                r.cluster.as_str(),
            )
        });
        let default_route = std::iter::once((String::new(), self.default_cluster.as_str()));
        for (headers, cluster) in subset_routes.chain(default_route) {
            if let Some(shadow) = &self.mirror_cluster {
                write!(
                    routes,
                    "
              - match:
                  prefix: /
                  headers:{headers}
                  - name: x-dial-mirror
                    present_match: true
                route:
                  cluster: {cluster}
                  request_mirror_policies:
                  - cluster: {shadow}
                    request_headers_mutations:
                    - append:
                        header: {{ key: x-dial-shadow-of, value: \"%REQ(x-dial-version)%\" }}
                        append_action: OVERWRITE_IF_EXISTS_OR_ADD"
                )
                .unwrap();
            }
            let headers = if headers.is_empty() {
                String::new()
            } else {
                format!("\n                  headers:{headers}")
            };
            write!(
                routes,
                "
              - match:
                  prefix: /{headers}
                route: {{ cluster: {cluster} }}"
            )
            .unwrap();
        }
        let yaml = format!(
            "name: main
address:
  socket_address: {{ address: 127.0.0.1, port_value: {port} }}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ingress{use_remote_address}
      route_config:
        name: local
        virtual_hosts:
        - name: all
          domains: [\"*\"]
          routes:{routes}
      http_filters:{dial}
      - name: envoy.filters.http.router
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
",
            port = self.port,
            dial = self.dial_filter(),
            use_remote_address = match self.use_remote_address {
                Some(on) => format!("\n      use_remote_address: {on}"),
                None => String::new(),
            },
        );
        let pad = " ".repeat(indent);
        yaml.lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{pad}{l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn clusters_yaml(&self) -> String {
        let mut out = String::new();
        for (name, port) in &self.clusters {
            write!(
                out,
                "
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"
            )
            .unwrap();
        }
        out
    }

    /// A bootstrap with the listener inline.
    pub fn bootstrap_static(&self) -> String {
        format!(
            "{}{}static_resources:
  listeners:
  - {}
  clusters:{}
",
            stats_config(),
            self.runtime_config(),
            self.listener_yaml(4).trim_start(),
            self.clusters_yaml()
        )
    }

    /// A bootstrap whose listener comes from `lds_path` (rewritten by reload tests).
    pub fn bootstrap_lds(&self, lds_path: &std::path::Path) -> String {
        format!(
            "{}{}node: {{ id: dial-test, cluster: dial-test }}
dynamic_resources:
  lds_config:
    resource_api_version: V3
    path_config_source:
      path: {}
static_resources:
  clusters:{}
",
            stats_config(),
            self.runtime_config(),
            lds_path.display(),
            self.clusters_yaml()
        )
    }

    /// The runtime the build needs: for the native build, Envoy 1.40's flag that strips the
    /// dynamic modules' stat namespace in `/stats/prometheus` (as Envoy does for Wasm's), so
    /// both builds' metrics have the same names there.
    fn runtime_config(&self) -> &'static str {
        match self.build {
            super::Build::Wasm => "",
            super::Build::Native => NATIVE_RUNTIME,
        }
    }

    /// The LDS file content: one listener resource.
    pub fn lds_file(&self) -> String {
        format!(
            "resources:
- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener
  {}
",
            self.listener_yaml(2).trim_start()
        )
    }
}

/// The bootstrap runtime the native build needs (see `EnvoyConfig::runtime_config`).
pub const NATIVE_RUNTIME: &str = "layered_runtime:
  layers:
  - name: dial
    static_layer:
      envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix: true
";

/// Turns Dial's `tag=.=value;.;` metric names into Prometheus labels, as `envoy-config/` does.
/// Histograms reach the admin API at each stats flush: every second here (default 5 s).
pub fn stats_config() -> String {
    let mut out = String::from("stats_flush_interval: 1s\nstats_config:\n  stats_tags:\n");
    for tag in dial::core::stats::TAGS {
        writeln!(
            out,
            "  - tag_name: {tag}\n    regex: \"({tag}=\\\\.=(.*?);\\\\.;)\""
        )
        .unwrap();
    }
    out
}
