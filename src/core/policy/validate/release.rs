//! One release: its name, scope, subsets and weights, key sources, and each of its parts.

use super::checker::Checker;
use super::limits::{MAX_SUBSETS, MAX_WEIGHT_TOTAL};
use super::subsets::SubsetRefs;
use super::{bucketing, keyless, lanes, mirror, override_, progress, rules, scope};
use crate::core::bucket::Salted;
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::raw::{RawKeySource, RawRelease, RawSubset};
use crate::core::policy::{KeySource, Release, Subset, WhenNoKey};
use crate::core::scheme::Scheme;

pub fn release(c: &mut Checker, path: &JsonPath, r: RawRelease) -> Option<Release> {
    let mark = c.mark();
    c.name(path.key("name"), "release", &r.name);
    let scope = scope::scope(c, &path.key("match"), r.scope);
    let subset_lanes = r
        .subsets
        .iter()
        .enumerate()
        .map(|(j, s)| (path.key("subsets").index(j).key("lane"), s.lane.clone()))
        .collect();
    let (subsets, cumulative) = subsets(c, &path.key("subsets"), r.subsets);
    let refs = SubsetRefs::new(&r.name, &subsets);
    let key = key_sources(c, &path.key("key"), r.key);
    let rules = rules::rules(c, &path.key("rules"), r.rules, &refs, key.is_empty());

    let when_no_key = match r.when_no_key {
        None if key.is_empty() => {
            c.fail_here(
                path.key("key"),
                ProblemKind::Conflict,
                "no key sources and no \"whenNoKey\": add a header or cookie to \"key\", or a \"whenNoKey\" fallback",
            );
            None
        }
        // Keyless requests go to the first subset (conventionally the stable one).
        None => Some(WhenNoKey::Subset(0)),
        Some(w) => keyless::when_no_key(c, &path.key("whenNoKey"), w, &refs),
    };
    let override_ = r
        .override_
        .and_then(|o| override_::override_(c, &path.key("override"), o));
    let mirror = r
        .mirror
        .and_then(|m| mirror::mirror(c, &path.key("mirror"), &r.name, m));
    let ramp = r
        .ramp
        .and_then(|x| progress::ramp(c, &path.key("ramp"), x, &refs, &subsets));
    let guard = r
        .guard
        .and_then(|g| progress::guard(c, &path.key("guard"), g, &refs));
    let scheme = match r.bucketing {
        None => Some(Scheme::Dial),
        Some(b) => {
            bucketing::bucketing(c, &path.key("bucketing"), b, &subsets, &path.key("subsets"))
        }
    };
    if let (Some(ramp), Some(scheme)) = (&ramp, &scheme) {
        bucketing::ramp_fits(c, &path.key("ramp"), ramp, scheme, &subsets);
    }

    let lanes = lanes::lanes(
        c,
        &path.key("lanes"),
        r.lanes,
        &subsets,
        subset_lanes,
        &refs,
    );

    let (when_no_key, scheme, lanes) = (when_no_key?, scheme?, lanes?);
    c.clean_since(mark).then_some(Release {
        split_hash: Salted::new(r.name.as_bytes()),
        scheme,
        name: r.name,
        scope: scope?,
        subsets,
        cumulative,
        key,
        rules,
        when_no_key,
        override_,
        mirror,
        ramp,
        guard,
        lanes,
    })
}

/// The subsets and the running sums of their weights (the last one is the total).
fn subsets(c: &mut Checker, path: &JsonPath, raw: Vec<RawSubset>) -> (Vec<Subset>, Vec<u32>) {
    let mark = c.mark();
    if raw.is_empty() {
        c.fail_here(
            path.clone(),
            ProblemKind::OutOfRange,
            "at least one subset is required",
        );
    }
    if raw.len() > MAX_SUBSETS {
        c.fail_number(
            path.clone(),
            ProblemKind::OutOfRange,
            raw.len(),
            format!("{} subsets; at most {MAX_SUBSETS} are allowed", raw.len()),
        );
    }
    let mut subsets = Vec::with_capacity(raw.len());
    let mut total: i64 = 0;
    for (j, s) in raw.into_iter().enumerate() {
        let at = path.index(j);
        c.name(at.key("name"), "subset", &s.name);
        c.version(at.key("version"), &s.version);
        if subsets.iter().any(|x: &Subset| x.name == s.name) {
            c.fail(
                at.key("name"),
                ProblemKind::Duplicate,
                &s.name,
                format!(
                    "{} names two subsets; subset names must be unique in a release",
                    quote(&s.name)
                ),
            );
        }
        if !c.at_least(at.key("weight"), "weight ", s.weight, 0) {
            // Reported; counts as 0 below.
        } else if s.weight > MAX_WEIGHT_TOTAL {
            c.fail_number(
                at.key("weight"),
                ProblemKind::OutOfRange,
                s.weight,
                format!(
                    "weight must be at most {MAX_WEIGHT_TOTAL}, got {}",
                    s.weight
                ),
            );
        } else {
            total += s.weight;
        }
        subsets.push(Subset {
            name: s.name,
            version: s.version,
            weight: u32::try_from(s.weight.clamp(0, MAX_WEIGHT_TOTAL)).unwrap_or(0),
        });
    }
    if !subsets.is_empty() && total == 0 && c.clean_since(mark) {
        c.fail_here(
            path.clone(),
            ProblemKind::OutOfRange,
            "the weights add up to 0: at least one subset needs a weight above 0",
        );
    }
    if total > MAX_WEIGHT_TOTAL {
        c.fail_number(
            path.clone(),
            ProblemKind::OutOfRange,
            total,
            format!("the weights add up to {total}; at most {MAX_WEIGHT_TOTAL} is allowed"),
        );
    }
    let cumulative = subsets
        .iter()
        .scan(0u32, |sum, s| {
            *sum = sum.saturating_add(s.weight);
            Some(*sum)
        })
        .collect();
    (subsets, cumulative)
}

fn key_sources(c: &mut Checker, path: &JsonPath, raw: Vec<RawKeySource>) -> Vec<KeySource> {
    let mut key = Vec::with_capacity(raw.len());
    for (j, k) in raw.into_iter().enumerate() {
        let at = path.index(j);
        match (k.header, k.cookie, k.baggage) {
            (Some(h), None, None) => {
                if let Some(h) = c.header_name(at.key("header"), &h, false) {
                    key.push(KeySource::Header(h));
                }
            }
            (None, Some(ck), None) => {
                if let Some(ck) = c.cookie_name(at.key("cookie"), &ck) {
                    key.push(KeySource::Cookie(ck));
                }
            }
            (None, None, Some(member)) => {
                // A baggage key is a token, as a header name is (but case-sensitive).
                if c.header_name(at.key("baggage"), &member, false).is_some() {
                    key.push(KeySource::Baggage(member));
                }
            }
            _ => c.fail_here(
                at,
                ProblemKind::Conflict,
                "a key source needs exactly one of \"header\", \"cookie\" or \"baggage\"",
            ),
        }
    }
    key
}
