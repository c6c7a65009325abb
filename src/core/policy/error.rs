//! Why a policy was rejected: every problem found, each with its JSON path, its kind, the
//! offending value and a message. `Display` writes `<path>: <message>`, the line Envoy logs.

use std::fmt;

use serde_json::Value;

/// Where a problem sits in the policy document, written as a JSON path:
/// `$.releases[0].subsets[1].weight`. Both phases locate problems with it, and a tool can walk
/// its segments (to point into the YAML a policy was embedded in, say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl JsonPath {
    /// `$`, the document itself.
    pub fn root() -> JsonPath {
        JsonPath::default()
    }

    /// The member `name` of the object here.
    pub fn key(&self, name: &str) -> JsonPath {
        self.with(Segment::Key(name.to_owned()))
    }

    /// Item `i` of the list here.
    pub fn index(&self, i: usize) -> JsonPath {
        self.with(Segment::Index(i))
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    fn with(&self, segment: Segment) -> JsonPath {
        let mut segments = Vec::with_capacity(self.0.len() + 1);
        segments.extend_from_slice(&self.0);
        segments.push(segment);
        JsonPath(segments)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for segment in &self.0 {
            match segment {
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Where a node of a JSON tree being read sits, turned into a JSON path only if a message
/// needs it (both JSON readers track it).
pub enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    pub fn path(&self) -> JsonPath {
        match self {
            At::Root => JsonPath::root(),
            At::Key(parent, key) => parent.path().key(key),
            At::Index(parent, i) => parent.path().index(*i),
        }
    }
}

/// What is wrong, as a category a tool can match on; the message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// No configuration at all.
    Empty,
    /// Not JSON (the message carries serde_json's line and column).
    InvalidJson,
    /// A key written twice in one object.
    RepeatedKey,
    /// A field Dial does not know (a typo is an error, not a silent default).
    UnknownField,
    MissingField,
    /// A string where a number belongs, and the like.
    WrongType,
    /// A value of the right type that is not acceptable: a name, header, host, path, range...
    InvalidValue,
    /// A number or a count outside its bounds.
    OutOfRange,
    /// A name used twice where names must be unique.
    Duplicate,
    /// A subset name that is not in the release.
    UnknownSubset,
    /// Fields that exclude or require each other.
    Conflict,
}

impl ProblemKind {
    /// The kind's name in machine-readable output.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Empty => "empty",
            ProblemKind::InvalidJson => "invalid_json",
            ProblemKind::RepeatedKey => "repeated_key",
            ProblemKind::UnknownField => "unknown_field",
            ProblemKind::MissingField => "missing_field",
            ProblemKind::WrongType => "wrong_type",
            ProblemKind::InvalidValue => "invalid_value",
            ProblemKind::OutOfRange => "out_of_range",
            ProblemKind::Duplicate => "duplicate",
            ProblemKind::UnknownSubset => "unknown_subset",
            ProblemKind::Conflict => "conflict",
        }
    }
}

/// One problem in a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub path: JsonPath,
    pub kind: ProblemKind,
    /// The offending value as written, where there is one.
    pub value: Option<Value>,
    pub message: String,
    /// Where the problem is in the policy text, as a byte offset: where the value at `path`
    /// starts, or the object that misses it; `None` for text that is not JSON (the message has
    /// serde_json's line and column). Set by `Policy::parse_in`, away from the proxy: the Wasm
    /// module's log lines name the path alone, and its size budget has no room for it.
    #[cfg(not(target_arch = "wasm32"))]
    pub at: Option<u32>,
}

impl Problem {
    pub fn new(
        path: JsonPath,
        kind: ProblemKind,
        value: Option<Value>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            path,
            kind,
            value,
            message: message.into(),
            #[cfg(not(target_arch = "wasm32"))]
            at: None,
        }
    }
}

/// A rejected policy. Nothing of it is applied: the previous policy (or none) stays.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError {
    pub problems: Vec<Problem>,
}

impl PolicyError {
    /// A policy rejected for one problem at the document's root.
    pub fn at_root(kind: ProblemKind, message: impl Into<String>) -> Self {
        PolicyError {
            problems: vec![Problem::new(JsonPath::root(), kind, None, message)],
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "policy rejected ({n} problem{}): ",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Quotes a value for a message the way JSON would write it, so odd bytes stay visible.
pub fn quote(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}
