//! Reads a JSON tree object by object, recording every problem with its path. An object's
//! fields are taken out as they are read, and whatever no read took is reported as an unknown
//! field: the reads are the field list, so a field cannot be accepted and then dropped.
//! A field is taken by moving its value out and naming it in `asked`, not by removing it from
//! the map: removal would link the map's rebalancing code into the module (several KB).

use serde_json::{Map, Number, Value};

use super::error::{quote, JsonPath, Problem, ProblemKind, Segment};

/// Fields that hold secrets: a problem with one never repeats its value.
const SECRET_FIELDS: [&str; 3] = ["token", "secret", "previousSecret"];

/// Collects problems while the tree is read. A reader function returns `None` after recording
/// why; the caller goes on with the siblings so that one reload shows every problem.
pub struct Reader {
    pub problems: Vec<Problem>,
}

/// An object being read: its fields, and the names asked for so far (a field whose name was
/// asked for has been taken: its value is Null in `fields`).
pub struct Object<'p> {
    fields: Map<String, Value>,
    path: &'p JsonPath,
    asked: Vec<&'static str>,
}

impl Object<'_> {
    /// Takes the field `name` out (once: a second ask finds nothing, as a removal would).
    fn take(&mut self, name: &'static str) -> Option<Value> {
        let taken = self.asked.contains(&name);
        self.asked.push(name);
        if taken {
            return None;
        }
        self.fields.get_mut(name).map(std::mem::take)
    }
}

impl Reader {
    fn fail(&mut self, path: JsonPath, kind: ProblemKind, message: impl Into<String>) {
        self.problems.push(Problem::new(path, kind, None, message));
    }

    pub fn wrong_type<T>(&mut self, v: &Value, path: &JsonPath, expected: &str) -> Option<T> {
        self.report_wrong_type(v, path, expected);
        None
    }

    // Not generic, and never inlined: one copy serves every reader (each generic reader would
    // otherwise carry its own, and the module is size-budgeted).
    #[inline(never)]
    fn report_wrong_type(&mut self, v: &Value, path: &JsonPath, expected: &str) {
        // A secret written with the wrong type is still a secret: never repeat it (it would
        // reach Envoy's log).
        if matches!(
            path.segments().last(),
            Some(Segment::Key(k)) if SECRET_FIELDS.contains(&k.as_str())
        ) {
            self.problems.push(Problem::new(
                path.clone(),
                ProblemKind::WrongType,
                None,
                format!("invalid type: a secret must be {expected}"),
            ));
            return;
        }
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
    }

    /// Reads an object with `read`, then reports every field `read` did not take as unknown.
    pub fn object<T>(
        &mut self,
        v: &mut Value,
        path: &JsonPath,
        read: impl FnOnce(&mut Reader, &mut Object) -> Option<T>,
    ) -> Option<T> {
        let mut o = self.open(v, path)?;
        let before = self.problems.len();
        let read = read(self, &mut o);
        let unknown = self.close(o, before);
        read.filter(|_| !unknown)
    }

    #[inline(never)]
    fn open<'p>(&mut self, v: &mut Value, path: &'p JsonPath) -> Option<Object<'p>> {
        let Value::Object(fields) = v else {
            return self.wrong_type(v, path, "an object");
        };
        Some(Object {
            fields: std::mem::take(fields),
            path,
            asked: Vec::new(),
        })
    }

    /// Reports the fields no read took, ahead of the problems the reads found since `before`;
    /// true if there were any.
    #[inline(never)]
    fn close(&mut self, o: Object, before: usize) -> bool {
        let path = o.path;
        // Reported ahead of what the reads found: a misspelt field is usually why another one
        // is "missing".
        let asked = &o.asked;
        let unknowns: Vec<Problem> = o
            .fields
            .into_iter()
            .filter(|(name, _)| !asked.contains(&name.as_str()))
            .map(|(name, value)| {
                Problem::new(
                    path.key(&name),
                    ProblemKind::UnknownField,
                    Some(value),
                    format!("unknown field `{name}`, expected {}", one_of(asked)),
                )
            })
            .collect();
        let unknown = !unknowns.is_empty();
        self.problems.splice(before..before, unknowns);
        unknown
    }

    pub fn required<T>(
        &mut self,
        o: &mut Object,
        name: &'static str,
        read: impl FnOnce(&mut Reader, &mut Value, &JsonPath) -> Option<T>,
    ) -> Option<T> {
        let (mut v, path) = self.field(o, name, true)?;
        read(self, &mut v, &path)
    }

    /// A field that may be left out (or written as null).
    pub fn optional<T>(
        &mut self,
        o: &mut Object,
        name: &'static str,
        read: impl FnOnce(&mut Reader, &mut Value, &JsonPath) -> Option<T>,
    ) -> Option<T> {
        let (mut v, path) = self.field(o, name, false)?;
        read(self, &mut v, &path)
    }

    /// Takes the field `name` with its path: a missing required field is recorded; a missing
    /// optional one, or one written as null, is none.
    #[inline(never)]
    fn field(
        &mut self,
        o: &mut Object,
        name: &'static str,
        required: bool,
    ) -> Option<(Value, JsonPath)> {
        match o.take(name) {
            Some(Value::Null) if !required => None,
            Some(v) => Some((v, o.path.key(name))),
            None => {
                if required {
                    self.fail(
                        o.path.clone(),
                        ProblemKind::MissingField,
                        format!("missing field `{name}`"),
                    );
                }
                None
            }
        }
    }

    pub fn list<T>(
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

pub fn string(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<String> {
    match v {
        // Taken, not copied: the tree is dropped after phase one, and a 10,000-id allowlist
        // would otherwise sit in linear memory twice (which never shrinks).
        Value::String(s) => Some(std::mem::take(s)),
        _ => r.wrong_type(v, path, "a string"),
    }
}

pub fn strings(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<Vec<String>> {
    r.list(v, path, string)
}

pub fn integer(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<i64> {
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

pub fn number(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        _ => r.wrong_type(v, path, "a number"),
    }
}

pub fn boolean(r: &mut Reader, v: &mut Value, path: &JsonPath) -> Option<bool> {
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
        r.object(&mut doc, &JsonPath::root(), |r, o| {
            r.required(o, "releases", |r, v, p| r.list(v, p, string))
        });
        let p = &r.problems[0];
        assert_eq!(p.kind, ProblemKind::UnknownField);
        assert_eq!(p.value, Some(json!([1])));
        assert_eq!(p.path, JsonPath::root().key("relases"));
    }
}
