//! Dial's baggage reader against OpenTelemetry's own W3C baggage propagators (issue 19), not
//! against our reading of them: Python's (opentelemetry-api) and JS's (@opentelemetry/core),
//! installed at pinned versions by `make otel-propagators`, each given the same `baggage`
//! headers, hostile ones included, through tests/otel/baggage.py and tests/otel/baggage.mjs.
//! For every case, the key Dial's core reads (`decide::read_key_source`, an empty value being no
//! key) must be the value an application would get from the propagators for that member name,
//! as UTF-8: what an app-side flag SDK hashes. Where the two propagators disagree, the case says
//! whose answer Dial gives, or the answer it gives instead, naming its row of docs/flags.md's table
//! ("Keys from baggage"); a disagreement no case declares fails, and so does a declared one
//! that is not (stale).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dial::core::decide::read_key_source;
use dial::core::policy::KeySource;
use dial::core::request::HeaderList;
use serde_json::{json, Value};

/// Generated mixes, on top of the hand-written cases.
const MIXES: usize = 2000;

const INSTALL: &str = "run `make otel-propagators` (it installs both at the pinned versions)";

/// Whose answer Dial gives where the propagators disagree, with the docs' row (docs/flags.md) saying why.
#[derive(Clone, Copy, Debug)]
enum Follows {
    /// Python and JS agree, and so must Dial.
    Both,
    Python(&'static str),
    Js(&'static str),
    /// Dial's own answer, where each propagator breaks a different rule that Dial keeps (so
    /// they may even agree with each other on another answer).
    Own(&'static str, Option<&'static str>),
}

struct Case {
    /// Each header's bytes.
    headers: Vec<Vec<u8>>,
    name: &'static str,
    follows: Follows,
}

fn case(headers: &[&str], name: &'static str, follows: Follows) -> Case {
    Case {
        headers: headers.iter().map(|h| latin1(h)).collect(),
        name,
        follows,
    }
}

/// A header's bytes from a string of characters up to U+00FF, one byte each (as Node's HTTP
/// server and WSGI present raw header bytes to an application, Latin-1).
fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

fn members(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{prefix}{i}=v"))
        .collect::<Vec<_>>()
        .join(",")
}

fn pad(n: usize) -> String {
    format!("p={}", "x".repeat(n - 2))
}

/// The hand-written cases: every rule of docs/flags.md's table, on both sides of each limit.
fn hostile() -> Vec<Case> {
    use Follows::*;
    const NON_UTF8: &str = "non-UTF-8";
    const BAD_ESCAPE: &str = "bad escape";
    const CHARS: &str = "characters";
    const WHITESPACE: &str = "whitespace";
    const PLUS: &str = "plus";
    const PROPERTIES: &str = "properties";
    const EMPTY: &str = "empty value";
    const HEADERS: &str = "several headers";
    const BYTES: &str = "bytes";
    const MEMBERS: &str = "members";
    let u = "user.id";
    let mut cases = vec![
        case(&["user.id=alice"], u, Both),
        case(&["tenant=acme,user.id=alice%20b%C3%A9,x=1"], u, Both),
        case(&["user.id=%41%42", "x=1"], u, Both),
        case(&["user.id=a=b"], u, Both),
        case(&["user.id=%F0%9F%98%80"], u, Both),
        case(&["user%2Eid=alice"], u, Both),
        case(&["user%2eid=alice"], u, Both),
        case(&["%75ser.id=alice"], u, Both),
        case(&["user.id=a,user.id=b"], u, Both),
        case(&["user.id=a,x=1,user.id=b,y=2"], u, Both),
        case(&["User.Id=alice"], u, Both),
        case(&[",,user.id=alice,,"], u, Both),
        case(&[" , ,user.id=alice"], u, Both),
        case(&[""], u, Both),
        case(&[], u, Both),
        case(&["user.id"], u, Both),
        case(&["user.id,tenant=x"], "tenant", Both),
        case(&["bad,user.id=alice"], u, Both),
        case(&["=alice"], u, Both),
        case(&["user.id;p=alice"], u, Both),
        case(&["user.id=%zz,tenant=x"], "tenant", Both),
        case(&["user.id=al ice,tenant=x"], "tenant", Both),
        case(&["user.id=alice,x=caf\u{e9}"], u, Both),
        case(&["x=caf\u{e9},user.id=alice"], u, Both),
        case(&["x=\"q\",user.id=alice,y=a b"], u, Both),
        case(&["user.id=alice;p=1"], "p", Both),
        // Decoding: W3C's U+FFFD for what is not UTF-8 (Python); JS's decodeURIComponent throws
        // and drops the member.
        case(&["user.id=a%FFb%FE"], u, Python(NON_UTF8)),
        case(&["user.id=%E2%82x"], u, Python(NON_UTF8)),
        case(&["user.id=%F0%9F%98"], u, Python(NON_UTF8)),
        case(&["user.id=%ED%A0%80"], u, Python(NON_UTF8)),
        case(&["user.id=%C0%AF"], u, Python(NON_UTF8)),
        case(&["user.id=%F4%90%80%80"], u, Python(NON_UTF8)),
        case(&["user.id=%80%80%C3%A9%C3"], u, Python(NON_UTF8)),
        case(&["user.id=alice,user.id=%FF"], u, Python(NON_UTF8)),
        // A `%` that starts no escape is itself (Python, and WHATWG's percent-decode); JS drops
        // the member.
        case(&["user.id=%zz"], u, Python(BAD_ESCAPE)),
        case(&["user.id=a%"], u, Python(BAD_ESCAPE)),
        case(&["user.id=%"], u, Python(BAD_ESCAPE)),
        case(&["user.id=%4"], u, Python(BAD_ESCAPE)),
        case(&["user.id=%4g"], u, Python(BAD_ESCAPE)),
        case(&["user.id=%%41"], u, Python(BAD_ESCAPE)),
        case(&["user.id=%2541"], u, Both),
        // What W3C's grammar does not allow in a member drops it (Python); JS keeps it.
        case(&["user.id=al ice"], u, Python(CHARS)),
        case(&["user.id=\"alice\""], u, Python(CHARS)),
        case(&["user.id=a\\b"], u, Python(CHARS)),
        case(&["user.id=a\u{b}"], u, Python(CHARS)),
        case(&["user.id=caf\u{e9}"], u, Python(CHARS)),
        case(&["user.id=caf\u{c3}\u{a9}"], u, Python(CHARS)),
        case(&["user.id=\u{ff}%41"], u, Python(CHARS)),
        case(&["user.id=a,user.id=b c"], u, Python(CHARS)),
        case(&["us er=alice"], "us er", Python(CHARS)),
        case(&["user(id)=alice"], "user(id)", Python(CHARS)),
        // OWS around key, value and `;` is no part of them; an encoded space is (JS); Python
        // also strips what it decoded, and keeps what follows the value (properties).
        case(&[" \t user.id \t = \t alice \t "], u, Both),
        case(&["user.id=%20alice%20"], u, Js(WHITESPACE)),
        case(&["user.id=%09alice"], u, Js(WHITESPACE)),
        case(&["%20user.id=alice"], u, Js(WHITESPACE)),
        // `+` is itself (JS); Python decodes it as a space, as forms do.
        case(&["user.id=a+b"], u, Js(PLUS)),
        case(&["user+id=alice"], "user+id", Js(PLUS)),
        // Properties are no part of the value (JS); Python keeps them in it, and drops the
        // member when one breaks the grammar.
        case(&["user.id=alice;p=1"], u, Js(PROPERTIES)),
        case(&["user.id=alice;flag;q=2"], u, Js(PROPERTIES)),
        case(&[" \t user.id \t = \t alice \t ; p"], u, Js(PROPERTIES)),
        case(&["user.id=alice;"], u, Js(PROPERTIES)),
        case(&["user.id=alice;pr op"], u, Js(PROPERTIES)),
        case(&["user.id=alice;p=\"q\""], u, Js(PROPERTIES)),
        case(&["user.id=%FF;p=1"], u, Own(PROPERTIES, Some("\u{FFFD}"))),
        // An empty value is a member (Python): the last of a name wins even when empty, and an
        // empty key is none. JS drops such members.
        case(&["user.id="], u, Both),
        case(&["user.id= "], u, Both),
        case(&["user.id=alice,user.id="], u, Python(EMPTY)),
        case(&["user.id=alice,user.id= ;p"], u, Own(EMPTY, None)),
        // Several headers are one list, in order (JS, RFC 9110); Python reads the first only.
        case(&["user.id=a", "user.id=b"], u, Js(HEADERS)),
        case(&["tenant=a", "user.id=b"], u, Js(HEADERS)),
        case(&["user.id=a", "tenant=b"], u, Both),
        case(&["user.id=a", "user.id=b c"], u, Python(CHARS)),
        case(
            &["user.id=a", "user.id=%FF"],
            u,
            Own(HEADERS, Some("\u{FFFD}")),
        ),
    ];
    let u181 = format!("{},user.id=alice", members("k", 180));
    let u180 = format!("{},user.id=alice", members("k", 179));
    let first = format!("user.id=alice,{}", members("k", 300));
    let bad_first = format!("bad,{u180}");
    let at = |n: usize| {
        format!(
            "{},{},{},user.id=alice",
            pad(4000),
            pad(4000),
            pad(n - 8016)
        )
    };
    let (fits, over) = (at(8192), at(8193));
    let after = format!("{},{},{},user.id=alice", pad(3000), pad(3000), pad(3000));
    let before = format!("user.id=alice,{},{},{}", pad(3000), pad(3000), pad(3000));
    let huge_first = format!("user.id=alice,{}", pad(100_000));
    let huge_last = format!("{},user.id=alice", pad(100_000));
    let big = format!("{},user.id=alice", pad(4097));
    let longest = format!("user.id={}", "x".repeat(4088));
    let too_long = format!("user.id={}", "x".repeat(4089));
    let split_180 = members("k", 180);
    let split_over = format!("{},{}", pad(4000), pad(4000));
    for (headers, follows) in [
        (vec![u181.clone()], Both),
        (vec![u180.clone()], Both),
        (vec![first], Both),
        // Python counts every non-empty ASCII entry; JS and Dial the members they keep.
        (vec![bad_first], Js(MEMBERS)),
        (vec![split_180, "user.id=alice".into()], Both),
        (vec![fits], Both),
        (vec![over], Both),
        (vec![after], Both),
        // Python drops all when a header is over 8,192 bytes; JS and Dial the members past them.
        (vec![before], Js(BYTES)),
        (vec![huge_first], Js(BYTES)),
        (vec![huge_last], Js(BYTES)),
        (vec![big], Both),
        (vec![longest], Both),
        (vec![too_long], Both),
        (vec![split_over, "user.id=alice".into()], Js(HEADERS)),
    ] {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        cases.push(case(&headers, "user.id", follows));
    }
    cases
}

/// Deterministic mixes of members on which both propagators agree by design (no hostile value
/// under the name asked for, no property, under the limits): order, duplicates, encoded keys,
/// OWS, and malformed neighbours, many times over.
fn mixes(n: usize) -> Vec<Case> {
    const MEMBERS: &[&str] = &[
        "user.id=alice",
        "user.id=bob",
        "user.id=%C3%A9l%C3%A8ve",
        "user.id=a%2Cb%3Bc",
        "user.id=~!#$&'*-.^_`|",
        "user%2Eid=carol",
        " user.id = dave ",
        "\tuser.id\t=\terin",
        "user.id=x%3D1",
        "tenant=acme",
        "tenant=%E2%82%AC",
        "bad",
        "=v",
        "user.id",
        "user.id;p=v",
        "x=al ice",
        "x=\"q\"",
        "x=caf\u{e9}",
        "us er=v",
        "x=%FF",
        "x=%zz",
        "x=a+b",
        "x=",
        "",
        " ",
    ];
    const SEPARATORS: &[&str] = &[",", ", ", " ,", ",\t", ",,"];
    let mut state: u64 = 0x243F_6A88_85A3_08D3;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(state >> 33).unwrap() % bound
    };
    (0..n)
        .map(|_| {
            let count = 1 + next(12);
            let mut header = String::new();
            for i in 0..count {
                if i > 0 {
                    header.push_str(SEPARATORS[next(SEPARATORS.len())]);
                }
                header.push_str(MEMBERS[next(MEMBERS.len())]);
            }
            let name = ["user.id", "tenant"][next(2)];
            Case {
                headers: vec![latin1(&header)],
                name,
                follows: Follows::Both,
            }
        })
        .collect()
}

fn dial_key(case: &Case) -> Option<Vec<u8>> {
    let request = HeaderList::new(
        case.headers
            .iter()
            .map(|h| ("baggage".to_string(), h.clone()))
            .collect(),
    );
    read_key_source(&KeySource::Baggage(case.name.into()), &request)
        .filter(|v| !v.is_empty())
        .map(|v| v.into_owned())
}

/// Runs one of the propagator scripts on every case: each answer is the value's UTF-8, or none.
fn propagator(mut command: Command, what: &str, input: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}): {INSTALL}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}): {}\n{INSTALL}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    answers
        .into_iter()
        .map(|a| match a {
            Value::Null => None,
            Value::String(hex) => Some(unhex(&hex)),
            other => panic!("{what} answered {other}"),
        })
        .collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The key an application would bucket: an empty value is none, as it is for Dial.
fn key(answer: Option<Vec<u8>>) -> Option<Vec<u8>> {
    answer.filter(|v| !v.is_empty())
}

fn show(key: &Option<Vec<u8>>) -> String {
    match key {
        None => "none".into(),
        Some(v) if v.len() > 40 => format!("{} bytes", v.len()),
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
    }
}

fn show_headers(headers: &[Vec<u8>]) -> String {
    let shown: Vec<String> = headers
        .iter()
        .map(|h| {
            let s: String = h.iter().map(|b| char::from(*b)).collect();
            if h.len() > 60 {
                let start: String = s.chars().take(40).collect();
                format!("{start:?}… ({} bytes)", h.len())
            } else {
                format!("{s:?}")
            }
        })
        .collect();
    shown.join(" + ")
}

fn otel_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otel")
}

#[test]
fn dial_reads_baggage_as_opentelemetry_propagators_do() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/otel/bin/python");
    let node_modules = otel_dir().join("node_modules/@opentelemetry/core");
    assert!(
        python.exists(),
        "OpenTelemetry Python is not installed ({} missing): {INSTALL}",
        python.display()
    );
    assert!(
        node_modules.exists(),
        "OpenTelemetry JS is not installed ({} missing): {INSTALL}",
        node_modules.display()
    );

    let cases: Vec<Case> = hostile().into_iter().chain(mixes(MIXES)).collect();
    let input = serde_json::to_vec(&Value::Array(
        cases
            .iter()
            .map(|c| {
                let headers: Vec<String> = c
                    .headers
                    .iter()
                    .map(|h| h.iter().map(|b| char::from(*b)).collect())
                    .collect();
                json!({ "headers": headers, "name": c.name })
            })
            .collect(),
    ))
    .unwrap();

    let mut py = Command::new(&python);
    py.arg(otel_dir().join("baggage.py"));
    let py = propagator(py, "OpenTelemetry Python (tests/otel/baggage.py)", &input);
    let mut js = Command::new("node");
    js.arg("baggage.mjs").current_dir(otel_dir());
    let js = propagator(js, "OpenTelemetry JS (tests/otel/baggage.mjs)", &input);
    assert_eq!(py.len(), cases.len(), "one Python answer per case");
    assert_eq!(js.len(), cases.len(), "one JS answer per case");

    let mut failures = Vec::new();
    let mut rows: std::collections::BTreeMap<String, usize> = Default::default();
    let (mut agreed, mut python, mut js_side, mut own, mut with_key) = (0, 0, 0, 0, 0);
    for (i, ((case, py), js)) in cases.iter().zip(py).zip(js).enumerate() {
        let (py, js, dial) = (key(py), key(js), dial_key(case));
        with_key += usize::from(dial.is_some());
        let expected = match case.follows {
            Follows::Both if py == js => {
                agreed += 1;
                py.clone()
            }
            Follows::Both => {
                failures.push(format!(
                    "case {i}, {}: Python {} and JS {} disagree, and the case does not say whose \
                     answer Dial gives (Dial {})",
                    show_headers(&case.headers),
                    show(&py),
                    show(&js),
                    show(&dial)
                ));
                continue;
            }
            Follows::Python(_) | Follows::Js(_) if py == js => {
                failures.push(format!(
                    "case {i}: declared a disagreement ({:?}), but both propagators give {}",
                    case.follows,
                    show(&py)
                ));
                continue;
            }
            Follows::Python(row) => {
                python += 1;
                *rows.entry(format!("{row}: Python's")).or_default() += 1;
                py.clone()
            }
            Follows::Js(row) => {
                js_side += 1;
                *rows.entry(format!("{row}: JS's")).or_default() += 1;
                js.clone()
            }
            Follows::Own(row, v) => {
                own += 1;
                *rows.entry(format!("{row}: its own")).or_default() += 1;
                v.map(|v| v.as_bytes().to_vec())
            }
        };
        if dial != expected {
            failures.push(format!(
                "case {i}, {} ({:?}): Dial {}, expected {} (Python {}, JS {})",
                show_headers(&case.headers),
                case.name,
                show(&dial),
                show(&expected),
                show(&py),
                show(&js)
            ));
        }
    }
    println!(
        "{} cases ({} hand-written, {} with a key): {agreed} where both propagators agree; \
         where they differ, Dial gives Python's answer in {python}, JS's in {js_side}, its own in {own}",
        cases.len(),
        hostile().len(),
        with_key
    );
    for (row, n) in &rows {
        println!("  docs/flags.md row {row} answer in {n}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
