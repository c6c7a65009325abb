//! `ramp` and `guard`: how a release progresses on its own, and when it is pulled back.

use serde_json::Number;

use super::checker::Checker;
use super::subsets::SubsetRefs;
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::guard::{Fleet, Guard, SlowRate, DEFAULT_FLEET_PATH};
use crate::core::policy::raw::{RawFleet, RawGuard, RawRamp};
use crate::core::policy::Subset;
use crate::core::ramp::{self, Ramp, Step, PPM};
use crate::core::time::{self, NANOS_PER_MILLI, NANOS_PER_SECOND};

/// The longest guard window: the window's samples stay in each VM's memory.
pub const MAX_GUARD_WINDOW_SECONDS: u64 = 600;

pub fn ramp(
    c: &mut Checker,
    path: &JsonPath,
    raw: RawRamp,
    refs: &SubsetRefs,
    subsets: &[Subset],
) -> Option<Ramp> {
    let mark = c.mark();
    let subset = refs.resolve(c, path.key("subset"), &raw.subset);
    let start = time::parse_instant(&raw.start);
    if start.is_none() {
        c.fail(
            path.key("start"),
            ProblemKind::InvalidValue,
            &raw.start,
            format!(
                "{} is not a time: write it as RFC 3339 with an offset, like \"2026-12-01T09:00:00Z\"",
                quote(&raw.start)
            ),
        );
    }
    let total: u32 = subsets.iter().map(|s| s.weight).sum();
    let ramped_weight = subset.and_then(|i| subsets.get(i)).map_or(0, |s| s.weight);
    if subset.is_some() && total > 0 && ramped_weight >= total {
        c.fail(
            path.key("subset"),
            ProblemKind::Conflict,
            &raw.subset,
            format!(
                "{} already has all of the release's weight: there is nothing to ramp",
                quote(&raw.subset)
            ),
        );
    }
    // The written share is where the ramp starts from: no step may go below it.
    let written_ppm = if total == 0 {
        0
    } else {
        u32::try_from(u64::from(ramped_weight) * u64::from(PPM) / u64::from(total)).unwrap_or(PPM)
    };
    if raw.steps.is_empty() {
        c.fail_here(
            path.key("steps"),
            ProblemKind::OutOfRange,
            "a ramp needs at least one step",
        );
    }
    let last = raw.steps.len().saturating_sub(1);
    let mut steps = Vec::with_capacity(raw.steps.len());
    let mut previous = written_ppm;
    let mut at = start.unwrap_or(0);
    for (i, s) in raw.steps.into_iter().enumerate() {
        let sp = path.key("steps").index(i);
        let Some(share) = percent_ppm(c, &sp.key("weight"), &s.weight, "weight") else {
            continue;
        };
        if share < previous {
            let below = if i == 0 {
                format!(
                    "the subset's written share, {}%",
                    ramp::percent(u64::from(written_ppm))
                )
            } else {
                "the step before".to_string()
            };
            c.fail_number(
                sp.key("weight"),
                ProblemKind::OutOfRange,
                s.weight.clone(),
                format!(
                    "steps must not decrease: {} is below {below} (a ramp never moves a user back)",
                    s.weight
                ),
            );
        }
        previous = previous.max(share);
        let until = match (s.hold, i == last) {
            (None, true) => None,
            (Some(hold), true) => {
                c.fail(
                    sp.key("hold"),
                    ProblemKind::Conflict,
                    &hold,
                    "the last step holds forever: leave its \"hold\" out".to_string(),
                );
                None
            }
            (None, false) => {
                c.fail_here(
                    sp.clone(),
                    ProblemKind::MissingField,
                    "missing field `hold`: every step but the last needs one",
                );
                None
            }
            (Some(hold), false) => match time::parse_duration(&hold) {
                Some(d) if d > 0 => {
                    at = at.saturating_add(d);
                    Some(at)
                }
                _ => {
                    c.fail(
                        sp.key("hold"),
                        ProblemKind::InvalidValue,
                        &hold,
                        format!(
                            "{} is not a duration above 0: write it like \"90s\", \"10m\" or \"1h30m\"",
                            quote(&hold)
                        ),
                    );
                    None
                }
            },
        };
        let weights: Vec<u32> = subsets.iter().map(|s| s.weight).collect();
        steps.push(Step {
            share_ppm: share,
            taken_ppm: ramp::taken_ppm(share, ramped_weight, total.max(ramped_weight + 1)),
            until,
            cumulative: ramp::step_cumulative(&weights, subset.unwrap_or(0), share),
        });
    }
    let (subset, start) = (subset?, start?);
    c.clean_since(mark).then_some(Ramp {
        subset,
        start,
        steps,
    })
}

pub fn guard(c: &mut Checker, path: &JsonPath, raw: RawGuard, refs: &SubsetRefs) -> Option<Guard> {
    let mark = c.mark();
    let subset = refs.resolve(c, path.key("subset"), &raw.subset);
    let fallback = refs.resolve(c, path.key("fallback"), &raw.fallback);
    if subset.is_some() && subset == fallback {
        c.fail(
            path.key("fallback"),
            ProblemKind::Conflict,
            &raw.fallback,
            format!(
                "{} is the guarded subset itself: the fallback must be another subset",
                quote(&raw.fallback)
            ),
        );
    }
    let window = match time::parse_duration(&raw.window) {
        Some(w)
            if (NANOS_PER_SECOND..=MAX_GUARD_WINDOW_SECONDS * NANOS_PER_SECOND).contains(&w) =>
        {
            Some(w)
        }
        _ => {
            c.fail(
                path.key("window"),
                ProblemKind::OutOfRange,
                &raw.window,
                format!(
                    "{} is not a window from 1s to {}m: write it like \"10s\" or \"1m\"",
                    quote(&raw.window),
                    MAX_GUARD_WINDOW_SECONDS / 60
                ),
            );
            None
        }
    };
    c.at_least(path.key("minRequests"), "", raw.min_requests, 1);
    let max_error_rate = raw
        .max_error_rate
        .as_ref()
        .and_then(|r| rate(c, &path.key("maxErrorRate"), r));
    let max_slow_rate = raw.max_slow_rate.and_then(|s| {
        let sp = path.key("maxSlowRate");
        c.at_least(sp.key("overMs"), "", s.over_ms, 1);
        let r = rate(c, &sp.key("rate"), &s.rate)?;
        Some(SlowRate {
            over_ms: u64::try_from(s.over_ms).ok()?,
            rate: r,
        })
    });
    if raw.max_error_rate.is_none() && max_slow_rate.is_none() && c.clean_since(mark) {
        c.fail_here(
            path.clone(),
            ProblemKind::Conflict,
            "a guard needs \"maxErrorRate\", \"maxSlowRate\" or both",
        );
    }
    let fleet = match (raw.fleet, window) {
        (Some(f), Some(w)) => fleet(c, &path.key("fleet"), f, w),
        _ => None,
    };
    let (subset, fallback, window) = (subset?, fallback?, window?);
    c.clean_since(mark).then_some(Guard {
        subset,
        fallback,
        window,
        min_requests: u64::try_from(raw.min_requests).ok()?,
        max_error_rate,
        max_slow_rate,
        fleet,
    })
}

/// The longest fleet window and period (the query API's range, how often a proxy asks).
pub const MAX_FLEET_WINDOW_SECONDS: u64 = 3600;
pub const MAX_FLEET_EVERY_SECONDS: u64 = 600;

/// `guard.fleet`: where the query API is, how often to ask it and over which range. The
/// window defaults to the guard's own; the timeout to 1s (never more than `every`, so at most
/// one query per proxy is in flight).
fn fleet(c: &mut Checker, path: &JsonPath, raw: RawFleet, guard_window: u64) -> Option<Fleet> {
    let mark = c.mark();
    let token = |v: &str, extra: &[u8]| {
        (1..=255).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    if !token(&raw.cluster, b"._-|:/") {
        c.fail(
            path.key("cluster"),
            ProblemKind::InvalidValue,
            &raw.cluster,
            format!(
                "{} is not an Envoy cluster name: use 1-255 of a-z A-Z 0-9 '.' '_' '-' '|' ':' '/'",
                quote(&raw.cluster)
            ),
        );
    }
    if !token(&raw.authority, b".-_:[]") {
        c.fail(
            path.key("authority"),
            ProblemKind::InvalidValue,
            &raw.authority,
            format!(
                "{} is not a host name: write the query API's host, like \"prometheus.istio-system\" or \"prometheus:9090\"",
                quote(&raw.authority)
            ),
        );
    }
    let api_path = raw.path.unwrap_or_else(|| DEFAULT_FLEET_PATH.to_string());
    if !(api_path.starts_with('/')
        && api_path.len() <= 1024
        && api_path.bytes().all(|b| b.is_ascii_graphic() && b != b'#'))
    {
        c.fail(
            path.key("path"),
            ProblemKind::InvalidValue,
            &api_path,
            format!(
                "{} is not a path: write the instant-query endpoint, like \"{DEFAULT_FLEET_PATH}\"",
                quote(&api_path)
            ),
        );
    }
    let mut span =
        |field: &str, text: Option<&str>, default: u64, low: u64, high: u64, range: &str| {
            let Some(text) = text else {
                return Some(default);
            };
            match time::parse_duration(text) {
                Some(d) if (low..=high).contains(&d) => Some(d),
                _ => {
                    c.fail(
                        path.key(field),
                        ProblemKind::OutOfRange,
                        text,
                        format!("{} is not {range}: write it like \"5s\"", quote(text)),
                    );
                    None
                }
            }
        };
    let every = span(
        "every",
        raw.every.as_deref(),
        5 * NANOS_PER_SECOND,
        NANOS_PER_SECOND,
        MAX_FLEET_EVERY_SECONDS * NANOS_PER_SECOND,
        "a period from 1s to 10m",
    );
    let window = span(
        "window",
        raw.window.as_deref(),
        guard_window,
        NANOS_PER_SECOND,
        MAX_FLEET_WINDOW_SECONDS * NANOS_PER_SECOND,
        "a window from 1s to 1h",
    );
    let timeout = span(
        "timeout",
        raw.timeout.as_deref(),
        NANOS_PER_SECOND,
        100 * NANOS_PER_MILLI,
        MAX_FLEET_EVERY_SECONDS * NANOS_PER_SECOND,
        "a timeout from 100ms to 10m",
    );
    let (every, window, timeout) = (every?, window?, timeout?);
    if timeout > every {
        c.fail(
            path.key("timeout"),
            ProblemKind::Conflict,
            raw.timeout.as_deref().unwrap_or("1s"),
            format!(
                "{} is longer than \"every\": a proxy asks again only once its last query has ended",
                quote(raw.timeout.as_deref().unwrap_or("1s"))
            ),
        );
    }
    c.clean_since(mark).then_some(Fleet {
        cluster: raw.cluster,
        authority: raw.authority,
        path: api_path,
        every,
        window,
        timeout,
    })
}

/// A rate from 0 to 1.
fn rate(c: &mut Checker, path: &JsonPath, n: &Number) -> Option<f64> {
    match n.as_f64() {
        Some(r) if (0.0..=1.0).contains(&r) => Some(r),
        _ => {
            c.fail_number(
                path.clone(),
                ProblemKind::OutOfRange,
                n.clone(),
                format!("must be a rate between 0 and 1, got {n}"),
            );
            None
        }
    }
}

/// A percentage from 0 to 100, in parts per million.
fn percent_ppm(c: &mut Checker, path: &JsonPath, n: &Number, what: &str) -> Option<u32> {
    match n.as_f64() {
        Some(p) if (0.0..=100.0).contains(&p) => Some((p * 10_000.0).round() as u32),
        _ => {
            c.fail_number(
                path.clone(),
                ProblemKind::OutOfRange,
                n.clone(),
                format!("{what} must be a percentage between 0 and 100, got {n}"),
            );
            None
        }
    }
}
