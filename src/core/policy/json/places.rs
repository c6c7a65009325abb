//! Where each value of a JSON text starts: the policy text read again, by a reader of our own,
//! to place the problems its reading found (`Problem::at`, a byte offset the CLI turns into a
//! line and a column), away from the proxy only.
//!
//! The policy's own reading (`super::parse`) is serde_json's, which does not tell a visitor
//! where it is: recording offsets as it reads means a JSON reader of our own in the module,
//! which would take it over its size budget, for positions the proxy never prints (the
//! figures are in the commit that made this file). So the module reads as it did and places
//! nothing, and a refused policy is read here a second time, natively.
//!
//! This reader walks the structure; serde_json decodes a string with escapes and every number
//! (so they read exactly as serde_json reads them). The tests hold it to serde_json's verdict
//! on every text at the edges, and to the policy reader's repeated keys.

use serde_json::{Map, Number, Value};

use crate::core::policy::error::{At, JsonPath, PolicyError, ProblemKind, Segment};

/// serde_json's nesting limit: deeper text is refused by it, so it is refused here too (and the
/// recursion below stays bounded).
const MAX_DEPTH: usize = 128;

/// A JSON value and the byte offset of its first character in the text.
#[derive(Debug, Default)]
struct Node {
    at: u32,
    json: Json,
}

/// A JSON value whose items and members are `Node`s; members in the order written, each key
/// once (the first of a repeated key). Placing reads no value; the tests read them all, to
/// hold them to serde_json's.
#[derive(Debug, Default)]
#[cfg_attr(not(test), allow(dead_code))]
enum Json {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// The tree of a JSON text and its repeated keys (each path, and where the repetition's value
/// starts), or `None` if the text is not JSON.
fn tree(bytes: &[u8]) -> Option<(Node, Vec<(JsonPath, u32)>)> {
    let mut r = Text {
        bytes,
        at: 0,
        depth: 0,
        repeated: Vec::new(),
    };
    let tree = r.value(&At::Root)?;
    r.whitespace();
    (r.at == bytes.len()).then_some((tree, r.repeated))
}

/// The offset of the value at `path` in JSON `text`, or of its deepest ancestor present (a
/// missing field is placed at the object that misses it); `None` if the text is not JSON.
pub fn offset_of(text: &[u8], path: &[Segment]) -> Option<u32> {
    tree(text).map(|(tree, _)| tree.find(path))
}

/// Places each problem of a policy refused for `text`: a repeated key where its repetition
/// starts, any other problem at the value its path names (or the deepest ancestor present),
/// an empty configuration at its end. Text that is not JSON keeps serde_json's line and column
/// in its message, and no offset.
pub fn place(e: &mut PolicyError, text: &[u8]) {
    let end = u32::try_from(text.len()).unwrap_or(u32::MAX);
    let read = tree(text);
    let mut repetitions = read.iter().flat_map(|(_, repeated)| repeated);
    for p in &mut e.problems {
        p.at = match (p.kind, &read) {
            (ProblemKind::Empty, _) => Some(end),
            (ProblemKind::RepeatedKey, _) => repetitions.next().map(|(_, at)| *at),
            (_, Some((tree, _))) => Some(tree.find(p.path.segments())),
            (_, None) => None,
        };
    }
}

impl Node {
    /// The offset of the value at `path` below this one, or of its deepest ancestor present.
    fn find(&self, path: &[Segment]) -> u32 {
        let next = match (path.first(), &self.json) {
            (Some(Segment::Key(k)), Json::Object(members)) => {
                members.iter().find(|(name, _)| name == k).map(|(_, v)| v)
            }
            (Some(Segment::Index(i)), Json::Array(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(node) => node.find(path.get(1..).unwrap_or_default()),
            None => self.at,
        }
    }

    /// The value as serde_json has it, offsets dropped (to compare with the policy reader's).
    #[cfg(test)]
    fn into_value(self) -> Value {
        match self.json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Number(n) => Value::Number(n),
            Json::String(s) => Value::String(s),
            Json::Array(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Json::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
        }
    }
}

/// The text being read. Every reading function returns `None` where the text is not JSON
/// (why is serde_json's to say: the policy's own reading has said it by then).
struct Text<'b> {
    bytes: &'b [u8],
    at: usize,
    depth: usize,
    /// Keys met twice in one object, in the order serde_json's reading reports them: each
    /// repetition's path and where its value starts. The first value is kept.
    repeated: Vec<(JsonPath, u32)>,
}

impl Text<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    fn value(&mut self, at: &At) -> Option<Node> {
        self.whitespace();
        let start = u32::try_from(self.at).unwrap_or(u32::MAX);
        let json = match self.peek()? {
            b'{' => self.object(at)?,
            b'[' => self.array(at)?,
            b'"' => Json::String(self.string()?),
            b't' => self.word(b"true", Json::Bool(true))?,
            b'f' => self.word(b"false", Json::Bool(false))?,
            b'n' => self.word(b"null", Json::Null)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        };
        Some(Node { at: start, json })
    }

    fn word(&mut self, word: &[u8], json: Json) -> Option<Json> {
        let rest = self.bytes.get(self.at..)?;
        rest.starts_with(word).then(|| {
            self.at += word.len();
            json
        })
    }

    /// A number as serde_json reads it (an integer, or else a float), from the run of
    /// characters a number can hold; a run that is not one number is not JSON.
    fn number(&mut self) -> Option<Json> {
        let start = self.at;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.at += 1;
        }
        match serde_json::from_slice(self.bytes.get(start..self.at)?).ok()? {
            Value::Number(n) => Some(Json::Number(n)),
            _ => None,
        }
    }

    /// A string, the cursor on its opening quote. Plain text is taken as it is; a string with
    /// escapes is serde_json's to decode.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        self.at += 1;
        let mut plain = true;
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => {
                    plain = false;
                    self.next()?;
                }
                // Control characters must be escaped.
                0..=0x1f => return None,
                _ => {}
            }
        }
        let quoted = self.bytes.get(start..self.at)?;
        if plain {
            let inside = quoted.get(1..quoted.len() - 1)?;
            return std::str::from_utf8(inside).ok().map(str::to_owned);
        }
        match serde_json::from_slice(quoted).ok()? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Enters a list or an object, the cursor on its bracket.
    fn open(&mut self) -> Option<()> {
        self.depth += 1;
        self.at += 1;
        (self.depth < MAX_DEPTH).then_some(())
    }

    /// After an item or a member: true if another follows, false at `close`.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.whitespace();
        match self.next()? {
            b',' => Some(true),
            b if b == close => {
                self.depth -= 1;
                Some(false)
            }
            _ => None,
        }
    }

    fn array(&mut self, at: &At) -> Option<Json> {
        self.open()?;
        let mut items = Vec::new();
        self.whitespace();
        if self.peek()? == b']' {
            return self.more(b']').map(|_| Json::Array(items));
        }
        loop {
            let here = At::Index(at, items.len());
            items.push(self.value(&here)?);
            if !self.more(b']')? {
                return Some(Json::Array(items));
            }
        }
    }

    fn object(&mut self, at: &At) -> Option<Json> {
        self.open()?;
        let mut members = Vec::new();
        // serde_json's map as the set of keys seen: its code is in the module already, where
        // a map of nodes would bring its own copy of the tree's code (several KB).
        let mut seen = Map::new();
        self.whitespace();
        if self.peek()? == b'}' {
            return self.more(b'}').map(|_| Json::Object(members));
        }
        loop {
            self.whitespace();
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.whitespace();
            if self.next()? != b':' {
                return None;
            }
            let here = At::Key(at, &key);
            let value = self.value(&here)?;
            if seen.insert(key.clone(), Value::Null).is_some() {
                self.repeated.push((here.path(), value.at));
            } else {
                members.push((key, value));
            }
            if !self.more(b'}')? {
                return Some(Json::Object(members));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::Policy;

    /// Texts at the edges of strings, numbers, literals, separators and nesting.
    fn edges() -> Vec<Vec<u8>> {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let mut texts: Vec<String> = [
            "",
            " ",
            "{",
            "[",
            "]",
            "}",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{1:2}",
            "[1 2]",
            "tru",
            "truex",
            "nul",
            "[true false]",
            "01",
            "-",
            "1.",
            "1e",
            "1e+",
            "-01",
            "1.5e400",
            "-1e400",
            "1-2",
            "+1",
            ".5",
            "1e5",
            "-0",
            "0.0e-0",
            "\"a\nb\"",
            "\"a\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"\\u00e9\"",
            "\"\u{7f}\"",
            "\"abc",
            "[\"a\"",
            "{\"a\"",
            "{\"a\":",
            "[1] x",
            "[1]  ",
            "\"\\\"\"",
            "{\"a\":{\"b\":[{}]}}",
            "NaN",
            "[-]",
            "[1,,2]",
            "{,}",
            "{\"a\":1,,\"b\":2}",
            "{\"a\": [1, -2, 3.5, 18446744073709551615, -9223372036854775809, 1e3]}",
            "[\"s\\u00e9\", \"\\ud83d\\ude00 \\\"q\\\" \\\\\", \"é\", true, false, null, {}]",
            "\t\r\n7\n",
            "{\"a\": {\"b\": 1, \"b\": [2]}, \"a\": 3, \"c\": [{\"d\": 1, \"d\": 1}]}",
            "{\"k\": 1, \"k\": 2, \"k\": 3}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        texts.extend((120..135).map(deep));
        texts.push(format!("{}1{}", "{\"a\":".repeat(127), "}".repeat(127)));
        texts.push(format!("{}1{}", "{\"a\":".repeat(128), "}".repeat(128)));
        let bytes: [&[u8]; 3] = [b"\"\xff\"", b"[\"\xc3\"]", b"\"\xc3\xa9\""];
        let texts = texts.into_iter().map(String::into_bytes);
        texts.chain(bytes.map(<[u8]>::to_vec)).collect()
    }

    /// This reader reads what the policy's reader (serde_json's) reads, into the same values,
    /// finds the same repeated keys in the same order, and refuses what it refuses.
    #[test]
    fn reads_what_the_policy_reader_reads() {
        for text in &edges() {
            match (tree(text), super::super::parse(text)) {
                (Some((ours, repeated)), Ok(theirs)) => {
                    assert!(repeated.is_empty(), "{text:?}");
                    assert_eq!(ours.into_value(), theirs, "{text:?}");
                }
                (Some((_, repeated)), Err(e)) => {
                    let ours: Vec<String> = repeated.iter().map(|(p, _)| p.to_string()).collect();
                    let theirs: Vec<String> =
                        e.problems.iter().map(|p| p.path.to_string()).collect();
                    assert_eq!(ours, theirs, "{text:?}: {e}");
                    assert!(e
                        .problems
                        .iter()
                        .all(|p| p.kind == ProblemKind::RepeatedKey));
                }
                (None, Err(e)) => {
                    assert_eq!(e.problems[0].kind, ProblemKind::InvalidJson, "{text:?}");
                }
                (None, Ok(v)) => panic!("{text:?} refused here, read as {v}"),
            }
        }
    }

    fn path(segments: &[&str]) -> Vec<Segment> {
        segments
            .iter()
            .map(|s| match s.parse::<usize>() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key(s.to_string()),
            })
            .collect()
    }

    #[test]
    fn values_are_found_by_path_or_at_their_deepest_ancestor() {
        let doc = "{\n  \"releases\": [\n    { \"name\": \"a\", \"subsets\": [ {\"w\": 1}, {\"w\": [2, {\"x\": \"}\"}]} ] }\n  ],\n  \"k\": \"v\"\n}\n";
        let at = |p: &[&str]| offset_of(doc.as_bytes(), &path(p)).unwrap() as usize;
        let starts = |p: &[&str], with: &str| assert!(doc[at(p)..].starts_with(with), "{p:?}");
        assert_eq!(at(&[]), 0);
        starts(&["releases"], "[\n    {");
        starts(&["releases", "0", "name"], "\"a\"");
        starts(&["releases", "0", "subsets", "1", "w"], "[2, {");
        starts(&["releases", "0", "subsets", "1", "w", "1", "x"], "\"}\"");
        starts(&["k"], "\"v\"");
        // Missing: the deepest ancestor present.
        assert_eq!(at(&["releases", "0", "nope"]), at(&["releases", "0"]));
        assert_eq!(at(&["releases", "7"]), at(&["releases"]));
        assert_eq!(at(&["k", "deeper"]), at(&["k"]));
        assert_eq!(offset_of(b" [1,2]", &path(&["releases"])), Some(1));
        assert_eq!(offset_of(b"{", &path(&["releases"])), None);
    }

    /// Every problem of a refused policy carries its place: both phases' problems, a repeated
    /// key at its repetition, an empty configuration at its end, invalid JSON nowhere.
    #[test]
    fn a_refused_policy_places_each_problem() {
        let placed = |text: &str| -> Vec<(String, Option<usize>)> {
            let e = Policy::parse(text.as_bytes()).unwrap_err();
            let at = |p: &crate::core::policy::Problem| p.at.map(|a| a as usize);
            e.problems
                .iter()
                .map(|p| (p.path.to_string(), at(p)))
                .collect()
        };
        let text = r#"{"releases": [{"name": "r", "subsets": [{"name": "s", "version": "v1", "weight": -1}], "key": [{"header": 7}], "mirror": {"version": "v2"}}], "extra": true}"#;
        let spot = |s: &str| text.find(s);
        assert_eq!(
            placed(text),
            [
                ("$.extra".to_string(), spot("true")),
                ("$.releases[0].key[0].header".to_string(), spot("7")),
                (
                    "$.releases[0].mirror".to_string(),
                    spot("{\"version\": \"v2\"}")
                ),
            ]
        );
        let text = r#"{"releases": [{"name": "r", "subsets": [{"name": "s", "version": "v1", "weight": -1}], "key": [{"header": "x-u"}]}]}"#;
        assert_eq!(
            placed(text),
            [(
                "$.releases[0].subsets[0].weight".to_string(),
                text.find("-1")
            )]
        );
        let text = r#"{"releases": [], "releases": [1], "releases": [2]}"#;
        assert_eq!(
            placed(text),
            [
                ("$.releases".to_string(), text.find("[1]")),
                ("$.releases".to_string(), text.find("[2]")),
            ]
        );
        assert_eq!(placed(" \n "), [("$".to_string(), Some(3))]);
        assert_eq!(placed("{\"releases\": ["), [("$".to_string(), None)]);
        assert_eq!(placed(" [1]"), [("$".to_string(), Some(1))]);
    }
}
