//! The proxy-wasm binding: the only code that names `proxy_wasm`. It reads the plugin
//! configuration and defines the policy's metrics (configure time), and on each request reads
//! the header map and the clock, then hands the exchange to the core's lifecycle with a `Host`
//! made of raw host calls (`host`). A panic would trap the worker's VM (its share of traffic
//! becomes 503s), and the SDK's `hostcalls` panic on any status they do not expect; so every call
//! Dial makes is raw (`host`), at configure time too; the SDK provides the context traits and
//! the entry points. `logger` logs and reports panics without ever panicking itself.

mod host;
mod logger;

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType, MetricType};

use crate::core::configure::{self, Outcome, Ticks};
use crate::core::decide::Context;
use crate::core::exchange::{Engine, Exchange};
use crate::core::fleet::MAX_ANSWER_BYTES;
use crate::core::request::{SerializedHeaders, SerializedRequest};
use crate::core::runtime::{Answer, Callouts, Runtime, Shared};
use crate::core::secret::Environment;
use crate::core::stats::{self, Kind, Metric};
use host::WasmHost;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const GIT_REVISION: &str = env!("DIAL_GIT_REVISION");

proxy_wasm::main! {{
    logger::install();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(DialRoot::default()) });
}}

#[derive(Default)]
struct DialRoot {
    loaded: Option<Rc<Loaded>>,
    /// The guards' windows and the gauges, for the policy in force.
    runtime: Option<(Runtime, Shared)>,
    /// This VM's fleet queries in flight, by the host's token.
    callouts: Callouts<u32>,
}

/// A policy in force, with its metrics defined in the host.
struct Loaded {
    engine: Engine,
    /// Host metric ids, parallel to `engine.catalog.metrics`.
    metric_ids: Vec<u32>,
    vm_memory: Option<u32>,
    /// The guards this VM knows tripped (the runtime's, copied at each tick for the streams).
    tripped: Cell<u64>,
}

impl Loaded {
    fn host(&self) -> WasmHost<'_> {
        WasmHost {
            metric_ids: &self.metric_ids,
        }
    }
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
        let bytes = std::arch::wasm32::memory_size(0) as u64 * 65_536;
        if let Err(status) = host::record(id, bytes) {
            log::warn!("dial: cannot record the VM memory: {status:?}");
        }
    }
}

fn define(metric: &Metric) -> Result<u32, String> {
    let kind = match metric.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    host::define_metric(kind, &metric.name)
        .map_err(|status| format!("cannot define metric {}: {status:?}", metric.name))
}

/// Counts `outcome` in `counter` if this VM is the first to have it for this configuration
/// (`configure::first_to_apply`: the policy counters count configurations, not VMs).
fn count_outcome(shared: &Shared, outcome: Outcome, counter: Option<u32>) {
    if configure::first_to_apply(&mut WasmHost { metric_ids: &[] }, shared, outcome) {
        increment(counter);
    }
}

/// A variable of the VM's environment, for `{"fromEnv": ...}` secrets. On wasm32-wasip1 this
/// is WASI's `environ_get`, which Envoy answers with `vm_config.environment_variables` (its
/// `host_env_keys` copied from Envoy's own environment, and its `key_values`) and nothing else.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Where this plugin's shared state lives, and this configuration's fingerprint.
fn shared_scope(configuration: &[u8]) -> Shared {
    let plugin = host::property(b"plugin_name")
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Shared::for_configuration(&plugin, configuration)
}

fn increment(id: Option<u32>) {
    if let Some(id) = id {
        if let Err(status) = host::increment(id) {
            log::warn!("dial: cannot increment metric {id}: {status:?}");
        }
    }
}

impl proxy_wasm::traits::Context for DialRoot {
    /// A fleet query's answer (or its failure).
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(sent) = self.callouts.answered(token_id) else {
            return;
        };
        let (Some(loaded), Some((runtime, shared))) = (&self.loaded, &mut self.runtime) else {
            return;
        };
        let now = host::now_nanos().unwrap_or(sent.at);
        let body = if num_headers == 0 || body_size > MAX_ANSWER_BYTES {
            Vec::new()
        } else {
            host::http_call_body(body_size).unwrap_or_default()
        };
        let status = if num_headers == 0 {
            None
        } else {
            host::header_value(MapType::HttpCallResponseHeaders, ":status")
                .ok()
                .flatten()
        };
        let answer = Answer::of_response(status.as_deref(), sent.late(now), body_size, &body);
        runtime.on_fleet_answer(
            &loaded.engine,
            &mut loaded.host(),
            sent.release,
            answer,
            now,
            Some(shared),
        );
        loaded.tripped.set(runtime.tripped());
    }
}

impl RootContext for DialRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log::info!("dial {VERSION} (git {GIT_REVISION}) started");
        true
    }

    /// Returning false rejects the configuration: Envoy refuses the listener (or NACKs it).
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match host::plugin_configuration(plugin_configuration_size) {
            Ok(bytes) => bytes,
            Err(status) => {
                log::error!("dial: cannot read the plugin configuration: {status:?}");
                return false;
            }
        };
        let [loads, rejections] = stats::policy_counters().map(|m| define(&m).ok());
        let shared = shared_scope(&bytes);
        let loaded = Engine::from_config_in(&bytes, Environment::proxy(&env_var))
            .map_err(|e| e.to_string())
            .and_then(|engine| {
                let metric_ids = engine
                    .catalog
                    .metrics
                    .iter()
                    .map(define)
                    .collect::<Result<Vec<u32>, String>>()?;
                Ok(Loaded {
                    engine,
                    metric_ids,
                    vm_memory: define(&stats::vm_memory_gauge()).ok(),
                    tripped: Cell::new(0),
                })
            });
        match loaded {
            Ok(loaded) => {
                log::info!("{}", loaded.engine.loaded_message(loaded.metric_ids.len()));
                count_outcome(&shared, Outcome::Loaded, loads);
                let runtime = configure::start(
                    &loaded.engine,
                    &mut loaded.host(),
                    host::now_nanos().ok(),
                    &shared,
                );
                let period = Ticks::of(&loaded.engine).every_millis;
                if let Err(status) = host::set_tick_period(period) {
                    log::warn!("dial: cannot set the tick period: {status:?}");
                }
                self.runtime = Some((runtime, shared));
                self.loaded = Some(Rc::new(loaded));
                // An answer to the previous policy's query is not this policy's verdict.
                self.callouts.clear();
                true
            }
            Err(e) => {
                log::error!("dial: {e}");
                count_outcome(&shared, Outcome::Rejected, rejections);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let (Some(loaded), Some((runtime, shared))) = (&self.loaded, &mut self.runtime) else {
            return;
        };
        let now = match host::now_nanos() {
            Ok(now) => now,
            Err(status) => {
                log::warn!("dial: cannot read the clock: {status:?}");
                return;
            }
        };
        runtime.on_tick(&loaded.engine, &mut loaded.host(), now, shared);
        loaded.tripped.set(runtime.tripped());
        // The fleet's verdict: at most one query per proxy per `every` (the worker that wins
        // the turn asks), answered in on_http_call_response, never on the request path.
        let due = runtime.fleet_due(&loaded.engine, &mut loaded.host(), now, shared);
        let callouts = &mut self.callouts;
        runtime.send_fleet_queries(&loaded.engine, &mut loaded.host(), due, now, |q| {
            host::http_get(&q.cluster, &q.authority, &q.path, q.timeout_millis)
                .map(|token| callouts.sent(token, q, now))
        });
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(DialHttp {
            loaded: self.loaded.clone(),
            exchange: Exchange::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct DialHttp {
    /// The policy this stream started with: a reload does not change it mid-exchange.
    loaded: Option<Rc<Loaded>>,
    exchange: Exchange,
}

impl proxy_wasm::traits::Context for DialHttp {}

impl HttpContext for DialHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(loaded) = &self.loaded else {
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
        #[cfg(feature = "panic-probe")]
        probe(&headers);
        // The clock, read once: the decision's time and the start of the exchange's duration.
        let context = Context {
            now_nanos: host::now_nanos().ok(),
            tripped: loaded.tripped.get(),
        };
        self.exchange = loaded.engine.on_request_headers(
            &mut loaded.host(),
            &SerializedRequest {
                headers,
                source_ip: host::source_ip,
            },
            &context,
        );
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(loaded) = &self.loaded {
            self.exchange
                .on_response_headers(&loaded.engine, &mut loaded.host());
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(loaded) = &self.loaded {
            sample_memory(loaded.vm_memory);
            self.exchange.on_end(&loaded.engine, &mut loaded.host());
        }
    }
}

/// The test-only panic (feature `panic-probe`).
#[cfg(feature = "panic-probe")]
#[allow(clippy::panic)]
fn probe(headers: &SerializedHeaders) {
    if let Some(value) = headers.header("x-dial-panic-probe") {
        panic!("panic probe: {}", String::from_utf8_lossy(value));
    }
}
