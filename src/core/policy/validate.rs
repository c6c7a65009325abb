//! Phase two: checks a `RawPolicy` and builds the `Policy` the filter runs. Every problem is
//! collected with its JSON path and the offending value quoted, so one reload shows them all.

use std::collections::HashSet;

use super::error::{quote, PolicyError, Problem};
use super::raw::*;
use super::*;
use crate::core::rules::{Allowlist, Condition, Matcher, Rule};
use crate::core::scope::HostPattern;
use crate::core::sticky::StickyCookie;
use crate::core::trust::{Cidr, Trust};

/// Bounds that keep the per-request work and the stats cardinality small.
pub const MAX_RELEASES: usize = 64;
pub const MAX_SUBSETS: usize = 16;
pub const MAX_WEIGHT_TOTAL: i64 = 1_000_000;
/// Browsers cap cookie lifetimes at 400 days.
pub const MAX_COOKIE_AGE: i64 = 400 * 24 * 3600;
pub const MIN_TOKEN_LEN: usize = 16;

/// Request headers Dial must never take over: framing, hop-by-hop and identity headers.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "set-cookie",
];

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A release or subset name: safe in a header value, a stat name and a Prometheus label.
    fn name(&mut self, path: &str, what: &str, value: &str) {
        if !is_name(value, false) {
            self.fail(
                path,
                format!(
                    "{} is not a valid {what} name: use 1-63 of a-z A-Z 0-9 '_' '-', starting with a letter or digit",
                    quote(value)
                ),
            );
        }
    }

    /// A header name, lower-cased as Envoy stores it; `None` when invalid.
    fn header_name(&mut self, path: &str, value: &str, owned: bool) -> Option<String> {
        if value.is_empty() || value.len() > 128 || !value.bytes().all(is_token_byte) {
            self.fail(
                path,
                format!("{} is not a valid HTTP header name", quote(value)),
            );
            return None;
        }
        let lower = value.to_ascii_lowercase();
        if owned && RESERVED_HEADERS.contains(&lower.as_str()) {
            self.fail(
                path,
                format!(
                    "{} is reserved for HTTP itself; pick another header name",
                    quote(value)
                ),
            );
            return None;
        }
        Some(lower)
    }

    fn cookie_name(&mut self, path: &str, value: &str) -> Option<String> {
        if value.is_empty() || value.len() > 128 || !value.bytes().all(is_token_byte) {
            self.fail(path, format!("{} is not a valid cookie name", quote(value)));
            return None;
        }
        Some(value.to_string())
    }
}

fn is_name(value: &str, dots: bool) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dots && b == b'.');
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && value.bytes().all(ok)
}

/// RFC 9110 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub fn validate(raw: RawPolicy) -> Result<Policy, PolicyError> {
    let mut c = Checker {
        problems: Vec::new(),
    };

    let subset_header = match &raw.headers.subset {
        Some(h) => c.header_name("$.headers.subset", h, true),
        None => Some(DEFAULT_SUBSET_HEADER.to_string()),
    };
    let version_header = match &raw.headers.version {
        Some(h) => c.header_name("$.headers.version", h, true),
        None => Some(DEFAULT_VERSION_HEADER.to_string()),
    };
    let mirror_header = match &raw.headers.mirror {
        Some(h) => c.header_name("$.headers.mirror", h, true),
        None => Some(DEFAULT_MIRROR_HEADER.to_string()),
    };
    let response_header = raw
        .headers
        .response
        .as_ref()
        .and_then(|h| c.header_name("$.headers.response", h, true));
    if let (Some(s), Some(v)) = (&subset_header, &version_header) {
        if s == v {
            c.fail(
                "$.headers.version",
                format!(
                    "{} is already the subset header; the two must differ",
                    quote(v)
                ),
            );
        }
    }

    if raw.releases.is_empty() {
        c.fail("$.releases", "at least one release is required");
    }
    if raw.releases.len() > MAX_RELEASES {
        c.fail(
            "$.releases",
            format!(
                "{} releases; at most {MAX_RELEASES} are allowed",
                raw.releases.len()
            ),
        );
    }

    let mut names = HashSet::new();
    let mut releases = Vec::with_capacity(raw.releases.len());
    for (i, r) in raw.releases.into_iter().enumerate() {
        let path = format!("$.releases[{i}]");
        if !names.insert(r.name.clone()) {
            c.fail(
                format!("{path}.name"),
                format!(
                    "{} names two releases; release names must be unique",
                    quote(&r.name)
                ),
            );
        }
        if let Some(release) = release(&mut c, &path, r) {
            releases.push(release);
        }
    }

    if let Some(m) = &mirror_header {
        if Some(m) == subset_header.as_ref() || Some(m) == version_header.as_ref() {
            c.fail(
                "$.headers.mirror",
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

fn release(c: &mut Checker, path: &str, r: RawRelease) -> Option<Release> {
    let before = c.problems.len();
    c.name(&format!("{path}.name"), "release", &r.name);

    let scope = scope(c, &format!("{path}.match"), r.scope);

    // Subsets and their weights.
    if r.subsets.is_empty() {
        c.fail(format!("{path}.subsets"), "at least one subset is required");
    }
    if r.subsets.len() > MAX_SUBSETS {
        c.fail(
            format!("{path}.subsets"),
            format!(
                "{} subsets; at most {MAX_SUBSETS} are allowed",
                r.subsets.len()
            ),
        );
    }
    let mut subsets = Vec::with_capacity(r.subsets.len());
    let mut total: i64 = 0;
    for (j, s) in r.subsets.into_iter().enumerate() {
        let sp = format!("{path}.subsets[{j}]");
        c.name(&format!("{sp}.name"), "subset", &s.name);
        if !is_name(&s.version, true) {
            c.fail(
                format!("{sp}.version"),
                format!(
                    "{} is not a valid version: use 1-63 of a-z A-Z 0-9 '.' '_' '-', starting with a letter or digit",
                    quote(&s.version)
                ),
            );
        }
        if subsets.iter().any(|x: &Subset| x.name == s.name) {
            c.fail(
                format!("{sp}.name"),
                format!(
                    "{} names two subsets; subset names must be unique in a release",
                    quote(&s.name)
                ),
            );
        }
        if s.weight < 0 {
            c.fail(
                format!("{sp}.weight"),
                format!("weight must be 0 or more, got {}", s.weight),
            );
        } else if s.weight > MAX_WEIGHT_TOTAL {
            c.fail(
                format!("{sp}.weight"),
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
    if !subsets.is_empty() && total == 0 && c.problems.len() == before {
        c.fail(
            format!("{path}.subsets"),
            "the weights add up to 0: at least one subset needs a weight above 0",
        );
    }
    if total > MAX_WEIGHT_TOTAL {
        c.fail(
            format!("{path}.subsets"),
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

    let subset_ref = |c: &mut Checker, p: &str, name: &str| -> Option<usize> {
        let found = subsets.iter().position(|s| s.name == name);
        if found.is_none() {
            let known: Vec<&str> = subsets.iter().map(|s| s.name.as_str()).collect();
            c.fail(
                p,
                format!(
                    "{} is not a subset of release {} (its subsets: {})",
                    quote(name),
                    quote(&r.name),
                    known.join(", ")
                ),
            );
        }
        found
    };

    // Key sources.
    let mut key = Vec::with_capacity(r.key.len());
    for (j, k) in r.key.into_iter().enumerate() {
        let kp = format!("{path}.key[{j}]");
        match (k.header, k.cookie) {
            (Some(h), None) => {
                if let Some(h) = c.header_name(&format!("{kp}.header"), &h, false) {
                    key.push(KeySource::Header(h));
                }
            }
            (None, Some(ck)) => {
                if let Some(ck) = c.cookie_name(&format!("{kp}.cookie"), &ck) {
                    key.push(KeySource::Cookie(ck));
                }
            }
            _ => c.fail(
                kp,
                "a key source needs exactly one of \"header\" or \"cookie\"",
            ),
        }
    }

    // Rules.
    let mut rules = Vec::with_capacity(r.rules.len());
    for (j, rule) in r.rules.into_iter().enumerate() {
        let rp = format!("{path}.rules[{j}]");
        let subset = subset_ref(c, &format!("{rp}.subset"), &rule.subset);
        let condition = match (rule.header, rule.cookie, rule.users) {
            (Some(m), None, None) => {
                let name = c.header_name(&format!("{rp}.header.name"), &m.name, false);
                let matcher = matcher(c, &format!("{rp}.header"), m);
                name.zip(matcher)
                    .map(|(name, matcher)| Condition::Header { name, matcher })
            }
            (None, Some(m), None) => {
                let name = c.cookie_name(&format!("{rp}.cookie.name"), &m.name);
                let matcher = matcher(c, &format!("{rp}.cookie"), m);
                name.zip(matcher)
                    .map(|(name, matcher)| Condition::Cookie { name, matcher })
            }
            (None, None, Some(users)) => {
                users_condition(c, &format!("{rp}.users"), users, key.is_empty())
            }
            _ => {
                c.fail(
                    rp.clone(),
                    "a rule needs exactly one of \"header\", \"cookie\" or \"users\"",
                );
                None
            }
        };
        if let (Some(condition), Some(subset)) = (condition, subset) {
            rules.push(Rule { condition, subset });
        }
    }

    // Requests without a key.
    let when_no_key = match r.when_no_key {
        None if key.is_empty() => {
            c.fail(
                format!("{path}.key"),
                "no key sources and no \"whenNoKey\": add a header or cookie to \"key\", or a \"whenNoKey\" fallback",
            );
            None
        }
        // Keyless requests go to the first subset (conventionally the stable one).
        None => Some(WhenNoKey::Subset(0)),
        Some(w) => when_no_key(c, &format!("{path}.whenNoKey"), w, &subset_ref),
    };

    let override_ = r
        .override_
        .and_then(|o| override_(c, &format!("{path}.override"), o));

    let mirror = r
        .mirror
        .and_then(|m| mirror(c, &format!("{path}.mirror"), &r.name, m));

    let when_no_key = when_no_key?;
    (c.problems.len() == before).then_some(Release {
        split_hash: Salted::new(r.name.as_bytes()),
        name: r.name,
        scope: scope?,
        subsets,
        cumulative,
        key,
        rules,
        when_no_key,
        override_,
        mirror,
    })
}

fn mirror(c: &mut Checker, path: &str, release: &str, m: RawMirror) -> Option<Mirror> {
    let before = c.problems.len();
    if !is_name(&m.version, true) {
        c.fail(
            format!("{path}.version"),
            format!("{} is not a valid version: use 1-63 of a-z A-Z 0-9 '.' '_' '-', starting with a letter or digit", quote(&m.version)),
        );
    }
    // JSON numbers are finite, so NaN means "not representable" and fails the range check.
    let percent = m.percent.as_f64().unwrap_or(f64::NAN);
    if !(0.0..=100.0).contains(&percent) {
        c.fail(
            format!("{path}.percent"),
            format!("must be between 0 and 100, got {}", m.percent),
        );
    }
    let methods = match m.methods {
        None => DEFAULT_MIRROR_METHODS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(methods) => {
            if methods.is_empty() {
                c.fail(format!("{path}.methods"), "at least one method is required (or leave \"methods\" out for GET, HEAD, OPTIONS)");
            }
            for (i, method) in methods.iter().enumerate() {
                if method.is_empty()
                    || method.len() > 32
                    || !method
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
                {
                    c.fail(
                        format!("{path}.methods[{i}]"),
                        format!(
                            "{} is not an HTTP method (write it in upper case, like \"GET\")",
                            quote(method)
                        ),
                    );
                }
            }
            methods
        }
    };
    // percent% of the 2^32 position space; 100% covers all of it.
    let threshold = (percent.clamp(0.0, 100.0) / 100.0 * 4_294_967_296.0).round() as u64;
    (c.problems.len() == before).then_some(Mirror {
        version: m.version,
        sample_hash: Salted::new(format!("{release}#mirror").as_bytes()),
        threshold,
        methods,
    })
}

fn scope(c: &mut Checker, path: &str, m: RawMatch) -> Option<Scope> {
    let before = c.problems.len();
    let mut hosts = Vec::with_capacity(m.hosts.len());
    for (i, h) in m.hosts.iter().enumerate() {
        let p = format!("{path}.hosts[{i}]");
        let lower = h.to_ascii_lowercase();
        let valid_label = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        };
        if lower == "*" {
            hosts.push(HostPattern::Any);
        } else if let Some(rest) = lower.strip_prefix("*.") {
            if valid_label(rest) {
                hosts.push(HostPattern::Suffix(format!(".{rest}")));
            } else {
                c.fail(p, format!("{} is not a valid host pattern", quote(h)));
            }
        } else if valid_label(&lower) {
            hosts.push(HostPattern::Exact(lower));
        } else {
            c.fail(
                p,
                format!(
                    "{} is not a valid host pattern: use a host name without port, \"*.domain\" or \"*\"",
                    quote(h)
                ),
            );
        }
    }
    for (i, prefix) in m.path_prefixes.iter().enumerate() {
        if !prefix.starts_with('/') || prefix.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            c.fail(
                format!("{path}.pathPrefixes[{i}]"),
                format!(
                    "{} is not a path prefix: it must start with '/' and hold no spaces",
                    quote(prefix)
                ),
            );
        }
    }
    (c.problems.len() == before).then_some(Scope {
        hosts,
        path_prefixes: m.path_prefixes,
    })
}

fn matcher(c: &mut Checker, path: &str, m: RawMatcher) -> Option<Matcher> {
    match (m.equals, m.prefix, m.present, m.one_of) {
        (Some(v), None, None, None) => Some(Matcher::Equals(v.into_bytes())),
        (None, Some(v), None, None) => Some(Matcher::Prefix(v.into_bytes())),
        (None, None, Some(true), None) => Some(Matcher::Present),
        (None, None, Some(false), None) => {
            c.fail(
                format!("{path}.present"),
                "\"present\": false matches nothing; use \"present\": true or another condition",
            );
            None
        }
        (None, None, None, Some(options)) if options.is_empty() => {
            c.fail(
                format!("{path}.oneOf"),
                "\"oneOf\" needs at least one value",
            );
            None
        }
        (None, None, None, Some(options)) => Some(Matcher::OneOf(
            options.into_iter().map(String::into_bytes).collect(),
        )),
        _ => {
            c.fail(
                path,
                format!(
                    "{} needs exactly one of \"equals\", \"prefix\", \"present\" or \"oneOf\"",
                    quote(&m.name)
                ),
            );
            None
        }
    }
}

fn users_condition(
    c: &mut Checker,
    path: &str,
    users: Vec<String>,
    no_key_sources: bool,
) -> Option<Condition> {
    if no_key_sources {
        c.fail(
            path,
            "an allowlist matches user keys, but this release has no \"key\" sources",
        );
        return None;
    }
    if users.is_empty() {
        c.fail(path, "the allowlist is empty");
        return None;
    }
    let before = c.problems.len();
    let mut set = Allowlist::with_capacity_and_hasher(users.len(), Default::default());
    for (i, u) in users.into_iter().enumerate() {
        if u.is_empty() || u.len() > MAX_KEY_LEN {
            c.fail(
                format!("{path}[{i}]"),
                format!(
                    "{} is not a usable user key: it must have 1 to {MAX_KEY_LEN} bytes",
                    quote(&u)
                ),
            );
        } else {
            set.insert(u.into_bytes());
        }
    }
    (c.problems.len() == before).then_some(Condition::Users(set))
}

fn when_no_key(
    c: &mut Checker,
    path: &str,
    w: RawWhenNoKey,
    subset_ref: &dyn Fn(&mut Checker, &str, &str) -> Option<usize>,
) -> Option<WhenNoKey> {
    match (w.subset, w.sticky_cookie) {
        (Some(s), None) => subset_ref(c, &format!("{path}.subset"), &s).map(WhenNoKey::Subset),
        (None, Some(s)) => {
            let sp = format!("{path}.stickyCookie");
            let before = c.problems.len();
            let name = c.cookie_name(&format!("{sp}.name"), &s.name);
            let max_age = match s.max_age_seconds {
                None => None,
                Some(age) if (1..=MAX_COOKIE_AGE).contains(&age) => u32::try_from(age).ok(),
                Some(age) => {
                    c.fail(
                        format!("{sp}.maxAgeSeconds"),
                        format!("must be between 1 and {MAX_COOKIE_AGE} (400 days), got {age}"),
                    );
                    None
                }
            };
            let cookie_path = s.path.unwrap_or_else(|| "/".to_string());
            if !cookie_path.starts_with('/')
                || cookie_path
                    .bytes()
                    .any(|b| b == b';' || b == b' ' || b.is_ascii_control())
            {
                c.fail(
                    format!("{sp}.path"),
                    format!(
                        "{} is not a cookie path: it must start with '/' and hold no ';' or spaces",
                        quote(&cookie_path)
                    ),
                );
            }
            let name = name?;
            (c.problems.len() == before).then_some(WhenNoKey::Sticky(StickyCookie {
                name,
                max_age_seconds: max_age,
                path: cookie_path,
                secure: s.secure,
            }))
        }
        _ => {
            c.fail(
                path,
                "\"whenNoKey\" needs exactly one of \"subset\" or \"stickyCookie\"",
            );
            None
        }
    }
}

fn override_(c: &mut Checker, path: &str, o: RawOverride) -> Option<Override> {
    let before = c.problems.len();
    let header = c.header_name(&format!("{path}.header"), &o.header, true);
    if let Some(t) = &o.token {
        if t.len() < MIN_TOKEN_LEN || t.bytes().any(|b| !b.is_ascii_graphic() || b == b';') {
            c.fail(
                format!("{path}.token"),
                format!("the token must be at least {MIN_TOKEN_LEN} printable characters without ';' or spaces"),
            );
        }
    }
    let mut source_cidrs = Vec::with_capacity(o.source_cidrs.len());
    for (i, s) in o.source_cidrs.iter().enumerate() {
        match Cidr::parse(s) {
            Some(cidr) => source_cidrs.push(cidr),
            None => c.fail(
                format!("{path}.sourceCidrs[{i}]"),
                format!(
                    "{} is not an address range like \"10.0.0.0/8\" or \"fd00::/8\"",
                    quote(s)
                ),
            ),
        }
    }
    if o.token.is_none() && source_cidrs.is_empty() && !o.allow_anyone && c.problems.len() == before
    {
        c.fail(
            path,
            "an override must say who may use it: set \"token\", \"sourceCidrs\", or \"allowAnyone\": true",
        );
    }
    let header = header?;
    (c.problems.len() == before).then_some(Override {
        header,
        trust: Trust {
            token: o.token,
            source_cidrs,
            anyone: o.allow_anyone,
        },
    })
}
