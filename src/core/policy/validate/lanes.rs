//! `lanes`: the member name, the lane secret (and the previous one), whether the release issues
//! or follows lanes, their maximum age, the base subset, and each subset's lane.

use super::checker::Checker;
use super::subsets::SubsetRefs;
use crate::core::lane::{is_lane_name, Lanes, DEFAULT_MEMBER};
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::raw::RawLanes;
use crate::core::policy::Subset;
use crate::core::time;

/// The longest `maxAge`: a member outlives its call chain by far less.
pub const MAX_LANE_AGE_SECONDS: u64 = 86_400;

/// `subset_lanes`: each subset's `lane` as written (`None`: its own name), with its path.
pub fn lanes(
    c: &mut Checker,
    path: &JsonPath,
    raw: Option<RawLanes>,
    subsets: &[Subset],
    subset_lanes: Vec<(JsonPath, Option<String>)>,
    refs: &SubsetRefs,
) -> Option<Option<Lanes>> {
    let Some(raw) = raw else {
        // A subset's lane means nothing without lanes.
        for (at, lane) in &subset_lanes {
            if let Some(lane) = lane {
                c.fail(
                    at.clone(),
                    ProblemKind::Conflict,
                    lane,
                    format!(
                        "{} names a lane, but the release has no \"lanes\"",
                        quote(lane)
                    ),
                );
            }
        }
        return Some(None);
    };
    let mark = c.mark();
    let member = match raw.baggage {
        None => Some(DEFAULT_MEMBER.to_string()),
        // A baggage key is a token, as a header name is (but case-sensitive).
        Some(m) => c
            .header_name(path.key("baggage"), &m, false)
            .map(|_| m.clone()),
    };
    let (secret, previous) = c.rotating_secrets(path, Some(raw.secret), raw.previous_secret);
    if !raw.issue && !raw.follow {
        c.fail_here(
            path.clone(),
            ProblemKind::Conflict,
            "lanes need \"issue\": true, \"follow\": true, or both",
        );
    }
    let max_age = raw.max_age.as_ref().and_then(|text| {
        let seconds = time::parse_duration(text)
            .filter(|n| n % 1_000_000_000 == 0)
            .map(|n| n / 1_000_000_000)
            .filter(|s| (1..=MAX_LANE_AGE_SECONDS).contains(s));
        if seconds.is_none() {
            c.fail(
                path.key("maxAge"),
                ProblemKind::OutOfRange,
                text,
                format!(
                    "{} is not a maximum age from 1s to 24h in whole seconds: write it like \"10m\" or \"1h\"",
                    quote(text)
                ),
            );
        }
        seconds
    });
    let base = match (&raw.base, raw.follow) {
        (Some(b), true) => refs.resolve(c, path.key("base"), b),
        (Some(b), false) => {
            c.fail(
                path.key("base"),
                ProblemKind::Conflict,
                b,
                format!(
                    "{} is a base subset, which only a following release uses: add \"follow\": true or drop \"base\"",
                    quote(b)
                ),
            );
            None
        }
        (None, true) => {
            c.fail_here(
                path.key("base"),
                ProblemKind::MissingField,
                "a following release needs \"base\": the subset for lanes it has no subset of",
            );
            None
        }
        (None, false) => None,
    };
    let names = raw.names.inspect(|names| {
        let at = path.key("names");
        if names.is_empty() {
            c.fail_here(
                at.clone(),
                ProblemKind::OutOfRange,
                "\"names\" lists the mesh's lanes: at least one",
            );
        }
        for (i, n) in names.iter().enumerate() {
            lane_name(c, at.index(i), n);
            if names.get(..i).is_some_and(|before| before.contains(n)) {
                c.fail(
                    at.index(i),
                    ProblemKind::Duplicate,
                    n,
                    format!("{} is listed twice", quote(n)),
                );
            }
        }
    });
    let mut lanes: Vec<String> = Vec::with_capacity(subsets.len());
    for ((at, written), subset) in subset_lanes.into_iter().zip(subsets) {
        let lane = written.unwrap_or_else(|| subset.name.clone());
        lane_name(c, at.clone(), &lane);
        if lanes.contains(&lane) {
            c.fail(
                at.clone(),
                ProblemKind::Duplicate,
                &lane,
                format!(
                    "{} is the lane of two subsets; a lane must pick one subset",
                    quote(&lane)
                ),
            );
        }
        if let Some(names) = &names {
            if !names.contains(&lane) {
                c.fail(
                    at,
                    ProblemKind::Conflict,
                    &lane,
                    format!(
                        "{} is not among the lanes in \"names\" ({})",
                        quote(&lane),
                        names.join(", ")
                    ),
                );
            }
        }
        lanes.push(lane);
    }
    let (member, secret) = (member?, secret?);
    c.clean_since(mark).then(|| {
        Some(Lanes::new(
            member, secret, previous, raw.issue, raw.follow, max_age, base, lanes, names,
        ))
    })
}

fn lane_name(c: &mut Checker, at: JsonPath, lane: &str) {
    if !is_lane_name(lane.as_bytes()) {
        c.fail(
            at,
            ProblemKind::InvalidValue,
            lane,
            format!(
                "{} is not a valid lane name: use 1-63 of a-z A-Z 0-9 '_' '-', starting with a letter or digit",
                quote(lane)
            ),
        );
    }
}
