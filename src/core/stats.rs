//! Every metric Dial emits, named in one place, and the encoding of its labels. A leaf: the
//! fleet's query names these series too, and `catalog` derives one policy's metrics from them.
//! Cardinality is bounded by the policy: labels are release, subset, version, reason and status
//! class, never user ids or paths.
//!
//! Labels travel inside the metric name the way Istio encodes them, `tag=.=value;.;`, for
//! example `release=.=checkout;.;subset=.=canary;.;version=.=v2;.;reason=.=hash;.;dial_requests_total`.
//! Envoy's `stats_config.stats_tags` (one regex per tag, shipped in `envoy-config/`) or Istio's
//! `extraStatTags` turn them into Prometheus labels, leaving the name `dial_requests_total`.

/// Label names, in the order they appear in metric names.
pub const TAGS: [&str; 5] = ["release", "subset", "version", "reason", "status_class"];

/// The response status classes counted per subset.
pub const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

pub const REQUESTS: &str = "dial_requests_total";
pub const RESPONSES: &str = "dial_responses_total";
pub const DURATION: &str = "dial_request_duration_milliseconds";
pub const MIRRORED: &str = "dial_mirrored_requests_total";
pub const SUBSET_WEIGHT: &str = "dial_subset_weight";
pub const GUARD_TRIPPED: &str = "dial_guard_tripped";
pub const GUARD_TRIPS: &str = "dial_guard_trips_total";
pub const FLEET_TRIPS: &str = "dial_guard_fleet_trips_total";
pub const FLEET_QUERIES: &str = "dial_fleet_queries_total";
pub const FLEET_FAILURES: &str = "dial_fleet_query_failures_total";
pub const SLOW_RESPONSES: &str = "dial_guard_slow_responses_total";
pub const POLICY_LOADS: &str = "dial_policy_loads_total";
pub const POLICY_REJECTIONS: &str = "dial_policy_rejections_total";
pub const VM_MEMORY: &str = "dial_vm_memory_bytes";
pub const LANE_REJECTED: &str = "dial_lane_rejected_total";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub kind: Kind,
    pub name: String,
}

/// A metric name carrying its labels, in the `tag=.=value;.;` encoding.
pub fn tagged(labels: &[(&str, &str)], metric: &str) -> String {
    let mut name = String::new();
    for (tag, value) in labels {
        name.push_str(tag);
        name.push_str("=.=");
        name.push_str(value);
        name.push_str(";.;");
    }
    name.push_str(metric);
    name
}

/// Policy-level counters, defined whatever the policy (so rejections can be counted).
pub fn policy_counters() -> [Metric; 2] {
    [POLICY_LOADS, POLICY_REJECTIONS].map(|name| Metric {
        kind: Kind::Counter,
        name: name.to_string(),
    })
}

/// The linear memory of the Wasm VM serving requests, in bytes (sampled by the filter).
pub fn vm_memory_gauge() -> Metric {
    Metric {
        kind: Kind::Gauge,
        name: VM_MEMORY.to_string(),
    }
}
