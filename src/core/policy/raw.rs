//! Phase one: the policy exactly as written. `json` parses the bytes into a JSON tree, and
//! the tree is read field by field into the `Raw*` structs below, each problem (an unknown
//! field, a missing one, a wrong type) recorded with its JSON path. Types are loose where a
//! better message can be given in phase two (a negative weight is read, then rejected there).
//!
//! Reading the tree by hand instead of deriving `Deserialize` keeps the module small (the
//! derived visitors and the path-tracking wrapper were a third of it) and reports every
//! problem at once rather than the first.

use serde_json::{Map, Number, Value};

use super::error::{quote, PolicyError, Problem};

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
}

#[derive(Debug)]
pub struct RawKeySource {
    pub header: Option<String>,
    pub cookie: Option<String>,
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
}

#[derive(Debug)]
pub struct RawOverride {
    pub header: String,
    pub token: Option<String>,
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

/// Phase one: bytes to `RawPolicy`, or every problem found, each located by JSON path.
pub fn parse(bytes: &[u8]) -> Result<RawPolicy, PolicyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PolicyError::single(
            "$",
            "the configuration is empty: Dial needs a policy with at least one release",
        ));
    }
    let mut tree = super::json::parse(bytes)?;
    if !tree.is_object() {
        return Err(PolicyError::single(
            "$",
            "the policy must be a JSON object like {\"releases\": [...]}",
        ));
    }
    let mut r = Reader {
        problems: Vec::new(),
    };
    let policy = policy(&mut r, &mut tree, "$");
    match policy {
        Some(policy) if r.problems.is_empty() => Ok(policy),
        _ => Err(PolicyError {
            problems: r.problems,
        }),
    }
}

fn policy(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawPolicy> {
    let mut o = r.object(v, path, &["headers", "releases"])?;
    Some(RawPolicy {
        headers: r.optional(&mut o, "headers", headers).unwrap_or_default(),
        releases: r.required(&mut o, "releases", |r, v, p| r.list(v, p, release))?,
    })
}

fn headers(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawHeaders> {
    let mut o = r.object(v, path, &["subset", "version", "mirror", "response"])?;
    Some(RawHeaders {
        subset: r.optional(&mut o, "subset", string),
        version: r.optional(&mut o, "version", string),
        mirror: r.optional(&mut o, "mirror", string),
        response: r.optional(&mut o, "response", string),
    })
}

fn release(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawRelease> {
    let mut o = r.object(
        v,
        path,
        &[
            "name",
            "match",
            "subsets",
            "key",
            "rules",
            "whenNoKey",
            "override",
            "mirror",
        ],
    )?;
    let name = r.required(&mut o, "name", string);
    let scope = r.optional(&mut o, "match", scope).unwrap_or_default();
    let subsets = r.required(&mut o, "subsets", |r, v, p| r.list(v, p, subset));
    let key = r.optional(&mut o, "key", |r, v, p| r.list(v, p, key_source));
    let rules = r.optional(&mut o, "rules", |r, v, p| r.list(v, p, rule));
    Some(RawRelease {
        when_no_key: r.optional(&mut o, "whenNoKey", when_no_key),
        override_: r.optional(&mut o, "override", override_),
        mirror: r.optional(&mut o, "mirror", mirror),
        name: name?,
        scope,
        subsets: subsets?,
        key: key.unwrap_or_default(),
        rules: rules.unwrap_or_default(),
    })
}

fn scope(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawMatch> {
    let mut o = r.object(v, path, &["hosts", "pathPrefixes"])?;
    Some(RawMatch {
        hosts: r.optional(&mut o, "hosts", strings).unwrap_or_default(),
        path_prefixes: r
            .optional(&mut o, "pathPrefixes", strings)
            .unwrap_or_default(),
    })
}

fn subset(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawSubset> {
    let mut o = r.object(v, path, &["name", "version", "weight"])?;
    let name = r.required(&mut o, "name", string);
    let version = r.required(&mut o, "version", string);
    let weight = r.required(&mut o, "weight", integer);
    Some(RawSubset {
        name: name?,
        version: version?,
        weight: weight?,
    })
}

fn key_source(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawKeySource> {
    let mut o = r.object(v, path, &["header", "cookie"])?;
    Some(RawKeySource {
        header: r.optional(&mut o, "header", string),
        cookie: r.optional(&mut o, "cookie", string),
    })
}

fn rule(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawRule> {
    let mut o = r.object(v, path, &["header", "cookie", "users", "subset"])?;
    let header = r.optional(&mut o, "header", matcher);
    let cookie = r.optional(&mut o, "cookie", matcher);
    let users = r.optional(&mut o, "users", strings);
    Some(RawRule {
        subset: r.required(&mut o, "subset", string)?,
        header,
        cookie,
        users,
    })
}

fn matcher(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawMatcher> {
    let mut o = r.object(v, path, &["name", "equals", "prefix", "present", "oneOf"])?;
    let name = r.required(&mut o, "name", string);
    Some(RawMatcher {
        equals: r.optional(&mut o, "equals", string),
        prefix: r.optional(&mut o, "prefix", string),
        present: r.optional(&mut o, "present", boolean),
        one_of: r.optional(&mut o, "oneOf", strings),
        name: name?,
    })
}

fn when_no_key(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawWhenNoKey> {
    let mut o = r.object(v, path, &["subset", "stickyCookie"])?;
    Some(RawWhenNoKey {
        subset: r.optional(&mut o, "subset", string),
        sticky_cookie: r.optional(&mut o, "stickyCookie", sticky_cookie),
    })
}

fn sticky_cookie(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawStickyCookie> {
    let mut o = r.object(v, path, &["name", "maxAgeSeconds", "path", "secure"])?;
    let name = r.required(&mut o, "name", string);
    Some(RawStickyCookie {
        max_age_seconds: r.optional(&mut o, "maxAgeSeconds", integer),
        path: r.optional(&mut o, "path", string),
        secure: r.optional(&mut o, "secure", boolean).unwrap_or(false),
        name: name?,
    })
}

fn override_(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawOverride> {
    let mut o = r.object(v, path, &["header", "token", "sourceCidrs", "allowAnyone"])?;
    let header = r.required(&mut o, "header", string);
    Some(RawOverride {
        token: r.optional(&mut o, "token", string),
        source_cidrs: r
            .optional(&mut o, "sourceCidrs", strings)
            .unwrap_or_default(),
        allow_anyone: r.optional(&mut o, "allowAnyone", boolean).unwrap_or(false),
        header: header?,
    })
}

fn mirror(r: &mut Reader, v: &mut Value, path: &str) -> Option<RawMirror> {
    let mut o = r.object(v, path, &["version", "percent", "methods"])?;
    let version = r.required(&mut o, "version", string);
    let percent = r.required(&mut o, "percent", number);
    Some(RawMirror {
        methods: r.optional(&mut o, "methods", strings),
        version: version?,
        percent: percent?,
    })
}

/// Collects problems while the tree is read. A reader function returns `None` after recording
/// why; the caller goes on with the siblings so that one reload shows every problem.
struct Reader {
    problems: Vec<Problem>,
}

/// An object already checked for unknown fields, and where it sits.
struct Object<'v> {
    fields: &'v mut Map<String, Value>,
    path: &'v str,
}

impl Reader {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn wrong_type<T>(&mut self, v: &Value, path: &str, expected: &str) -> Option<T> {
        let found = match v {
            Value::Null => "null".to_string(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
            Value::Number(n) => format!("integer `{n}`"),
            Value::String(s) => format!("string {}", quote(s)),
            Value::Array(_) => "a list".to_string(),
            Value::Object(_) => "an object".to_string(),
        };
        self.fail(path, format!("invalid type: {found}, expected {expected}"));
        None
    }

    /// An object whose fields are all among `known` (a typo is an error, not a silent default).
    fn object<'v>(
        &mut self,
        v: &'v mut Value,
        path: &'v str,
        known: &[&str],
    ) -> Option<Object<'v>> {
        let Value::Object(fields) = v else {
            return self.wrong_type(v, path, "an object");
        };
        let before = self.problems.len();
        for name in fields.keys() {
            if !known.contains(&name.as_str()) {
                self.fail(
                    field_path(path, name),
                    format!("unknown field `{name}`, expected {}", one_of(known)),
                );
            }
        }
        (self.problems.len() == before).then_some(Object { fields, path })
    }

    fn required<T>(
        &mut self,
        o: &mut Object,
        name: &str,
        read: impl FnOnce(&mut Reader, &mut Value, &str) -> Option<T>,
    ) -> Option<T> {
        match o.fields.get_mut(name) {
            Some(v) => read(self, v, &field_path(o.path, name)),
            None => {
                self.fail(o.path, format!("missing field `{name}`"));
                None
            }
        }
    }

    /// A field that may be left out (or written as null).
    fn optional<T>(
        &mut self,
        o: &mut Object,
        name: &str,
        read: impl FnOnce(&mut Reader, &mut Value, &str) -> Option<T>,
    ) -> Option<T> {
        match o.fields.get_mut(name) {
            None | Some(Value::Null) => None,
            Some(v) => read(self, v, &field_path(o.path, name)),
        }
    }

    fn list<T>(
        &mut self,
        v: &mut Value,
        path: &str,
        read: impl Fn(&mut Reader, &mut Value, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Value::Array(items) = v else {
            return self.wrong_type(v, path, "a list");
        };
        let before = self.problems.len();
        let out: Vec<T> = items
            .iter_mut()
            .enumerate()
            .filter_map(|(i, item)| read(self, item, &format!("{path}[{i}]")))
            .collect();
        (self.problems.len() == before).then_some(out)
    }
}

fn string(r: &mut Reader, v: &mut Value, path: &str) -> Option<String> {
    match v {
        // Taken, not copied: the tree is dropped after phase one, and a 10,000-id allowlist
        // would otherwise sit in linear memory twice (which never shrinks).
        Value::String(s) => Some(std::mem::take(s)),
        _ => r.wrong_type(v, path, "a string"),
    }
}

fn strings(r: &mut Reader, v: &mut Value, path: &str) -> Option<Vec<String>> {
    r.list(v, path, string)
}

fn integer(r: &mut Reader, v: &mut Value, path: &str) -> Option<i64> {
    match v {
        Value::Number(n) if n.is_f64() => r.wrong_type(v, path, "an integer"),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(i),
            None => {
                r.fail(path, format!("{n} is too large"));
                None
            }
        },
        _ => r.wrong_type(v, path, "an integer"),
    }
}

fn number(r: &mut Reader, v: &mut Value, path: &str) -> Option<Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        _ => r.wrong_type(v, path, "a number"),
    }
}

fn boolean(r: &mut Reader, v: &mut Value, path: &str) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => r.wrong_type(v, path, "true or false"),
    }
}

/// `$` + `releases` → `$.releases`.
fn field_path(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", quoted.join(", ")),
    }
}
