//! docs/policy.md documents every field the policy parser accepts, and no other: the fields are
//! not listed anywhere a test can read, so they are found the way a user would, by asking the
//! parser. Its readers read every field of an object and report any other as "unknown field
//! `x`, expected one of `a`, `b`, ..." (src/core/policy/reader.rs): a probe object `{"zzz": 0}`
//! at each path names the fields there, and the type error for it names a leaf's type. A field
//! added to a reader is therefore found here without anyone listing it.
//!
//! In docs/policy.md, a table whose first column is headed `Field` documents fields by a path
//! suffix (`subsets[].name`, `fleet.cluster`, or the whole `releases[].name`) that must name
//! exactly one accepted field; a table headed `<Type> field` (`Matcher field`, `Secret field`)
//! documents the fields of every field whose Type cell is that type.

use std::collections::BTreeMap;

use dial::core::policy::Policy;
use serde_json::{json, Value};

use super::checks::{Docs, Problem};

pub const PAGE: &str = "docs/policy.md";

/// A field the parser accepts: its path (`releases[].subsets[].weight`: `[]` after a list) and
/// its type as the docs write it: string, integer, number, bool, object, array, array of string,
/// secret (a string or `{"fromEnv": ...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub path: String,
    pub ty: String,
}

#[derive(Clone)]
enum Seg {
    Key(String),
    Item,
}

/// The policy with `value` at `at` (every other field left out), and what the parser says about
/// it: (JSON path, message) of each problem.
fn probe(at: &[Seg], value: Value) -> Vec<(String, String)> {
    let mut doc = value;
    for seg in at.iter().rev() {
        doc = match seg {
            Seg::Key(k) => json!({ k.as_str(): doc }),
            Seg::Item => json!([doc]),
        };
    }
    match Policy::parse(doc.to_string().as_bytes()) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .iter()
            .map(|p| (p.path.to_string(), p.message.clone()))
            .collect(),
    }
}

fn json_path(at: &[Seg]) -> String {
    let mut s = "$".to_string();
    for seg in at {
        match seg {
            Seg::Key(k) => s.push_str(&format!(".{k}")),
            Seg::Item => s.push_str("[0]"),
        }
    }
    s
}

fn doc_path(at: &[Seg]) -> String {
    let mut s = String::new();
    for seg in at {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Item => s.push_str("[]"),
        }
    }
    s
}

/// The fields named by an unknown-field message at `at`, if the value there was read as an
/// object.
fn fields_at(at: &[Seg]) -> Option<Vec<String>> {
    let unknown = format!("{}.zzz", json_path(at));
    probe(at, json!({ "zzz": 0 }))
        .into_iter()
        .find(|(p, m)| *p == unknown && m.starts_with("unknown field `zzz`"))
        .map(|(_, m)| {
            let expected = m.split_once("expected").map_or("", |(_, e)| e);
            expected
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
}

/// What the parser expected at `at`, given an object: "a string", "a list", ...
fn expected_at(at: &[Seg]) -> String {
    let here = json_path(at);
    let problems = probe(at, json!({ "zzz": 0 }));
    problems
        .iter()
        .find(|(p, _)| *p == here)
        .and_then(|(_, m)| m.split_once(", expected ").map(|(_, e)| e.to_string()))
        .unwrap_or_else(|| panic!("no type error at {here} for an object: {problems:?}"))
}

fn leaf_type(expected: &str, at: &[Seg]) -> &'static str {
    match expected {
        "a string" => "string",
        "an integer" => "integer",
        "a number" => "number",
        "true or false" => "bool",
        other => panic!("{}: the parser expects {other:?}, a type this check does not know: teach it (tests/docs/policy_fields.rs)", json_path(at)),
    }
}

/// Every field the parser accepts, found by probing it.
pub fn accepted() -> Vec<Accepted> {
    let mut out = Vec::new();
    let root = fields_at(&[]).expect("the policy's own fields, from an unknown-field message");
    for name in root {
        explore(vec![Seg::Key(name)], &mut out);
    }
    out
}

fn explore(at: Vec<Seg>, out: &mut Vec<Accepted>) {
    let path = doc_path(&at);
    if let Some(fields) = fields_at(&at) {
        // An object, or a secret (which is a string too): a secret's type error says so.
        let secret = probe(&at, json!(true))
            .iter()
            .any(|(p, m)| *p == json_path(&at) && m.contains("a secret must be"));
        out.push(Accepted {
            path,
            ty: if secret { "secret" } else { "object" }.into(),
        });
        for f in fields {
            let mut next = at.clone();
            next.push(Seg::Key(f));
            explore(next, out);
        }
        return;
    }
    let expected = expected_at(&at);
    if expected != "a list" {
        out.push(Accepted {
            path,
            ty: leaf_type(&expected, &at).into(),
        });
        return;
    }
    let mut item = at.clone();
    item.push(Seg::Item);
    if let Some(fields) = fields_at(&item) {
        out.push(Accepted {
            path,
            ty: "array".into(),
        });
        for f in fields {
            let mut next = item.clone();
            next.push(Seg::Key(f));
            explore(next, out);
        }
    } else {
        let ty = leaf_type(&expected_at(&item), &item);
        out.push(Accepted {
            path,
            ty: format!("array of {ty}"),
        });
    }
}

/// One documented field: the table row it is on and what it names.
struct Documented {
    line: usize,
    /// The path as written (`stickyCookie.name`), or `<type>.<field>` for a type's table.
    written: String,
    ty: Option<String>,
    /// The accepted paths it names.
    names: Vec<String>,
}

fn segments(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// The accepted paths whose last segments are `suffix`'s.
fn by_suffix<'a>(accepted: &'a [Accepted], suffix: &str) -> Vec<&'a Accepted> {
    let want = segments(suffix);
    accepted
        .iter()
        .filter(|a| segments(&a.path).ends_with(&want))
        .collect()
}

fn compatible(documented: &str, accepted: &str, type_tables: &[String]) -> bool {
    documented == accepted || (accepted == "object" && type_tables.iter().any(|t| t == documented))
}

/// The fields of docs/policy.md's tables against the parser's: each accepted one documented
/// (with its type), each documented one accepted.
pub fn check(docs: &Docs, accepted: &[Accepted]) -> Vec<Problem> {
    let problem = |line: usize, message: String| Problem {
        file: PAGE.to_string(),
        line,
        message,
    };
    let Some(page) = docs.page(PAGE) else {
        return vec![problem(
            1,
            "missing: it documents every policy field".into(),
        )];
    };
    let mut problems = Vec::new();
    // Types with a table of their own ("Matcher field": "matcher").
    let type_tables: Vec<String> = page
        .tables
        .iter()
        .filter_map(|t| {
            let head = t.header.first()?.text.trim().to_lowercase();
            let ty = head.strip_suffix(" field")?;
            Some(ty.to_string())
        })
        .collect();
    let mut documented: Vec<Documented> = Vec::new();
    // Rows of `Field` tables first: a type's table is read against their Type cells.
    let field_tables = page.tables.iter().filter(|t| {
        t.header
            .first()
            .is_some_and(|c| c.text.trim().eq_ignore_ascii_case("field"))
    });
    for t in field_tables {
        let ty_col = t.column("type");
        for (line, cells) in &t.rows {
            let Some(written) = cells.first().and_then(|c| c.code.first()) else {
                continue; // A row about a kind of value (*secret*), not a field.
            };
            let ty = ty_col
                .and_then(|i| cells.get(i))
                .map(|c| c.text.trim().to_lowercase());
            let found = by_suffix(accepted, written);
            if found.is_empty() {
                problems.push(problem(
                    *line,
                    format!("`{written}`: the policy parser accepts no such field"),
                ));
                continue;
            }
            if found.len() > 1 {
                problems.push(problem(
                    *line,
                    format!(
                        "`{written}` could be {}: write more of its path",
                        found
                            .iter()
                            .map(|a| format!("`{}`", a.path))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            }
            let a = found[0];
            if let Some(ty) = &ty {
                if !compatible(ty, &a.ty, &type_tables) {
                    problems.push(problem(
                        *line,
                        format!(
                            "`{written}` is documented as {ty}; the parser reads {}",
                            a.ty
                        ),
                    ));
                }
            }
            documented.push(Documented {
                line: *line,
                written: written.clone(),
                ty,
                names: vec![a.path.clone()],
            });
        }
    }
    for t in &page.tables {
        let Some(head) = t.header.first().map(|c| c.text.trim().to_lowercase()) else {
            continue;
        };
        let Some(of_type) = head.strip_suffix(" field") else {
            continue;
        };
        let holders: Vec<String> = documented
            .iter()
            .filter(|d| d.ty.as_deref() == Some(of_type))
            .flat_map(|d| d.names.clone())
            .collect();
        if holders.is_empty() {
            problems.push(problem(
                t.line,
                format!("a table of {of_type} fields, but no field's Type is {of_type}"),
            ));
        }
        for (line, cells) in &t.rows {
            let Some(written) = cells.first().and_then(|c| c.code.first()) else {
                continue;
            };
            let mut names = Vec::new();
            for holder in &holders {
                let path = format!("{holder}.{written}");
                if accepted.iter().any(|a| a.path == path) {
                    names.push(path);
                } else {
                    problems.push(problem(
                        *line,
                        format!("`{written}`: the policy parser accepts no field `{path}`"),
                    ));
                }
            }
            documented.push(Documented {
                line: *line,
                written: format!("{of_type}.{written}"),
                ty: None,
                names,
            });
        }
    }
    // A field without a row is reported at the first table of fields.
    let first_table = page
        .tables
        .iter()
        .find(|t| {
            t.header
                .first()
                .is_some_and(|c| c.text.trim().eq_ignore_ascii_case("field"))
        })
        .map_or(1, |t| t.line);
    let mut seen: BTreeMap<&str, &Documented> = BTreeMap::new();
    for d in &documented {
        for n in &d.names {
            if let Some(first) = seen.insert(n, d) {
                problems.push(problem(
                    d.line,
                    format!(
                        "`{}` is documented twice (as `{}` on line {} too)",
                        n, first.written, first.line
                    ),
                ));
            }
        }
    }
    for a in accepted {
        if !seen.contains_key(a.path.as_str()) {
            problems.push(problem(
                first_table,
                format!(
                    "`{}` ({}) is accepted by the policy parser but has no row in a table of fields",
                    a.path, a.ty
                ),
            ));
        }
    }
    problems
}
