//! The glue room: the only code that talks to Envoy. It reads what `decide` needs, applies the
//! `Decision` to the request and response, and records stats. A panic would trap the worker's
//! VM (its share of traffic becomes 503s), and the SDK's `hostcalls` panic on any status they do
//! not expect; so every call made while serving requests goes through `host`, which returns
//! errors instead, and the SDK's are used only at configure time.

mod host;

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

use crate::decide::{decide, Decision};
use crate::policy::{Policy, WhenNoKey};
use crate::request::{RequestView, SerializedHeaders};
use crate::stats::{self, Catalog, Kind, Metric};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const GIT_REVISION: &str = env!("DIAL_GIT_REVISION");

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(DialRoot::default()) });
}}

#[derive(Default)]
struct DialRoot {
    loaded: Option<Rc<Loaded>>,
}

/// A policy in force, with its metrics defined in the host.
struct Loaded {
    policy: Policy,
    catalog: Catalog,
    /// Host metric ids, parallel to `catalog.metrics`.
    metric_ids: Vec<u32>,
    vm_memory: Option<u32>,
}

/// Every this many requests a VM reports its linear memory size.
const MEMORY_SAMPLE_EVERY: u64 = 1024;

/// Records the VM's linear memory (wasm pages of 64 KiB) now and then.
fn sample_memory(gauge: Option<u32>) {
    thread_local! {
        static REQUESTS: Cell<u64> = const { Cell::new(0) };
    }
    let n = REQUESTS.with(|c| {
        let n = c.get();
        c.set(n.wrapping_add(1));
        n
    });
    if let (Some(id), 0) = (gauge, n % MEMORY_SAMPLE_EVERY) {
        let bytes = core::arch::wasm32::memory_size(0) as u64 * 65_536;
        if let Err(status) = host::record(id, bytes) {
            log::warn!("dial: cannot record the VM memory: {status:?}");
        }
    }
}

impl Loaded {
    fn metric(&self, index: Option<usize>) -> Option<u32> {
        self.metric_ids.get(index?).copied()
    }
}

fn define(metric: &Metric) -> Result<u32, String> {
    let kind = match metric.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    hostcalls::define_metric(kind, &metric.name)
        .map_err(|status| format!("cannot define metric {}: {status:?}", metric.name))
}

/// Whether this VM is the first to apply (or refuse) this exact configuration. Envoy configures
/// the plugin in several VMs (the base one, the main thread's, each worker's); the policy
/// counters count configurations, not VMs. Shared data is keyed by vm_id, which Istio leaves
/// empty, so the key carries Dial's name and the plugin's.
fn first_to_apply(outcome: &str, configuration: &[u8]) -> bool {
    let plugin = hostcalls::get_property(vec!["plugin_name"])
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let key = format!("dial.{plugin}.{outcome}");
    let mut fingerprint = crate::bucket::position(b"dial-policy", configuration)
        .to_le_bytes()
        .to_vec();
    fingerprint.extend_from_slice(&(configuration.len() as u32).to_le_bytes());
    match hostcalls::get_shared_data(&key) {
        Ok((Some(seen), _)) if seen == fingerprint => false,
        // A CAS mismatch means another VM recorded it first.
        Ok((_, cas)) => hostcalls::set_shared_data(&key, Some(&fingerprint), cas).is_ok(),
        Err(_) => true,
    }
}

fn increment(id: Option<u32>) {
    if let Some(id) = id {
        if let Err(status) = host::increment(id) {
            log::warn!("dial: cannot increment metric {id}: {status:?}");
        }
    }
}

impl Context for DialRoot {}

impl RootContext for DialRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log::info!("dial {VERSION} (git {GIT_REVISION}) started");
        true
    }

    /// Returning false rejects the configuration: Envoy refuses the listener (or NACKs it).
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        ) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log::error!("dial: cannot read the plugin configuration: {status:?}");
                return false;
            }
        };
        let [loads, rejections] = stats::policy_counters().map(|m| define(&m).ok());
        let loaded = Policy::parse(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|policy| {
                let catalog = Catalog::for_policy(&policy);
                let metric_ids = catalog
                    .metrics
                    .iter()
                    .map(define)
                    .collect::<Result<Vec<u32>, String>>()?;
                Ok(Loaded {
                    policy,
                    catalog,
                    metric_ids,
                    vm_memory: define(&stats::vm_memory_gauge()).ok(),
                })
            });
        match loaded {
            Ok(loaded) => {
                let releases: Vec<&str> = loaded
                    .policy
                    .releases
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                log::info!(
                    "dial: policy loaded: {} release(s): {}; {} metrics defined",
                    releases.len(),
                    releases.join(", "),
                    loaded.metric_ids.len()
                );
                if first_to_apply("loaded", &bytes) {
                    increment(loads);
                }
                self.loaded = Some(Rc::new(loaded));
                true
            }
            Err(e) => {
                log::error!("dial: {e}");
                if first_to_apply("rejected", &bytes) {
                    increment(rejections);
                }
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(DialHttp {
            loaded: self.loaded.clone(),
            response: ResponseChanges::default(),
            exchange: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// What the response needs once it comes back.
#[derive(Default)]
struct ResponseChanges {
    set_cookie: Option<String>,
    /// The value of the policy's debug response header.
    echo: Option<String>,
}

struct DialHttp {
    loaded: Option<Rc<Loaded>>,
    response: ResponseChanges,
    /// Set when Dial assigned the request: what the response metrics need.
    exchange: Option<Exchange>,
}

struct Exchange {
    /// (release, subset) of this request.
    assigned: (usize, usize),
    /// The host clock when the request headers arrived, in nanoseconds.
    started: Option<u64>,
    /// The response's status code, once its headers pass.
    status: Option<u32>,
}

impl Context for DialHttp {}

impl HttpContext for DialHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(loaded) = self.loaded.clone() else {
            return Action::Continue;
        };
        // One host call for the whole map, read in place (no copy per header). The SDK's
        // string variant would panic on non-UTF-8 values; its byte variant copies every header.
        let buffer = match host::header_map(MapType::HttpRequestHeaders) {
            Ok(buffer) => buffer,
            Err(status) => {
                log::warn!("dial: cannot read request headers: {status:?}");
                return Action::Continue;
            }
        };
        let Some(headers) = SerializedHeaders::new(&buffer) else {
            log::warn!("dial: malformed request header map");
            return Action::Continue;
        };
        let request = HostRequest { headers };
        let decision = decide(&loaded.policy, &request);
        self.apply(&loaded, &request.headers, decision);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(exchange) = &mut self.exchange {
            exchange.status = match host::header_value(MapType::HttpResponseHeaders, ":status") {
                Ok(value) => value.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()),
                Err(status) => {
                    log::warn!("dial: cannot read the response status: {status:?}");
                    None
                }
            };
        }
        if let Some(cookie) = self.response.set_cookie.take() {
            if let Err(status) =
                host::add_header(MapType::HttpResponseHeaders, "set-cookie", &cookie)
            {
                log::warn!("dial: cannot set the sticky cookie: {status:?}");
            }
        }
        let name = self
            .loaded
            .as_ref()
            .and_then(|l| l.policy.headers.response.as_deref());
        if let (Some(name), Some(value)) = (name, self.response.echo.take()) {
            if let Err(status) = host::replace_header(MapType::HttpResponseHeaders, name, &value) {
                log::warn!("dial: cannot set {name}: {status:?}");
            }
        }
        Action::Continue
    }

    /// The exchange is over: count the response's status class and record its duration.
    /// Both come from what Dial saw itself (the response's `:status`, the host clock at either
    /// end): fetching `response.code` and `request.duration` as properties cost ten times more,
    /// the host builds an expression context for each.
    fn on_log(&mut self) {
        if let Some(loaded) = &self.loaded {
            sample_memory(loaded.vm_memory);
        }
        let (Some(loaded), Some(exchange)) = (&self.loaded, &self.exchange) else {
            return;
        };
        let (release, subset) = exchange.assigned;
        if let Some(status) = exchange.status {
            increment(loaded.metric(loaded.catalog.responses(release, subset, status)));
        }
        if let (Some(started), Ok(now), Some(id)) = (
            exchange.started,
            host::now_nanos(),
            loaded.metric(loaded.catalog.duration(release, subset)),
        ) {
            let millis = now.saturating_sub(started) / 1_000_000;
            if let Err(status) = host::record(id, millis) {
                log::warn!("dial: cannot record the request duration: {status:?}");
            }
        }
    }
}

impl DialHttp {
    /// Steers the request. Setting a request header makes Envoy re-run route matching, so the
    /// route table sees Dial's subset header. Client-sent copies of Dial's headers never reach
    /// the upstream: set replaces them, and the rest are removed.
    fn apply(&mut self, loaded: &Loaded, sent: &SerializedHeaders, decision: Decision) {
        let policy = &loaded.policy;
        let assignment = match decision {
            Decision::Assign(a) => Some(a),
            Decision::Pass => None,
        };
        let steered = assignment.and_then(|a| {
            let release = policy.releases.get(a.release)?;
            let mirror_version = release
                .mirror
                .as_ref()
                .filter(|_| a.mirror)
                .map(|m| m.version.as_str());
            Some((a, release, release.subsets.get(a.subset)?, mirror_version))
        });

        for name in &policy.owned_request_headers {
            let will_set = steered.is_some_and(|(_, _, _, mirror)| {
                *name == policy.headers.subset
                    || *name == policy.headers.version
                    || (*name == policy.headers.mirror && mirror.is_some())
            });
            if !will_set && sent.contains(name) {
                if let Err(status) = host::remove_header(MapType::HttpRequestHeaders, name) {
                    log::warn!("dial: cannot remove client-sent {name}: {status:?}");
                }
            }
        }

        let Some((a, release, subset, mirror)) = steered else {
            return;
        };
        let headers = [
            Some((&policy.headers.subset, subset.name.as_str())),
            Some((&policy.headers.version, subset.version.as_str())),
            mirror.map(|version| (&policy.headers.mirror, version)),
        ];
        for (name, value) in headers.into_iter().flatten() {
            if let Err(status) = host::replace_header(MapType::HttpRequestHeaders, name, value) {
                log::warn!("dial: cannot set {name}: {status:?}");
            }
        }
        increment(loaded.metric(loaded.catalog.requests(a.release, a.subset, a.reason)));
        if mirror.is_some() {
            increment(loaded.metric(loaded.catalog.mirrored(a.release)));
        }
        self.exchange = Some(Exchange {
            assigned: (a.release, a.subset),
            started: host::now_nanos().ok(),
            status: None,
        });

        // What the response will carry: a freshly minted sticky key, the debug echo.
        if let (Some(key), WhenNoKey::Sticky(cookie)) = (a.new_sticky_key, &release.when_no_key) {
            self.response.set_cookie = Some(cookie.set_cookie(&key));
        }
        if policy.headers.response.is_some() {
            self.response.echo = Some(format!(
                "release={}; subset={}; version={}; reason={}",
                release.name,
                subset.name,
                subset.version,
                a.reason.as_str()
            ));
        }
    }
}

/// The request as Envoy holds it. Source address and randomness are fetched only if asked for.
struct HostRequest<'a> {
    headers: SerializedHeaders<'a>,
}

impl RequestView for HostRequest<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.header(name)
    }

    fn cookie_headers(&self) -> impl Iterator<Item = &[u8]> {
        self.headers.cookie_headers()
    }

    fn source_ip(&self) -> Option<IpAddr> {
        let raw = host::property(b"source\0address").ok()??;
        let text = std::str::from_utf8(&raw).ok()?;
        text.parse::<SocketAddr>()
            .map(|s| s.ip())
            .or_else(|_| text.parse::<IpAddr>())
            .ok()
    }

    fn entropy(&self) -> u64 {
        thread_local! {
            static COUNTER: Cell<u64> = const { Cell::new(0) };
        }
        // SipHash under keys std seeds from the host's random_get, over a counter: unpredictable
        // across users and VMs, with no extra host call per request.
        let n = COUNTER.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(n);
        hasher.finish()
    }
}
