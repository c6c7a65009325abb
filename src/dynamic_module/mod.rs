//! The Envoy dynamic-module binding: Dial as a native shared library (`libdial.so`) that Envoy
//! loads into its own process, beside the proxy-wasm binding and from the same core. The core,
//! the policy, the messages and the exchange's lifecycle are shared; this is an adapter.
//!
//! - `abi` declares the C ABI (the only `unsafe` of the binding) and exports Envoy's hooks.
//! - `host` is the core's `Host` over the callbacks, with the counter mirror and shared data.
//! - Here: the configuration (the policy, its metrics), the stream, the tick, panics.
//!
//! **Panics.** In-process native code that aborts takes every connection of the proxy with it,
//! so every hook runs inside `shield`: a panic is caught (the build unwinds: profile `native`),
//! logged on one critical line (`dial: panicked at …`), and the request passes. A panic while
//! deciding still removes the client's own steering headers, so a client cannot steer when Dial
//! fails (what the Wasm build's FAIL_OPEN cannot promise).
//!
//! **Ticks.** The ABI gives an HTTP filter no timer. The Wasm build's 500 ms tick (judging the
//! guards over the whole proxy's counters, sharing trips, refreshing the gauges) runs here on
//! the request path instead: the first request after each period, on whichever worker it
//! arrives, wins a compare-and-swap on the next tick's time and runs the one `Runtime` of the
//! configuration (behind a mutex); every request reads the tripped guards from an atomic. A
//! ramp's split never waits for a tick (it is computed from each request's clock); with no
//! traffic at all, only the gauges wait for the next request.
//!
//! **Fleet verdict.** The same tick, on the request path, finds a fleet query due (the
//! compare-and-swap on the release's shared due time, as in the Wasm build) and only commits an
//! event to the configuration's scheduler: the request never waits. Envoy runs the event on the
//! main thread, where the configuration sends the callout to the query API's cluster; its answer
//! comes back there too and goes through the core's reading and verdict, tripping through the
//! same runtime and shared state as a local trip.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod abi;
mod host;
mod request;

use std::cell::RefCell;
use std::net::IpAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use abi::{ConfigScheduler, EnvoyConfig, EnvoyFilter, HeaderMap, MetricKind};
use host::{lock, Metric, NativeHost};

use crate::core::configure::{self, Outcome, Ticks};
use crate::core::decide::Context;
use crate::core::exchange::{Engine, Exchange};
// The largest fleet answer read; abi.rs names it as `super::MAX_ANSWER_BYTES`, which the native
// floor (tests/bench/native_floor) defines too.
use crate::core::fleet::MAX_ANSWER_BYTES;
use crate::core::logging::{self, HostLogger, Severity};
use crate::core::runtime::{Answer, Callouts, FleetQuery, Runtime, Shared, TICK_NANOS};
use crate::core::secret::Environment;
use crate::core::stats::{self, Kind};
use request::NativeRequest;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const GIT_REVISION: &str = env!("DIAL_GIT_REVISION");

/// Runs one hook's body, catching a panic (already logged by the panic hook); `None` if it
/// panicked.
fn shield<T>(hook: &str, body: impl FnOnce() -> T) -> Option<T> {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => Some(value),
        Err(_) => {
            log::error!("dial: {hook} panicked; Envoy carries on without Dial for this call");
            None
        }
    }
}

/// The clock: nanoseconds since the Unix epoch (no host call needed natively).
fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The connection's peer from the `ip:port` Envoy gives (the core says what counts as one).
fn parse_address(raw: &[u8]) -> Option<IpAddr> {
    crate::core::trust::connection_peer(raw)
}

// ---------------------------------------------------------------------- logger and panics --

static LOGGER: HostLogger = HostLogger { write };

/// Envoy numbers its log levels as `Severity` does.
fn write(severity: Severity, line: &str) {
    abi::log(severity as u32, line);
}

/// Once, when Envoy loads the module: the logger, the panic hook, and which build this is. The
/// panic hook belongs to this library's own copy of std: it sees Dial's panics only.
fn program_init() {
    logging::install(&LOGGER);
    log::info!("dial {VERSION} (git {GIT_REVISION}) started, native");
    // Once per process: which address `sourceCidrs` judges in this Envoy (docs/security.md,
    // "Override trust"). Tests read these lines.
    match abi::peer_source() {
        abi::PeerSource::DirectRemoteAddress(_) => log::info!(
            "dial: sourceCidrs judge the connection's peer from Envoy's direct remote address"
        ),
        abi::PeerSource::SourceAddressAttribute => log::info!(
            "dial: sourceCidrs judge the connection's peer from the source.address attribute \
             (this Envoy has no direct remote address callback): an address Envoy took from \
             X-Forwarded-For matches no range"
        ),
    }
}

// --------------------------------------------------------------------------- configuration --

/// A policy in force, with its metrics defined in Envoy: what every stream of it reads, on
/// every worker.
pub struct Config {
    engine: Engine,
    /// Parallel to `engine.catalog.metrics`.
    metrics: Vec<Metric>,
    /// The guards tripped, as the last tick saw them (one bit per release).
    tripped: AtomicU64,
    /// For a policy that changes with time (a ramp or a guard); `None` needs no tick.
    ticker: Option<Ticker>,
}

// Streams on every worker share one configuration.
const _: fn() = || {
    fn shared_across_workers<T: Send + Sync>() {}
    shared_across_workers::<Config>();
};

struct Ticker {
    runtime: Mutex<Runtime>,
    shared: Shared,
    /// When the next tick is due, in nanoseconds since the epoch.
    next: AtomicU64,
    /// For a policy with a fleet verdict.
    fleet: Option<FleetCallouts>,
}

/// The fleet queries between the request path and the main thread.
struct FleetCallouts {
    scheduler: ConfigScheduler,
    /// Queries a tick found due, for the main thread to send.
    due: Mutex<Vec<FleetQuery>>,
    /// Queries sent, by callout id.
    sent: Mutex<Callouts<u64>>,
}

/// How a fleet query's callout ended, as Envoy told the configuration.
pub enum Callout<'a> {
    /// A response (Envoy's own 503 or 504 among them).
    Response {
        status: Option<&'a [u8]>,
        body_size: usize,
    },
    /// A body over Envoy's buffer limit.
    TooLarge,
    /// The stream was reset.
    Reset,
}

fn kind_of(kind: Kind) -> MetricKind {
    match kind {
        Kind::Counter => MetricKind::Counter,
        Kind::Gauge => MetricKind::Gauge,
        Kind::Histogram => MetricKind::Histogram,
    }
}

/// Counts `outcome` in `counter` if this is the first filter configuration to have it for this
/// configuration (`configure::first_to_apply`: the policy counters count configurations).
fn count_outcome(envoy: EnvoyConfig, shared: &Shared, outcome: Outcome, counter: Option<usize>) {
    if configure::first_to_apply(&mut NativeHost::new(envoy, &[]), shared, outcome) {
        if let Some(id) = counter {
            envoy.increment(id, 1);
        }
    }
}

/// A variable of Envoy's process environment, for `{"fromEnv": ...}` secrets.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A filter configuration arrives (main thread): parse and check the policy, define its
/// metrics. `None` refuses it: Envoy then refuses the listener (at startup it exits; on an
/// update the previous configuration keeps serving). A refusal counts as one, whatever refused
/// it (the policy, or Envoy's metrics or scheduler), as in the Wasm build.
fn config_new(envoy: EnvoyConfig, name: &[u8], bytes: &[u8]) -> Option<Arc<Config>> {
    let filter_name = String::from_utf8_lossy(name);
    let shared = Shared::for_configuration(&filter_name, bytes);
    let [loads, rejections] =
        stats::policy_counters().map(|m| envoy.define(kind_of(m.kind), &m.name));
    match load(envoy, bytes, &shared) {
        Ok(config) => {
            count_outcome(envoy, &shared, Outcome::Loaded, loads);
            Some(Arc::new(config))
        }
        Err(e) => {
            log::error!("dial: {e}");
            count_outcome(envoy, &shared, Outcome::Rejected, rejections);
            None
        }
    }
}

/// The configuration `bytes` in force, its first tick run, or why it cannot be.
fn load(envoy: EnvoyConfig, bytes: &[u8], shared: &Shared) -> Result<Config, String> {
    let engine =
        Engine::from_config_in(bytes, Environment::proxy(&env_var)).map_err(|e| e.to_string())?;
    let mut metrics = Vec::with_capacity(engine.catalog.metrics.len());
    for m in &engine.catalog.metrics {
        let id = envoy
            .define(kind_of(m.kind), &m.name)
            .ok_or_else(|| format!("cannot define metric {}", m.name))?;
        metrics.push(Metric {
            id,
            mirror: (m.kind == Kind::Counter).then(|| host::mirror(&m.name)),
        });
    }
    let ticks = Ticks::of(&engine);
    let fleet = if ticks.asks_the_fleet {
        let scheduler = envoy
            .scheduler()
            .ok_or("Envoy gave no scheduler for the fleet verdict's queries")?;
        Some(FleetCallouts {
            scheduler,
            due: Mutex::default(),
            sent: Mutex::default(),
        })
    } else {
        None
    };
    log::info!("{}", engine.loaded_message(metrics.len()));
    let now = now_nanos();
    let host = &mut NativeHost::new(envoy, &metrics);
    let runtime = configure::start(&engine, host, Some(now), shared);
    let tripped = AtomicU64::new(runtime.tripped());
    let ticker = ticks.needed().then(|| Ticker {
        runtime: Mutex::new(runtime),
        shared: shared.clone(),
        next: AtomicU64::new(ticks.first_due(now)),
        fleet,
    });
    Ok(Config {
        engine,
        metrics,
        tripped,
        ticker,
    })
}

impl Config {
    /// The tick, on the request path: at most once per period across all workers.
    fn maybe_tick(&self, envoy: EnvoyFilter, now: u64) {
        let Some(ticker) = &self.ticker else {
            return;
        };
        let due = ticker.next.load(Ordering::Acquire);
        if now < due
            || ticker
                .next
                .compare_exchange(
                    due,
                    now.saturating_add(TICK_NANOS),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
        {
            return;
        }
        let mut runtime = lock(&ticker.runtime);
        let mut host = NativeHost::new(envoy, &self.metrics);
        runtime.on_tick(&self.engine, &mut host, now, &ticker.shared);
        self.tripped.store(runtime.tripped(), Ordering::Release);
        // The fleet queries this tick won go to the main thread: a commit, never a wait.
        if let Some(fleet) = &ticker.fleet {
            let due = runtime.fleet_due(&self.engine, &mut host, now, &ticker.shared);
            if !due.is_empty() {
                lock(&fleet.due).extend(due);
                fleet.scheduler.commit(0);
            }
        }
    }

    /// The ticker and its fleet queries, for a policy that asks the fleet.
    fn fleet(&self) -> Option<(&Ticker, &FleetCallouts)> {
        let ticker = self.ticker.as_ref()?;
        Some((ticker, ticker.fleet.as_ref()?))
    }

    /// On the main thread: sends the fleet queries found due.
    fn send_fleet_queries(&self, envoy: EnvoyConfig) {
        let Some((ticker, fleet)) = self.fleet() else {
            return;
        };
        let due = std::mem::take(&mut *lock(&fleet.due));
        if due.is_empty() {
            return;
        }
        let now = now_nanos();
        let mut runtime = lock(&ticker.runtime);
        let mut host = NativeHost::new(envoy, &self.metrics);
        runtime.send_fleet_queries(&self.engine, &mut host, due, now, |q| {
            envoy
                .http_get(&q.cluster, &q.authority, &q.path, q.timeout_millis)
                .map(|id| lock(&fleet.sent).sent(id, q, now))
        });
        self.tripped.store(runtime.tripped(), Ordering::Release);
    }

    /// On the main thread: a fleet query's answer (or its failure), judged by the core.
    fn on_fleet_answer(&self, envoy: EnvoyConfig, id: u64, callout: Callout, body: &[u8]) {
        let Some((ticker, fleet)) = self.fleet() else {
            return;
        };
        let Some(sent) = lock(&fleet.sent).answered(id) else {
            return;
        };
        let now = now_nanos();
        let late = sent.late(now);
        let answer = match callout {
            Callout::Response { status, body_size } => {
                Answer::of_response(status, late, body_size, body)
            }
            Callout::TooLarge => Answer::Failed(crate::core::fleet::Failure::TooLarge),
            Callout::Reset => Answer::of_response(None, late, 0, &[]),
        };
        let mut runtime = lock(&ticker.runtime);
        runtime.on_fleet_answer(
            &self.engine,
            &mut NativeHost::new(envoy, &self.metrics),
            sent.release,
            answer,
            now,
            Some(&ticker.shared),
        );
        self.tripped.store(runtime.tripped(), Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------- stream --

/// One stream: the policy it started with (a reload does not change it mid-exchange) and what
/// Dial follows of the exchange.
pub struct Filter {
    config: Arc<Config>,
    exchange: Exchange,
}

impl Filter {
    fn new(config: Arc<Config>) -> Filter {
        Filter {
            config,
            exchange: Exchange::default(),
        }
    }
}

fn request_headers(envoy: EnvoyFilter, filter: &mut Filter) {
    thread_local! {
        /// The listing of each request's header map, reused: one allocation per worker.
        static LISTING: RefCell<Vec<abi::EnvoyHttpHeader>> = const { RefCell::new(Vec::new()) };
    }
    let config = &filter.config;
    // The clock, read once: the tick's, the decision's, and the start of the duration.
    let now = now_nanos();
    config.maybe_tick(envoy, now);
    let context = Context {
        now_nanos: Some(now),
        tripped: config.tripped.load(Ordering::Acquire),
    };
    // Decide while the headers are read in place; write only after (the plan holds no borrow).
    let plan = LISTING.with_borrow_mut(|listing| {
        envoy.with_headers(HeaderMap::Request, listing, |headers| {
            let request = NativeRequest { headers, envoy };
            #[cfg(feature = "panic-probe")]
            probe(&request);
            config.engine.plan(&request, &context)
        })
    });
    let Some(plan) = plan else {
        log::warn!("dial: cannot read request headers");
        return;
    };
    let mut host = NativeHost::new(envoy, &config.metrics);
    filter.exchange = config.engine.steer(&mut host, plan, &context);
    if host.route_dirty {
        envoy.clear_route_cache();
    }
}

/// Deciding panicked: the request passes unsteered, without any client-sent Dial header (the
/// route table never sees a subset Dial did not set), and Dial follows nothing of it.
fn after_panic(envoy: EnvoyFilter, filter: &mut Filter) {
    filter.exchange = Exchange::default();
    for name in &filter.config.engine.policy.owned_request_headers {
        envoy.set_header(HeaderMap::Request, name, None);
    }
    envoy.clear_route_cache();
}

fn response_headers(envoy: EnvoyFilter, filter: &mut Filter) {
    let config = &filter.config;
    filter
        .exchange
        .on_response_headers(&config.engine, &mut NativeHost::new(envoy, &config.metrics));
}

fn stream_complete(envoy: EnvoyFilter, filter: &mut Filter) {
    let config = &filter.config;
    filter
        .exchange
        .on_end(&config.engine, &mut NativeHost::new(envoy, &config.metrics));
}

/// The test-only panic (feature `panic-probe`): a request carrying `x-dial-panic-probe`.
#[cfg(feature = "panic-probe")]
#[allow(clippy::panic)]
fn probe(request: &NativeRequest) {
    use crate::core::request::RequestView;
    if let Some(value) = request.header("x-dial-panic-probe") {
        panic!("panic probe: {}", String::from_utf8_lossy(value));
    }
}
