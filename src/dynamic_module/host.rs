//! The core's `Host` over Envoy's dynamic-module callbacks, and what the proxy-wasm host gives
//! the Wasm build for free but this ABI does not: reading a counter back, and shared data.
//!
//! - **Metrics.** Each metric of the policy's `Catalog` is defined by its full tag-encoded name,
//!   as the Wasm build defines it, so the same `stats_tags` give byte-identical series in
//!   `/stats/prometheus` (one dashboard, one set of Flagger and Argo queries). Zero-label metrics
//!   are plain Envoy stats, created at definition: every series exists at 0 before traffic, as
//!   in the Wasm build, and an update is one atomic add behind one call.
//! - **Counters read back.** The ABI cannot read a metric's value, and the guard judges the
//!   whole proxy's response counters. Every counter Dial increments is mirrored in a
//!   process-wide atomic, keyed by the metric's name like the Envoy stat itself: all workers
//!   share the process's memory, so the mirror is the stat's value as Dial counted it.
//! - **Shared data.** A process-wide map with the proxy-wasm semantics: a value and a version,
//!   and a compare-and-swap on the version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use super::abi::{EnvoyConfig, EnvoyFilter, HeaderMap};
use crate::core::host::{Host, MetricIndex};

/// Why a host call failed (logged by the core, never acted on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Envoy answered false or an error.
    Envoy,
    /// A metric the catalog names but Envoy did not define.
    NoMetric,
    /// A stream call outside a stream (the configure-time tick).
    NoStream,
}

/// Where metric updates go: a stream's filter, or the configuration (at configure time).
pub trait Sink: Copy {
    fn increment(self, id: usize) -> bool;
    fn record(self, id: usize, value: u64) -> bool;
    fn set_gauge(self, id: usize, value: u64) -> bool;
    fn stream(self) -> Option<EnvoyFilter>;
}

impl Sink for EnvoyFilter {
    fn increment(self, id: usize) -> bool {
        EnvoyFilter::increment(self, id, 1)
    }
    fn record(self, id: usize, value: u64) -> bool {
        EnvoyFilter::record(self, id, value)
    }
    fn set_gauge(self, id: usize, value: u64) -> bool {
        EnvoyFilter::set_gauge(self, id, value)
    }
    fn stream(self) -> Option<EnvoyFilter> {
        Some(self)
    }
}

impl Sink for EnvoyConfig {
    fn increment(self, id: usize) -> bool {
        EnvoyConfig::increment(self, id, 1)
    }
    fn record(self, _id: usize, _value: u64) -> bool {
        false
    }
    fn set_gauge(self, id: usize, value: u64) -> bool {
        EnvoyConfig::set_gauge(self, id, value)
    }
    fn stream(self) -> Option<EnvoyFilter> {
        None
    }
}

/// One defined metric: Envoy's id, and for a counter its process-wide mirror.
#[derive(Debug)]
pub struct Metric {
    pub id: usize,
    pub mirror: Option<Arc<AtomicU64>>,
}

/// The process-wide mirror of the counter called `name` (the same name is the same Envoy stat,
/// whichever configuration defined it).
pub fn mirror(name: &str) -> Arc<AtomicU64> {
    static MIRRORS: LazyLock<Mutex<HashMap<String, Arc<AtomicU64>>>> =
        LazyLock::new(Mutex::default);
    lock(&MIRRORS).entry(name.to_string()).or_default().clone()
}

type SharedMap = HashMap<String, (Vec<u8>, u32)>;

fn shared_map() -> MutexGuard<'static, SharedMap> {
    static SHARED: LazyLock<Mutex<SharedMap>> = LazyLock::new(Mutex::default);
    lock(&SHARED)
}

/// A shared value and its version (`None`, 0 when absent).
pub fn shared(key: &str) -> (Option<Vec<u8>>, u32) {
    match shared_map().get(key) {
        Some((value, version)) => (Some(value.clone()), *version),
        None => (None, 0),
    }
}

/// Sets a shared value if it is still at version `cas` (0: whatever it is); false if another
/// configuration or worker changed it first.
pub fn set_shared(key: &str, value: &[u8], cas: u32) -> bool {
    let mut map = shared_map();
    let version = map.get(key).map_or(0, |(_, v)| *v);
    if cas != 0 && cas != version {
        return false;
    }
    map.insert(
        key.to_string(),
        (value.to_vec(), version.wrapping_add(1).max(1)),
    );
    true
}

/// A lock that outlives a panic: Dial's state under it is always whole between statements, and
/// a poisoned lock must not turn one panic into a panic on every later request.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The core's host: a stream's (or the configuration's) callbacks, the policy's metrics.
pub struct NativeHost<'a, S: Sink> {
    pub sink: S,
    pub metrics: &'a [Metric],
    /// A request header changed: the route must be chosen again.
    pub route_dirty: bool,
}

impl<'a, S: Sink> NativeHost<'a, S> {
    pub fn new(sink: S, metrics: &'a [Metric]) -> Self {
        NativeHost {
            sink,
            metrics,
            route_dirty: false,
        }
    }

    fn metric(&self, index: MetricIndex) -> Result<&'a Metric, Refused> {
        self.metrics.get(index).ok_or(Refused::NoMetric)
    }

    fn stream(&self) -> Result<EnvoyFilter, Refused> {
        self.sink.stream().ok_or(Refused::NoStream)
    }
}

fn ok(done: bool) -> Result<(), Refused> {
    if done {
        Ok(())
    } else {
        Err(Refused::Envoy)
    }
}

impl<S: Sink> Host for NativeHost<'_, S> {
    type Error = Refused;

    /// Envoy does not choose the route again after a filter sets a header in this ABI: the
    /// binding clears the route cache once the exchange's headers are written.
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), Refused> {
        self.route_dirty = true;
        ok(self
            .stream()?
            .set_header(HeaderMap::Request, name, Some(value)))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), Refused> {
        self.route_dirty = true;
        ok(self.stream()?.set_header(HeaderMap::Request, name, None))
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), Refused> {
        ok(self.stream()?.add_header(HeaderMap::Response, name, value))
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), Refused> {
        ok(self
            .stream()?
            .set_header(HeaderMap::Response, name, Some(value)))
    }

    fn response_status(&mut self) -> Result<Option<u32>, Refused> {
        Ok(self
            .stream()?
            .with_header(HeaderMap::Response, ":status", |v| {
                std::str::from_utf8(v).ok()?.parse().ok()
            })
            .flatten())
    }

    fn increment(&mut self, metric: MetricIndex) -> Result<(), Refused> {
        let m = self.metric(metric)?;
        if let Some(mirror) = &m.mirror {
            mirror.fetch_add(1, Ordering::Relaxed);
        }
        ok(self.sink.increment(m.id))
    }

    fn record(&mut self, metric: MetricIndex, value: u64) -> Result<(), Refused> {
        let m = self.metric(metric)?;
        ok(self.sink.record(m.id, value))
    }

    fn now_nanos(&mut self) -> Result<u64, Refused> {
        Ok(super::now_nanos())
    }

    fn read_counter(&mut self, metric: MetricIndex) -> Result<u64, Refused> {
        let m = self.metric(metric)?;
        m.mirror
            .as_ref()
            .map(|c| c.load(Ordering::Relaxed))
            .ok_or(Refused::NoMetric)
    }

    fn set_gauge(&mut self, metric: MetricIndex, value: u64) -> Result<(), Refused> {
        let m = self.metric(metric)?;
        ok(self.sink.set_gauge(m.id, value))
    }

    fn shared(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), Refused> {
        Ok(shared(key))
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, Refused> {
        Ok(set_shared(key, value, cas))
    }
}
