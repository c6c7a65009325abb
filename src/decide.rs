//! The decision: a request view in, a plain `Decision` value out. No host, no side effects,
//! so the filter, tests, benchmarks and tools all get the same answer for the same request.
//!
//! Order for the first release whose scope fits: trusted override, then rules in order, then the
//! weighted split of the user key; without a key, the release's `whenNoKey`.

use crate::bucket;
use crate::policy::{KeySource, Policy, Release, WhenNoKey};
use crate::request::RequestView;
use crate::rules::RuleKind;
use crate::sticky::{self, KEY_LEN};
use crate::trust;

/// Longer keys are treated as absent (a hostile or broken client), so they fall back.
pub const MAX_KEY_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No release applies: the request passes untouched (client-sent Dial headers aside).
    Pass,
    Assign(Assignment),
}

/// Indices point into the policy the decision was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub release: usize,
    pub subset: usize,
    pub reason: Reason,
    /// A sticky key minted for this request: the response must set the release's cookie to it.
    pub new_sticky_key: Option<[u8; KEY_LEN]>,
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
        }
    }

    pub const ALL: [Reason; 7] = [
        Reason::HeaderRule,
        Reason::CookieRule,
        Reason::Allowlist,
        Reason::Override,
        Reason::Hash,
        Reason::StickyCookie,
        Reason::Fallback,
    ];
}

pub fn decide(policy: &Policy, request: &impl RequestView) -> Decision {
    let (host, path) = (request.host(), request.path());
    policy
        .releases
        .iter()
        .position(|r| r.scope.matches(host, path))
        .and_then(|i| {
            let r = policy.releases.get(i)?;
            Some(Decision::Assign(assign(i, r, request)))
        })
        .unwrap_or(Decision::Pass)
}

fn assign(index: usize, release: &Release, request: &impl RequestView) -> Assignment {
    let done = |subset, reason| Assignment {
        release: index,
        subset,
        reason,
        new_sticky_key: None,
    };

    if let Some(subset) = trusted_override(release, request) {
        return done(subset, Reason::Override);
    }

    let key = user_key(release, request);
    if let Some(rule) = release.rules.iter().find(|r| r.matches(request, key)) {
        let reason = match rule.kind() {
            RuleKind::Header => Reason::HeaderRule,
            RuleKind::Cookie => Reason::CookieRule,
            RuleKind::Allowlist => Reason::Allowlist,
        };
        return done(rule.subset, reason);
    }

    if let Some(key) = key {
        return match split(release, key) {
            Some(s) => done(s, Reason::Hash),
            None => fallback(index, release),
        };
    }

    match &release.when_no_key {
        WhenNoKey::Subset(s) => done(*s, Reason::Fallback),
        WhenNoKey::Sticky(cookie) => {
            let existing = request
                .cookie(&cookie.name)
                .filter(|v| sticky::is_valid_key(v));
            let (subset, new_sticky_key) = match existing {
                Some(v) => (split(release, v), None),
                None => {
                    let fresh = sticky::mint_key(request.entropy());
                    (split(release, &fresh), Some(fresh))
                }
            };
            match subset {
                Some(subset) => Assignment {
                    release: index,
                    subset,
                    reason: Reason::StickyCookie,
                    new_sticky_key,
                },
                None => fallback(index, release),
            }
        }
    }
}

fn fallback(index: usize, release: &Release) -> Assignment {
    let subset = match release.when_no_key {
        WhenNoKey::Subset(s) => s,
        WhenNoKey::Sticky(_) => 0,
    };
    Assignment {
        release: index,
        subset,
        reason: Reason::Fallback,
        new_sticky_key: None,
    }
}

fn split(release: &Release, key: &[u8]) -> Option<usize> {
    let position = bucket::position(release.name.as_bytes(), key);
    bucket::pick(position, &release.cumulative)
}

/// The first present, non-empty, reasonably sized value among the release's key sources.
fn user_key<'a>(release: &Release, request: &'a impl RequestView) -> Option<&'a [u8]> {
    release.key.iter().find_map(|source| {
        let value = match source {
            KeySource::Header(name) => request.header(name),
            KeySource::Cookie(name) => request.cookie(name),
        };
        value.filter(|v| !v.is_empty() && v.len() <= MAX_KEY_LEN)
    })
}

fn trusted_override(release: &Release, request: &impl RequestView) -> Option<usize> {
    let o = release.override_.as_ref()?;
    let asked = trust::parse_override(request.header(&o.header)?);
    let subset = release.subset_index(asked.subset)?;
    o.trust
        .allows(asked.token, || request.source_ip())
        .then_some(subset)
}
