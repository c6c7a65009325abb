//! Policy bytes (operator input) to a `Policy`.
//!
//! Rejected: at least one problem, each located by a JSON path, and no problem at a secret's
//! path (`override.token`, `stickyCookie.secret` and `.previousSecret`) carries or quotes the
//! value written there.
//! Accepted: a well-formed policy (`invariants::check_policy`); serde_json's re-serialization of
//! the same JSON, compact and pretty (keys re-ordered, numbers re-written), is accepted too and
//! reads back to the same policy (the same `Debug` text: every part of a `Policy` prints
//! deterministically, allowlists included, since their hasher has no random keys and the
//! same ids go in in the same order) and decides a set of requests the same way.

use dial::core::decide::{decide, Context, Decision};
use dial::core::exchange::Engine;
use dial::core::policy::{KeySource, Policy, Segment};
use dial::core::request::HeaderList;
use dial::core::rules::{Condition, Matcher};
use dial::core::scope::HostPattern;
use serde_json::Value;

use super::invariants::{check_decision, check_policy};

/// Where a policy holds a secret: `override.token`, `stickyCookie.secret` and `.previousSecret`.
fn is_secret(path: &[Segment]) -> bool {
    let keys = |a: &str, b: &str| matches!(path, [.., Segment::Key(x), Segment::Key(y)] if x == a && y == b);
    keys("override", "token")
        || keys("stickyCookie", "secret")
        || keys("stickyCookie", "previousSecret")
}

pub fn check(data: &[u8]) {
    let policy = match Policy::parse(data) {
        Ok(p) => p,
        Err(e) => return check_rejection(data, &e),
    };
    check_policy(&policy);
    let requests = requests_for(&policy);
    let decisions = decide_all(&policy, &requests);

    let tree: Value = serde_json::from_slice(data).expect("an accepted policy is JSON");
    let compact = serde_json::to_vec(&tree).expect("serializes");
    let pretty = serde_json::to_vec_pretty(&tree).expect("serializes");
    for text in [compact, pretty] {
        let again = match Policy::parse(&text) {
            Ok(p) => p,
            Err(e) => panic!(
                "accepted, but not after a serde_json round trip: {e}\n{}",
                String::from_utf8_lossy(&text)
            ),
        };
        assert_eq!(
            format!("{policy:?}"),
            format!("{again:?}"),
            "re-read differently"
        );
        assert_eq!(decide_all(&again, &requests), decisions);
    }

    // The stats catalog and the lifecycle for the accepted policy.
    let engine = Engine::new(policy);
    for (request, context) in requests.iter().zip(contexts()) {
        let d = decide(&engine.policy, &context, request);
        super::invariants::check_exchange(&engine, &context, request, &d);
    }
}

fn check_rejection(data: &[u8], e: &dial::core::policy::PolicyError) {
    assert!(!e.problems.is_empty(), "rejected without a problem");
    let text = e.to_string();
    assert!(text.starts_with("policy rejected ("));
    // Secrets: where the document is JSON, the strings written at a secret's path.
    let Ok(tree) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for p in &e.problems {
        if !is_secret(p.path.segments()) {
            continue;
        }
        let Some(written) = lookup(&tree, p.path.segments()) else {
            continue;
        };
        if !written.is_string() && !super::invariants::HIDE_SECRETS_OF_ANY_TYPE {
            continue;
        }
        assert_eq!(p.value, None, "{}: the problem carries the secret", p.path);
        let Value::String(secret) = written else {
            continue;
        };
        if secret.chars().count() < 6 || !p.message.contains(secret.as_str()) {
            continue;
        }
        // The message has the secret's text: a leak, or words of its own (or of the document)
        // that the secret happens to spell? The same document with other secrets of the same
        // shape tells: a leak shows each of them.
        let Ok(old) = serde_json::to_vec(secret) else {
            continue;
        };
        if !contains(data, &old) {
            continue;
        }
        let mut shown = true;
        let mut other = secret.clone();
        for _ in 0..2 {
            other = other.chars().map(rotate).collect();
            let Ok(new) = serde_json::to_vec(&other) else {
                continue;
            };
            shown &= other != *secret
                && Policy::parse(&replace(data, &old, &new)).is_err_and(|again| {
                    again
                        .problems
                        .iter()
                        .any(|q| q.path == p.path && q.message.contains(other.as_str()))
                });
        }
        assert!(
            !shown,
            "{}: the message quotes the secret: {}",
            p.path, p.message
        );
    }
}

/// Another character of the same class (so a secret's validity does not change).
fn rotate(c: char) -> char {
    match c {
        'a'..='y' | 'A'..='Y' | '0'..='8' => char::from(c as u8 + 1),
        'z' => 'a',
        'Z' => 'A',
        '9' => '0',
        other => other,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace(data: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(old) {
            out.extend_from_slice(new);
            i += old.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

fn lookup<'v>(tree: &'v Value, path: &[Segment]) -> Option<&'v Value> {
    path.iter().try_fold(tree, |v, s| match s {
        Segment::Key(k) => v.get(k),
        Segment::Index(i) => v.get(i),
    })
}

/// Times that matter to a ramp: unknown, long before, during and long after any 2020s ramp.
fn contexts() -> impl Iterator<Item = Context> {
    [
        Context::default(),
        Context::at(1_000_000_000),
        Context::at(1_796_115_600_000_000_000), // 2026-12-01T09:00:00Z
        Context {
            now_nanos: Some(1_796_120_000_000_000_000),
            tripped: u64::MAX,
        },
        Context::at(4_000_000_000_000_000_000),
    ]
    .into_iter()
    .cycle()
}

/// Requests that reach into the policy: for each release (the first few), its host and path,
/// its key sources and what its rules look for.
fn requests_for(policy: &Policy) -> Vec<HeaderList> {
    let mut out = Vec::new();
    for (i, r) in policy.releases.iter().take(4).enumerate() {
        let host = match r.scope.hosts.first() {
            Some(HostPattern::Exact(h)) => format!("{h}:8080"),
            Some(HostPattern::Suffix(s)) => format!("a{s}"),
            _ => "any.example".to_string(),
        };
        let path = r.scope.path_prefixes.first().cloned().unwrap_or_default() + "/x";
        let base = vec![
            (":authority".to_string(), host.into_bytes()),
            (":path".to_string(), path.into_bytes()),
            (":method".to_string(), b"GET".to_vec()),
        ];
        out.push(HeaderList {
            entropy: 7 + i as u64,
            ..HeaderList::new(base.clone())
        });
        let mut keyed = base.clone();
        let mut cookies = Vec::new();
        for k in &r.key {
            match k {
                KeySource::Header(h) => keyed.push((h.clone(), b"alice".to_vec())),
                KeySource::Cookie(c) => cookies.push(format!("{c}=bob")),
                KeySource::Baggage(m) => {
                    keyed.push(("baggage".to_string(), format!("{m}=carol").into_bytes()))
                }
            }
        }
        let mut ruled = base.clone();
        for rule in &r.rules {
            let (name, m) = match &rule.condition {
                Condition::Header { name, matcher } => (name, matcher),
                Condition::Cookie { name, matcher } => {
                    if let Some(v) = matched(matcher) {
                        cookies.push(format!("{name}={}", String::from_utf8_lossy(&v)));
                    }
                    continue;
                }
                Condition::Users(_) => continue,
            };
            if let Some(v) = matched(m) {
                ruled.push((name.clone(), v));
            }
        }
        if !cookies.is_empty() {
            keyed.push(("cookie".to_string(), cookies.join("; ").into_bytes()));
        }
        if let Some(o) = &r.override_ {
            let first = r.subsets.last().map(|s| s.name.clone()).unwrap_or_default();
            ruled.push((o.header.clone(), first.into_bytes()));
        }
        out.push(HeaderList {
            entropy: 11,
            ..HeaderList::new(keyed)
        });
        out.push(HeaderList {
            entropy: u64::MAX,
            source_ip: Some([10, 1, 2, 3].into()),
            ..HeaderList::new(ruled)
        });
    }
    out
}

/// A value the matcher takes.
fn matched(m: &Matcher) -> Option<Vec<u8>> {
    match m {
        Matcher::Equals(v) | Matcher::Prefix(v) => Some(v.clone()),
        Matcher::Present => Some(b"1".to_vec()),
        Matcher::OneOf(vs) => vs.last().cloned(),
    }
}

fn decide_all(policy: &Policy, requests: &[HeaderList]) -> Vec<Decision> {
    requests
        .iter()
        .zip(contexts())
        .map(|(r, context)| {
            let d = decide(policy, &context, r);
            check_decision(policy, &context, r, &d);
            d
        })
        .collect()
}
