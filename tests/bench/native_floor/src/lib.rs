//! The native floor: an Envoy dynamic module with Dial's ABI bindings and none of Dial's logic.
//! Its filter configuration lists host calls, comma-separated, each made once per request, as
//! the Wasm floor's does:
//!
//! - `read-headers`: list the request header map in place, as Dial reads it;
//! - `set-header` / `set-second-header`: set `x-dial-subset` / `x-dial-version`, then clear the
//!   route cache (Envoy matches the route again, as Dial steers);
//! - `clock`: the clock; `count`: a counter increment; `record`: a histogram sample;
//! - `read-status`: the response's `:status`, in place.
//!
//! Empty, it is the floor of any dynamic-module filter: a stream's state and hooks that return.
//! What native Dial costs over the floor making Dial's calls is Dial's own logic.

#[path = "../../../../src/dynamic_module/abi.rs"]
#[allow(dead_code)]
mod abi;

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use abi::{EnvoyConfig, EnvoyFilter, EnvoyHttpHeader, HeaderMap, MetricKind};

/// `envoy_dynamic_module_type_log_level_Error`.
const ERROR: u32 = 4;

#[derive(Clone, Copy, PartialEq)]
enum Call {
    ReadHeaders,
    SetHeader,
    SetSecondHeader,
    Clock,
    Count,
    Record,
    ReadStatus,
}

pub struct Config {
    calls: Vec<Call>,
    counter: usize,
    histogram: usize,
}

/// What abi.rs hands the configuration for a callout's answer; the floor makes none.
pub enum Callout<'a> {
    Response {
        status: Option<&'a [u8]>,
        body_size: usize,
    },
    TooLarge,
    Reset,
}

/// abi.rs's bound on an answer's body (Dial's fleet verdict), unused here.
const MAX_ANSWER_BYTES: usize = 0;

impl Config {
    /// Dial's fleet verdict sends its queries here; the floor schedules none.
    fn send_fleet_queries(&self, _envoy: EnvoyConfig) {}

    fn on_fleet_answer(&self, _envoy: EnvoyConfig, _id: u64, _callout: Callout, _body: &[u8]) {}
}

pub struct Filter {
    config: Arc<Config>,
    started: u64,
    status: u32,
}

impl Filter {
    fn new(config: Arc<Config>) -> Filter {
        Filter {
            config,
            started: 0,
            status: 0,
        }
    }

    fn makes(&self, call: Call) -> bool {
        self.config.calls.contains(&call)
    }
}

fn shield<T>(_hook: &str, body: impl FnOnce() -> T) -> Option<T> {
    panic::catch_unwind(AssertUnwindSafe(body)).ok()
}

fn program_init() {}

fn parse_address(raw: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(raw).ok()?;
    text.parse::<SocketAddr>().map(|s| s.ip()).ok()
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn config_new(envoy: EnvoyConfig, _name: &[u8], config: &[u8]) -> Option<Arc<Config>> {
    let mut calls = Vec::new();
    for name in String::from_utf8_lossy(config)
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        calls.push(match name {
            "read-headers" => Call::ReadHeaders,
            "set-header" => Call::SetHeader,
            "set-second-header" => Call::SetSecondHeader,
            "clock" => Call::Clock,
            "count" => Call::Count,
            "record" => Call::Record,
            "read-status" => Call::ReadStatus,
            other => {
                abi::log(ERROR, &format!("floor: unknown call {other:?}"));
                return None;
            }
        });
    }
    Some(Arc::new(Config {
        calls,
        counter: envoy.define(MetricKind::Counter, "floor_requests_total")?,
        histogram: envoy.define(MetricKind::Histogram, "floor_duration_milliseconds")?,
    }))
}

fn request_headers(envoy: EnvoyFilter, filter: &mut Filter) {
    thread_local! {
        static LISTING: RefCell<Vec<EnvoyHttpHeader>> = const { RefCell::new(Vec::new()) };
    }
    if filter.makes(Call::Clock) {
        filter.started = now_nanos();
    }
    if filter.makes(Call::ReadHeaders) {
        // Read every header as Dial's lookups would: find the user's header.
        let found = LISTING.with_borrow_mut(|listing| {
            envoy.with_headers(HeaderMap::Request, listing, |headers| {
                headers.iter().filter(|(n, _)| *n == b"x-user-id").count()
            })
        });
        std::hint::black_box(found);
    }
    let mut steered = false;
    if filter.makes(Call::SetHeader) {
        steered |= envoy.set_header(HeaderMap::Request, "x-dial-subset", Some("stable"));
    }
    if filter.makes(Call::SetSecondHeader) {
        steered |= envoy.set_header(HeaderMap::Request, "x-dial-version", Some("v1"));
    }
    if steered {
        envoy.clear_route_cache();
    }
    if filter.makes(Call::Count) {
        envoy.increment(filter.config.counter, 1);
    }
}

fn after_panic(_envoy: EnvoyFilter, _filter: &mut Filter) {}

fn response_headers(envoy: EnvoyFilter, filter: &mut Filter) {
    if filter.makes(Call::ReadStatus) {
        filter.status = envoy
            .with_header(HeaderMap::Response, ":status", |v| {
                std::str::from_utf8(v).ok()?.parse().ok()
            })
            .flatten()
            .unwrap_or(0);
    }
}

fn stream_complete(envoy: EnvoyFilter, filter: &mut Filter) {
    if filter.makes(Call::Count) && filter.status != 0 {
        envoy.increment(filter.config.counter, 1);
    }
    if filter.makes(Call::Record) {
        let millis = now_nanos().saturating_sub(filter.started) / 1_000_000;
        envoy.record(filter.config.histogram, millis);
    }
}
