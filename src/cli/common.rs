//! What the commands share: exit codes and failures, loading the one policy a command works on,
//! `--at`, problem lines, and the synthetic requests that carry a user key to a release.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use dial::core::exchange::Engine;
use dial::core::policy::{KeySource, Policy, Problem, Release};
use dial::core::request::{HeaderList, RequestView};
use dial::core::scope::HostPattern;
use dial::core::time::{parse_duration, parse_instant};
use serde_json::Value;

use crate::find::{self, Found, Issue, Origin};

/// Everything went well (and, for `validate`, nothing is wrong).
pub const OK: u8 = 0;
/// Problems found: a rejected policy, or users moved back under `--fail-on-move-back`.
pub const PROBLEMS: u8 = 1;
/// A usage error, or input that cannot be read.
pub const USAGE: u8 = 2;

/// Why a command stopped, and its exit code. The message says what to do.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: USAGE,
            message: message.into(),
        }
    }

    pub fn problems(message: impl Into<String>) -> Failure {
        Failure {
            code: PROBLEMS,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Outcome = Result<u8, Failure>;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The arguments `explain`, `simulate` and `diff` share: which policy in a file, at what moment,
/// printed how. A command words `--at` and `-o` for itself (`mut_arg` on its own `Args`).
#[derive(Debug, clap::Args)]
pub struct SharedArgs {
    /// The moment (a ramp's step depends on it): RFC 3339, `now`, or +DURATION
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Which policy, when the file holds several: its number or a part of its name
    #[arg(long, value_name = "N|NAME")]
    pub policy: Option<String>,
    /// `json`: the result as one object, for tools
    #[arg(long, short, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

impl SharedArgs {
    /// The policy `--policy` picks in `file`.
    pub fn load(&self, file: &str) -> Result<Loaded, Failure> {
        load_one(file, self.policy.as_deref())
    }

    /// The moment `--at` names, in nanoseconds since the epoch.
    pub fn at(&self) -> Result<u64, Failure> {
        parse_at(self.at.as_deref())
    }
}

/// `file:line:column: [what held it (document N): ]<path>: <message>`: the filter's own line
/// (`Problem`'s display, as Envoy logs it), placed in the file.
pub fn problem_line(found: &Found, problem: &Problem) -> String {
    let at = found.position(problem);
    format!(
        "{}:{}:{}: {}{problem}",
        found.file,
        at.line,
        at.column,
        holder(&found.origin, found.document)
    )
}

/// `WasmPlugin shop/dial (document 2): `, or nothing for a policy file.
pub fn holder(origin: &Origin, document: Option<usize>) -> String {
    match (origin, document) {
        (Origin::File, None) => String::new(),
        (origin, None) => format!("{origin}: "),
        (origin, Some(d)) => format!("{origin} (document {d}): "),
    }
}

/// A problem with a file itself, placed like a policy's problems.
pub fn issue_line(issue: &Issue) -> String {
    let mut line = issue.file.clone();
    if let Some(at) = issue.at {
        line.push_str(&format!(":{}:{}", at.line, at.column));
    }
    line.push_str(": ");
    match (&issue.origin, issue.document) {
        (Some(o), Some(d)) => line.push_str(&format!("{o} (document {d}): ")),
        (Some(o), None) => line.push_str(&format!("{o}: ")),
        (None, Some(d)) => line.push_str(&format!("document {d}: ")),
        (None, None) => {}
    }
    line.push_str(&issue.message);
    line
}

/// The one policy a command works on, valid.
pub struct Loaded {
    pub file: String,
    pub label: String,
    pub origin: Origin,
    pub engine: Engine,
}

impl Loaded {
    /// Where the policy came from, for JSON output.
    pub fn source_json(&self) -> Value {
        serde_json::json!({ "file": self.file, "source": self.origin.to_string() })
    }
}

/// Finds the policy in `file` (`select` picks one when the file holds several: its number, or
/// a part of its name). A rejected policy's problems go to standard error.
pub fn load_one(file: &str, select: Option<&str>) -> Result<Loaded, Failure> {
    let scan = find::scan(&[file.to_string()]);
    if let Some(issue) = scan.issues.iter().find(|i| i.is_unreadable()) {
        return Err(Failure::usage(issue_line(issue)));
    }
    if let Some(issue) = scan.issues.first() {
        return Err(Failure::problems(issue_line(issue)));
    }
    let mut found = scan.found;
    let index = match (select, found.len()) {
        (_, 0) => return Err(Failure::problems(format!("{file}: no Dial policy found"))),
        (None, 1) => 0,
        (None, n) => {
            return Err(Failure::usage(format!(
            "{file} holds {n} Dial policies; pick one with --policy N (or a part of its name):\n{}",
            list(&found)
        )))
        }
        (Some(s), _) => match s.parse::<usize>() {
            Ok(n) if (1..=found.len()).contains(&n) => n - 1,
            Ok(n) => {
                return Err(Failure::usage(format!(
                    "--policy {n}: {file} holds {} Dial policies:\n{}",
                    found.len(),
                    list(&found)
                )))
            }
            Err(_) => {
                let matching: Vec<usize> = found
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.label().contains(s))
                    .map(|(i, _)| i)
                    .collect();
                match matching.as_slice() {
                    [one] => *one,
                    _ => {
                        return Err(Failure::usage(format!(
                        "--policy {s}: {} of the policies in {file} match; give its number:\n{}",
                        matching.len(),
                        list(&found)
                    )))
                    }
                }
            }
        },
    };
    let found = found.swap_remove(index);
    let label = found.label();
    match found.outcome {
        Ok(policy) => Ok(Loaded {
            file: found.file,
            label,
            origin: found.origin,
            engine: Engine::new(policy),
        }),
        Err(ref e) => {
            for p in &e.problems {
                eprintln!("{}", problem_line(&found, p));
            }
            Err(Failure::problems(format!(
                "{label}: the policy is rejected ({} problem{}, above): Envoy would refuse it; fix it first (`dial validate {file}` checks it)",
                e.problems.len(),
                if e.problems.len() == 1 { "" } else { "s" }
            )))
        }
    }
}

fn list(found: &[Found]) -> String {
    found
        .iter()
        .enumerate()
        .map(|(i, f)| format!("  {}  {}", i + 1, f.label()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `--at`: an RFC 3339 time, `now` (the default), or `+DURATION` / `-DURATION` from now.
pub fn parse_at(at: Option<&str>) -> Result<u64, Failure> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        // Whole seconds: output that reads well, and the same answer within a second.
        .map(|d| d.as_secs().saturating_mul(1_000_000_000))
        .map_err(|_| Failure::usage("the system clock is before 1970: give --at"))?;
    let Some(at) = at else { return Ok(now) };
    let parsed = match at {
        "now" => Some(now),
        _ if at.starts_with('+') => at
            .get(1..)
            .and_then(parse_duration)
            .map(|d| now.saturating_add(d)),
        _ if at.starts_with('-') => at
            .get(1..)
            .and_then(parse_duration)
            .map(|d| now.saturating_sub(d)),
        _ => parse_instant(at),
    };
    parsed.ok_or_else(|| {
        Failure::usage(format!(
            "--at {at}: not a time; give an RFC 3339 time with an offset (2026-12-01T09:00:00Z), `now`, or a duration from now (+90m, -1d)"
        ))
    })
}

/// Release indices by name, for `--tripped`, as the context's bit set.
pub fn tripped_bits(policy: &Policy, names: &[String]) -> Result<u64, Failure> {
    let mut bits = 0u64;
    for name in names {
        let Some(i) = policy.releases.iter().position(|r| r.name == *name) else {
            return Err(Failure::usage(format!(
                "--tripped {name}: no such release (the policy's: {})",
                release_names(policy)
            )));
        };
        if policy.releases.get(i).is_some_and(|r| r.guard.is_none()) {
            return Err(Failure::usage(format!(
                "--tripped {name}: that release has no guard to trip"
            )));
        }
        bits |= 1u64 << i.min(63);
    }
    Ok(bits)
}

pub fn release_names(policy: &Policy) -> String {
    policy
        .releases
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The release named `name`, or every release.
pub fn pick_releases(policy: &Policy, name: Option<&str>) -> Result<Vec<usize>, Failure> {
    match name {
        None => Ok((0..policy.releases.len()).collect()),
        Some(n) => policy
            .releases
            .iter()
            .position(|r| r.name == n)
            .map(|i| vec![i])
            .ok_or_else(|| {
                Failure::usage(format!(
                    "--release {n}: no such release (the policy's: {})",
                    release_names(policy)
                ))
            }),
    }
}

/// A request in a release's scope, with a slot for the user key in the release's first key
/// source; reused for every key.
#[derive(Clone)]
pub struct Probe {
    pub request: HeaderList,
    /// The pair that carries the key, and the bytes before the key in its value.
    slot: Option<(usize, usize)>,
}

impl Probe {
    pub fn new(release: &Release) -> Result<Probe, Failure> {
        let mut pairs: Vec<(String, Vec<u8>)> = vec![
            (":authority".into(), in_scope_host(release).into_bytes()),
            (
                ":path".into(),
                release
                    .scope
                    .path_prefixes
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "/".into())
                    .into_bytes(),
            ),
            (":method".into(), b"GET".to_vec()),
        ];
        // The first source this tool can write: earlier ones stay absent, as in a request
        // that only carries this one.
        let slot = match release.key.iter().find_map(slot_for) {
            Some((name, prefix)) => {
                let len = prefix.len();
                pairs.push((name, prefix));
                Some((pairs.len() - 1, len))
            }
            None if release.key.is_empty() => None,
            None => {
                return Err(Failure::usage(format!(
                    "release {} reads its key from {}, which this tool cannot simulate yet",
                    release.name,
                    key_sources(release)
                )))
            }
        };
        let request = HeaderList::new(pairs);
        // The core judges the request written for the scope: one it would not take fails here,
        // not as users that silently pass.
        if !release.scope.matches(request.host(), request.path()) {
            return Err(Failure::usage(format!(
                "release {}: this tool cannot write a request its match accepts",
                release.name
            )));
        }
        Ok(Probe { request, slot })
    }

    /// Puts `key` in the key source (or, for a release without one, makes it the entropy an
    /// anonymous visitor's sticky key is minted from).
    pub fn set_key(&mut self, key: &[u8]) {
        match self.slot {
            Some((pair, prefix)) => {
                if let Some((_, value)) = self.request.pairs.get_mut(pair) {
                    value.truncate(prefix);
                    value.extend_from_slice(key);
                }
            }
            None => {
                let high = dial::core::bucket::position(b"dial-cli", key);
                let low = dial::core::bucket::position(b"dial-cli-low", key);
                self.request.entropy = (u64::from(high) << 32) | u64::from(low);
            }
        }
    }

    /// Whether keys go in a key source (`false`: the release has none; keys seed minted keys).
    pub fn keyed(&self) -> bool {
        self.slot.is_some()
    }
}

/// The request header that carries a key source's key, and what precedes the key in its
/// value; `None` for a kind of source this tool cannot write yet.
pub fn slot_for(source: &KeySource) -> Option<(String, Vec<u8>)> {
    #[allow(unreachable_patterns)]
    match source {
        KeySource::Header(h) => Some((h.clone(), Vec::new())),
        KeySource::Cookie(c) => Some(("cookie".to_string(), format!("{c}=").into_bytes())),
        _ => None,
    }
}

/// A host the release's scope accepts.
pub fn in_scope_host(release: &Release) -> String {
    match release.scope.hosts.first() {
        Some(HostPattern::Exact(h)) => h.clone(),
        Some(HostPattern::Suffix(s)) => format!("www{s}"),
        Some(HostPattern::Any) | None => "dial.invalid".into(),
    }
}

/// `header x-user-id`, `cookie uid`.
pub fn key_source(source: &KeySource) -> String {
    #[allow(unreachable_patterns)]
    match source {
        KeySource::Header(h) => format!("header {h}"),
        KeySource::Cookie(c) => format!("cookie {c}"),
        other => format!("{other:?}")
            .to_ascii_lowercase()
            .replace(['(', ')', '"'], " ")
            .trim()
            .to_string(),
    }
}

/// Where a release reads its key, for people.
pub fn key_sources(release: &Release) -> String {
    if release.key.is_empty() {
        return "no key source (whenNoKey decides)".into();
    }
    release
        .key
        .iter()
        .map(key_source)
        .collect::<Vec<_>>()
        .join(", then ")
}
