//! Finding Dial's policies in files, as each program that reads them would: a policy JSON file
//! (the bytes go to the policy parser as they are), an Envoy bootstrap, listener or LDS/ECDS
//! file (YAML or JSON) with Dial's wasm filter (its `configuration`, a
//! `google.protobuf.StringValue`), or Kubernetes YAML with Istio `WasmPlugin`s (the
//! `pluginConfig`, rendered to JSON as istiod does). Each policy is parsed by the core, and each
//! problem can be pointed back to its line in the file.

use std::fmt;
use std::path::{Path, PathBuf};

use dial::core::policy::{self, Policy, PolicyError, Problem, ProblemKind, Segment};
use dial::core::secret::Environment;
use saphyr_parser::ScalarStyle;

use crate::allow::{self, Marker};
use crate::locate;
use crate::placement::{Mode, Placement, Setting, Site};
use crate::yaml::{self, Kind, Node, Position, Schema};

/// One policy found in a file, parsed.
#[derive(Debug)]
pub struct Found {
    pub file: String,
    /// The file's number in the scan, to keep output in input order.
    pub seq: usize,
    /// The document's number (from 1) in a YAML stream of several.
    pub document: Option<usize>,
    pub origin: Origin,
    /// The bytes Dial receives as its configuration.
    pub text: Vec<u8>,
    place: Place,
    pub outcome: Result<Policy, PolicyError>,
    /// Where its holder says it runs, and the holder's settings the mode checks read.
    pub site: Site,
    /// The allow markers that apply to it (indices into `Scan::markers`).
    pub allows: Vec<usize>,
}

/// What held the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The file is the policy.
    File,
    /// An Istio WasmPlugin, by `namespace/name`.
    WasmPlugin(String),
    /// An Envoy wasm filter, by its plugin name, and the listener it is in when known.
    Envoy {
        name: String,
        listener: Option<String>,
    },
    /// An Envoy dynamic-module filter (the native build), by its module name and listener.
    Native {
        name: String,
        listener: Option<String>,
    },
    /// An Envoy Gateway EnvoyExtensionPolicy's dynamic module, by `namespace/name`.
    Gateway(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File => f.write_str("policy"),
            Origin::WasmPlugin(name) => write!(f, "WasmPlugin {name}"),
            Origin::Envoy {
                name,
                listener: Some(l),
            } => write!(f, "Envoy wasm filter {name} (listener {l})"),
            Origin::Envoy {
                name,
                listener: None,
            } => write!(f, "Envoy wasm filter {name}"),
            Origin::Native {
                name,
                listener: Some(l),
            } => write!(f, "Envoy dynamic module {name} (listener {l})"),
            Origin::Native {
                name,
                listener: None,
            } => write!(f, "Envoy dynamic module {name}"),
            Origin::Gateway(name) => write!(f, "EnvoyExtensionPolicy {name}"),
        }
    }
}

/// How a JSON path in the policy maps to a place in the file.
#[derive(Debug)]
enum Place {
    /// The file's text is the policy's.
    Text,
    /// The policy is this YAML tree (a WasmPlugin's `pluginConfig`).
    Yaml(Node),
    /// The policy is a YAML string: line `first` of the file holds its first line (at `indent`
    /// columns, for a block scalar); otherwise only where the scalar starts is known.
    Embedded {
        at: Position,
        block: Option<(usize, usize)>,
    },
}

/// Something wrong with a file itself, before any policy: unreadable, not YAML, no policy.
#[derive(Debug, Clone)]
pub struct Issue {
    pub file: String,
    pub seq: usize,
    pub at: Option<Position>,
    pub document: Option<usize>,
    pub origin: Option<String>,
    /// `unreadable`, `yaml`, `no_policy`, `configuration`.
    pub kind: &'static str,
    pub message: String,
}

impl Issue {
    /// Unreadable input is a usage error (exit 2); the rest are problems (exit 1).
    pub fn is_unreadable(&self) -> bool {
        self.kind == "unreadable"
    }
}

/// Something seen and left alone: another plugin, a file without a policy in a directory.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub file: String,
    pub document: Option<usize>,
    pub why: String,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub found: Vec<Found>,
    pub issues: Vec<Issue>,
    pub skipped: Vec<Skipped>,
    pub files: usize,
    /// Every allow marker in the files, in file order.
    pub markers: Vec<Marker>,
}

/// Reads every input (files, directories searched for `.json`, `.yaml` and `.yml`, `-` for
/// standard input) and finds the policies in them.
pub fn scan(inputs: &[String]) -> Scan {
    let mut scan = Scan::default();
    for input in inputs {
        if input == "-" {
            let mut text = Vec::new();
            match std::io::Read::read_to_end(&mut std::io::stdin(), &mut text) {
                Ok(_) => scan.file("<stdin>", None, &text, true),
                Err(e) => scan.unreadable("<stdin>", &e.to_string()),
            }
            continue;
        }
        let path = Path::new(input);
        if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files);
            files.sort();
            for file in files {
                let name = file.display().to_string();
                match std::fs::read(&file) {
                    Ok(text) => scan.file(&name, extension(&file), &text, false),
                    Err(e) => scan.unreadable(&name, &e.to_string()),
                }
            }
            continue;
        }
        match std::fs::read(path) {
            Ok(text) => scan.file(input, extension(path), &text, true),
            Err(e) => scan.unreadable(input, &e.to_string()),
        }
    }
    scan
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// Policy-bearing files under a directory, hidden directories and `node_modules` left out.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        out.push(dir.to_path_buf());
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "node_modules" || name == "target" {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else if matches!(extension(&path).as_deref(), Some("json" | "yaml" | "yml")) {
            out.push(path);
        }
    }
}

/// Envoy configuration that is not a policy: these keys mark a JSON object as a container.
const CONTAINER_KEYS: [&str; 10] = [
    "apiVersion",
    "kind",
    "@type",
    "static_resources",
    "dynamic_resources",
    "resources",
    "filter_chains",
    "http_filters",
    "typed_config",
    "admin",
];

impl Scan {
    fn unreadable(&mut self, file: &str, why: &str) {
        self.files += 1;
        self.issues.push(Issue {
            file: file.into(),
            seq: self.files,
            at: None,
            document: None,
            origin: None,
            kind: "unreadable",
            message: format!("cannot read {file}: {why}"),
        });
    }

    /// One file. `explicit`: named on the command line (not found in a directory), so a JSON
    /// file is taken as a policy even when it does not look like one, and finding no policy is
    /// a problem.
    fn file(&mut self, file: &str, ext: Option<String>, bytes: &[u8], explicit: bool) {
        self.files += 1;
        let trimmed = bytes.trim_ascii_start();
        let yaml_ext = matches!(ext.as_deref(), Some("yaml" | "yml"));
        let json_like = ext.as_deref() == Some("json")
            || (!yaml_ext
                && (trimmed.is_empty() || trimmed.starts_with(b"{") || trimmed.starts_with(b"[")));
        if json_like {
            let container = match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(serde_json::Value::Object(map)) => {
                    CONTAINER_KEYS.iter().any(|k| map.contains_key(*k))
                        || (!explicit && !map.contains_key("releases"))
                }
                Ok(_) => !explicit,
                // Not JSON: the policy parser says where (when the file was named).
                Err(_) => !explicit,
            };
            if !container {
                self.found.push(Found {
                    file: file.into(),
                    seq: self.files,
                    document: None,
                    origin: Origin::File,
                    text: bytes.to_vec(),
                    place: Place::Text,
                    outcome: parse_policy(bytes),
                    site: Site {
                        placement: Placement::new(Vec::new(), "a bare policy", None),
                        ..Site::default()
                    },
                    allows: Vec::new(),
                });
                self.side_file_markers(file, self.found.len() - 1);
                return;
            }
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.issue(file, None, None, None, "yaml", "not UTF-8 text".into());
            return;
        };
        let documents = match yaml::load(text) {
            Ok(d) => d,
            Err(e) => {
                if explicit || !json_like {
                    self.issue(file, Some(e.at), None, None, "yaml", e.message);
                }
                return;
            }
        };
        let before = self.found.len() + self.issues.len();
        let first_found = self.found.len();
        let several = documents.len() > 1;
        let mut per_document = Vec::with_capacity(documents.len());
        for (i, doc) in documents.iter().enumerate() {
            let document = several.then_some(i + 1);
            let mut context = Context {
                file,
                document,
                text,
                listener: None,
                direction: None,
            };
            let start = self.found.len();
            if is_kubernetes(doc) {
                self.kubernetes(&mut context, doc);
            } else {
                self.envoy(&mut context, doc);
            }
            per_document.push(start..self.found.len());
        }
        if json_like {
            self.side_file_markers(file, first_found);
        } else {
            self.comment_markers(file, text, &documents, &per_document);
        }
        if self.found.len() + self.issues.len() == before {
            if explicit {
                self.issue(
                    file,
                    None,
                    None,
                    None,
                    "no_policy",
                    "no Dial policy found: expected a policy JSON, an Envoy configuration with Dial's wasm filter, or an Istio WasmPlugin for Dial".into(),
                );
            } else {
                self.skipped.push(Skipped {
                    file: file.into(),
                    document: None,
                    why: "no Dial policy".into(),
                });
            }
        }
    }

    fn issue(
        &mut self,
        file: &str,
        at: Option<Position>,
        document: Option<usize>,
        origin: Option<String>,
        kind: &'static str,
        message: String,
    ) {
        self.issues.push(Issue {
            file: file.into(),
            seq: self.files,
            at,
            document,
            origin,
            kind,
            message,
        });
    }

    fn kubernetes(&mut self, context: &mut Context<'_>, doc: &Node) {
        let kind = doc.get("kind").and_then(Node::str).unwrap_or_default();
        let api = doc
            .get("apiVersion")
            .and_then(Node::str)
            .unwrap_or_default();
        if kind == "List" {
            if let Some(Kind::Sequence(items)) = doc.get("items").map(|n| &n.kind) {
                for item in items {
                    self.kubernetes(context, item);
                }
            }
            return;
        }
        if kind == "EnvoyExtensionPolicy" && api.starts_with("gateway.envoyproxy.io/") {
            self.gateway(context, doc);
            return;
        }
        if kind != "WasmPlugin" || !api.starts_with("extensions.istio.io/") {
            return;
        }
        let name = namespaced_name(doc);
        let spec = doc.get("spec");
        let field = |f: &str| spec.and_then(|s| s.get(f)).and_then(Node::str);
        let dials = field("pluginName") == Some("dial")
            || field("url").is_some_and(|u| last_segment(u).starts_with("dial"))
            || name.contains("dial");
        if !dials {
            self.skipped.push(Skipped {
                file: context.file.into(),
                document: context.document,
                why: format!(
                    "WasmPlugin {name} is not Dial's (pluginName, url and name do not say dial)"
                ),
            });
            return;
        }
        let config = spec.and_then(|s| s.get("pluginConfig"));
        // istiod: an empty pluginConfig (absent, null or {}) sends no configuration at all.
        let json = config.map(|c| c.to_json(Schema::Kubernetes));
        let empty = match &json {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::Object(m)) => m.is_empty(),
            Some(_) => false,
        };
        let text = match json {
            Some(j) if !empty => yaml::struct_json(&j),
            _ => String::new(),
        };
        let place = match config {
            Some(c) => Place::Yaml(c.clone()),
            None => Place::Yaml(spec.unwrap_or(doc).clone()),
        };
        let site = spec.map(wasmplugin_site).unwrap_or_default();
        self.push(
            context,
            Origin::WasmPlugin(name),
            text.into_bytes(),
            place,
            site,
        );
    }

    fn push(
        &mut self,
        context: &Context<'_>,
        origin: Origin,
        text: Vec<u8>,
        place: Place,
        site: Site,
    ) {
        let outcome = parse_policy(&text);
        self.found.push(Found {
            file: context.file.into(),
            seq: self.files,
            document: context.document,
            origin,
            text,
            place,
            outcome,
            site,
            allows: Vec::new(),
        });
    }

    /// The `# dial-validate:` comments of a YAML file, each given to the policies of the
    /// document it applies to (or of the whole file).
    fn comment_markers(
        &mut self,
        file: &str,
        text: &str,
        documents: &[Node],
        per_document: &[std::ops::Range<usize>],
    ) {
        let starts: Vec<usize> = documents.iter().map(|d| d.at.line).collect();
        let separators: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("---"))
            .map(|(n, _)| n + 1)
            .collect();
        for marker in allow::find(file, self.files, text) {
            let index = self.markers.len();
            let range = if marker.whole_file {
                per_document.first().map(|r| r.start).unwrap_or(0)
                    ..per_document.last().map(|r| r.end).unwrap_or(0)
            } else {
                allow::document_of(marker.line, &starts, &separators)
                    .and_then(|d| per_document.get(d))
                    .cloned()
                    .unwrap_or(0..0)
            };
            for found in self.found.get_mut(range).into_iter().flatten() {
                found.allows.push(index);
            }
            self.markers.push(marker);
        }
    }

    /// The markers of a JSON file, from `<file>.dial-validate` beside it: for every policy
    /// found in the file from `first` on.
    fn side_file_markers(&mut self, file: &str, first: usize) {
        if file == "<stdin>" {
            return;
        }
        let side = format!("{file}{}", allow::SIDE_FILE);
        let Ok(text) = std::fs::read_to_string(&side) else {
            return;
        };
        for mut marker in allow::find(&side, self.files, &text) {
            marker.whole_file = true;
            let index = self.markers.len();
            for found in self.found.get_mut(first..).into_iter().flatten() {
                found.allows.push(index);
            }
            self.markers.push(marker);
        }
    }

    /// An Envoy Gateway EnvoyExtensionPolicy: each `dynamicModule` named dial, whose `config`
    /// Envoy Gateway hands to Dial as JSON text.
    fn gateway(&mut self, context: &mut Context<'_>, doc: &Node) {
        let name = namespaced_name(doc);
        let modules = doc.get("spec").and_then(|s| s.get("dynamicModule"));
        let Some(Kind::Sequence(modules)) = modules.map(|m| &m.kind) else {
            return;
        };
        for module in modules {
            if module.get("name").and_then(Node::str) != Some("dial") {
                continue;
            }
            let (text, place) = match module.get("config") {
                Some(c) => (
                    yaml::struct_json(&c.to_json(Schema::Kubernetes)),
                    Place::Yaml(c.clone()),
                ),
                None => (String::new(), Place::Yaml(module.clone())),
            };
            let site = Site {
                placement: Placement::new(
                    vec![Mode::Gateway],
                    "an Envoy Gateway EnvoyExtensionPolicy",
                    Some(doc.at),
                ),
                ..Site::default()
            };
            self.push(
                context,
                Origin::Gateway(name.clone()),
                text.into_bytes(),
                place,
                site,
            );
        }
    }

    /// Searches an Envoy configuration (any shape: bootstrap, listener, LDS or ECDS resources)
    /// for wasm filters.
    fn envoy(&mut self, context: &mut Context<'_>, node: &Node) {
        match &node.kind {
            Kind::Mapping(entries) => {
                let type_url = node.get("@type").and_then(Node::str).unwrap_or_default();
                if type_url.ends_with(
                    "envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                ) {
                    self.dynamic_module(context, node);
                    return;
                }
                if type_url.ends_with("envoy.extensions.filters.http.wasm.v3.Wasm") {
                    if let Some(plugin) = node.get("config") {
                        self.plugin(context, plugin);
                    }
                    return;
                }
                let typed_struct = node.get("type_url").and_then(Node::str).unwrap_or_default();
                if type_url.ends_with("TypedStruct")
                    && typed_struct.ends_with("envoy.extensions.filters.http.wasm.v3.Wasm")
                {
                    if let Some(plugin) = node.get("value").and_then(|v| v.get("config")) {
                        self.plugin(context, plugin);
                    }
                    return;
                }
                let is_listener = node.get("filter_chains").is_some();
                let listener = is_listener.then(|| {
                    node.get("name")
                        .and_then(Node::str)
                        .unwrap_or("(unnamed)")
                        .to_string()
                });
                let direction = is_listener.then(|| {
                    node.get("traffic_direction")
                        .and_then(|d| d.str().map(|s| (s.to_string(), d.at)))
                });
                let outer = match listener {
                    Some(l) => context.listener.replace(l),
                    None => context.listener.clone(),
                };
                let outer_direction = match direction {
                    Some(d) => context.direction.replace(d),
                    None => context.direction.clone(),
                };
                for (_, value) in entries {
                    self.envoy(context, value);
                }
                context.listener = outer;
                context.direction = outer_direction;
            }
            Kind::Sequence(items) => {
                for item in items {
                    self.envoy(context, item);
                }
            }
            Kind::Scalar(_) => {}
        }
    }

    /// A wasm filter's `PluginConfig`: Dial's if its name, root id, VM id or code says so.
    fn plugin(&mut self, context: &Context<'_>, plugin: &Node) {
        let field = |f: &str| plugin.get(f).and_then(Node::str);
        let vm = plugin.get("vm_config");
        let vm_id = vm.and_then(|v| v.get("vm_id")).and_then(Node::str);
        let code = vm.and_then(|v| v.get("code"));
        let file = code
            .and_then(|c| c.get("local"))
            .and_then(|l| l.get("filename"))
            .and_then(Node::str);
        let uri = code
            .and_then(|c| c.get("remote"))
            .and_then(|r| r.get("http_uri"))
            .and_then(|h| h.get("uri"))
            .and_then(Node::str);
        let name = field("name").unwrap_or("(unnamed)").to_string();
        let dials = field("root_id") == Some("dial")
            || name == "dial"
            || name.ends_with(".dial")
            || vm_id == Some("dial")
            || file.is_some_and(|f| last_segment(f).starts_with("dial"))
            || uri.is_some_and(|u| last_segment(u).starts_with("dial"));
        if !dials {
            self.skipped.push(Skipped {
                file: context.file.into(),
                document: context.document,
                why: format!("Envoy wasm filter {name} is not Dial's (root_id, name, vm_id and code do not say dial)"),
            });
            return;
        }
        let origin = Origin::Envoy {
            name,
            listener: context.listener.clone(),
        };
        let mut site = Site {
            placement: listener_placement(context),
            ..Site::default()
        };
        if let Some(f) = plugin.get("fail_open") {
            if f.to_json(Schema::Core) == serde_json::Value::Bool(true) {
                site.fail_open = setting(f, "fail_open", "true");
            }
        }
        if let Some(f) = plugin.get("failure_policy") {
            if f.str() == Some("FAIL_OPEN") {
                site.fail_open = setting(f, "failure_policy", "FAIL_OPEN");
            }
        }
        let remote = code.and_then(|c| c.get("remote"));
        if let Some(s) = remote.and_then(|r| r.get("sha256")) {
            site.sha256 = setting(
                s,
                "vm_config.code.remote.sha256",
                s.str().unwrap_or_default(),
            );
        }
        if let (Some(u), Some(uri)) = (
            remote
                .and_then(|r| r.get("http_uri"))
                .and_then(|h| h.get("uri")),
            uri,
        ) {
            site.url = setting(u, "vm_config.code.remote.http_uri.uri", uri);
        }
        self.configuration(context, origin, plugin, plugin.get("configuration"), site);
    }

    /// The native build's filter: Dial's when its module is called dial; its `filter_config`
    /// holds the policy as the wasm filter's `configuration` does.
    fn dynamic_module(&mut self, context: &Context<'_>, filter: &Node) {
        let name = filter
            .get("dynamic_module_config")
            .and_then(|c| c.get("name"))
            .and_then(Node::str)
            .unwrap_or("(unnamed)")
            .to_string();
        if name != "dial" {
            self.skipped.push(Skipped {
                file: context.file.into(),
                document: context.document,
                why: format!("Envoy dynamic module {name} is not Dial's"),
            });
            return;
        }
        let origin = Origin::Native {
            name,
            listener: context.listener.clone(),
        };
        let site = Site {
            placement: listener_placement(context),
            ..Site::default()
        };
        self.configuration(context, origin, filter, filter.get("filter_config"), site);
    }

    /// A filter's configuration message: a StringValue (or BytesValue) holding the policy JSON.
    fn configuration(
        &mut self,
        context: &Context<'_>,
        origin: Origin,
        filter: &Node,
        configuration: Option<&Node>,
        site: Site,
    ) {
        let Some(configuration) = configuration else {
            // No configuration: Dial receives none, and refuses that.
            self.push(
                context,
                origin,
                Vec::new(),
                Place::Yaml(filter.clone()),
                site,
            );
            return;
        };
        let type_url = configuration
            .get("@type")
            .and_then(Node::str)
            .unwrap_or_default();
        let value = configuration.get("value");
        if type_url.ends_with("google.protobuf.StringValue") {
            match value.map(|v| &v.kind) {
                None => self.push(context, origin, Vec::new(), Place::Yaml(configuration.clone()), site),
                Some(Kind::Scalar(s)) => {
                    let place = embedded(context.text, value.map_or(configuration.at, |v| v.at), &s.text, s.style);
                    self.push(context, origin, s.text.clone().into_bytes(), place, site);
                }
                Some(_) => self.issue(
                    context.file,
                    value.map(|v| v.at),
                    context.document,
                    Some(origin.to_string()),
                    "configuration",
                    "the StringValue's `value` must be a string: the policy JSON, e.g. `value: |` and the JSON below it".into(),
                ),
            }
        } else if type_url.ends_with("google.protobuf.BytesValue") {
            let text = value
                .and_then(Node::str)
                .and_then(base64)
                .unwrap_or_default();
            self.push(
                context,
                origin,
                text,
                Place::Yaml(configuration.clone()),
                site,
            );
        } else {
            self.issue(
                context.file,
                Some(configuration.at),
                context.document,
                Some(origin.to_string()),
                "configuration",
                format!(
                    "the configuration is a {}: Dial reads its policy from a type.googleapis.com/google.protobuf.StringValue holding the policy JSON",
                    if type_url.is_empty() { "message without @type" } else { type_url }
                ),
            );
        }
    }
}

struct Context<'a> {
    file: &'a str,
    document: Option<usize>,
    text: &'a str,
    listener: Option<String>,
    /// The enclosing listener's `traffic_direction` and where it is written (`Some(None)`: a
    /// listener without one; `None`: no listener encloses the filter).
    direction: Option<Option<(String, Position)>>,
}

/// Where an Envoy filter runs, from its listener's `traffic_direction`: INBOUND is a sidecar's
/// server side, OUTBOUND its client side; a listener without one is a standalone Envoy, at the
/// edge. A filter outside any listener (an ECDS resource, a snippet) runs where it is put.
fn listener_placement(context: &Context<'_>) -> Placement {
    let listener = context.listener.as_deref().unwrap_or("(unnamed)");
    match &context.direction {
        Some(Some((direction, at))) => {
            let modes = match direction.as_str() {
                "INBOUND" => vec![Mode::Server],
                "OUTBOUND" => vec![Mode::Client],
                _ => vec![Mode::Standalone],
            };
            Placement::new(
                modes,
                format!("listener {listener}: traffic_direction {direction}"),
                Some(*at),
            )
        }
        Some(None) => Placement::new(
            vec![Mode::Standalone],
            format!("listener {listener}: no traffic_direction"),
            None,
        ),
        None => Placement::new(Vec::new(), "no listener encloses the filter", None),
    }
}

fn setting(node: &Node, path: &str, value: &str) -> Option<Setting> {
    Some(Setting {
        path: path.into(),
        value: value.into(),
        at: node.at,
    })
}

/// Where an Istio WasmPlugin runs: at a gateway when it targets a Gateway or selects an
/// ingress gateway's pods; otherwise in sidecars, on the sides its `match[].mode` names
/// (CLIENT_AND_SERVER, Istio's default, when none does).
fn wasmplugin_site(spec: &Node) -> Site {
    let mut site = Site {
        placement: sidecar_or_gateway(spec),
        ..Site::default()
    };
    if let Some(f) = spec.get("failStrategy") {
        if f.str() == Some("FAIL_OPEN") {
            site.fail_open = setting(f, "spec.failStrategy", "FAIL_OPEN");
        }
    }
    if let Some(s) = spec.get("sha256") {
        let text = match &s.kind {
            Kind::Scalar(scalar) => scalar.text.as_str(),
            _ => "",
        };
        site.sha256 = setting(s, "spec.sha256", text);
    }
    if let Some(u) = spec.get("url") {
        site.url = setting(u, "spec.url", u.str().unwrap_or_default());
    }
    site
}

fn sidecar_or_gateway(spec: &Node) -> Placement {
    let refs: Vec<(String, &Node)> = match spec.get("targetRefs").map(|r| &r.kind) {
        Some(Kind::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("spec.targetRefs[{i}]"), n))
            .collect(),
        _ => spec
            .get("targetRef")
            .map(|n| vec![("spec.targetRef".to_string(), n)])
            .unwrap_or_default(),
    };
    for (path, target) in &refs {
        if target.get("kind").and_then(Node::str) == Some("Gateway") {
            let name = target
                .get("name")
                .and_then(Node::str)
                .unwrap_or("(unnamed)");
            return Placement::new(
                vec![Mode::Gateway],
                format!("{path}: Gateway {name}"),
                Some(target.at),
            );
        }
    }
    if let Some(Kind::Mapping(labels)) = spec
        .get("selector")
        .and_then(|s| s.get("matchLabels"))
        .map(|l| &l.kind)
    {
        for (key, value) in labels {
            let value_text = value.str().unwrap_or_default();
            let gateway = match key.as_str() {
                "istio" | "app" => value_text.ends_with("ingressgateway"),
                "gateway.networking.k8s.io/gateway-name" | "istio.io/gateway-name" => true,
                _ => false,
            };
            if gateway {
                return Placement::new(
                    vec![Mode::Gateway],
                    format!("spec.selector.matchLabels {key}: {value_text}, an ingress gateway"),
                    Some(value.at),
                );
            }
        }
    }
    let mut modes = Vec::new();
    let mut because = Vec::new();
    let mut at = None;
    if let Some(Kind::Sequence(matches)) = spec.get("match").map(|m| &m.kind) {
        for (i, m) in matches.iter().enumerate() {
            let mode = m.get("mode");
            let name = mode.and_then(Node::str).unwrap_or("CLIENT_AND_SERVER");
            at = at.or(mode.map(|n| n.at)).or(Some(m.at));
            because.push(match mode {
                Some(_) => format!("spec.match[{i}].mode {name}"),
                None => format!("spec.match[{i}] without a mode: CLIENT_AND_SERVER"),
            });
            let sides: &[Mode] = match name {
                "CLIENT" => &[Mode::Client],
                "SERVER" => &[Mode::Server],
                _ => &[Mode::Client, Mode::Server],
            };
            for side in sides {
                if !modes.contains(side) {
                    modes.push(*side);
                }
            }
        }
    }
    if modes.is_empty() {
        return Placement::new(
            vec![Mode::Client, Mode::Server],
            "no spec.match mode: Istio's default, CLIENT_AND_SERVER, in the selected workloads' sidecars",
            None,
        );
    }
    modes.sort_by_key(|m| *m as u8);
    Placement::new(modes, because.join(", "), at)
}

/// A Kubernetes object's `namespace/name` (or its name alone).
fn namespaced_name(doc: &Node) -> String {
    let metadata = doc.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Node::str)
        .unwrap_or("(unnamed)");
    match metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Node::str)
    {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn is_kubernetes(doc: &Node) -> bool {
    doc.get("apiVersion").and_then(Node::str).is_some()
        && doc.get("kind").and_then(Node::str).is_some()
}

/// `oci://registry/dial:0.1.0` → `dial`; `/etc/envoy/dial.wasm` → `dial.wasm`.
fn last_segment(s: &str) -> &str {
    let last = s.rsplit('/').next().unwrap_or(s);
    last.split([':', '@']).next().unwrap_or(last)
}

/// Where a YAML string's lines are in the file: for a block scalar (`|`), the file line of the
/// string's first line and its indentation, found by looking for its first non-empty line.
fn embedded(file: &str, at: Position, value: &str, style: ScalarStyle) -> Place {
    let block = matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
        .then(|| {
            let (k, first) = value
                .lines()
                .enumerate()
                .find(|(_, l)| !l.trim().is_empty())?;
            let (n, line) = file
                .lines()
                .enumerate()
                .skip(at.line.saturating_sub(1))
                .find(|(_, l)| l.trim() == first.trim() && !l.trim().is_empty())?;
            let indent =
                line.len() - line.trim_start().len() - (first.len() - first.trim_start().len());
            Some(((n + 1).saturating_sub(k), indent))
        })
        .flatten();
    Place::Embedded { at, block }
}

fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

impl Found {
    /// Where in the file a problem of this policy is.
    pub fn position(&self, problem: &Problem) -> Position {
        // serde_json's own line and column for invalid JSON; where the core placed it otherwise.
        match (problem.kind, problem.at) {
            (ProblemKind::InvalidJson, _) => {
                let (line, column) = json_error_at(&problem.message).unwrap_or((1, 1));
                self.place_in_file(line, column, problem.path.segments())
            }
            (_, Some(at)) => self.place_offset(at, problem.path.segments()),
            (_, None) => self.position_at(problem.path.segments()),
        }
    }

    /// Where in the file the value at a JSON path of this policy is (or its deepest ancestor).
    pub fn position_at(&self, path: &[Segment]) -> Position {
        let at = policy::offset_of(&self.text, path).unwrap_or(0);
        self.place_offset(at, path)
    }

    /// A byte offset into the policy's text (the value at `path`), in the file.
    fn place_offset(&self, at: u32, path: &[Segment]) -> Position {
        let offset = usize::try_from(at).unwrap_or(usize::MAX);
        let (line, column) = locate::line_column(&self.text, offset);
        self.place_in_file(line, column, path)
    }

    /// A line and column of the policy's text, or a path in its YAML tree, in the file.
    fn place_in_file(&self, line: usize, column: usize, path: &[Segment]) -> Position {
        match &self.place {
            Place::Text => Position { line, column },
            Place::Yaml(node) => walk_yaml(node, path).at,
            Place::Embedded {
                block: Some((first, indent)),
                ..
            } => Position {
                line: first + line - 1,
                column: indent + column,
            },
            Place::Embedded { at, block: None } => {
                if line == 1 {
                    Position {
                        line: at.line,
                        column: at.column + column,
                    }
                } else {
                    *at
                }
            }
        }
    }

    /// The policy's name for messages: its file, its document and what held it.
    pub fn label(&self) -> String {
        let mut label = self.file.clone();
        if let Some(d) = self.document {
            label.push_str(&format!(" (document {d})"));
        }
        if self.origin != Origin::File {
            label.push_str(&format!(": {}", self.origin));
        }
        label
    }
}

/// "invalid JSON at line 3 column 7: ..." → (3, 7).
fn json_error_at(message: &str) -> Option<(usize, usize)> {
    let rest = message.split("at line ").nth(1)?;
    let (line, rest) = rest.split_once(" column ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, column.parse().ok()?))
}

fn walk_yaml<'n>(node: &'n Node, path: &[Segment]) -> &'n Node {
    let Some((segment, rest)) = path.split_first() else {
        return node;
    };
    let next = match segment {
        Segment::Key(k) => node.get(k),
        Segment::Index(i) => node.item(*i),
    };
    next.map_or(node, |n| walk_yaml(n, rest))
}

/// Parses a policy as the CLI sees it: away from the proxy. A `{"fromEnv": ...}` variable set
/// in the CLI's environment is read and checked; one that is not leaves its secret unresolved
/// (the proxy checks it when it loads the policy; `explain` says so).
pub fn parse_policy(text: &[u8]) -> Result<Policy, PolicyError> {
    Policy::parse_in(text, Environment::elsewhere(&cli_env))
}

fn cli_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_text(name: &str, text: &str) -> Scan {
        let mut scan = Scan::default();
        scan.file(name, extension(Path::new(name)), text.as_bytes(), true);
        scan
    }

    #[test]
    fn a_literal_block_maps_policy_lines_to_file_lines() {
        let yaml = "filters:\n- typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n    config:\n      name: dial\n      configuration:\n        \"@type\": type.googleapis.com/google.protobuf.StringValue\n        value: |\n          {\n            \"releases\": [ { \"name\": \"a\",\n              \"subsets\": [ { \"name\": \"s\", \"version\": \"v1\", \"weight\": -1 } ] } ]\n          }\n";
        let scan = scan_text("e.yaml", yaml);
        assert!(scan.issues.is_empty(), "{:?}", scan.issues);
        let found = &scan.found[0];
        let e = found.outcome.as_ref().unwrap_err();
        let weight = e
            .problems
            .iter()
            .find(|p| p.to_string().contains("weight must be 0 or more"))
            .unwrap();
        assert_eq!(
            found.position(weight),
            Position {
                line: 11,
                column: 70
            }
        );
        assert_eq!(found.origin.to_string(), "Envoy wasm filter dial");
    }

    #[test]
    fn a_wasmplugin_points_into_its_plugin_config() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n---\napiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: { name: dial, namespace: shop }\nspec:\n  pluginConfig:\n    releases:\n    - name: checkout\n      subsets:\n      - { name: stable, version: v1, weight: 90 }\n      - { name: canary, version: v2, weigth: 10 }\n      key: [ { header: x-user-id } ]\n";
        let scan = scan_text("w.yaml", yaml);
        let found = &scan.found[0];
        assert_eq!(found.document, Some(2));
        assert_eq!(found.origin.to_string(), "WasmPlugin shop/dial");
        let e = found.outcome.as_ref().unwrap_err();
        let p = &e.problems[0];
        assert_eq!(
            p.to_string(),
            "$.releases[0].subsets[1].weigth: unknown field `weigth`, expected one of `name`, `version`, `weight`, `lane`"
        );
        assert_eq!(
            found.position(p),
            Position {
                line: 14,
                column: 46
            }
        );
    }

    #[test]
    fn native_filters_and_gateway_policies_are_found() {
        let envoy = "http_filters:\n- name: envoy.filters.http.dynamic_modules\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter\n    dynamic_module_config: { name: dial }\n    filter_name: dial\n    filter_config:\n      \"@type\": type.googleapis.com/google.protobuf.StringValue\n      value: '{\"releases\": [{\"name\": \"r\", \"subsets\": [{\"name\": \"a\", \"version\": \"1\", \"weight\": -1}], \"key\": [{\"header\": \"x-user-id\"}]}]}'\n";
        let scan = scan_text("native.yaml", envoy);
        let found = &scan.found[0];
        assert_eq!(found.origin.to_string(), "Envoy dynamic module dial");
        let e = found.outcome.as_ref().unwrap_err();
        assert_eq!(
            e.problems[0].to_string(),
            "$.releases[0].subsets[0].weight: weight must be 0 or more, got -1"
        );
        let gateway = "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: EnvoyExtensionPolicy\nmetadata: { name: dial, namespace: shop }\nspec:\n  dynamicModule:\n  - name: other\n    config: { releases: [] }\n  - name: dial\n    config: { releases: [] }\n";
        let scan = scan_text("gateway.yaml", gateway);
        assert_eq!(scan.found.len(), 1);
        assert_eq!(
            scan.found[0].origin.to_string(),
            "EnvoyExtensionPolicy shop/dial"
        );
        assert!(scan.found[0].outcome.is_err());
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(base64("eyJhIjoxfQ==").unwrap(), b"{\"a\":1}");
    }
}
