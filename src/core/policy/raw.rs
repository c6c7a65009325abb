//! Phase one: the policy exactly as written. `json` parses the bytes into a JSON tree, and
//! the tree is read field by field into the `Raw*` structs below, each problem (an unknown
//! field, a missing one, a wrong type) recorded with its JSON path. Types are loose where a
//! better message can be given in phase two (a negative weight is read, then rejected there).
//!
//! The reads are the field list (`reader`): whatever an object's reader below does not read is
//! an unknown field.
//!
//! Reading the tree by hand instead of deriving `Deserialize` keeps the module small (the
//! derived visitors and the path-tracking wrapper were a third of it) and reports every
//! problem at once rather than the first.

use serde_json::{Number, Value};

use super::error::{JsonPath, PolicyError, ProblemKind};
use super::reader::{boolean, integer, number, string, strings, Object, Reader};

#[derive(Debug, Default)]
pub struct RawPolicy {
    pub headers: RawHeaders,
    pub releases: Vec<RawRelease>,
}

#[derive(Debug, Default)]
pub struct RawHeaders {
    pub subset: Option<String>,
    pub version: Option<String>,
    pub mirror: Option<String>,
    pub response: Option<String>,
}

#[derive(Debug)]
pub struct RawRelease {
    pub name: String,
    pub scope: RawMatch,
    pub subsets: Vec<RawSubset>,
    pub key: Vec<RawKeySource>,
    pub rules: Vec<RawRule>,
    pub when_no_key: Option<RawWhenNoKey>,
    pub override_: Option<RawOverride>,
    pub mirror: Option<RawMirror>,
    pub ramp: Option<RawRamp>,
    pub guard: Option<RawGuard>,
    pub bucketing: Option<RawBucketing>,
    pub lanes: Option<RawLanes>,
}

#[derive(Debug)]
pub struct RawLanes {
    pub baggage: Option<String>,
    pub secret: RawSecret,
    pub previous_secret: Option<RawSecret>,
    pub issue: bool,
    pub follow: bool,
    pub max_age: Option<String>,
    pub base: Option<String>,
    pub names: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct RawBucketing {
    pub scheme: String,
    pub group_id: Option<String>,
    pub flag_key: Option<String>,
    pub version: Option<i64>,
    pub mode: Option<String>,
}

#[derive(Debug, Default)]
pub struct RawMatch {
    pub hosts: Vec<String>,
    pub path_prefixes: Vec<String>,
}

#[derive(Debug)]
pub struct RawSubset {
    pub name: String,
    pub version: String,
    pub weight: i64,
    /// The subset's lane (`lanes`); its own name when absent.
    pub lane: Option<String>,
}

#[derive(Debug)]
pub struct RawKeySource {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub baggage: Option<String>,
}

#[derive(Debug)]
pub struct RawRule {
    pub header: Option<RawMatcher>,
    pub cookie: Option<RawMatcher>,
    pub users: Option<Vec<String>>,
    pub subset: String,
}

#[derive(Debug)]
pub struct RawMatcher {
    pub name: String,
    pub equals: Option<String>,
    pub prefix: Option<String>,
    pub present: Option<bool>,
    pub one_of: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct RawWhenNoKey {
    pub subset: Option<String>,
    pub sticky_cookie: Option<RawStickyCookie>,
}

#[derive(Debug)]
pub struct RawStickyCookie {
    pub name: String,
    pub max_age_seconds: Option<i64>,
    pub path: Option<String>,
    pub secure: bool,
    pub secret: Option<RawSecret>,
    pub previous_secret: Option<RawSecret>,
}

/// A secret field as written: the value, or the proxy's environment variable that holds it.
#[derive(Debug)]
pub enum RawSecret {
    Inline(String),
    FromEnv(String),
}

#[derive(Debug)]
pub struct RawOverride {
    pub header: String,
    pub token: Option<RawSecret>,
    pub source_cidrs: Vec<String>,
    pub allow_anyone: bool,
}

#[derive(Debug)]
pub struct RawMirror {
    pub version: String,
    /// As written, so a message can quote it exactly ("150", "-0.5").
    pub percent: Number,
    pub methods: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct RawRamp {
    pub subset: String,
    pub start: String,
    pub steps: Vec<RawStep>,
}

#[derive(Debug)]
pub struct RawStep {
    /// A percentage, as written.
    pub weight: Number,
    pub hold: Option<String>,
}

#[derive(Debug)]
pub struct RawGuard {
    pub subset: String,
    pub fallback: String,
    pub window: String,
    pub min_requests: i64,
    pub max_error_rate: Option<Number>,
    pub max_slow_rate: Option<RawSlowRate>,
    pub fleet: Option<RawFleet>,
}

#[derive(Debug)]
pub struct RawFleet {
    pub cluster: String,
    pub authority: String,
    pub path: Option<String>,
    pub every: Option<String>,
    pub window: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug)]
pub struct RawSlowRate {
    pub over_ms: i64,
    pub rate: Number,
}

/// A secret field: the value itself, or `{"fromEnv": "NAME"}`. A problem inside the object
/// keeps no value: a field written there by mistake may hold the secret.
pub fn secret(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<RawSecret> {
    match v {
        Value::String(s) => Some(RawSecret::Inline(std::mem::take(s))),
        Value::Object(_) => {
            let before = r.problems.len();
            let read = r.object(v, path, |r, o| r.required(o, "fromEnv", string));
            for p in r.problems.iter_mut().skip(before) {
                p.value = None;
            }
            read.map(RawSecret::FromEnv)
        }
        _ => r.wrong_type(v, path, "a string or {\"fromEnv\": \"VARIABLE\"}"),
    }
}

/// Phase one: bytes to `RawPolicy`, or every problem found, each located by JSON path.
pub fn parse(bytes: &[u8]) -> Result<RawPolicy, PolicyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PolicyError::at_root(
            ProblemKind::Empty,
            "the configuration is empty: Dial needs a policy with at least one release",
        ));
    }
    let mut tree = super::json::parse(bytes)?;
    if !tree.is_object() {
        return Err(PolicyError::at_root(
            ProblemKind::WrongType,
            "the policy must be a JSON object like {\"releases\": [...]}",
        ));
    }
    let mut r = Reader {
        problems: Vec::new(),
    };
    let policy = r.object(&mut tree, &JsonPath::root(), policy);
    match policy {
        Some(policy) if r.problems.is_empty() => Ok(policy),
        _ => Err(PolicyError {
            problems: r.problems,
        }),
    }
}

// Each reader below reads every field of its object before it returns (no early `?` between
// reads): a field not asked for would be reported as unknown.

fn policy(r: &mut Reader, o: &mut Object) -> Option<RawPolicy> {
    let headers = r.optional(o, "headers", |r, v, p| r.object(v, p, headers));
    let releases = r.required(o, "releases", |r, v, p| r.list(v, p, release));
    Some(RawPolicy {
        headers: headers.unwrap_or_default(),
        releases: releases?,
    })
}

fn headers(r: &mut Reader, o: &mut Object) -> Option<RawHeaders> {
    Some(RawHeaders {
        subset: r.optional(o, "subset", string),
        version: r.optional(o, "version", string),
        mirror: r.optional(o, "mirror", string),
        response: r.optional(o, "response", string),
    })
}

fn release(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<RawRelease> {
    r.object(v, path, |r, o| {
        let name = r.required(o, "name", string);
        let scope = r.optional(o, "match", |r, v, p| r.object(v, p, scope));
        let subsets = r.required(o, "subsets", |r, v, p| r.list(v, p, subset));
        let key = r.optional(o, "key", |r, v, p| r.list(v, p, key_source));
        let rules = r.optional(o, "rules", |r, v, p| r.list(v, p, rule));
        let when_no_key = r.optional(o, "whenNoKey", |r, v, p| r.object(v, p, when_no_key));
        let override_ = r.optional(o, "override", |r, v, p| r.object(v, p, override_));
        let mirror = r.optional(o, "mirror", |r, v, p| r.object(v, p, mirror));
        let ramp = r.optional(o, "ramp", |r, v, p| r.object(v, p, ramp));
        let guard = r.optional(o, "guard", |r, v, p| r.object(v, p, guard));
        let bucketing = r.optional(o, "bucketing", |r, v, p| r.object(v, p, bucketing));
        let lanes = r.optional(o, "lanes", |r, v, p| r.object(v, p, lanes));
        Some(RawRelease {
            name: name?,
            scope: scope.unwrap_or_default(),
            subsets: subsets?,
            key: key.unwrap_or_default(),
            rules: rules.unwrap_or_default(),
            when_no_key,
            override_,
            mirror,
            ramp,
            guard,
            bucketing,
            lanes,
        })
    })
}

fn scope(r: &mut Reader, o: &mut Object) -> Option<RawMatch> {
    let hosts = r.optional(o, "hosts", strings);
    let path_prefixes = r.optional(o, "pathPrefixes", strings);
    Some(RawMatch {
        hosts: hosts.unwrap_or_default(),
        path_prefixes: path_prefixes.unwrap_or_default(),
    })
}

fn subset(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<RawSubset> {
    r.object(v, path, |r, o| {
        let name = r.required(o, "name", string);
        let version = r.required(o, "version", string);
        let weight = r.required(o, "weight", integer);
        let lane = r.optional(o, "lane", string);
        Some(RawSubset {
            name: name?,
            version: version?,
            weight: weight?,
            lane,
        })
    })
}

fn key_source(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<RawKeySource> {
    r.object(v, path, |r, o| {
        Some(RawKeySource {
            header: r.optional(o, "header", string),
            cookie: r.optional(o, "cookie", string),
            baggage: r.optional(o, "baggage", string),
        })
    })
}

fn rule(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<RawRule> {
    r.object(v, path, |r, o| {
        let header = r.optional(o, "header", |r, v, p| r.object(v, p, matcher));
        let cookie = r.optional(o, "cookie", |r, v, p| r.object(v, p, matcher));
        let users = r.optional(o, "users", strings);
        let subset = r.required(o, "subset", string);
        Some(RawRule {
            header,
            cookie,
            users,
            subset: subset?,
        })
    })
}

fn matcher(r: &mut Reader, o: &mut Object) -> Option<RawMatcher> {
    let name = r.required(o, "name", string);
    let equals = r.optional(o, "equals", string);
    let prefix = r.optional(o, "prefix", string);
    let present = r.optional(o, "present", boolean);
    let one_of = r.optional(o, "oneOf", strings);
    Some(RawMatcher {
        name: name?,
        equals,
        prefix,
        present,
        one_of,
    })
}

fn when_no_key(r: &mut Reader, o: &mut Object) -> Option<RawWhenNoKey> {
    Some(RawWhenNoKey {
        subset: r.optional(o, "subset", string),
        sticky_cookie: r.optional(o, "stickyCookie", |r, v, p| r.object(v, p, sticky_cookie)),
    })
}

fn sticky_cookie(r: &mut Reader, o: &mut Object) -> Option<RawStickyCookie> {
    let name = r.required(o, "name", string);
    let max_age_seconds = r.optional(o, "maxAgeSeconds", integer);
    let path = r.optional(o, "path", string);
    let secure = r.optional(o, "secure", boolean);
    let current = r.optional(o, "secret", secret);
    let previous_secret = r.optional(o, "previousSecret", secret);
    Some(RawStickyCookie {
        name: name?,
        max_age_seconds,
        path,
        secure: secure.unwrap_or(false),
        secret: current,
        previous_secret,
    })
}

fn override_(r: &mut Reader, o: &mut Object) -> Option<RawOverride> {
    let header = r.required(o, "header", string);
    let token = r.optional(o, "token", secret);
    let source_cidrs = r.optional(o, "sourceCidrs", strings);
    let allow_anyone = r.optional(o, "allowAnyone", boolean);
    Some(RawOverride {
        header: header?,
        token,
        source_cidrs: source_cidrs.unwrap_or_default(),
        allow_anyone: allow_anyone.unwrap_or(false),
    })
}

fn mirror(r: &mut Reader, o: &mut Object) -> Option<RawMirror> {
    let version = r.required(o, "version", string);
    let percent = r.required(o, "percent", number);
    let methods = r.optional(o, "methods", strings);
    Some(RawMirror {
        version: version?,
        percent: percent?,
        methods,
    })
}

fn ramp(r: &mut Reader, o: &mut Object) -> Option<RawRamp> {
    let subset = r.required(o, "subset", string);
    let start = r.required(o, "start", string);
    let steps = r.required(o, "steps", |r, v, p| r.list(v, p, step));
    Some(RawRamp {
        subset: subset?,
        start: start?,
        steps: steps?,
    })
}

fn step(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<RawStep> {
    r.object(v, path, |r, o| {
        let weight = r.required(o, "weight", number);
        let hold = r.optional(o, "hold", string);
        Some(RawStep {
            weight: weight?,
            hold,
        })
    })
}

fn guard(r: &mut Reader, o: &mut Object) -> Option<RawGuard> {
    let subset = r.required(o, "subset", string);
    let fallback = r.required(o, "fallback", string);
    let window = r.required(o, "window", string);
    let min_requests = r.required(o, "minRequests", integer);
    let max_error_rate = r.optional(o, "maxErrorRate", number);
    let max_slow_rate = r.optional(o, "maxSlowRate", |r, v, p| r.object(v, p, slow_rate));
    let fleet = r.optional(o, "fleet", |r, v, p| r.object(v, p, fleet));
    Some(RawGuard {
        subset: subset?,
        fallback: fallback?,
        window: window?,
        min_requests: min_requests?,
        max_error_rate,
        max_slow_rate,
        fleet,
    })
}

fn fleet(r: &mut Reader, o: &mut Object) -> Option<RawFleet> {
    let cluster = r.required(o, "cluster", string);
    let authority = r.required(o, "authority", string);
    let path = r.optional(o, "path", string);
    let every = r.optional(o, "every", string);
    let window = r.optional(o, "window", string);
    let timeout = r.optional(o, "timeout", string);
    Some(RawFleet {
        cluster: cluster?,
        authority: authority?,
        path,
        every,
        window,
        timeout,
    })
}

fn slow_rate(r: &mut Reader, o: &mut Object) -> Option<RawSlowRate> {
    let over_ms = r.required(o, "overMs", integer);
    let rate = r.required(o, "rate", number);
    Some(RawSlowRate {
        over_ms: over_ms?,
        rate: rate?,
    })
}

fn bucketing(r: &mut Reader, o: &mut Object) -> Option<RawBucketing> {
    let scheme = r.required(o, "scheme", string);
    let group_id = r.optional(o, "groupId", string);
    let flag_key = r.optional(o, "flagKey", string);
    let version = r.optional(o, "version", integer);
    let mode = r.optional(o, "mode", string);
    Some(RawBucketing {
        scheme: scheme?,
        group_id,
        flag_key,
        version,
        mode,
    })
}

fn lanes(r: &mut Reader, o: &mut Object) -> Option<RawLanes> {
    let baggage = r.optional(o, "baggage", string);
    let current = r.required(o, "secret", secret);
    let previous_secret = r.optional(o, "previousSecret", secret);
    let issue = r.optional(o, "issue", boolean);
    let follow = r.optional(o, "follow", boolean);
    let max_age = r.optional(o, "maxAge", string);
    let base = r.optional(o, "base", string);
    let names = r.optional(o, "names", strings);
    Some(RawLanes {
        baggage,
        secret: current?,
        previous_secret,
        issue: issue.unwrap_or(false),
        follow: follow.unwrap_or(false),
        max_age,
        base,
        names,
    })
}
