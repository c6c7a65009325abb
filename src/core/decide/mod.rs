//! The decision: a policy, the request's context (time, runtime state) and a request view in,
//! a plain `Decision` value out. No host, no side effects, so the filter, tests, benchmarks and
//! tools all get the same answer for the same request.
//!
//! Order for the first release whose scope fits: trusted override, then a lane the request
//! carries (a following release), then rules in order, then the weighted split of the user key;
//! without a key, the release's `whenNoKey`. A tripped guard then moves its subset's requests
//! (all but an override's) to its fallback.

use std::borrow::Cow;

use crate::core::baggage;
use crate::core::bucket;
use crate::core::lane::Read;
use crate::core::policy::{KeySource, Policy, Release, WhenNoKey, MAX_KEY_LEN};
use crate::core::ramp;
use crate::core::request::RequestView;
use crate::core::rules::RuleKind;
use crate::core::scheme::{self, FlagdVersion, Scheme};
use crate::core::sticky::{self, KEY_LEN};
use crate::core::trust;

/// What a decision may depend on besides the policy and the request. The binding reads it once
/// per request (the clock is also the start of the exchange's duration), so a time-dependent
/// policy costs no host call of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// The host clock, in nanoseconds since the Unix epoch; `None` if the host could not tell
    /// (a ramp then keeps the written weights).
    pub now_nanos: Option<u64>,
    /// Releases whose guard has tripped, one bit per release index (a policy has at most 64).
    pub tripped: u64,
}

impl Context {
    pub fn at(now_nanos: u64) -> Context {
        Context {
            now_nanos: Some(now_nanos),
            tripped: 0,
        }
    }

    pub fn is_tripped(&self, release: usize) -> bool {
        release < 64 && self.tripped & (1 << release) != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No release applies: the request passes untouched (client-sent Dial headers aside).
    Pass,
    Assign(Assignment),
}

/// Indices point into the policy the decision was made with. Besides the subset, it carries
/// enough to explain itself: the rule that matched, where the key came from, its hash position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub release: usize,
    pub subset: usize,
    pub reason: Reason,
    /// A sticky key the response must set the release's cookie to: minted for this request, or
    /// the request's own, signed again with the current secret.
    pub new_sticky_key: Option<[u8; KEY_LEN]>,
    /// Sampled for shadow traffic: mark the request for a copy to the release's mirror version.
    pub mirror: bool,
    /// The rule that matched (an index into the release's rules), for the rule reasons.
    pub rule: Option<usize>,
    /// Where the request's key came from, if it had one (or was given one).
    pub key: Option<KeyOrigin>,
    /// The key's position in the split, out of 2^32, when the split placed the request.
    pub position: Option<u32>,
    /// The lane member a following release read from the request (`Absent` elsewhere).
    pub lane: Read,
}

/// Where the key that placed (or could place) a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The release's key source at this index (`key[i]`).
    Source(usize),
    /// The sticky cookie the request carried.
    StickyCookie,
    /// A sticky key minted for this request.
    Minted,
}

impl Assignment {
    fn new(release: usize, subset: usize, reason: Reason) -> Assignment {
        Assignment {
            release,
            subset,
            reason,
            new_sticky_key: None,
            mirror: false,
            rule: None,
            key: None,
            position: None,
            lane: Read::Absent,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    HeaderRule,
    CookieRule,
    Allowlist,
    Override,
    Hash,
    StickyCookie,
    Fallback,
    /// The request's subset is guarded and its guard tripped: it went to the fallback.
    Guardrail,
    /// The request carried a valid lane member, and the release has a subset for its lane.
    Lane,
    /// The request carried a valid lane member for a lane the release has no subset of: the
    /// release's base subset.
    LaneFallback,
}

impl Reason {
    /// The label used in stats and the debug response header.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HeaderRule => "header_rule",
            Reason::CookieRule => "cookie_rule",
            Reason::Allowlist => "allowlist",
            Reason::Override => "override",
            Reason::Hash => "hash",
            Reason::StickyCookie => "sticky_cookie",
            Reason::Fallback => "fallback",
            Reason::Guardrail => "guardrail",
            Reason::Lane => "lane",
            Reason::LaneFallback => "lane_fallback",
        }
    }

    pub const ALL: [Reason; 10] = [
        Reason::HeaderRule,
        Reason::CookieRule,
        Reason::Allowlist,
        Reason::Override,
        Reason::Hash,
        Reason::StickyCookie,
        Reason::Fallback,
        Reason::Guardrail,
        Reason::Lane,
        Reason::LaneFallback,
    ];
}

pub fn decide(policy: &Policy, context: &Context, request: &impl RequestView) -> Decision {
    // Read only what some release's scope looks at.
    let host = policy
        .releases
        .iter()
        .any(|r| !r.scope.hosts.is_empty())
        .then(|| request.host())
        .flatten();
    let path = policy
        .releases
        .iter()
        .any(|r| !r.scope.path_prefixes.is_empty())
        .then(|| request.path())
        .flatten();
    policy
        .releases
        .iter()
        .position(|r| r.scope.matches(host, path))
        .and_then(|i| {
            let r = policy.releases.get(i)?;
            let tripped = context.is_tripped(i);
            let read = r
                .lanes
                .as_ref()
                .filter(|l| l.follow)
                .map_or(Read::Absent, |l| l.read(request, context.now_nanos));
            let (mut assignment, sampling_key) = assign(i, r, request, context, tripped, read);
            assignment.lane = read;
            if let Some(g) = r.guard.as_ref().filter(|_| tripped) {
                // Only a trusted override still reaches a tripped subset (to debug it).
                if assignment.subset == g.subset && assignment.reason != Reason::Override {
                    assignment.subset = g.fallback;
                    assignment.reason = Reason::Guardrail;
                }
            }
            assignment.mirror = sample_mirror(r, request, sampling_key.as_deref());
            Some(Decision::Assign(assignment))
        })
        .unwrap_or(Decision::Pass)
}

/// The subset assignment, and the key (user or sticky) that mirror sampling should follow.
fn assign<'r>(
    index: usize,
    release: &Release,
    request: &'r impl RequestView,
    context: &Context,
    tripped: bool,
    read: Read,
) -> (Assignment, Option<SamplingKey<'r>>) {
    // A tripped guard stops the ramp: the written weights apply.
    let now = if tripped { None } else { context.now_nanos };
    let key = user_key(release, request);
    let origin = key.as_ref().map(|(source, _)| KeyOrigin::Source(*source));
    let key = key.map(|(_, value)| value);
    let done = |subset, reason| Assignment {
        key: origin,
        ..Assignment::new(index, subset, reason)
    };

    if let Some(subset) = trusted_override(release, request) {
        return (done(subset, Reason::Override), key.map(SamplingKey::from));
    }

    // The lane was decided upstream: neither rules, nor the split, nor a ramp move it.
    if let (Read::Valid(v), Some(lanes)) = (read, &release.lanes) {
        if let Some((subset, fallback)) = lanes.subset_for(v.lane.as_str()) {
            let reason = if fallback {
                Reason::LaneFallback
            } else {
                Reason::Lane
            };
            return (done(subset, reason), key.map(SamplingKey::from));
        }
    }

    if let Some((i, rule)) = release
        .rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches(request, key.as_deref()))
    {
        let reason = match rule.kind() {
            RuleKind::Header => Reason::HeaderRule,
            RuleKind::Cookie => Reason::CookieRule,
            RuleKind::Allowlist => Reason::Allowlist,
        };
        let assignment = Assignment {
            rule: Some(i),
            ..done(rule.subset, reason)
        };
        return (assignment, key.map(SamplingKey::from));
    }

    if let Some(key) = key {
        let assignment = match place(release, &key, now) {
            Some((s, position)) => Assignment {
                position: Some(position),
                ..done(s, Reason::Hash)
            },
            None => fallback(index, release),
        };
        return (assignment, Some(SamplingKey::from(key)));
    }

    match &release.when_no_key {
        WhenNoKey::Subset(s) => (done(*s, Reason::Fallback), None),
        WhenNoKey::Sticky(cookie) => {
            let existing = request.cookie(&cookie.name).and_then(|v| cookie.read(v));
            // (the key to set in the response, if any; where the key came from; the key)
            let (new_sticky_key, origin, sampling) = match existing {
                Some(p) if p.resign => (
                    <[u8; KEY_LEN]>::try_from(p.key).ok(),
                    KeyOrigin::StickyCookie,
                    SamplingKey::Borrowed(p.key),
                ),
                Some(p) => (None, KeyOrigin::StickyCookie, SamplingKey::Borrowed(p.key)),
                None => {
                    let fresh = sticky::mint_key(request.entropy());
                    (Some(fresh), KeyOrigin::Minted, SamplingKey::Minted(fresh))
                }
            };
            let assignment = match place(release, &sampling, now) {
                Some((subset, position)) => Assignment {
                    new_sticky_key,
                    key: Some(origin),
                    position: Some(position),
                    ..Assignment::new(index, subset, Reason::StickyCookie)
                },
                None => fallback(index, release),
            };
            (assignment, Some(sampling))
        }
    }
}

/// The subset a key falls in at `now` under the release's scheme (and ramp), with the hash the
/// scheme computed.
fn place(release: &Release, key: &[u8], now: Option<u64>) -> Option<(usize, u32)> {
    let step = release
        .ramp
        .as_ref()
        .and_then(|r| Some((r, r.step_at(now)?.1)));
    match &release.scheme {
        Scheme::Dial => {
            let p = release.split_hash.position(key);
            let subset = match step {
                Some((r, s)) => ramp::pick(p, &release.cumulative, r.subset, s.taken_ppm),
                None => bucket::pick(p, &release.cumulative),
            };
            Some((subset?, p))
        }
        Scheme::UnleashRollout { hash, percent } => {
            let h = hash.position(key);
            let percent = step.map_or(*percent, |(_, s)| s.share_ppm / (ramp::PPM / 100));
            Some((scheme::unleash_rollout(h, percent), h))
        }
        Scheme::UnleashVariants { hash, cumulative } => {
            let h = hash.position(key);
            Some((scheme::unleash_variant(h, cumulative)?, h))
        }
        Scheme::Flagd { hash, version } => {
            let h = match version {
                FlagdVersion::V3 => {
                    let mut header = [0u8; 9];
                    hash.position_of(&[scheme::cbor_text_header(key.len(), &mut header), key])
                }
                FlagdVersion::V1 | FlagdVersion::V2 => hash.position(key),
            };
            let cumulative = step.map_or(&release.cumulative, |(_, s)| &s.cumulative);
            let subset = match version {
                FlagdVersion::V2 | FlagdVersion::V3 => scheme::flagd_v2(h, cumulative),
                FlagdVersion::V1 => scheme::flagd_v1(h, cumulative),
            };
            Some((subset?, h))
        }
    }
}

/// The key mirror sampling follows: a user key or sticky cookie from the request, or a sticky
/// key minted for it.
enum SamplingKey<'r> {
    Borrowed(&'r [u8]),
    /// Percent-decoded from baggage.
    Decoded(Vec<u8>),
    Minted([u8; KEY_LEN]),
}

impl<'r> From<Cow<'r, [u8]>> for SamplingKey<'r> {
    fn from(key: Cow<'r, [u8]>) -> Self {
        match key {
            Cow::Borrowed(k) => SamplingKey::Borrowed(k),
            Cow::Owned(k) => SamplingKey::Decoded(k),
        }
    }
}

impl std::ops::Deref for SamplingKey<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SamplingKey::Borrowed(k) => k,
            SamplingKey::Decoded(k) => k,
            SamplingKey::Minted(k) => k,
        }
    }
}

/// Whether the request is sampled for shadow traffic. With a key the choice is consistent
/// (the same user is always or never mirrored at a given percentage) and independent of the
/// subset hash (another salt); without one it is random.
fn sample_mirror(release: &Release, request: &impl RequestView, key: Option<&[u8]>) -> bool {
    let Some(mirror) = &release.mirror else {
        return false;
    };
    let method = request.header(":method").unwrap_or_default();
    if !mirror.methods.iter().any(|m| m.as_bytes() == method) {
        return false;
    }
    let position = match key {
        Some(k) => mirror.sample_hash.position(k),
        None => request.entropy() as u32,
    };
    u64::from(position) < mirror.threshold
}

fn fallback(index: usize, release: &Release) -> Assignment {
    let subset = match release.when_no_key {
        WhenNoKey::Subset(s) => s,
        WhenNoKey::Sticky(_) => 0,
    };
    Assignment::new(index, subset, Reason::Fallback)
}

/// The first present, non-empty, reasonably sized value among the release's key sources, with
/// the index of its source.
fn user_key<'a>(
    release: &Release,
    request: &'a impl RequestView,
) -> Option<(usize, Cow<'a, [u8]>)> {
    release.key.iter().enumerate().find_map(|(i, source)| {
        read_key_source(source, request)
            .filter(|v| !v.is_empty() && v.len() <= MAX_KEY_LEN)
            .map(|v| (i, v))
    })
}

/// What one key source holds in a request, as `decide` reads it (before the checks that make
/// it a key: not empty, at most `MAX_KEY_LEN` bytes). A baggage member is percent-decoded.
pub fn read_key_source<'a>(
    source: &KeySource,
    request: &'a impl RequestView,
) -> Option<Cow<'a, [u8]>> {
    match source {
        KeySource::Header(name) => request.header(name).map(Cow::Borrowed),
        KeySource::Cookie(name) => request.cookie(name).map(Cow::Borrowed),
        KeySource::Baggage(name) => baggage::member(request.header_values("baggage"), name),
    }
}

fn trusted_override(release: &Release, request: &impl RequestView) -> Option<usize> {
    let o = release.override_.as_ref()?;
    let asked = trust::parse_override(request.header(&o.header)?);
    let subset = release.subset_index(asked.subset)?;
    o.trust
        .allows(asked.token, || request.source_ip())
        .then_some(subset)
}

#[cfg(test)]
mod tests;
