//! Collects phase two's problems, and the checks shared by every part of the policy: names,
//! versions, header and cookie names.

use serde_json::Value;

use crate::core::policy::error::{quote, JsonPath, Problem, ProblemKind};

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

pub struct Checker {
    pub problems: Vec<Problem>,
    /// Dial's own routing headers (subset, version, mirror), once known: a release must not read
    /// one (a client could send it and steer), nor use it as the override header.
    pub routing: Vec<String>,
}

impl Checker {
    /// Records a problem about a string value (quoted in the message by the caller).
    pub fn fail(&mut self, path: JsonPath, kind: ProblemKind, value: &str, message: String) {
        self.problems.push(Problem::new(
            path,
            kind,
            Some(Value::String(value.to_owned())),
            message,
        ));
    }

    /// Records a problem about a number.
    pub fn fail_number(
        &mut self,
        path: JsonPath,
        kind: ProblemKind,
        value: impl Into<Value>,
        message: String,
    ) {
        self.problems
            .push(Problem::new(path, kind, Some(value.into()), message));
    }

    /// Records a problem about an object or a combination of fields, with no one value to show.
    pub fn fail_here(&mut self, path: JsonPath, kind: ProblemKind, message: impl Into<String>) {
        self.problems.push(Problem::new(path, kind, None, message));
    }

    /// How many problems so far: a part is good when it added none.
    pub fn mark(&self) -> usize {
        self.problems.len()
    }

    pub fn clean_since(&self, mark: usize) -> bool {
        self.problems.len() == mark
    }

    /// A release or subset name: safe in a header value, a stat name and a Prometheus label.
    pub fn name(&mut self, path: JsonPath, what: &str, value: &str) {
        if !is_name(value, false) {
            self.fail(
                path,
                ProblemKind::InvalidValue,
                value,
                format!(
                    "{} is not a valid {what} name: use 1-63 of a-z A-Z 0-9 '_' '-', starting with a letter or digit",
                    quote(value)
                ),
            );
        }
    }

    /// A version: a name that may also hold dots.
    pub fn version(&mut self, path: JsonPath, value: &str) {
        if !is_name(value, true) {
            self.fail(
                path,
                ProblemKind::InvalidValue,
                value,
                format!(
                    "{} is not a valid version: use 1-63 of a-z A-Z 0-9 '.' '_' '-', starting with a letter or digit",
                    quote(value)
                ),
            );
        }
    }

    /// A header name, lower-cased as Envoy stores it; `None` when invalid. `owned`: Dial sets or
    /// removes this header, so HTTP's own headers are refused.
    pub fn header_name(&mut self, path: JsonPath, value: &str, owned: bool) -> Option<String> {
        if value.is_empty() || value.len() > 128 || !value.bytes().all(is_token_byte) {
            self.fail(
                path,
                ProblemKind::InvalidValue,
                value,
                format!("{} is not a valid HTTP header name", quote(value)),
            );
            return None;
        }
        let lower = value.to_ascii_lowercase();
        if self.routing.contains(&lower) {
            self.fail(
                path,
                ProblemKind::Conflict,
                value,
                format!(
                    "{} is one of Dial's routing headers, which a client could send to steer: use another header",
                    quote(value)
                ),
            );
            return None;
        }
        if owned && RESERVED_HEADERS.contains(&lower.as_str()) {
            self.fail(
                path,
                ProblemKind::InvalidValue,
                value,
                format!(
                    "{} is reserved for HTTP itself; pick another header name",
                    quote(value)
                ),
            );
            return None;
        }
        Some(lower)
    }

    pub fn cookie_name(&mut self, path: JsonPath, value: &str) -> Option<String> {
        if value.is_empty() || value.len() > 128 || !value.bytes().all(is_token_byte) {
            self.fail(
                path,
                ProblemKind::InvalidValue,
                value,
                format!("{} is not a valid cookie name", quote(value)),
            );
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
