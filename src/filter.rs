//! The glue room: the only code that talks to Envoy. It reads what `decide` needs, applies the
//! `Decision` to the request and response, and logs. Every host call goes through `hostcalls`,
//! whose errors are handled here: the SDK's convenience wrappers panic on an unexpected status,
//! and a panic traps the worker's VM (its share of traffic becomes 503s).

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::decide::{decide, Assignment, Decision};
use crate::policy::Policy;
use crate::request::{HeaderList, RequestView};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const GIT_REVISION: &str = env!("DIAL_GIT_REVISION");

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(DialRoot::default()) });
}}

#[derive(Default)]
struct DialRoot {
    policy: Option<Rc<Policy>>,
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
        match Policy::parse(&bytes) {
            Ok(policy) => {
                let releases: Vec<&str> = policy.releases.iter().map(|r| r.name.as_str()).collect();
                log::info!(
                    "dial: policy loaded: {} release(s): {}",
                    releases.len(),
                    releases.join(", ")
                );
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(e) => {
                log::error!("dial: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(DialHttp {
            policy: self.policy.clone(),
            response: ResponseChanges::default(),
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
    echo: Option<(String, String)>,
}

struct DialHttp {
    policy: Option<Rc<Policy>>,
    response: ResponseChanges,
}

impl Context for DialHttp {}

impl HttpContext for DialHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(policy) = self.policy.clone() else {
            return Action::Continue;
        };
        // One host call for the whole map. The byte variant: header values may be any bytes,
        // and the string variant panics on non-UTF-8.
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(h) => h,
            Err(status) => {
                log::warn!("dial: cannot read request headers: {status:?}");
                return Action::Continue;
            }
        };
        let request = HostRequest {
            headers: HeaderList::new(headers),
        };
        let decision = decide(&policy, &request);
        self.apply(&policy, &request.headers, decision);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(cookie) = self.response.set_cookie.take() {
            if let Err(status) =
                hostcalls::add_map_value(MapType::HttpResponseHeaders, "set-cookie", &cookie)
            {
                log::warn!("dial: cannot set the sticky cookie: {status:?}");
            }
        }
        if let Some((name, value)) = self.response.echo.take() {
            if let Err(status) =
                hostcalls::set_map_value(MapType::HttpResponseHeaders, &name, Some(&value))
            {
                log::warn!("dial: cannot set {name}: {status:?}");
            }
        }
        Action::Continue
    }
}

impl DialHttp {
    /// Steers the request. Setting a request header makes Envoy re-run route matching, so the
    /// route table sees Dial's subset header. Client-sent copies of Dial's headers never reach
    /// the upstream: set replaces them, and the rest are removed.
    fn apply(&mut self, policy: &Policy, sent: &HeaderList, decision: Decision) {
        let assignment = match decision {
            Decision::Assign(a) => Some(a),
            Decision::Pass => None,
        };
        let steered = assignment.and_then(|a| {
            let release = policy.releases.get(a.release)?;
            Some((a, release.subsets.get(a.subset)?))
        });

        for name in &policy.owned_request_headers {
            let will_set = steered.is_some()
                && (*name == policy.headers.subset || *name == policy.headers.version);
            if !will_set && sent.contains(name) {
                if let Err(status) = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
                {
                    log::warn!("dial: cannot remove client-sent {name}: {status:?}");
                }
            }
        }

        let Some((a, subset)) = steered else {
            return;
        };
        for (name, value) in [
            (&policy.headers.subset, &subset.name),
            (&policy.headers.version, &subset.version),
        ] {
            if let Err(status) =
                hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
            {
                log::warn!("dial: cannot set {name}: {status:?}");
            }
        }
        self.remember_for_response(policy, a);
    }

    fn remember_for_response(&mut self, policy: &Policy, a: Assignment) {
        let Some(release) = policy.releases.get(a.release) else {
            return;
        };
        if let (Some(key), crate::policy::WhenNoKey::Sticky(cookie)) =
            (a.new_sticky_key, &release.when_no_key)
        {
            self.response.set_cookie = Some(cookie.set_cookie(&key));
        }
        if let (Some(name), Some(subset)) =
            (&policy.headers.response, release.subsets.get(a.subset))
        {
            self.response.echo = Some((
                name.clone(),
                format!(
                    "release={}; subset={}; version={}; reason={}",
                    release.name,
                    subset.name,
                    subset.version,
                    a.reason.as_str()
                ),
            ));
        }
    }
}

/// The request as Envoy holds it. Source address and randomness are fetched only if asked for.
struct HostRequest {
    headers: HeaderList,
}

impl RequestView for HostRequest {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.header(name)
    }

    fn cookie(&self, name: &str) -> Option<&[u8]> {
        self.headers.cookie(name)
    }

    fn source_ip(&self) -> Option<IpAddr> {
        let raw = hostcalls::get_property(vec!["source", "address"]).ok()??;
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
