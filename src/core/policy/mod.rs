//! The release policy: parsed from JSON (`raw`, phase one) and checked into the types below
//! (`validate`, phase two). A policy that fails either phase is rejected whole.

mod error;
mod guard;
pub(crate) mod json;
mod raw;
mod reader;
mod validate;

pub use error::{JsonPath, PolicyError, Problem, ProblemKind, Segment};
pub use guard::{Fleet, Guard, SlowRate, DEFAULT_FLEET_PATH};

use crate::core::bucket::Salted;
use crate::core::lane::Lanes;
use crate::core::ramp::Ramp;
use crate::core::rules::Rule;
use crate::core::scheme::Scheme;
use crate::core::scope::Scope;
use crate::core::secret::Environment;
use crate::core::sticky::StickyCookie;
use crate::core::trust::Trust;

/// Default name of the request header that carries the assigned subset to the route table.
pub const DEFAULT_SUBSET_HEADER: &str = "x-dial-subset";
/// Default name of the request header that carries the assigned version.
pub const DEFAULT_VERSION_HEADER: &str = "x-dial-version";
/// Default name of the request header that marks a request for mirroring (its value: the
/// shadow's version).
pub const DEFAULT_MIRROR_HEADER: &str = "x-dial-mirror";

/// A validated policy: every name checked, every subset reference resolved to an index.
#[derive(Debug)]
pub struct Policy {
    pub headers: HeaderNames,
    pub releases: Vec<Release>,
    /// Request headers Dial owns: any client-sent copy is removed before Dial sets its own.
    pub owned_request_headers: Vec<String>,
}

#[derive(Debug)]
pub struct HeaderNames {
    pub subset: String,
    pub version: String,
    pub mirror: String,
    /// When set, responses carry the assignment under this name (for debugging).
    pub response: Option<String>,
}

#[derive(Debug)]
pub struct Release {
    pub name: String,
    pub scope: Scope,
    pub subsets: Vec<Subset>,
    /// Running sums of the subset weights; the last one is the total (> 0).
    pub cumulative: Vec<u32>,
    /// Hashes user keys for the split, salted with the release name (the `dial` scheme).
    pub split_hash: Salted,
    /// How keys become subsets: Dial's own split, or an app-side flag system's.
    pub scheme: Scheme,
    pub key: Vec<KeySource>,
    pub rules: Vec<Rule>,
    pub when_no_key: WhenNoKey,
    pub override_: Option<Override>,
    pub mirror: Option<Mirror>,
    /// A schedule that raises one subset's share over time.
    pub ramp: Option<Ramp>,
    /// When to pull a subset back, by the responses it gives.
    pub guard: Option<Guard>,
    /// Lanes this release issues or follows (`core::lane`).
    pub lanes: Option<Lanes>,
}

#[derive(Debug)]
pub struct Subset {
    pub name: String,
    pub version: String,
    pub weight: u32,
}

/// Where a request's user key is read from; the first present source wins.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    Header(String),
    Cookie(String),
    /// A member of the W3C `baggage` header.
    Baggage(String),
}

/// What a request without a user key gets.
#[derive(Debug)]
pub enum WhenNoKey {
    /// Always this subset.
    Subset(usize),
    /// A random key kept in a cookie Dial sets, hashed like a user key.
    Sticky(StickyCookie),
}

/// Shadow traffic: a sample of the release's requests is marked for a copy to `version`.
#[derive(Debug)]
pub struct Mirror {
    pub version: String,
    /// Salted with `<release>#mirror`: sampling hashes the key apart from the subset split.
    pub sample_hash: Salted,
    /// A request is sampled when its sampling position is below this (out of 2^32).
    pub threshold: u64,
    /// Upper-case HTTP methods eligible for mirroring.
    pub methods: Vec<String>,
}

/// User keys longer than this are treated as absent (a hostile or broken client), so those
/// requests fall back; an allowlist entry must fit in it too.
pub const MAX_KEY_LEN: usize = 1024;

/// Mirrored writes would hit shared datastores twice: only safe methods by default.
pub const DEFAULT_MIRROR_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

/// A trusted header that forces a subset by name (QA, support).
#[derive(Debug)]
pub struct Override {
    pub header: String,
    pub trust: Trust,
}

impl Policy {
    /// Parses and validates a policy from the plugin configuration bytes, in a proxy with no
    /// environment variables: a secret written `{"fromEnv": ...}` rejects it.
    pub fn parse(bytes: &[u8]) -> Result<Policy, PolicyError> {
        Policy::parse_in(bytes, Environment::none())
    }

    /// The same, reading `{"fromEnv": ...}` secrets from `env`.
    #[cfg(target_arch = "wasm32")]
    pub fn parse_in(bytes: &[u8], env: Environment) -> Result<Policy, PolicyError> {
        Policy::read(bytes, env)
    }

    /// The same, reading `{"fromEnv": ...}` secrets from `env`; each problem of a refused
    /// policy is placed in its text (`Problem::at`). The module places nothing: its log lines
    /// name each problem by its path.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn parse_in(bytes: &[u8], env: Environment) -> Result<Policy, PolicyError> {
        Policy::read(bytes, env).map_err(|mut e| {
            json::places::place(&mut e, bytes);
            e
        })
    }

    /// Both phases.
    fn read(bytes: &[u8], env: Environment) -> Result<Policy, PolicyError> {
        let raw = raw::parse(bytes)?;
        validate::validate(raw, env)
    }
}

/// The offset in the policy `text` of the value at `path`, or of its deepest ancestor present
/// (where a problem at that path is placed); `None` if the text is not JSON.
#[cfg(not(target_arch = "wasm32"))]
pub fn offset_of(text: &[u8], path: &[Segment]) -> Option<u32> {
    json::places::offset_of(text, path)
}

impl Release {
    pub fn subset_index(&self, name: &[u8]) -> Option<usize> {
        self.subsets.iter().position(|s| s.name.as_bytes() == name)
    }
}

impl Mirror {
    /// The share of eligible requests sampled, in percent, as `threshold` holds it (for people;
    /// the filter compares positions with `threshold`).
    pub fn percent(&self) -> f64 {
        self.threshold as f64 * 100.0 / 4_294_967_296.0
    }
}

#[cfg(test)]
mod tests;
