//! Collects phase two's problems, and the checks shared by every part of the policy: names,
//! versions, header and cookie names.

use serde_json::Value;

use super::limits::MIN_TOKEN_LEN;
use crate::core::policy::error::{quote, JsonPath, Problem, ProblemKind};
use crate::core::policy::raw::RawSecret;
use crate::core::secret::{is_variable_name, Environment, Secret, MAX_VARIABLE_LEN};

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

pub struct Checker<'e> {
    pub problems: Vec<Problem>,
    /// Dial's own routing headers (subset, version, mirror), once known: a release must not read
    /// one (a client could send it and steer), nor use it as the override header.
    pub routing: Vec<String>,
    /// Where `{"fromEnv": ...}` secrets are read.
    pub env: Environment<'e>,
}

impl Checker<'_> {
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

    /// A whole number that must be `min` or more: false, with the problem recorded, when it is
    /// not. `what` opens the message ("weight ", or nothing where the path says it).
    pub fn at_least(&mut self, path: JsonPath, what: &str, value: i64, min: i64) -> bool {
        if value >= min {
            return true;
        }
        self.fail_number(
            path,
            ProblemKind::OutOfRange,
            value,
            format!("{what}must be {min} or more, got {value}"),
        );
        false
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

    /// A secret, inline or from the environment: long enough, printable, and safe in a header
    /// value. `what` names it in messages ("the token"). Its value is never repeated in a
    /// problem; a variable's name is.
    /// A secret and the one before it, for rotation (`secret`, `previousSecret` under `path`):
    /// each read as [`Checker::secret`] reads it; naming the same variable or holding the same
    /// value is a conflict.
    pub fn rotating_secrets(
        &mut self,
        path: &JsonPath,
        current: Option<RawSecret>,
        previous: Option<RawSecret>,
    ) -> (Option<Secret>, Option<Secret>) {
        let current = current.and_then(|v| self.secret(path.key("secret"), "a secret", v));
        let previous =
            previous.and_then(|v| self.secret(path.key("previousSecret"), "a secret", v));
        if let (Some(now), Some(before)) = (&current, &previous) {
            let same_variable = now.variable().is_some() && now.variable() == before.variable();
            if same_variable || (now.value().is_some() && now.value() == before.value()) {
                self.fail_here(
                    path.key("previousSecret"),
                    ProblemKind::Conflict,
                    "the previous secret is the current one: drop \"previousSecret\" or rotate \"secret\"",
                );
            }
        }
        (current, previous)
    }

    pub fn secret(&mut self, path: JsonPath, what: &str, raw: RawSecret) -> Option<Secret> {
        let rules = format!("at least {MIN_TOKEN_LEN} printable characters without ';' or spaces");
        let usable = |s: &str| {
            s.len() >= MIN_TOKEN_LEN && s.bytes().all(|b| b.is_ascii_graphic() && b != b';')
        };
        match raw {
            RawSecret::Inline(value) => {
                if usable(&value) {
                    return Some(Secret::inline(value));
                }
                self.fail_here(
                    path,
                    ProblemKind::InvalidValue,
                    format!("{what} must be {rules}"),
                );
                None
            }
            RawSecret::FromEnv(name) => {
                let at = path.key("fromEnv");
                if !is_variable_name(&name) {
                    // Not quoted: a secret pasted here by mistake must not reach a log.
                    self.fail_here(
                        at,
                        ProblemKind::InvalidValue,
                        format!("not an environment variable name: use 1-{MAX_VARIABLE_LEN} of A-Z a-z 0-9 '_', not starting with a digit (the value is not repeated, in case it is a secret)"),
                    );
                    return None;
                }
                match self.env.var(&name) {
                    Some(value) if usable(&value) => Some(Secret::from_env(name, Some(value))),
                    Some(_) => {
                        let message = format!(
                            "{what} in the environment variable {} must be {rules}",
                            quote(&name)
                        );
                        self.fail(at, ProblemKind::InvalidValue, &name, message);
                        None
                    }
                    None if self.env.is_proxy() => {
                        let message = format!(
                            "the environment variable {} is not set where the proxy runs (the Wasm filter sees only the variables its vm_config.environment_variables passes)",
                            quote(&name)
                        );
                        self.fail(at, ProblemKind::InvalidValue, &name, message);
                        None
                    }
                    None => Some(Secret::from_env(name, None)),
                }
            }
        }
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
