//! Phase two: checks a `RawPolicy` and builds the `Policy` the filter runs. Every problem is
//! collected with its JSON path, its kind and the offending value, so one reload shows them all.
//! The top level (headers, the list of releases) is here; each part of a release has its file.

mod bucketing;
mod checker;
mod keyless;
mod lanes;
mod limits;
mod mirror;
mod override_;
mod progress;
mod release;
mod rules;
mod scope;
mod subsets;

use super::error::{quote, JsonPath, PolicyError, ProblemKind};
use super::raw::RawPolicy;
use super::{
    HeaderNames, Policy, DEFAULT_MIRROR_HEADER, DEFAULT_SUBSET_HEADER, DEFAULT_VERSION_HEADER,
};
use crate::core::secret::Environment;
use checker::Checker;
use limits::MAX_RELEASES;

pub fn validate(raw: RawPolicy, env: Environment) -> Result<Policy, PolicyError> {
    let mut c = Checker {
        problems: Vec::new(),
        routing: Vec::new(),
        env,
    };
    let at = JsonPath::root().key("headers");
    let routing = |c: &mut Checker, name: &str, value: &Option<String>, default: &str| match value {
        Some(h) => c.header_name(at.key(name), h, true),
        None => Some(default.to_string()),
    };
    let subset_header = routing(&mut c, "subset", &raw.headers.subset, DEFAULT_SUBSET_HEADER);
    let version_header = routing(
        &mut c,
        "version",
        &raw.headers.version,
        DEFAULT_VERSION_HEADER,
    );
    let mirror_header = routing(&mut c, "mirror", &raw.headers.mirror, DEFAULT_MIRROR_HEADER);
    let response_header = raw
        .headers
        .response
        .as_ref()
        .and_then(|h| c.header_name(at.key("response"), h, true));
    if let (Some(s), Some(v)) = (&subset_header, &version_header) {
        if s == v {
            c.fail(
                at.key("version"),
                ProblemKind::Conflict,
                v,
                format!(
                    "{} is already the subset header; the two must differ",
                    quote(v)
                ),
            );
        }
    }

    // From here on, a release reading one of these (or overriding with it) is refused.
    c.routing = [&subset_header, &version_header, &mirror_header]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let at_releases = JsonPath::root().key("releases");
    if raw.releases.is_empty() {
        c.fail_here(
            at_releases.clone(),
            ProblemKind::OutOfRange,
            "at least one release is required",
        );
    }
    if raw.releases.len() > MAX_RELEASES {
        c.fail_number(
            at_releases.clone(),
            ProblemKind::OutOfRange,
            raw.releases.len(),
            format!(
                "{} releases; at most {MAX_RELEASES} are allowed",
                raw.releases.len()
            ),
        );
    }

    // serde_json's map as the set of names: the JSON reader already links its lookup and
    // insertion, where a HashSet would add hashing and growth code for this check alone. (Not a
    // list: a policy may name many releases before the count is refused.)
    let mut names = serde_json::Map::new();
    let mut releases = Vec::with_capacity(raw.releases.len());
    for (i, r) in raw.releases.into_iter().enumerate() {
        let path = at_releases.index(i);
        if names.contains_key(&r.name) {
            c.fail(
                path.key("name"),
                ProblemKind::Duplicate,
                &r.name,
                format!(
                    "{} names two releases; release names must be unique",
                    quote(&r.name)
                ),
            );
        } else {
            names.insert(r.name.clone(), serde_json::Value::Null);
        }
        if let Some(release) = release::release(&mut c, &path, r) {
            releases.push(release);
        }
    }

    if let Some(m) = &mirror_header {
        if Some(m) == subset_header.as_ref() || Some(m) == version_header.as_ref() {
            c.fail(
                at.key("mirror"),
                ProblemKind::Conflict,
                m,
                format!(
                    "{} is already a routing header; the three must differ",
                    quote(m)
                ),
            );
        }
    }
    let mut owned_request_headers: Vec<String> = [&subset_header, &version_header, &mirror_header]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for r in &releases {
        if let Some(o) = &r.override_ {
            if !owned_request_headers.contains(&o.header) {
                owned_request_headers.push(o.header.clone());
            }
        }
    }

    match (
        subset_header,
        version_header,
        mirror_header,
        c.problems.is_empty(),
    ) {
        (Some(subset), Some(version), Some(mirror), true) => Ok(Policy {
            headers: HeaderNames {
                subset,
                version,
                mirror,
                response: response_header,
            },
            releases,
            owned_request_headers,
        }),
        _ => Err(PolicyError {
            problems: c.problems,
        }),
    }
}
