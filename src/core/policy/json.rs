//! JSON text to a tree, refusing an object that names a key twice. serde_json's own `Value`
//! keeps the last of two equal keys without a word; in a policy, `"weight": 10, ..., "weight":
//! 90` is a mistake to report, not to guess at. Every repeated key is reported, by its path.
//! Where in the text a problem is, `places` says, away from the proxy.

#[cfg(not(target_arch = "wasm32"))]
pub mod places;

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::{At, PolicyError, Problem, ProblemKind};

/// The bytes as a JSON tree, or the problems: invalid JSON (at "$", with the line and column
/// serde_json stopped at), or every repeated key (at its path).
pub fn parse(bytes: &[u8]) -> Result<Value, PolicyError> {
    let repeated = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let tree = Node {
        at: &At::Root,
        repeated: &repeated,
    }
    .deserialize(&mut de)
    .and_then(|tree| de.end().map(|()| tree))
    .map_err(invalid_json)?;
    let problems = repeated.into_inner();
    if problems.is_empty() {
        Ok(tree)
    } else {
        Err(PolicyError { problems })
    }
}

/// `invalid JSON at line 1 column 14: EOF while parsing a list`: the location from
/// serde_json's accessors, its own description after it.
fn invalid_json(e: serde_json::Error) -> PolicyError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let located = format!(" at line {line} column {column}");
    let what = full.strip_suffix(&located).unwrap_or(&full);
    PolicyError::at_root(
        ProblemKind::InvalidJson,
        format!("invalid JSON at line {line} column {column}: {what}"),
    )
}

/// Builds one node of the tree (and, through itself, its children).
struct Node<'a> {
    at: &'a At<'a>,
    /// Keys met twice in one object. The parse goes on (serde's own errors would cost the
    /// module a string-searching error constructor) and the first value is kept.
    repeated: &'a RefCell<Vec<Problem>>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never hands out a NaN or an infinity; Null is what its own Value does.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let at = At::Index(self.at, items.len());
            let node = Node {
                at: &at,
                repeated: self.repeated,
            };
            match seq.next_element_seed(node)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = At::Key(self.at, &key);
            let value = map.next_value_seed(Node {
                at: &at,
                repeated: self.repeated,
            })?;
            if object.contains_key(&key) {
                self.repeated.borrow_mut().push(Problem::new(
                    at.path(),
                    ProblemKind::RepeatedKey,
                    None,
                    "this key appears more than once in its object",
                ));
            } else {
                object.insert(key, value);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn builds_the_same_tree_as_serde_json() {
        let text = r#"{"a": [1, -2, 3.5, 18446744073709551615, "s\u00e9", true, null, {}], "b": {"c": []}}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text.as_bytes()).unwrap(), expected);
        assert_eq!(parse(b" [] ").unwrap(), json!([]));
    }

    #[test]
    fn every_repeated_key_is_reported_by_its_path() {
        assert_eq!(
            problems(r#"{"releases": [{"name": "a"}, {"name": "b", "subsets": [], "name": "c"}]}"#),
            "policy rejected (1 problem): $.releases[1].name: this key appears more than once in its object"
        );
        assert_eq!(
            problems(r#"{"headers": {"subset": "x", "subset": "y"}, "headers": {}}"#),
            "policy rejected (2 problems): $.headers.subset: this key appears more than once in \
             its object; $.headers: this key appears more than once in its object"
        );
        // The same key in different objects is fine.
        assert!(parse(br#"{"a": {"k": 1}, "b": {"k": 2}}"#).is_ok());
    }

    #[test]
    fn invalid_json_is_located_by_line_and_column() {
        let err = parse(br#"{"releases": ["#).unwrap_err();
        assert_eq!(err.problems[0].kind, ProblemKind::InvalidJson);
        assert!(
            err.to_string()
                .starts_with("policy rejected (1 problem): $: invalid JSON at line 1 column 14: "),
            "{err}"
        );
        let err = parse(b"{}\n  x").unwrap_err();
        assert!(
            err.to_string()
                .contains("$: invalid JSON at line 2 column 3: "),
            "{err}"
        );
    }
}
