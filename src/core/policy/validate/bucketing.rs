//! `bucketing`: the scheme a release buckets keys with, and what each scheme requires of the
//! weights and of a ramp.

use super::checker::Checker;
use crate::core::bucket::Salted;
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::raw::RawBucketing;
use crate::core::policy::Subset;
use crate::core::ramp::{Ramp, PPM};
use crate::core::scheme::{
    cbor_text_header, FlagdVersion, Scheme, UNLEASH_VARIANT_SEED, UNLEASH_VARIANT_TOTAL,
};

pub fn bucketing(
    c: &mut Checker,
    path: &JsonPath,
    raw: RawBucketing,
    subsets: &[Subset],
    subsets_path: &JsonPath,
) -> Option<Scheme> {
    let mark = c.mark();
    let total: u32 = subsets.iter().map(|s| s.weight).sum();
    let not_for = |c: &mut Checker, field: &str, value: &Option<String>| {
        if let Some(v) = value {
            c.fail(
                path.key(field),
                ProblemKind::Conflict,
                v,
                format!(
                    "\"{field}\" does not apply to the {} scheme",
                    quote(&raw.scheme)
                ),
            );
        }
    };
    let scheme = match raw.scheme.as_str() {
        "dial" => {
            not_for(c, "groupId", &raw.group_id);
            not_for(c, "flagKey", &raw.flag_key);
            Some(Scheme::Dial)
        }
        "unleash" => {
            not_for(c, "flagKey", &raw.flag_key);
            let group = match &raw.group_id {
                Some(g) if !g.is_empty() => Some(g.clone()),
                _ => {
                    c.fail_here(
                        path.clone(),
                        ProblemKind::MissingField,
                        "missing field `groupId`: Unleash hashes \"<groupId>:<userId>\"; write the flag's groupId (by default its feature name)",
                    );
                    None
                }
            };
            let variants = match raw.mode.as_deref() {
                None => Some(subsets.len() > 2),
                Some("rollout") if subsets.len() == 2 => Some(false),
                Some("variants") => Some(true),
                Some(other) => {
                    c.fail(
                        path.key("mode"),
                        ProblemKind::InvalidValue,
                        other,
                        format!(
                            "{} is not an Unleash mode here: use \"variants\", or \"rollout\" with exactly two subsets",
                            quote(other)
                        ),
                    );
                    None
                }
            };
            group
                .zip(variants)
                .and_then(|(g, v)| unleash(c, subsets_path, &g, subsets, total, v))
        }
        "flagd" => {
            not_for(c, "groupId", &raw.group_id);
            let version = match raw.version {
                None | Some(2) => Some(FlagdVersion::V2),
                Some(1) => Some(FlagdVersion::V1),
                Some(3) => Some(FlagdVersion::V3),
                Some(v) => {
                    c.fail_number(
                        path.key("version"),
                        ProblemKind::InvalidValue,
                        v,
                        format!("flagd's fractional has versions 1 (float), 2 (integer) and 3 (integer over CBOR), got {v}"),
                    );
                    None
                }
            };
            match &raw.flag_key {
                None => {
                    c.fail_here(
                        path.clone(),
                        ProblemKind::MissingField,
                        "missing field `flagKey`: flagd hashes the flag's key followed by the targeting key (\"\" to hash the key alone)",
                    );
                    None
                }
                Some(key) => version.map(|version| Scheme::Flagd {
                    hash: match version {
                        // The array [flagKey, key] (or the key alone, a text string).
                        FlagdVersion::V3 if key.is_empty() => Salted::prefixed(0, &[]),
                        FlagdVersion::V3 => {
                            let mut header = [0u8; 9];
                            let text = cbor_text_header(key.len(), &mut header);
                            Salted::prefixed(0, &[&[0x82], text, key.as_bytes()])
                        }
                        FlagdVersion::V1 | FlagdVersion::V2 => {
                            Salted::prefixed(0, &[key.as_bytes()])
                        }
                    },
                    version,
                }),
            }
        }
        other => {
            c.fail(
                path.key("scheme"),
                ProblemKind::InvalidValue,
                other,
                format!(
                    "{} is not a bucketing scheme: use \"dial\", \"unleash\" or \"flagd\"",
                    quote(other)
                ),
            );
            None
        }
    };
    if raw.mode.is_some() && raw.scheme != "unleash" && c.clean_since(mark) {
        c.fail_here(
            path.key("mode"),
            ProblemKind::Conflict,
            "\"mode\" applies to the unleash scheme only",
        );
    }
    if raw.version.is_some() && raw.scheme != "flagd" && c.clean_since(mark) {
        c.fail_here(
            path.key("version"),
            ProblemKind::Conflict,
            "\"version\" applies to the flagd scheme only",
        );
    }
    scheme.filter(|_| c.clean_since(mark))
}

/// `path`: the release's subsets, where a weight Unleash cannot represent is reported.
fn unleash(
    c: &mut Checker,
    path: &JsonPath,
    group: &str,
    subsets: &[Subset],
    total: u32,
    variants: bool,
) -> Option<Scheme> {
    if total == 0 {
        return None;
    }
    if let ([_, enabled], false) = (subsets, variants) {
        // Gradual rollout: the second subset's share must be a whole percentage.
        if u64::from(enabled.weight) * 100 % u64::from(total) != 0 {
            c.fail_number(
                path.index(1).key("weight"),
                ProblemKind::Conflict,
                enabled.weight,
                format!(
                    "Unleash rolls out whole percentages: {} has weight {} of {total}, which is not one",
                    quote(&enabled.name),
                    enabled.weight
                ),
            );
            return None;
        }
        return Some(Scheme::UnleashRollout {
            hash: Salted::new(group.as_bytes()),
            percent: enabled.weight * 100 / total,
        });
    }
    // Variants: the SDKs divide by the weights' total, and the server serves totals of 1000.
    if total != UNLEASH_VARIANT_TOTAL {
        c.fail_number(
            path.clone(),
            ProblemKind::Conflict,
            total,
            format!(
                "Unleash variant weights add up to {UNLEASH_VARIANT_TOTAL} (as the Unleash server serves them); these add up to {total}"
            ),
        );
        return None;
    }
    let cumulative = subsets
        .iter()
        .scan(0u32, |sum, s| {
            *sum += s.weight;
            Some(*sum)
        })
        .collect();
    Some(Scheme::UnleashVariants {
        hash: Salted::prefixed(UNLEASH_VARIANT_SEED, &[group.as_bytes(), b":"]),
        cumulative,
    })
}

/// What a ramp must be for the scheme to move users monotonically, and to stay representable.
pub fn ramp_fits(
    c: &mut Checker,
    path: &JsonPath,
    ramp: &Ramp,
    scheme: &Scheme,
    subsets: &[Subset],
) {
    let name = |i: usize| subsets.get(i).map_or("", |s| s.name.as_str());
    match scheme {
        Scheme::Dial => {}
        Scheme::UnleashRollout { .. } => {
            if ramp.subset != 1 {
                c.fail(
                    path.key("subset"),
                    ProblemKind::Conflict,
                    name(ramp.subset),
                    format!(
                        "with Unleash, a ramp raises the rollout, which is the second subset's share: ramp {} or list {} second",
                        quote(name(1)),
                        quote(name(ramp.subset))
                    ),
                );
            }
            for (i, step) in ramp.steps.iter().enumerate() {
                if step.share_ppm % (PPM / 100) != 0 {
                    c.fail_number(
                        path.key("steps").index(i).key("weight"),
                        ProblemKind::Conflict,
                        f64::from(step.share_ppm) / 10_000.0,
                        "Unleash rolls out whole percentages".to_string(),
                    );
                }
            }
        }
        Scheme::UnleashVariants { .. } => c.fail_here(
            path.clone(),
            ProblemKind::Conflict,
            "Unleash variants cannot ramp monotonically (raising one variant's weight moves users between the others and out of it): ramp with two subsets, or use the dial or flagd scheme",
        ),
        Scheme::Flagd { .. } => {
            let last = subsets.len().saturating_sub(1);
            if ramp.subset != last {
                c.fail(
                    path.key("subset"),
                    ProblemKind::Conflict,
                    name(ramp.subset),
                    format!(
                        "with flagd, raising a weight moves users monotonically only into the last subset: list {} last",
                        quote(name(ramp.subset))
                    ),
                );
            }
        }
    }
}
