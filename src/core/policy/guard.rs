//! What a release's guard says: which subset it watches and where that subset's users go, the
//! window and thresholds it judges by, and where to ask for the fleet's verdict. Configuration
//! only, as validated (`validate::progress`): the judging lives in `core::guard` and the fleet's
//! query in `core::fleet`, which read these types; the policy never imports them back.

#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    /// The guarded subset and the one its users go to when it trips (indices).
    pub subset: usize,
    pub fallback: usize,
    /// The sliding window, in nanoseconds.
    pub window: u64,
    /// Below this many guarded responses in the window, no verdict.
    pub min_requests: u64,
    /// The most the guarded subset's 5xx share may exceed the fallback's.
    pub max_error_rate: Option<f64>,
    pub max_slow_rate: Option<SlowRate>,
    /// Where to ask for the fleet's verdict too.
    pub fleet: Option<Fleet>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowRate {
    /// A response slower than this counts as slow.
    pub over_ms: u64,
    /// The most the guarded subset's slow share may exceed the fallback's.
    pub rate: f64,
}

/// Where and how often a guard asks for the fleet's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The Envoy cluster of the query API.
    pub cluster: String,
    /// The query API's host name (the callout's `:authority`).
    pub authority: String,
    /// The instant-query endpoint (`/api/v1/query`, or a prefix before it).
    pub path: String,
    /// How often each proxy asks, in nanoseconds.
    pub every: u64,
    /// The range the rates are taken over, in nanoseconds.
    pub window: u64,
    /// How long a query may take, in nanoseconds.
    pub timeout: u64,
}

/// The fleet's query endpoint when the policy names none.
pub const DEFAULT_FLEET_PATH: &str = "/api/v1/query";
