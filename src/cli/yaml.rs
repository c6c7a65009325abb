//! YAML streams as trees that remember where each node was written, so a problem found in a
//! policy points at its line. Built from saphyr-parser's events; plain scalars are resolved
//! here, the way the program that reads the file would: Kubernetes manifests as
//! `sigs.k8s.io/yaml` does (YAML 1.1: `yes`, `on` and `off` are booleans too), everything else
//! with YAML 1.2's core schema.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

/// Where a node starts: line and column, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub at: Position,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    /// Keys in document order, each unique (a repeated key is a load error).
    Mapping(Vec<(String, Node)>),
}

#[derive(Debug, Clone)]
pub struct Scalar {
    pub text: String,
    pub style: ScalarStyle,
    /// A core-schema tag (`!!str`, `!!int`...), by its suffix.
    pub core_tag: Option<String>,
}

/// How plain scalars are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// YAML 1.2's core schema (Envoy's yaml-cpp, and most tools).
    Core,
    /// YAML 1.1 as Kubernetes reads manifests (`sigs.k8s.io/yaml`, go-yaml v2).
    Kubernetes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub at: Position,
    pub message: String,
}

/// Nodes an alias may expand to, over a whole stream ("billion laughs").
const ALIAS_BUDGET: usize = 100_000;
/// Nesting deeper than this is refused rather than recursed into.
const MAX_DEPTH: usize = 256;

/// Every document of a YAML stream.
pub fn load(text: &str) -> Result<Vec<Node>, LoadError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        budget: ALIAS_BUDGET,
    };
    let mut documents = Vec::new();
    loop {
        let (event, span) = builder.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                builder.anchors.clear();
                let (event, span) = builder.next()?;
                if event == Event::DocumentEnd {
                    continue;
                }
                documents.push(builder.node(event, span, 0)?);
            }
            Event::StreamEnd => return Ok(documents),
            other => return Err(error(span, format!("unexpected {other:?}"))),
        }
    }
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    budget: usize,
}

fn position(span: Span) -> Position {
    Position {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

fn error(span: Span, message: String) -> LoadError {
    LoadError {
        at: position(span),
        message,
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), LoadError> {
        match self.parser.next_event() {
            Some(Ok(next)) => Ok(next),
            Some(Err(e)) => Err(LoadError {
                at: Position {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                message: e.info().to_string(),
            }),
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, LoadError> {
        if depth > MAX_DEPTH {
            return Err(error(
                span,
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        let at = position(span);
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let core_tag = tag.as_deref().and_then(core_suffix);
                let scalar = Scalar {
                    text: text.into_owned(),
                    style,
                    core_tag,
                };
                (
                    Node {
                        at,
                        kind: Kind::Scalar(scalar),
                    },
                    anchor,
                )
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
                (
                    Node {
                        at,
                        kind: Kind::Sequence(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(String, Node)> = Vec::new();
                loop {
                    let (event, key_span) = self.next()?;
                    if event == Event::MappingEnd {
                        break;
                    }
                    let key = self.node(event, key_span, depth + 1)?;
                    let Kind::Scalar(key) = key.kind else {
                        return Err(error(key_span, "a mapping key must be a scalar".into()));
                    };
                    let (event, value_span) = self.next()?;
                    let value = self.node(event, value_span, depth + 1)?;
                    if entries.iter().any(|(k, _)| *k == key.text) {
                        return Err(error(
                            key_span,
                            format!(
                                "key {} appears more than once in this mapping (tools differ on which copy wins)",
                                quote(&key.text)
                            ),
                        ));
                    }
                    entries.push((key.text, value));
                }
                (
                    Node {
                        at,
                        kind: Kind::Mapping(entries),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id) else {
                    return Err(error(span, "an alias to an unknown anchor".into()));
                };
                let size = node.size();
                if size > self.budget {
                    return Err(error(
                        span,
                        format!("aliases expand to more than {ALIAS_BUDGET} nodes"),
                    ));
                }
                self.budget -= size;
                let mut node = node.clone();
                node.at = at;
                return Ok(node);
            }
            other => return Err(error(span, format!("unexpected {other:?}"))),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn core_suffix(tag: &Tag) -> Option<String> {
    tag.is_yaml_core_schema().then(|| tag.suffix.clone())
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

impl Node {
    fn size(&self) -> usize {
        1 + match &self.kind {
            Kind::Scalar(_) => 0,
            Kind::Sequence(items) => items.iter().map(Node::size).sum(),
            Kind::Mapping(entries) => entries.iter().map(|(_, v)| v.size()).sum(),
        }
    }

    /// The member `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Mapping(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Item `i` of a sequence.
    pub fn item(&self, i: usize) -> Option<&Node> {
        match &self.kind {
            Kind::Sequence(items) => items.get(i),
            _ => None,
        }
    }

    /// The text of a scalar that is a string once resolved (a quoted scalar, or a plain one
    /// that is not a number, boolean or null).
    pub fn str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => match s.resolve(Schema::Core) {
                Value::String(_) => Some(s.text.as_str()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The node as JSON, scalars resolved with `schema`.
    pub fn to_json(&self, schema: Schema) -> Value {
        match &self.kind {
            Kind::Scalar(s) => s.resolve(schema),
            Kind::Sequence(items) => {
                Value::Array(items.iter().map(|n| n.to_json(schema)).collect())
            }
            Kind::Mapping(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json(schema)))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

impl Scalar {
    /// The scalar's value: quoted and block scalars are strings; plain ones are resolved.
    pub fn resolve(&self, schema: Schema) -> Value {
        let text = self.text.as_str();
        match self.core_tag.as_deref() {
            Some("str") => return Value::String(text.into()),
            Some("null") => return Value::Null,
            Some("bool") => {
                if let Some(b) = boolean(text, schema) {
                    return Value::Bool(b);
                }
            }
            Some("int") | Some("float") => {
                if let Some(n) = number(text, schema) {
                    return n;
                }
            }
            _ => {}
        }
        if self.style != ScalarStyle::Plain {
            return Value::String(text.into());
        }
        if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
            return Value::Null;
        }
        if let Some(b) = boolean(text, schema) {
            return Value::Bool(b);
        }
        number(text, schema).unwrap_or_else(|| Value::String(text.into()))
    }
}

fn boolean(text: &str, schema: Schema) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" if schema == Schema::Kubernetes => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" if schema == Schema::Kubernetes => {
            Some(false)
        }
        _ => None,
    }
}

/// A plain scalar as a number, if it is one. Integers stay exact; everything else is a double.
fn number(text: &str, schema: Schema) -> Option<Value> {
    let cleaned: String;
    let text = if schema == Schema::Kubernetes && text.contains('_') {
        cleaned = text.replace('_', "");
        cleaned.as_str()
    } else {
        text
    };
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    let radix = |prefix: &str, radix: u32| -> Option<Value> {
        let body = digits.strip_prefix(prefix)?;
        let n = i128::from_str_radix(body, radix).ok()?;
        integer(if negative { -n } else { n })
    };
    if let Some(v) = radix("0x", 16) {
        return Some(v);
    }
    match schema {
        Schema::Core => {
            if let Some(v) = radix("0o", 8) {
                return Some(v);
            }
        }
        Schema::Kubernetes => {
            if let Some(v) = radix("0b", 2) {
                return Some(v);
            }
            if digits.len() > 1
                && digits.starts_with('0')
                && digits.bytes().all(|b| b.is_ascii_digit())
            {
                return radix("0", 8);
            }
        }
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits
            .parse::<i128>()
            .ok()
            .and_then(|n| integer(if negative { -n } else { n }));
    }
    match digits {
        ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN" => {
            return Some(Value::String(text.into()));
        }
        _ => {}
    }
    // [0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)? or \.[0-9]+(...)
    let bytes = digits.as_bytes();
    let mut i = 0;
    let int_len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    i += int_len;
    let mut frac_len = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        frac_len = bytes
            .get(i..)
            .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count());
        i += frac_len;
    }
    if int_len == 0 && frac_len == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_len = bytes
            .get(i..)
            .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count());
        if exp_len == 0 {
            return None;
        }
        i += exp_len;
    }
    if i != bytes.len() {
        return None;
    }
    let f: f64 = text.parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}

fn integer(n: i128) -> Option<Value> {
    if let Ok(n) = i64::try_from(n) {
        return Some(Value::Number(n.into()));
    }
    if let Ok(n) = u64::try_from(n) {
        return Some(Value::Number(n.into()));
    }
    Number::from_f64(n as f64).map(Value::Number)
}

/// JSON as istiod hands a WasmPlugin's `pluginConfig` to the plugin: the manifest's YAML is a
/// `google.protobuf.Struct`, every number a double, rendered compact with sorted keys (protojson).
pub fn struct_json(value: &Value) -> String {
    let mut out = String::new();
    write_struct_json(value, &mut out);
    out
}

fn write_struct_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            // serde_json's map is sorted by key (no `preserve_order`), as protojson sorts.
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quote(k));
                out.push(':');
                write_struct_json(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_struct_json(v, out);
            }
            out.push(']');
        }
        Value::Number(n) => out.push_str(&double(n.as_f64().unwrap_or(0.0))),
        other => out.push_str(&other.to_string()),
    }
}

/// A double as protojson (and JavaScript) write it: no exponent between 1e-6 and 1e21, and no
/// `.0` on whole numbers, so `90` stays an integer for the policy's reader.
pub fn double(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        format!("{f}")
    } else {
        Number::from_f64(f).map_or_else(|| "null".into(), |n| n.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_aliases_expand() {
        let docs = load("a: 1\nb:\n  - &x { c: d }\n  - *x\n---\n- e\n").unwrap();
        assert_eq!(docs.len(), 2);
        let b = docs[0].get("b").unwrap();
        assert_eq!(b.at, Position { line: 3, column: 3 });
        assert_eq!(b.item(1).unwrap().get("c").unwrap().str(), Some("d"));
        assert_eq!(docs[1].item(0).unwrap().at, Position { line: 6, column: 3 });
    }

    #[test]
    fn repeated_keys_and_syntax_errors_are_located() {
        let e = load("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.at.line, 3);
        assert!(e.message.contains("\"a\" appears more than once"), "{e:?}");
        let e = load("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.at.line >= 1, "{e:?}");
    }

    #[test]
    fn scalars_resolve_per_schema() {
        let doc =
            &load("a: yes\nb: '90'\nc: 90\nd: 0.05\ne: 1.10\nf: ~\ng: 1_000\nh: 010\n").unwrap()[0];
        let k = doc.to_json(Schema::Kubernetes);
        let c = doc.to_json(Schema::Core);
        assert_eq!(k["a"], Value::Bool(true));
        assert_eq!(c["a"], Value::String("yes".into()));
        assert_eq!(c["b"], Value::String("90".into()));
        assert_eq!(c["c"], Value::from(90));
        assert_eq!(c["d"], Value::from(0.05));
        assert_eq!(c["e"], Value::from(1.1));
        assert_eq!(c["f"], Value::Null);
        assert_eq!(k["g"], Value::from(1000));
        assert_eq!(k["h"], Value::from(8));
        assert_eq!(c["h"], Value::from(10));
    }

    #[test]
    fn struct_json_is_sorted_compact_and_whole_numbers_are_integers() {
        let doc = &load("z: 1\na: { w: 90.0, r: 0.05, big: 2592000, s: x }\n").unwrap()[0];
        assert_eq!(
            struct_json(&doc.to_json(Schema::Kubernetes)),
            r#"{"a":{"big":2592000,"r":0.05,"s":"x","w":90},"z":1}"#
        );
    }
}
