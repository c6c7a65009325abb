//! Release lanes: one assignment for a request's whole call chain. An issuing release writes the
//! lane of the subset it assigned into the request's W3C baggage, as a member applications carry
//! to every downstream call; a following release downstream puts a request carrying a valid
//! member on its subset for that lane, or on its base subset when it has none.
//!
//! The member is `v1.<lane>.<issued at, Unix seconds>.<tag>`: the tag is HMAC-SHA-256 under the
//! lane secret over a domain-separated string binding the member's name, the lane and the issue
//! time, truncated to 128 bits, in lower-case hex, and checked in constant time (under the
//! current secret, then the previous one: rotation). Baggage has no integrity of its own; the
//! tag is what keeps a client (or anything else outside) from writing or changing a lane.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::core::baggage;
use crate::core::request::RequestView;
use crate::core::secret::Secret;
use crate::core::sticky::{hex, unhex};

/// The member name when the policy gives none.
pub const DEFAULT_MEMBER: &str = "dial-lane";
/// Lane names are release and subset names: 1-63 of `[A-Za-z0-9_-]`.
pub const MAX_LANE_LEN: usize = 63;
/// The tag: 128 bits of the MAC, as 32 hex digits.
pub const TAG_HEX: usize = 32;
/// How far in the future an issue time may be (clocks of two proxies differ a little).
pub const MAX_SKEW_SECONDS: u64 = 60;
const VERSION: &[u8] = b"v1";
const DOMAIN: &[u8] = b"dial lane v1\0";

/// A release's lane settings, checked.
pub struct Lanes {
    /// Tells this instance's entries in the per-thread caches from any other's (another
    /// policy, another secret); a clone gets its own.
    id: u64,
    /// The baggage member's name (a token; case-sensitive, as baggage keys are).
    pub member: String,
    pub secret: Secret,
    pub previous: Option<Secret>,
    /// The MAC keyed with each secret, prepared once (a clone per request costs no key setup).
    current_mac: Option<Hmac<Sha256>>,
    previous_mac: Option<Hmac<Sha256>>,
    pub issue: bool,
    pub follow: bool,
    /// A member issued longer ago than this is refused (`expired`).
    pub max_age_seconds: Option<u64>,
    /// The subset a followed lane falls back to when no subset of this release has it.
    pub base: Option<usize>,
    /// Each subset's lane, indexed like the release's subsets.
    pub subset_lanes: Vec<String>,
    /// The lanes of the whole mesh, if declared: a verified member naming another is refused
    /// (`unknown_lane`).
    pub names: Option<Vec<String>>,
}

impl Clone for Lanes {
    fn clone(&self) -> Lanes {
        Lanes {
            id: next_id(),
            member: self.member.clone(),
            secret: self.secret.clone(),
            previous: self.previous.clone(),
            current_mac: self.current_mac.clone(),
            previous_mac: self.previous_mac.clone(),
            issue: self.issue,
            follow: self.follow,
            max_age_seconds: self.max_age_seconds,
            base: self.base,
            subset_lanes: self.subset_lanes.clone(),
            names: self.names.clone(),
        }
    }
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Members are few: an edge writes one per lane per second, whoever the user, so the same
/// bytes reach a follower again and again. Each thread keeps the last few members it
/// verified (valid ones only: nothing a forger sends gets in) and the last few it issued, and
/// spares itself their MAC (two SHA-256 blocks, most of a lane's cost). A hit is judged as the
/// MAC would be: lane and issue time equal (public anyway), the tag compared in constant time.
const CACHED: usize = 4;

#[derive(Clone, Copy)]
struct VerifiedEntry {
    lanes: u64,
    lane: LaneName,
    issued: u64,
    tag: [u8; TAG_HEX / 2],
    previous: bool,
}

struct IssuedEntry {
    lanes: u64,
    lane: LaneName,
    issued: u64,
    value: String,
}

thread_local! {
    static VERIFIED: RefCell<([Option<VerifiedEntry>; CACHED], usize)> =
        const { RefCell::new(([None; CACHED], 0)) };
    static ISSUED: RefCell<(Vec<IssuedEntry>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Equal in constant time (both are `TAG_HEX / 2` bytes).
fn same_tag(a: &[u8; TAG_HEX / 2], b: &[u8; TAG_HEX / 2]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Debug for Lanes {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lanes")
            .field("member", &self.member)
            .field("secret", &self.secret)
            .field("previous", &self.previous)
            .field("issue", &self.issue)
            .field("follow", &self.follow)
            .field("max_age_seconds", &self.max_age_seconds)
            .field("base", &self.base)
            .field("subset_lanes", &self.subset_lanes)
            .field("names", &self.names)
            .finish()
    }
}

/// A lane name held by value, so a decision stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LaneName {
    len: u8,
    bytes: [u8; MAX_LANE_LEN],
}

impl LaneName {
    pub fn new(name: &[u8]) -> Option<LaneName> {
        if !is_lane_name(name) {
            return None;
        }
        let mut bytes = [0u8; MAX_LANE_LEN];
        bytes.get_mut(..name.len())?.copy_from_slice(name);
        Some(LaneName {
            len: u8::try_from(name.len()).ok()?,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl fmt::Debug for LaneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LaneName({})", self.as_str())
    }
}

/// `[A-Za-z0-9_-]`, 1 to 63 bytes, starting with a letter or digit: a subset name.
pub fn is_lane_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LANE_LEN
        && name.first().is_some_and(u8::is_ascii_alphanumeric)
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// Why a lane member was not followed (or, at an issuer, why baggage was changed or not).
/// Each is a label of `dial_lane_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not `v1.<lane>.<seconds>.<32 hex digits>`.
    Malformed,
    /// The tag verifies under neither secret (forged, changed, truncated, another secret's).
    BadTag,
    /// Issued longer ago than `maxAge`, or more than a minute in the future, or the proxy's
    /// clock could not be read.
    Expired,
    /// A verified lane outside the declared `names`.
    UnknownLane,
    /// Several members of the name with different values.
    Conflict,
    /// An issuing release that does not follow removed the member the request carried.
    Replaced,
    /// Adding the member would break W3C's limits (8,192 bytes, 180 members): not added.
    BaggageFull,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::BadTag => "bad_tag",
            Rejection::Expired => "expired",
            Rejection::UnknownLane => "unknown_lane",
            Rejection::Conflict => "conflict",
            Rejection::Replaced => "replaced",
            Rejection::BaggageFull => "baggage_full",
        }
    }

    pub const ALL: [Rejection; 7] = [
        Rejection::Malformed,
        Rejection::BadTag,
        Rejection::Expired,
        Rejection::UnknownLane,
        Rejection::Conflict,
        Rejection::Replaced,
        Rejection::BaggageFull,
    ];
}

/// A member that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub lane: LaneName,
    /// Unix seconds.
    pub issued: u64,
    /// Verified under the previous secret.
    pub previous: bool,
}

/// Where a following release puts a request by the lane of the verified member it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The subset whose lane it is (reason `lane`).
    Subset(usize),
    /// No subset here has the lane: the base subset (reason `lane_fallback`).
    Base(usize),
    /// The member is refused (a lane outside the declared `names`): the request is assigned as
    /// without a lane.
    Refused(Rejection),
}

/// A following release's lanes, as `Lanes::reaches` tells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneMap<'a> {
    /// The lanes the release knows, in order, with where each reaches.
    pub known: Vec<(&'a str, Reach)>,
    /// Where any other lane reaches (`None`: nowhere, assigned as without a lane).
    pub other: Option<Reach>,
}

/// What a following release read from a request's baggage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Absent,
    Valid(Verified),
    Rejected(Rejection),
}

impl Lanes {
    /// Prepares the MACs (secrets unresolved away from the proxy verify and sign nothing).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        member: String,
        secret: Secret,
        previous: Option<Secret>,
        issue: bool,
        follow: bool,
        max_age_seconds: Option<u64>,
        base: Option<usize>,
        subset_lanes: Vec<String>,
        names: Option<Vec<String>>,
    ) -> Lanes {
        let keyed = |s: &Secret| {
            s.value()
                .and_then(|v| Hmac::<Sha256>::new_from_slice(v.as_bytes()).ok())
        };
        Lanes {
            id: next_id(),
            current_mac: keyed(&secret),
            previous_mac: previous.as_ref().and_then(keyed),
            member,
            secret,
            previous,
            issue,
            follow,
            max_age_seconds,
            base,
            subset_lanes,
            names,
        }
    }

    /// The subset for a lane, and whether it is the base (no subset has the lane).
    pub fn subset_for(&self, lane: &str) -> Option<(usize, bool)> {
        match self.subset_lanes.iter().position(|l| l == lane) {
            Some(s) => Some((s, false)),
            None => self.base.map(|b| (b, true)),
        }
    }

    /// Whether `lane` is one of the mesh's lanes (any lane, when `names` declares none): the
    /// check `verify` makes (`reach`'s test holds the two together).
    fn declared(&self, lane: &[u8]) -> bool {
        match &self.names {
            Some(names) => names.iter().any(|n| n.as_bytes() == lane),
            None => true,
        }
    }

    /// What a following release does with a member of `lane` whose tag and age verify: the
    /// lane check of `verify`, then `subset_for`. `None`: no subset has the lane and there is
    /// no base (a following release always has one).
    pub fn reach(&self, lane: &str) -> Option<Reach> {
        let subset = self.subset_lanes.iter().position(|l| l == lane);
        self.reached(self.declared(lane.as_bytes()), subset)
    }

    /// What a following release does with every lane a request may carry (`dial simulate`
    /// prints it): each lane it knows (its subsets', then the other declared `names`) that
    /// reaches something, and what any other lane gets.
    pub fn reaches(&self) -> LaneMap<'_> {
        let mut lanes: Vec<&str> = self.subset_lanes.iter().map(String::as_str).collect();
        for n in self.names.iter().flatten() {
            if !lanes.contains(&n.as_str()) {
                lanes.push(n);
            }
        }
        LaneMap {
            known: lanes
                .into_iter()
                .filter_map(|l| Some((l, self.reach(l)?)))
                .collect(),
            // A lane no subset has: declared only when `names` declares none.
            other: self.reached(self.names.is_none(), None),
        }
    }

    fn reached(&self, declared: bool, subset: Option<usize>) -> Option<Reach> {
        if !declared {
            return Some(Reach::Refused(Rejection::UnknownLane));
        }
        match subset {
            Some(s) => Some(Reach::Subset(s)),
            None => self.base.map(Reach::Base),
        }
    }

    /// The member's value for a lane issued at `now_seconds`, or `None` without a usable
    /// secret.
    pub fn issue_value(&self, lane: &str, now_seconds: u64) -> Option<String> {
        let name = LaneName::new(lane.as_bytes())?;
        let hit = ISSUED.with_borrow(|(entries, _)| {
            entries
                .iter()
                .find(|e| e.lanes == self.id && e.issued == now_seconds && e.lane == name)
                .map(|e| e.value.clone())
        });
        if hit.is_some() {
            return hit;
        }
        let value = self.sign(lane, now_seconds)?;
        ISSUED.with_borrow_mut(|(entries, next)| {
            let entry = IssuedEntry {
                lanes: self.id,
                lane: name,
                issued: now_seconds,
                value: value.clone(),
            };
            match entries.get_mut(*next) {
                Some(slot) => *slot = entry,
                None => entries.push(entry),
            }
            *next = (*next + 1) % CACHED;
        });
        Some(value)
    }

    fn sign(&self, lane: &str, now_seconds: u64) -> Option<String> {
        let mac = self.current_mac.clone()?;
        let issued = now_seconds.to_string();
        let bytes = keyed(mac, &self.member, lane.as_bytes(), issued.as_bytes())
            .finalize()
            .into_bytes();
        let mut tag = [0u8; TAG_HEX];
        hex(bytes.get(..TAG_HEX / 2).unwrap_or_default(), &mut tag);
        Some(format!(
            "v1.{lane}.{issued}.{}",
            std::str::from_utf8(&tag).unwrap_or_default()
        ))
    }

    /// Reads the request's member, if any: every kept member of the name (after W3C's limits,
    /// as an application's propagator would keep them), which must agree.
    pub fn read(&self, request: &impl RequestView, now_nanos: Option<u64>) -> Read {
        let mut values = baggage::named(request.header_values("baggage"), &self.member);
        let Some(first) = values.next() else {
            return Read::Absent;
        };
        let value = baggage::decoded(first);
        if values.any(|other| baggage::decoded(other) != value) {
            return Read::Rejected(Rejection::Conflict);
        }
        match self.verify(&value, now_nanos) {
            Ok(v) => Read::Valid(v),
            Err(r) => Read::Rejected(r),
        }
    }

    /// Checks one member value: its shape, its tag (current secret, then previous), its age,
    /// its lane.
    pub fn verify(&self, value: &[u8], now_nanos: Option<u64>) -> Result<Verified, Rejection> {
        let mut parts = value.split(|b| *b == b'.');
        let (Some(version), Some(lane), Some(issued), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Rejection::Malformed);
        };
        let issued_at = parse_seconds(issued);
        let mut tag_bytes = [0u8; TAG_HEX / 2];
        // (`LaneName::new` checks the lane's name.)
        let well_formed =
            version == VERSION && issued_at.is_some() && unhex(tag, &mut tag_bytes).is_some();
        let (Some(name), Some(issued_at), true) = (LaneName::new(lane), issued_at, well_formed)
        else {
            return Err(Rejection::Malformed);
        };
        let previous = match self.cached(name, issued_at, &tag_bytes) {
            Some(previous) => previous,
            None => {
                let check = |mac: &Option<Hmac<Sha256>>| {
                    mac.clone().is_some_and(|m| {
                        keyed(m, &self.member, lane, issued)
                            .verify_truncated_left(&tag_bytes)
                            .is_ok()
                    })
                };
                let previous = if check(&self.current_mac) {
                    false
                } else if check(&self.previous_mac) {
                    true
                } else {
                    return Err(Rejection::BadTag);
                };
                self.remember(name, issued_at, tag_bytes, previous);
                previous
            }
        };
        if let Some(max_age) = self.max_age_seconds {
            let now = now_nanos
                .map(|n| n / 1_000_000_000)
                .ok_or(Rejection::Expired)?;
            if issued_at > now.saturating_add(MAX_SKEW_SECONDS)
                || now.saturating_sub(issued_at) > max_age
            {
                return Err(Rejection::Expired);
            }
        }
        // `declared`, written out: a call here makes the module larger.
        if let Some(names) = &self.names {
            if !names.iter().any(|n| n.as_bytes() == lane) {
                return Err(Rejection::UnknownLane);
            }
        }
        Ok(Verified {
            lane: name,
            issued: issued_at,
            previous,
        })
    }
}

impl Lanes {
    /// Whether this thread verified these bytes under this instance before, and under which
    /// secret.
    fn cached(&self, lane: LaneName, issued: u64, tag: &[u8; TAG_HEX / 2]) -> Option<bool> {
        VERIFIED.with_borrow(|(entries, _)| {
            entries
                .iter()
                .flatten()
                .find(|e| e.lanes == self.id && e.issued == issued && e.lane == lane)
                .filter(|e| same_tag(&e.tag, tag))
                .map(|e| e.previous)
        })
    }

    fn remember(&self, lane: LaneName, issued: u64, tag: [u8; TAG_HEX / 2], previous: bool) {
        VERIFIED.with_borrow_mut(|(entries, next)| {
            if let Some(slot) = entries.get_mut(*next) {
                *slot = Some(VerifiedEntry {
                    lanes: self.id,
                    lane,
                    issued,
                    tag,
                    previous,
                });
            }
            *next = (*next + 1) % CACHED;
        });
    }
}

/// The MAC over the domain, the member's name, the lane and the issue time (as written), each
/// ended by a NUL so no two inputs run together.
fn keyed(mut mac: Hmac<Sha256>, member: &str, lane: &[u8], issued: &[u8]) -> Hmac<Sha256> {
    mac.update(DOMAIN);
    mac.update(member.as_bytes());
    mac.update(b"\0");
    mac.update(lane);
    mac.update(b"\0");
    mac.update(issued);
    mac
}

/// Unix seconds as Dial writes them: decimal, no sign, no leading zero, at most 12 digits.
fn parse_seconds(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 12 || (text.len() > 1 && text.first() == Some(&b'0')) {
        return None;
    }
    text.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// Logs a refused member at most once a minute per VM or process (a client can send one on
/// every request; the counter has them all).
pub fn log_rejection(release: &str, rejection: Rejection, now_nanos: Option<u64>) {
    static LAST_MINUTE: AtomicU64 = AtomicU64::new(u64::MAX);
    let minute = now_nanos.unwrap_or(0) / 60_000_000_000;
    if LAST_MINUTE.swap(minute, Ordering::Relaxed) != minute {
        log::info!(
            "dial: release {release}: lane member not followed ({}); every one is counted in dial_lane_rejected_total, and logged at most once a minute",
            rejection.as_str()
        );
    }
}

#[cfg(test)]
mod tests;
