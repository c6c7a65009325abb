//! Phase one: the policy exactly as written. `json` parses the bytes into a JSON tree, and
//! the tree is read field by field into the `Raw*` structs below, each problem (an unknown
//! field, a missing one, a wrong type) recorded with its JSON path. Types are loose where a
//! better message can be given in phase two (a negative weight is read, then rejected there).
//!
//! The reads are the field list: each object's fields are taken out as they are read, and
//! whatever no read took is an unknown field. A field cannot be accepted and then dropped.
//!
//! Reading the tree by hand instead of deriving `Deserialize` keeps the module small (the
//! derived visitors and the path-tracking wrapper were a third of it) and reports every
//! problem at once rather than the first.

use serde_json::{Map, Number, Value};

use super::error::{quote, JsonPath, PolicyError, Problem, ProblemKind};

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
        Some(RawRelease {
            name: name?,
            scope: scope.unwrap_or_default(),
            subsets: subsets?,
            key: key.unwrap_or_default(),
            rules: rules.unwrap_or_default(),
            when_no_key,
            override_,
            mirror,
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
        Some(RawSubset {
            name: name?,
            version: version?,
            weight: weight?,
        })
    })
}

fn key_source(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<RawKeySource> {
    r.object(v, path, |r, o| {
        Some(RawKeySource {
            header: r.optional(o, "header", string),
            cookie: r.optional(o, "cookie", string),
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
    Some(RawStickyCookie {
        name: name?,
        max_age_seconds,
        path,
        secure: secure.unwrap_or(false),
    })
}

fn override_(r: &mut Reader, o: &mut Object) -> Option<RawOverride> {
    let header = r.required(o, "header", string);
    let token = r.optional(o, "token", string);
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

/// Collects problems while the tree is read. A reader function returns `None` after recording
/// why; the caller goes on with the siblings so that one reload shows every problem.
struct Reader {
    problems: Vec<Problem>,
}

/// An object being read: the fields no read has taken yet, and the names asked for so far.
struct Object<'p> {
    fields: Map<String, Value>,
    path: &'p JsonPath,
    asked: Vec<&'static str>,
}

impl Reader {
    fn fail(&mut self, path: JsonPath, kind: ProblemKind, message: impl Into<String>) {
        self.problems.push(Problem::new(path, kind, None, message));
    }

    fn wrong_type<T>(&mut self, v: &Value, path: &JsonPath, expected: &str) -> Option<T> {
        let found = match v {
            Value::Null => "null".to_string(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
            Value::Number(n) => format!("integer `{n}`"),
            Value::String(s) => format!("string {}", quote(s)),
            Value::Array(_) => "a list".to_string(),
            Value::Object(_) => "an object".to_string(),
        };
        self.problems.push(Problem::new(
            path.clone(),
            ProblemKind::WrongType,
            Some(v.clone()),
            format!("invalid type: {found}, expected {expected}"),
        ));
        None
    }

    /// Reads an object with `read`, then reports every field `read` did not take as unknown.
    fn object<T>(
        &mut self,
        v: &mut Value,
        path: &JsonPath,
        read: impl FnOnce(&mut Reader, &mut Object) -> Option<T>,
    ) -> Option<T> {
        let Value::Object(fields) = v else {
            return self.wrong_type(v, path, "an object");
        };
        let mut o = Object {
            fields: std::mem::take(fields),
            path,
            asked: Vec::new(),
        };
        let before = self.problems.len();
        let read = read(self, &mut o);
        let unknown = !o.fields.is_empty();
        // Reported ahead of what the reads found: a misspelt field is usually why another one
        // is "missing".
        let unknowns: Vec<Problem> = o
            .fields
            .into_iter()
            .map(|(name, value)| {
                Problem::new(
                    path.key(&name),
                    ProblemKind::UnknownField,
                    Some(value),
                    format!("unknown field `{name}`, expected {}", one_of(&o.asked)),
                )
            })
            .collect();
        self.problems.splice(before..before, unknowns);
        read.filter(|_| !unknown)
    }

    fn required<T>(
        &mut self,
        o: &mut Object,
        name: &'static str,
        read: impl FnOnce(&mut Reader, &mut Value, &JsonPath) -> Option<T>,
    ) -> Option<T> {
        o.asked.push(name);
        match o.fields.remove(name) {
            Some(mut v) => read(self, &mut v, &o.path.key(name)),
            None => {
                self.fail(
                    o.path.clone(),
                    ProblemKind::MissingField,
                    format!("missing field `{name}`"),
                );
                None
            }
        }
    }

    /// A field that may be left out (or written as null).
    fn optional<T>(
        &mut self,
        o: &mut Object,
        name: &'static str,
        read: impl FnOnce(&mut Reader, &mut Value, &JsonPath) -> Option<T>,
    ) -> Option<T> {
        o.asked.push(name);
        match o.fields.remove(name) {
            None | Some(Value::Null) => None,
            Some(mut v) => read(self, &mut v, &o.path.key(name)),
        }
    }

    fn list<T>(
        &mut self,
        v: &mut Value,
        path: &JsonPath,
        read: impl Fn(&mut Reader, &mut Value, &JsonPath) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Value::Array(items) = v else {
            return self.wrong_type(v, path, "a list");
        };
        let before = self.problems.len();
        let out: Vec<T> = items
            .iter_mut()
            .enumerate()
            .filter_map(|(i, item)| read(self, item, &path.index(i)))
            .collect();
        (self.problems.len() == before).then_some(out)
    }
}

fn string(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<String> {
    match v {
        // Taken, not copied: the tree is dropped after phase one, and a 10,000-id allowlist
        // would otherwise sit in linear memory twice (which never shrinks).
        Value::String(s) => Some(std::mem::take(s)),
        _ => r.wrong_type(v, path, "a string"),
    }
}

fn strings(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<Vec<String>> {
    r.list(v, path, string)
}

fn integer(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<i64> {
    match v {
        Value::Number(n) if n.is_f64() => r.wrong_type(v, path, "an integer"),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(i),
            None => {
                let message = format!("{n} is too large");
                r.problems.push(Problem::new(
                    path.clone(),
                    ProblemKind::OutOfRange,
                    Some(v.clone()),
                    message,
                ));
                None
            }
        },
        _ => r.wrong_type(v, path, "an integer"),
    }
}

fn number(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        _ => r.wrong_type(v, path, "a number"),
    }
}

fn boolean(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => r.wrong_type(v, path, "true or false"),
    }
}

/// "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "no fields here".to_string(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(
        doc: Value,
        read_fields: impl FnOnce(&mut Reader, &mut Object) -> Option<String>,
    ) -> Vec<String> {
        let mut doc = doc;
        let mut r = Reader {
            problems: Vec::new(),
        };
        r.object(&mut doc, &JsonPath::root(), read_fields);
        r.problems.iter().map(|p| p.to_string()).collect()
    }

    /// The class of bug this reader rules out: a field that is expected but never read. Here a
    /// reader asks for `name` only; `weight` is not read, so it is refused, not dropped.
    #[test]
    fn a_field_nothing_reads_is_rejected() {
        let doc = json!({ "name": "a", "weight": 5 });
        assert_eq!(
            read(doc.clone(), |r, o| r.required(o, "name", string)),
            ["$.weight: unknown field `weight`, expected `name`"]
        );
        // Read both, and the same object is fine.
        assert!(read(doc, |r, o| {
            let name = r.required(o, "name", string);
            r.optional(o, "weight", integer);
            name
        })
        .is_empty());
    }

    #[test]
    fn unknown_fields_carry_their_value_and_kind() {
        let mut doc = json!({ "releases": [], "relases": [1] });
        let mut r = Reader {
            problems: Vec::new(),
        };
        r.object(&mut doc, &JsonPath::root(), policy);
        let p = &r.problems[0];
        assert_eq!(p.kind, ProblemKind::UnknownField);
        assert_eq!(p.value, Some(json!([1])));
        assert_eq!(p.path, JsonPath::root().key("relases"));
    }
}
