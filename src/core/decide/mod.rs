//! The decision: a policy, the request's context (time, runtime state) and a request view in,
//! a plain `Decision` value out. No host, no side effects, so the filter, tests, benchmarks and
//! tools all get the same answer for the same request.
//!
//! `decide_observed` makes the same decision and tells an `Observer` why as it goes (`dial
//! explain` prints it); `decide` passes one that costs nothing.
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
use crate::core::sticky::{self, StickyCookie, KEY_LEN};
use crate::core::trust;

mod observe;
pub use observe::{
    Fallback, KeyRead, MirrorSample, Observer, OverrideSeen, RampState, ScopeFit, Split,
    Unobserved, Verdict,
};

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

/// The decision the filter makes: `decide_observed` with an observer that costs nothing.
pub fn decide(policy: &Policy, context: &Context, request: &impl RequestView) -> Decision {
    decide_observed(policy, context, request, &mut Unobserved)
}

/// `decide`, telling `observer` what it saw and judged on the way (see `observe`).
pub fn decide_observed<O: Observer>(
    policy: &Policy,
    context: &Context,
    request: &impl RequestView,
    observer: &mut O,
) -> Decision {
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
    // The first release whose scope fits (each judged whole for an observer).
    let release = if O::ACTIVE {
        policy.releases.iter().enumerate().position(|(i, r)| {
            let fit = r.scope.fit(host, path);
            observer.scope(i, fit);
            fit.fits()
        })
    } else {
        policy
            .releases
            .iter()
            .position(|r| r.scope.matches(host, path))
    };
    release
        .and_then(|i| decide_in(policy, i, context, request, observer))
        .unwrap_or(Decision::Pass)
}

/// The decision of release `index` alone, for a request in its scope (else `Pass`): the
/// releases before it, whatever their scopes would catch, take no part. How `dial simulate` and
/// `dial diff` place a key by one release.
pub fn decide_release(
    policy: &Policy,
    index: usize,
    context: &Context,
    request: &impl RequestView,
) -> Decision {
    policy
        .releases
        .get(index)
        .filter(|r| r.scope.matches(request.host(), request.path()))
        .and_then(|_| decide_in(policy, index, context, request, &mut Unobserved))
        .unwrap_or(Decision::Pass)
}

/// The decision of release `i`, whose scope fits the request.
// Inlined into `decide_observed`, where it stood before `decide_release` shared it: the filter's
// module stays as it was.
#[inline(always)]
fn decide_in<O: Observer>(
    policy: &Policy,
    i: usize,
    context: &Context,
    request: &impl RequestView,
    observer: &mut O,
) -> Option<Decision> {
    let r = policy.releases.get(i)?;
    let tripped = context.is_tripped(i);
    let read = match r.lanes.as_ref().filter(|l| l.follow) {
        Some(l) => {
            let read = l.read(request, context.now_nanos);
            observer.lane(read);
            read
        }
        None => Read::Absent,
    };
    let (mut assignment, sampling_key) = assign(i, r, request, context, tripped, read, observer);
    assignment.lane = read;
    if let Some(g) = r.guard.as_ref().filter(|_| tripped) {
        // Only a trusted override still reaches a tripped subset (to debug it).
        if assignment.subset == g.subset && assignment.reason != Reason::Override {
            observer.guard(g.subset, g.fallback);
            assignment.subset = g.fallback;
            assignment.reason = Reason::Guardrail;
        }
    }
    assignment.mirror = sample_mirror(r, request, sampling_key.as_deref(), observer);
    Some(Decision::Assign(assignment))
}

/// The subset assignment, and the key (user or sticky) that mirror sampling should follow.
fn assign<'r, O: Observer>(
    index: usize,
    release: &Release,
    request: &'r impl RequestView,
    context: &Context,
    tripped: bool,
    read: Read,
    observer: &mut O,
) -> (Assignment, Option<SamplingKey<'r>>) {
    // A tripped guard stops the ramp: the written weights apply.
    let now = if tripped { None } else { context.now_nanos };
    if O::ACTIVE {
        if let Some(state) = ramp_state(release, tripped, now) {
            observer.ramp(state);
        }
    }
    let key = user_key(release, request, observer);
    let origin = key.as_ref().map(|(source, _)| KeyOrigin::Source(*source));
    let key = key.map(|(_, value)| value);
    let done = |subset, reason| Assignment {
        key: origin,
        ..Assignment::new(index, subset, reason)
    };

    if let Some(subset) = trusted_override(release, request, observer) {
        if O::ACTIVE {
            would_split(release, request, now, read, key.as_deref(), observer);
        }
        return (done(subset, Reason::Override), key.map(SamplingKey::from));
    }

    // The lane was decided upstream: neither rules, nor the split, nor a ramp move it.
    if let Some((subset, reason)) = lane_subset(release, read) {
        return (done(subset, reason), key.map(SamplingKey::from));
    }

    let mut matched = None;
    for (i, rule) in release.rules.iter().enumerate() {
        let matches = rule.matches(request, key.as_deref());
        observer.rule(i, matches);
        if matches {
            matched = Some((i, rule));
            break;
        }
    }
    if let Some((i, rule)) = matched {
        if O::ACTIVE {
            would_split(release, request, now, read, key.as_deref(), observer);
        }
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
            Some((s, position)) => {
                report_split(observer, release, s, position, true);
                Assignment {
                    position: Some(position),
                    ..done(s, Reason::Hash)
                }
            }
            None => fallback(index, release, observer),
        };
        return (assignment, Some(SamplingKey::from(key)));
    }

    match &release.when_no_key {
        WhenNoKey::Subset(s) => {
            observer.fallback(Fallback::NoKey);
            (done(*s, Reason::Fallback), None)
        }
        WhenNoKey::Sticky(cookie) => {
            let (new_sticky_key, origin, sampling) = sticky_key(cookie, request);
            let assignment = match place(release, &sampling, now) {
                Some((subset, position)) => {
                    report_split(observer, release, subset, position, true);
                    Assignment {
                        new_sticky_key,
                        key: Some(origin),
                        position: Some(position),
                        ..Assignment::new(index, subset, Reason::StickyCookie)
                    }
                }
                None => fallback(index, release, observer),
            };
            (assignment, Some(sampling))
        }
    }
}

/// The subset a valid lane member the request carries takes it to, if the release has one.
// Inlined (as `sticky_key`) into `assign`, where the code stood before an observer also called
// it: the filter's module stays as small as it was.
#[inline(always)]
fn lane_subset(release: &Release, read: Read) -> Option<(usize, Reason)> {
    let (Read::Valid(v), Some(lanes)) = (read, &release.lanes) else {
        return None;
    };
    let (subset, fallback) = lanes.subset_for(v.lane.as_str())?;
    Some((
        subset,
        if fallback {
            Reason::LaneFallback
        } else {
            Reason::Lane
        },
    ))
}

/// The sticky key of a request without a user key: (the key to set in the response, if any;
/// where the key came from; the key). The cookie's own when it carries a valid one (set again
/// when signed with the previous secret), else a key minted for it.
#[inline(always)]
fn sticky_key<'r>(
    cookie: &StickyCookie,
    request: &'r impl RequestView,
) -> (Option<[u8; KEY_LEN]>, KeyOrigin, SamplingKey<'r>) {
    match request.cookie(&cookie.name).and_then(|v| cookie.read(v)) {
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
    }
}

/// For an observer: where the split alone would have put a request the override or a rule
/// placed, as `assign` would without them (a lane the request carries still comes first).
fn would_split<O: Observer>(
    release: &Release,
    request: &impl RequestView,
    now: Option<u64>,
    read: Read,
    key: Option<&[u8]>,
    observer: &mut O,
) {
    if lane_subset(release, read).is_some() {
        return;
    }
    let placed = match (key, &release.when_no_key) {
        (Some(key), _) => place(release, key, now),
        (None, WhenNoKey::Sticky(cookie)) => place(release, &sticky_key(cookie, request).2, now),
        (None, WhenNoKey::Subset(_)) => None,
    };
    if let Some((subset, position)) = placed {
        report_split(observer, release, subset, position, false);
    }
}

/// For an observer: the state of the release's ramp, if it has one (`now` is `None` when the
/// guard is tripped or the host could not tell the time).
fn ramp_state(release: &Release, tripped: bool, now: Option<u64>) -> Option<RampState> {
    let ramp = release.ramp.as_ref()?;
    Some(match ramp.step_at(now) {
        Some((k, _)) => RampState::Step(k),
        None if tripped => RampState::Stopped,
        None if now.is_none() => RampState::NoClock,
        None => RampState::NotStarted,
    })
}

/// Tells the observer where the split put (or would put) a key: with Dial's own scheme, the
/// bucket too.
fn report_split<O: Observer>(
    observer: &mut O,
    release: &Release,
    subset: usize,
    position: u32,
    decided: bool,
) {
    if O::ACTIVE {
        let total = release.cumulative.last().copied().unwrap_or(0);
        let bucket =
            matches!(release.scheme, Scheme::Dial).then(|| bucket::bucket(position, total.max(1)));
        observer.split(Split {
            subset,
            position,
            bucket,
            decided,
        });
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
fn sample_mirror<O: Observer>(
    release: &Release,
    request: &impl RequestView,
    key: Option<&[u8]>,
    observer: &mut O,
) -> bool {
    let Some(mirror) = &release.mirror else {
        return false;
    };
    let method = request.header(":method").unwrap_or_default();
    if !mirror.methods.iter().any(|m| m.as_bytes() == method) {
        observer.mirror(MirrorSample::Method);
        return false;
    }
    let below = |position: u32| u64::from(position) < mirror.threshold;
    match key {
        Some(k) => {
            let position = mirror.sample_hash.position(k);
            let sampled = below(position);
            observer.mirror(MirrorSample::Key { position, sampled });
            sampled
        }
        None => {
            let sampled = below(request.entropy() as u32);
            observer.mirror(MirrorSample::Random { sampled });
            sampled
        }
    }
}

fn fallback<O: Observer>(index: usize, release: &Release, observer: &mut O) -> Assignment {
    observer.fallback(Fallback::Unplaced);
    let subset = match release.when_no_key {
        WhenNoKey::Subset(s) => s,
        WhenNoKey::Sticky(_) => 0,
    };
    Assignment::new(index, subset, Reason::Fallback)
}

/// The first present, non-empty, reasonably sized value among the release's key sources, with
/// the index of its source.
fn user_key<'a, O: Observer>(
    release: &Release,
    request: &'a impl RequestView,
    observer: &mut O,
) -> Option<(usize, Cow<'a, [u8]>)> {
    for (i, source) in release.key.iter().enumerate() {
        let value = read_key_source(source, request);
        let read = match value.as_deref() {
            None => KeyRead::Absent,
            Some([]) => KeyRead::Empty,
            Some(v) if v.len() > MAX_KEY_LEN => KeyRead::TooLong,
            Some(_) => KeyRead::Key,
        };
        observer.key_source(i, value.as_deref(), read);
        if read == KeyRead::Key {
            return value.map(|v| (i, v));
        }
    }
    None
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

fn trusted_override<O: Observer>(
    release: &Release,
    request: &impl RequestView,
    observer: &mut O,
) -> Option<usize> {
    let o = release.override_.as_ref()?;
    let Some(value) = request.header(&o.header) else {
        observer.override_(OverrideSeen::Absent);
        return None;
    };
    let asked = trust::parse_override(value);
    let Some(subset) = release.subset_index(asked.subset) else {
        observer.override_(OverrideSeen::NoSuchSubset(asked.subset));
        return None;
    };
    let verdict = o.trust.judge(asked.token, || request.source_ip());
    observer.override_(OverrideSeen::Judged { subset, verdict });
    verdict.trusted().then_some(subset)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod observe_tests;
