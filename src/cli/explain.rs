//! `dial explain`: which release and subset a request gets, and why: the releases tried, the
//! key and where it came from, the override, each rule, the hash position and bucket, the
//! result, the mirror, and the headers Dial sets and removes (the exchange run against a
//! recording host, so they are exactly the filter's).

use std::net::IpAddr;

use dial::core::bucket;
use dial::core::decide::{
    decide, read_key_source, Assignment, Context, Decision, KeyOrigin, Reason,
};
use dial::core::exchange::Engine;
use dial::core::lane::{Lanes, Read, Rejection};
use dial::core::policy::{Release, WhenNoKey, MAX_KEY_LEN};
use dial::core::ramp;
use dial::core::recording::{Call, RecordingHost};
use dial::core::request::{fresh_entropy, HeaderList, RequestView};
use dial::core::rules::{Condition, Matcher};
use dial::core::scope::{HostPattern, Scope};
use dial::core::secret::Secret;
use dial::core::trust::parse_override;
use serde_json::{json, Map, Value};

use crate::common::{
    key_source, load_one, parse_at, release_alone, slot_for, tripped_bits, Failure, Format, Loaded,
    Outcome, OK,
};
use crate::population::{KeyArgs, Keys};
use crate::report;

pub const EXAMPLES: &str = "\
Examples:
  dial explain tests/data/checkout.json --host shop.example.com --path /checkout -H 'x-user-id: alice'
  DIAL_CHECKOUT_OVERRIDE_TOKEN=qa-token-0123456789 \\
    dial explain envoy-config/envoy.yaml --host shop.example.com --path /checkout \\
      -H 'x-dial-override: canary; token=qa-token-0123456789' -o json
      (a secret the policy reads with fromEnv comes from dial's own environment)
  dial explain envoy-config/envoy.yaml --host shop.example.com --path /checkout \\
      -H 'cookie: uid=u-42' --at 2026-12-01T10:00:00Z
  dial explain policy.json --host shop.example.com --path /checkout --users 1000 -o json
      (one line per user: the request given, with each key in the release's key source)";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy: a policy JSON, an Envoy configuration or a WasmPlugin manifest
    #[arg(value_name = "FILE")]
    pub file: String,
    /// A request header, `name: value` (repeat it); `host: …` sets the authority
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The request's host (`:authority`)
    #[arg(long)]
    pub host: Option<String>,
    /// The request's path, query included
    #[arg(long, default_value = "/")]
    pub path: String,
    /// The request's method
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// The downstream connection's peer address (for an override's sourceCidrs)
    #[arg(long, value_name = "IP")]
    pub source_ip: Option<IpAddr>,
    /// When the request arrives (a ramp's step depends on it): RFC 3339, `now`, or +DURATION
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Take the guard of this release as tripped (repeat it)
    #[arg(long, value_name = "RELEASE")]
    pub tripped: Vec<String>,
    /// Which policy, when the file holds several: its number or a part of its name
    #[arg(long, value_name = "N|NAME")]
    pub policy: Option<String>,
    /// `json`: the explanation as one object (with --users or --keys, one object per line)
    #[arg(long, short, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Explain the request for N users (user-0 …), one line each, each key in the release's key source
    #[arg(long, value_name = "N", conflicts_with = "keys")]
    pub users: Option<u64>,
    /// Explain the request for each user key in FILE, one per line
    #[arg(long, value_name = "FILE")]
    pub keys: Option<String>,
}

pub fn run(args: &Args) -> Outcome {
    let loaded = load_one(&args.file, args.policy.as_deref())?;
    let now = parse_at(args.at.as_deref())?;
    let context = Context {
        now_nanos: Some(now),
        tripped: tripped_bits(&loaded.engine.policy, &args.tripped)?,
    };
    let request = request(args)?;
    if args.users.is_some() || args.keys.is_some() {
        let keys = KeyArgs {
            users: args.users,
            keys: args.keys.clone(),
            quiet: true,
        }
        .keys()?;
        return many(args, &loaded, &context, request, &keys);
    }
    let explanation = explain(&loaded, &context, &request)?;
    match args.output {
        Format::Json => {
            let mut json = explanation.json;
            if let Value::Object(map) = &mut json {
                map.insert(
                    "policy".into(),
                    json!({ "file": loaded.file, "source": loaded.origin.to_string() }),
                );
                map.insert("at".into(), Value::String(report::instant(now)));
            }
            println!("{json}");
        }
        Format::Text => {
            println!(
                "{:<10}{}, at {}",
                "Policy:",
                loaded.label,
                report::instant(now)
            );
            for (label, lines) in &explanation.text {
                for (i, line) in lines.iter().enumerate() {
                    let label = if i == 0 {
                        format!("{label}:")
                    } else {
                        String::new()
                    };
                    println!("{label:<10}{line}");
                }
            }
        }
    }
    Ok(OK)
}

/// The request from the arguments: pseudo-headers first, then `-H` in order.
fn request(args: &Args) -> Result<HeaderList, Failure> {
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(host) = &args.host {
        pairs.push((":authority".into(), host.as_bytes().to_vec()));
    }
    pairs.push((":path".into(), args.path.as_bytes().to_vec()));
    pairs.push((
        ":method".into(),
        args.method.to_ascii_uppercase().into_bytes(),
    ));
    for h in &args.headers {
        // `:authority: x` too: the name may itself start with a colon.
        let split = h.get(1..).and_then(|rest| rest.find(':')).map(|i| i + 1);
        let Some((name, value)) = split.and_then(|i| Some((h.get(..i)?, h.get(i + 1..)?))) else {
            return Err(Failure::usage(format!(
                "-H {h:?}: write a header as 'name: value' (e.g. -H 'x-user-id: alice')"
            )));
        };
        let mut name = name.trim().to_ascii_lowercase();
        if name == "host" {
            name = ":authority".into();
        }
        let value = value.trim().as_bytes().to_vec();
        if name.starts_with(':') {
            pairs.retain(|(n, _)| *n != name);
        }
        pairs.push((name, value));
    }
    Ok(HeaderList {
        pairs,
        source_ip: args.source_ip,
        entropy: fresh_entropy(),
    })
}

/// An explanation as labelled text lines and as JSON.
struct Explanation {
    text: Vec<(&'static str, Vec<String>)>,
    json: Value,
}

struct Builder {
    text: Vec<(&'static str, Vec<String>)>,
    json: Map<String, Value>,
}

impl Builder {
    fn line(&mut self, label: &'static str, line: String) {
        match self.text.iter_mut().find(|(l, _)| *l == label) {
            Some((_, lines)) => lines.push(line),
            None => self.text.push((label, vec![line])),
        }
    }

    fn set(&mut self, key: &str, value: Value) {
        self.json.insert(key.into(), value);
    }
}

fn text(bytes: &[u8]) -> String {
    report_quote(&String::from_utf8_lossy(bytes))
}

fn report_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

fn explain(
    loaded: &Loaded,
    context: &Context,
    request: &HeaderList,
) -> Result<Explanation, Failure> {
    let engine = &loaded.engine;
    let policy = &engine.policy;
    let mut b = Builder {
        text: Vec::new(),
        json: Map::new(),
    };

    // The request as given.
    let host = request.host();
    let path = request.path();
    let method = request.header(":method").unwrap_or(b"GET");
    let shown =
        |v: Option<&[u8]>| v.map_or("(none)".into(), |v| String::from_utf8_lossy(v).into_owned());
    b.line(
        "Request",
        format!(
            "{} {} {}",
            String::from_utf8_lossy(method),
            shown(host),
            shown(path)
        ),
    );
    for (n, v) in request.pairs.iter().filter(|(n, _)| !n.starts_with(':')) {
        b.line("Request", format!("{n}: {}", String::from_utf8_lossy(v)));
    }
    if let Some(ip) = request.source_ip {
        b.line("Request", format!("from {ip}"));
    }
    b.set(
        "request",
        json!({
            "headers": request.pairs.iter().map(|(n, v)| json!([n, String::from_utf8_lossy(v)])).collect::<Vec<_>>(),
            "source_ip": request.source_ip.map(|ip| ip.to_string()),
        }),
    );

    let decision = decide(policy, context, request);

    // The releases tried, in order, up to the first whose scope fits.
    let mut tried = Vec::new();
    for (i, r) in policy.releases.iter().enumerate() {
        let (applies, why) = scope_verdict(&r.scope, host, path);
        tried.push(json!({ "index": i, "name": r.name, "applies": applies, "why": why }));
        b.line(
            "Release",
            format!(
                "{} (releases[{i}]): {why}{}",
                r.name,
                if applies { "" } else { ": skipped" }
            ),
        );
        if applies {
            break;
        }
    }
    b.set("releases_tried", Value::Array(tried));

    let assignment = match decision {
        Decision::Pass => {
            b.line(
                "Result",
                "no release applies: the request passes untouched".into(),
            );
            b.set("release", Value::Null);
            b.set("subset", Value::Null);
            None
        }
        Decision::Assign(a) => Some(a),
    };

    if let Some(a) = &assignment {
        let release = policy
            .releases
            .get(a.release)
            .ok_or_else(|| Failure::problems("the decision names a release the policy lacks"))?;
        assigned(&mut b, loaded, context, request, release, a)?;
    }

    headers(&mut b, engine, context, request, decision);
    Ok(Explanation {
        text: b.text,
        json: Value::Object(b.json),
    })
}

fn pattern(p: &HostPattern) -> String {
    match p {
        HostPattern::Any => "*".into(),
        HostPattern::Exact(h) => h.clone(),
        HostPattern::Suffix(s) => format!("*{s}"),
    }
}

/// Whether a scope fits the request, and why, in words.
fn scope_verdict(scope: &Scope, host: Option<&[u8]>, path: Option<&[u8]>) -> (bool, String) {
    let host_scope = Scope {
        hosts: scope.hosts.clone(),
        path_prefixes: Vec::new(),
    };
    let path_scope = Scope {
        hosts: Vec::new(),
        path_prefixes: scope.path_prefixes.clone(),
    };
    let host_ok = host_scope.matches(host, None);
    let path_ok = path_scope.matches(None, path);
    let hosts = scope
        .hosts
        .iter()
        .map(pattern)
        .collect::<Vec<_>>()
        .join(", ");
    let prefixes = scope.path_prefixes.join(", ");
    let h = host.map_or("(no host)".into(), |h| {
        String::from_utf8_lossy(h).into_owned()
    });
    let p = path.map_or("(no path)".into(), |p| {
        String::from_utf8_lossy(p).into_owned()
    });
    let host_part = if scope.hosts.is_empty() {
        "any host".to_string()
    } else if host_ok {
        format!("host {h} matches {hosts}")
    } else {
        format!("host {h} is not {hosts}")
    };
    let path_part = if scope.path_prefixes.is_empty() {
        "any path".to_string()
    } else if path_ok {
        format!("path {p} starts with {prefixes}")
    } else {
        format!("path {p} does not start with {prefixes}")
    };
    (host_ok && path_ok, format!("{host_part}, {path_part}"))
}

fn subset_name(release: &Release, i: usize) -> String {
    release
        .subsets
        .get(i)
        .map_or_else(|| format!("#{i}"), |s| s.name.clone())
}

fn assigned(
    b: &mut Builder,
    loaded: &Loaded,
    context: &Context,
    request: &HeaderList,
    release: &Release,
    a: &Assignment,
) -> Result<(), Failure> {
    b.set(
        "release",
        json!({ "index": a.release, "name": release.name }),
    );

    // The key: the decision says which source gave it.
    let key_index = match a.key {
        Some(KeyOrigin::Source(i)) => Some(i),
        _ => None,
    };
    // The key's bytes as decide read them (a baggage member percent-decoded).
    let key = key_index
        .and_then(|i| release.key.get(i))
        .and_then(|s| read_key_source(s, request));
    let mut sources = Vec::new();
    for (i, source) in release.key.iter().enumerate() {
        let state = match read_key_source(source, request).as_deref() {
            Some(v) if key_index == Some(i) => format!("{}: the key", text(v)),
            None if key_index == Some(i) => "the key".to_string(),
            None => "absent".to_string(),
            Some([]) => "empty: skipped".to_string(),
            Some(v) if v.len() > MAX_KEY_LEN => {
                format!("{} bytes, over {MAX_KEY_LEN}: ignored", v.len())
            }
            Some(v) => format!("{}: not used", text(v)),
        };
        sources.push(json!({ "index": i, "source": key_source(source), "state": state }));
        b.line("Key", format!("key[{i}] {}: {state}", key_source(source)));
        if key_index == Some(i) {
            break;
        }
    }
    let sticky_name = match &release.when_no_key {
        WhenNoKey::Sticky(c) => Some(c.name.as_str()),
        WhenNoKey::Subset(_) => None,
    };
    let origin = match a.key {
        Some(KeyOrigin::Source(i)) => json!({ "from": "source", "index": i }),
        Some(KeyOrigin::StickyCookie) => {
            let name = sticky_name.unwrap_or("?");
            let value = request.cookie(name).map(text).unwrap_or_default();
            b.line(
                "Key",
                format!("no user key: the sticky cookie {name} = {value}, minted by Dial earlier"),
            );
            json!({ "from": "sticky_cookie", "cookie": name })
        }
        Some(KeyOrigin::Minted) => {
            let name = sticky_name.unwrap_or("?");
            if let WhenNoKey::Sticky(c) = &release.when_no_key {
                let signing = c.signing.as_ref();
                if let Some(var) = unresolved(signing.map(|s| &s.secret)) {
                    b.line("Key", format!("note: the cookie's secret comes from the proxy's environment variable {var}, which is not set here: no signed cookie verifies (set {var} to explain with it)"));
                }
            }
            let minted = a
                .new_sticky_key
                .map(|k| String::from_utf8_lossy(&k).into_owned());
            b.line(
                "Key",
                format!(
                    "no user key and no valid sticky cookie: Dial mints the random key {} and sets cookie {name} (another visitor gets another key)",
                    minted.clone().unwrap_or_default()
                ),
            );
            json!({ "from": "minted", "cookie": name, "key": minted })
        }
        None => {
            if release.key.is_empty() {
                b.line("Key", "the release reads no user key".into());
            } else {
                b.line("Key", "no user key".into());
            }
            Value::Null
        }
    };
    b.set(
        "key",
        json!({
            "value": key.as_deref().map(|v| String::from_utf8_lossy(v).into_owned()),
            "origin": origin,
            "sources": sources,
        }),
    );

    // The override.
    if let Some(o) = &release.override_ {
        let verdict = match request.header(&o.header) {
            None => format!("{}: absent", o.header),
            Some(value) => {
                let asked = parse_override(value);
                let subset = String::from_utf8_lossy(asked.subset).into_owned();
                if a.reason == Reason::Override {
                    format!(
                        "{}: asks for {subset}: honoured, {}",
                        o.header,
                        trusted_because(o, request, asked.token)
                    )
                } else if release.subset_index(asked.subset).is_none() {
                    format!(
                        "{}: asks for {subset}, which is not a subset: ignored",
                        o.header
                    )
                } else {
                    format!(
                        "{}: asks for {subset}: ignored, not trusted: {}",
                        o.header,
                        untrusted_because(o, request, asked.token)
                    )
                }
            }
        };
        b.line("Override", verdict.clone());
        if let Some(var) = unresolved(o.trust.token.as_ref()) {
            b.line("Override", format!("note: the token comes from the proxy's environment variable {var}, which is not set here: no token matches (set {var} to explain with it)"));
        }
        b.set("override", json!({ "header": o.header, "verdict": verdict, "honoured": a.reason == Reason::Override }));
    }

    // The lane: what a following release read, what an issuing one writes.
    if let Some(l) = &release.lanes {
        lane(b, loaded, context, request, release, a, l);
    }

    // The rules, in order, up to the first match: the decision says which matched.
    let rule_key = key.as_deref();
    let mut rules = Vec::new();
    for (i, rule) in release.rules.iter().enumerate() {
        let then = subset_name(release, rule.subset);
        let described = condition(&rule.condition, request, rule_key);
        let state = match (a.reason, a.rule) {
            (Reason::Override, _) => "not tried (the override decided)".to_string(),
            (Reason::Lane | Reason::LaneFallback, _) => "not tried (the lane decided)".to_string(),
            (_, Some(m)) if m == i => "matches".to_string(),
            (_, Some(m)) if m < i => "not tried".to_string(),
            _ => "no".to_string(),
        };
        let matched = a.rule == Some(i) && a.reason != Reason::Override;
        b.line("Rules", format!("[{i}] {described} -> {then}: {state}"));
        rules.push(json!({ "index": i, "condition": described, "subset": then, "matched": matched, "state": state }));
    }
    if release.rules.is_empty() {
        b.line("Rules", "none".into());
    }
    b.set("rules", Value::Array(rules));

    // The split.
    split(b, loaded, context, request, release, a)?;

    // The result.
    let subset = release.subsets.get(a.subset);
    let version = subset.map_or("?", |s| s.version.as_str());
    let why = match a.reason {
        Reason::HeaderRule | Reason::CookieRule | Reason::Allowlist => {
            format!("rule [{}]", a.rule.map_or("?".into(), |r| r.to_string()))
        }
        Reason::Override => "the trusted override".into(),
        Reason::Hash => "the split of the user key".into(),
        Reason::StickyCookie => "the split of the sticky key".into(),
        Reason::Fallback => "whenNoKey (no key)".into(),
        Reason::Lane => "the lane the request carries".into(),
        Reason::LaneFallback => {
            "the lane the request carries, which has no subset here: the base subset".into()
        }
        Reason::Guardrail => match &release.guard {
            Some(g) => format!(
                "the guard of {} is tripped: its users go to {}",
                subset_name(release, g.subset),
                subset_name(release, g.fallback)
            ),
            None => "the guard".into(),
        },
    };
    b.line(
        "Result",
        format!(
            "release {}, subset {}, version {version}, reason {} ({why})",
            release.name,
            subset_name(release, a.subset),
            a.reason.as_str()
        ),
    );
    b.set("subset", Value::String(subset_name(release, a.subset)));
    b.set("version", Value::String(version.into()));
    b.set("reason", Value::String(a.reason.as_str().into()));
    b.set("rule", json!(a.rule));

    // The mirror.
    let mirror = match &release.mirror {
        None => {
            b.line("Mirror", "no mirror in this release".into());
            json!({ "configured": false, "marked": false })
        }
        Some(m) => {
            let method = request.header(":method").unwrap_or_default();
            let percent = m.threshold as f64 * 100.0 / 4_294_967_296.0;
            let line = if !m.methods.iter().any(|x| x.as_bytes() == method) {
                format!(
                    "no: {} is not mirrored (methods: {})",
                    String::from_utf8_lossy(method),
                    m.methods.join(", ")
                )
            } else {
                let sample = key.as_deref().map(|k| m.sample_hash.position(k));
                let basis = match sample {
                    Some(p) => format!(
                        "the key's sampling position {p} is {} {} ({percent:.2}% of 2^32)",
                        if a.mirror { "below" } else { "not below" },
                        m.threshold
                    ),
                    None => match a.key {
                        Some(KeyOrigin::StickyCookie | KeyOrigin::Minted) => {
                            format!("sampling follows the sticky key; {percent:.2}% of keys are sampled")
                        }
                        _ => format!("no key: sampled at random, {percent:.2}% of requests"),
                    },
                };
                if a.mirror {
                    format!("yes: a copy goes to version {} ({basis})", m.version)
                } else {
                    format!("no ({basis})")
                }
            };
            b.line("Mirror", line);
            json!({ "configured": true, "marked": a.mirror, "version": m.version, "percent": percent })
        }
    };
    b.set("mirror", mirror);
    Ok(())
}

/// The variable of a secret read from the environment but not set in the CLI's.
/// The lane decision: the member a following release read (valid, expired, wrong tag, unknown
/// lane, fallback), and the member an issuing release writes.
fn lane(
    b: &mut Builder,
    loaded: &Loaded,
    context: &Context,
    request: &HeaderList,
    release: &Release,
    a: &Assignment,
    l: &Lanes,
) {
    let member = &l.member;
    let mut state = Map::new();
    state.insert("member".into(), json!(member));
    state.insert("issue".into(), json!(l.issue));
    state.insert("follow".into(), json!(l.follow));
    if l.follow {
        let (verdict, line) = match a.lane {
            Read::Absent => (
                "absent".to_string(),
                format!("no {member} member in the baggage: assigned as without a lane"),
            ),
            Read::Valid(v) => {
                let under = if v.previous {
                    "the previous secret"
                } else {
                    "the current secret"
                };
                let then = match a.reason {
                    Reason::Lane => format!("-> {} (reason lane)", subset_name(release, a.subset)),
                    Reason::LaneFallback => format!(
                        "no subset here has that lane -> the base subset {} (reason lane_fallback)",
                        subset_name(release, a.subset)
                    ),
                    other => format!("but {} decided first", other.as_str()),
                };
                (
                    "valid".to_string(),
                    format!(
                        "{member}: lane {}, issued at {} ({}), verified under {under} {then}",
                        v.lane.as_str(),
                        v.issued,
                        dial::core::time::format_instant(v.issued.saturating_mul(1_000_000_000)),
                    ),
                )
            }
            Read::Rejected(why) => {
                let because = match why {
                    Rejection::Malformed => "not v1.<lane>.<seconds>.<tag>",
                    Rejection::BadTag => "its tag verifies under neither secret (forged, changed, or another secret's)",
                    Rejection::Expired => "older than maxAge, or from the future",
                    Rejection::UnknownLane => "its lane is not in \"names\"",
                    Rejection::Conflict => "several members of that name disagree",
                    Rejection::Replaced | Rejection::BaggageFull => "",
                };
                (
                    why.as_str().to_string(),
                    format!(
                        "{member}: refused, {} ({because}): assigned as without a lane",
                        why.as_str()
                    ),
                )
            }
        };
        b.line("Lane", line);
        state.insert("read".into(), Value::String(verdict));
        if let Some(var) = unresolved(Some(&l.secret)) {
            b.line("Lane", format!("note: the lane secret comes from the proxy's environment variable {var}, which is not set here: no member verifies (set {var} to explain with it)"));
        }
    }
    if l.issue {
        let plan = loaded
            .engine
            .plan_for(request, context, Decision::Assign(*a))
            .lane;
        let line = if matches!(a.lane, Read::Valid(_)) {
            "issues nothing: the valid member the request carries goes on untouched".to_string()
        } else if plan.counted.contains(&Some(Rejection::BaggageFull)) {
            "issues nothing: the baggage is at W3C's limits (8,192 bytes, 180 members); the request is still assigned here".to_string()
        } else if let Some(lane) = plan.lane {
            format!(
                "issues lane {} (the lane of subset {}) as the baggage member {member}, replacing any the request carried",
                lane.as_str(),
                subset_name(release, a.subset)
            )
        } else {
            "issues nothing: no secret to sign with here, or no clock".to_string()
        };
        b.line("Lane", line);
        state.insert(
            "issued".into(),
            json!(plan.lane.map(|l| l.as_str().to_string())),
        );
    }
    b.set("lane", Value::Object(state));
}

fn unresolved(secret: Option<&Secret>) -> Option<&str> {
    secret.filter(|s| s.value().is_none())?.variable()
}

fn trusted_because(
    o: &dial::core::policy::Override,
    request: &HeaderList,
    token: Option<&[u8]>,
) -> String {
    let t = &o.trust;
    if t.anyone {
        return "allowAnyone".into();
    }
    if token.is_some() && t.token.is_some() && t.allows(token, || None) {
        return "the token matches".into();
    }
    match request.source_ip {
        Some(ip) => format!("source {ip} is in sourceCidrs"),
        None => "trusted".into(),
    }
}

fn untrusted_because(
    o: &dial::core::policy::Override,
    request: &HeaderList,
    token: Option<&[u8]>,
) -> String {
    let t = &o.trust;
    let mut why = Vec::new();
    if t.token.is_some() {
        why.push(
            if token.is_some() {
                "the token does not match"
            } else {
                "no token"
            }
            .to_string(),
        );
    }
    if !t.source_cidrs.is_empty() {
        why.push(match request.source_ip {
            Some(ip) => format!("source {ip} is outside sourceCidrs"),
            None => "source address unknown (--source-ip gives it)".into(),
        });
    }
    if why.is_empty() {
        why.push("no way to trust it".into());
    }
    why.join(", ")
}

fn matcher(m: &Matcher) -> String {
    match m {
        Matcher::Equals(v) => format!("equals {}", text(v)),
        Matcher::Prefix(v) => format!("starts with {}", text(v)),
        Matcher::Present => "is present".into(),
        Matcher::OneOf(vs) => format!(
            "is one of {}",
            vs.iter().map(|v| text(v)).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn condition(c: &Condition, request: &HeaderList, key: Option<&[u8]>) -> String {
    let seen = |v: Option<&[u8]>| v.map_or("absent".into(), |v| format!("got {}", text(v)));
    match c {
        Condition::Header { name, matcher: m } => {
            format!(
                "header {name} {} ({})",
                matcher(m),
                seen(request.header(name))
            )
        }
        Condition::Cookie { name, matcher: m } => {
            format!(
                "cookie {name} {} ({})",
                matcher(m),
                seen(request.cookie(name))
            )
        }
        Condition::Users(users) => format!(
            "the key is in the allowlist of {} ({})",
            report::thousands(users.len() as u64),
            key.map_or("no key".into(), |k| format!("key {}", text(k)))
        ),
    }
}

/// The hash position and bucket of the key, and the subsets' intervals. When a rule or the
/// override decided, where the split alone would have put the request.
fn split(
    b: &mut Builder,
    loaded: &Loaded,
    context: &Context,
    request: &HeaderList,
    release: &Release,
    a: &Assignment,
) -> Result<(), Failure> {
    let tripped = context.is_tripped(a.release);
    let now = if tripped { None } else { context.now_nanos };
    let step = release
        .ramp
        .as_ref()
        .and_then(|r| Some((r, r.step_at(now)?)));
    if let Some((r, (k, s))) = step {
        b.line(
            "Split",
            format!(
                "ramp of {}: step {} of {} ({}% since {})",
                subset_name(release, r.subset),
                k + 1,
                r.steps.len(),
                ramp::percent(u64::from(s.share_ppm)),
                report::instant(if k == 0 {
                    r.start
                } else {
                    r.steps.get(k - 1).and_then(|p| p.until).unwrap_or(r.start)
                })
            ),
        );
    } else if let Some(r) = &release.ramp {
        let when = if tripped {
            "stopped: the guard is tripped".to_string()
        } else {
            format!("not started (starts {})", report::instant(r.start))
        };
        b.line(
            "Split",
            format!(
                "ramp of {}: {when}; the written weights apply",
                subset_name(release, r.subset)
            ),
        );
    }
    // Where the split puts (or would put) the request.
    let (position, placed, hypothetical) = match (a.reason, a.position) {
        (_, Some(p)) => (Some(p), Some(a.subset), false),
        (Reason::HeaderRule | Reason::CookieRule | Reason::Allowlist | Reason::Override, None) => {
            match split_alone(loaded, a.release, context, request)? {
                Some((subset, p)) => (Some(p), Some(subset), true),
                None => (None, None, true),
            }
        }
        _ => (None, None, false),
    };
    let Some(position) = position else {
        if a.reason == Reason::Fallback {
            b.line("Split", "not used: no key".into());
        } else {
            b.line("Split", "not used".into());
        }
        b.set("split", Value::Null);
        return Ok(());
    };
    let total = release.cumulative.last().copied().unwrap_or(0);
    let fraction = f64::from(position) / 4_294_967_296.0;
    let bucket_of = bucket::bucket(position, total.max(1));
    // Bucket and intervals are Dial's split: shown when it is the release's scheme (the
    // policy's `bucketing`, Dial's by default) and they are what placed the key.
    let scheme: Option<String> = serde_json::from_slice::<Value>(&loaded.text)
        .ok()
        .and_then(|d| {
            d.get("releases")?
                .get(a.release)?
                .get("bucketing")?
                .get("scheme")?
                .as_str()
                .map(str::to_string)
        });
    let agrees = scheme.as_deref().is_none_or(|s| s == "dial")
        && match step {
            Some((r, (_, s))) => ramp::pick(position, &release.cumulative, r.subset, s.taken_ppm),
            None => bucket::pick(position, &release.cumulative),
        } == placed;
    let lead = if hypothetical {
        "if no rule or override had decided: "
    } else {
        ""
    };
    if !agrees {
        // Another bucketing scheme (the policy's `bucketing`) placed the key: its hash, not
        // Dial's buckets.
        b.line(
            "Split",
            format!(
                "{lead}hash {position}, placed by the release's bucketing scheme ({})",
                scheme.as_deref().unwrap_or("dial")
            ),
        );
    } else {
        b.line(
            "Split",
            format!(
                "{lead}position {position} of 2^32 ({fraction:.6}), bucket {bucket_of} of {total}"
            ),
        );
    }
    // Each subset's share of [0, total): the written intervals, or with a ramp's step the top
    // fraction of every other subset's interval given to the ramped one.
    let taken = step.map(|(r, (_, s))| (r.subset, f64::from(s.taken_ppm) / 1e6));
    let mut pieces: Vec<Vec<(f64, f64)>> = vec![Vec::new(); release.subsets.len()];
    let mut low = 0f64;
    for (i, high) in release.cumulative.iter().enumerate() {
        let high = f64::from(*high);
        let cut = match taken {
            Some((ramped, f)) if ramped != i && f > 0.0 => high - (high - low) * f,
            _ => high,
        };
        let mut add = |s: usize, from: f64, to: f64| {
            if let Some(p) = pieces.get_mut(s) {
                match p.last_mut() {
                    Some(last) if last.1 == from => last.1 = to,
                    _ if to > from => p.push((from, to)),
                    _ => {}
                }
            }
        };
        add(i, low, cut);
        if let Some((ramped, _)) = taken {
            add(ramped, cut, high);
        }
        low = high;
    }
    let mut intervals = Vec::new();
    for (i, (s, own)) in release
        .subsets
        .iter()
        .zip(&pieces)
        .enumerate()
        .filter(|_| agrees)
    {
        for (from, to) in own {
            intervals.push(json!({ "subset": s.name, "from": from, "to": to }));
        }
        let spans = if own.is_empty() {
            "nothing".to_string()
        } else {
            own.iter()
                .map(|(f, t)| format!("[{}, {})", units(*f), units(*t)))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let here = if Some(i) == placed { " <- the key" } else { "" };
        b.line("Split", format!("  {} {spans}{here}", s.name));
    }
    if let Some(p) = placed {
        b.line(
            "Split",
            format!(
                "{}subset {}",
                if hypothetical {
                    "the split would give "
                } else {
                    "the split gives "
                },
                subset_name(release, p)
            ),
        );
    }
    b.set(
        "split",
        json!({
            "position": position,
            "fraction": fraction,
            "bucket": agrees.then_some(bucket_of),
            "total": total,
            "intervals": intervals,
            "subset": placed.map(|p| subset_name(release, p)),
            "decided": !hypothetical,
        }),
    );
    Ok(())
}

/// A bound in bucket units: `90`, `67.5`.
fn units(x: f64) -> String {
    let rounded = (x * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded}")
    }
}

/// The subset and position the release's split alone gives the request (rules and override
/// left out), from the release on its own.
fn split_alone(
    loaded: &Loaded,
    index: usize,
    context: &Context,
    request: &HeaderList,
) -> Result<Option<(usize, u32)>, Failure> {
    let mut doc: Value = serde_json::from_slice(&loaded.text)
        .map_err(|e| Failure::problems(format!("cannot reread the policy: {e}")))?;
    if let Some(r) = doc
        .get_mut("releases")
        .and_then(|r| r.get_mut(index))
        .and_then(Value::as_object_mut)
    {
        r.remove("rules");
        r.remove("override");
    }
    let engine = release_alone(doc.to_string().as_bytes(), index)?;
    let alone = Context {
        now_nanos: context.now_nanos,
        tripped: u64::from(context.is_tripped(index)),
    };
    Ok(match decide(&engine.policy, &alone, request) {
        Decision::Assign(a) => a.position.map(|p| (a.subset, p)),
        Decision::Pass => None,
    })
}

/// What Dial does to the request's headers and to the response's: the exchange, run against a
/// recording host.
fn headers(
    b: &mut Builder,
    engine: &Engine,
    context: &Context,
    request: &HeaderList,
    decision: Decision,
) {
    let mut host = RecordingHost::new(request);
    let mut exchange = engine.apply(&mut host, request, context, decision);
    let request_calls = host.calls.len();
    host.respond(200);
    exchange.on_response_headers(engine, &mut host);
    let (mut set, mut removed, mut response) = (Vec::new(), Vec::new(), Vec::new());
    for (i, call) in host.calls.iter().enumerate() {
        match call {
            Call::SetRequestHeader(n, v) if i < request_calls => {
                let replaces = if request.header(n).is_some() {
                    " (replacing the client's)"
                } else {
                    ""
                };
                b.line("Headers", format!("sets {n}: {v}{replaces}"));
                set.push(json!([n, v]));
            }
            Call::RemoveRequestHeader(n) => {
                b.line("Headers", format!("removes {n} (client-sent)"));
                removed.push(Value::String(n.clone()));
            }
            Call::AddResponseHeader(n, v) | Call::SetResponseHeader(n, v) => {
                b.line("Response", format!("{n}: {v}"));
                response.push(json!([n, v]));
            }
            _ => {}
        }
    }
    if set.is_empty() && removed.is_empty() {
        b.line("Headers", "none changed".into());
    }
    b.set(
        "headers",
        json!({ "set": set, "removed": removed, "response": response }),
    );
}

/// The request for each key, one line (or JSON object) per key.
fn many(
    args: &Args,
    loaded: &Loaded,
    context: &Context,
    template: HeaderList,
    keys: &Keys,
) -> Outcome {
    let policy = &loaded.engine.policy;
    let Decision::Assign(first) = decide(policy, context, &template) else {
        return Err(Failure::usage(format!(
            "no release applies to host {} path {}: give the --host and --path of a release",
            args.host.as_deref().unwrap_or("(none)"),
            args.path
        )));
    };
    let release = policy
        .releases
        .get(first.release)
        .ok_or_else(|| Failure::problems("the decision names a release the policy lacks"))?;
    let Some(source) = release.key.first() else {
        return Err(Failure::usage(format!(
            "release {} reads no user key (whenNoKey decides): explain one request at a time",
            release.name
        )));
    };
    // The key goes first, so it wins over any copy in the request given.
    let Some((name, prefix)) = slot_for(source) else {
        return Err(Failure::usage(format!(
            "release {} reads its key from {}, which this tool cannot write yet: explain one request at a time",
            release.name,
            key_source(source)
        )));
    };
    let mut request = template;
    request.pairs.insert(0, (name, prefix.clone()));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut table = report::Table::new(&[
        "key", "release", "subset", "version", "reason", "position", "mirror",
    ]);
    let mut failed = None;
    keys.each(|key| {
        if let Some((_, v)) = request.pairs.first_mut() {
            v.truncate(prefix.len());
            v.extend_from_slice(key);
        }
        let d = decide(policy, context, &request);
        let (r, s, version, reason, position, mirror) = match d {
            Decision::Assign(a) => {
                let r = policy.releases.get(a.release);
                let s = r.and_then(|r| r.subsets.get(a.subset));
                (
                    r.map(|r| r.name.as_str()),
                    s.map(|s| s.name.as_str()),
                    s.map(|s| s.version.as_str()),
                    Some(a.reason.as_str()),
                    a.position,
                    a.mirror,
                )
            }
            Decision::Pass => (None, None, None, None, None, false),
        };
        let key = String::from_utf8_lossy(key);
        match args.output {
            Format::Json => {
                let line = json!({
                    "key": key, "release": r, "subset": s, "version": version,
                    "reason": reason, "position": position, "mirror": mirror,
                });
                if let Err(e) = std::io::Write::write_fmt(&mut out, format_args!("{line}\n")) {
                    failed.get_or_insert(e);
                }
            }
            Format::Text => table.row(vec![
                key.into_owned(),
                r.unwrap_or("-").into(),
                s.unwrap_or("-").into(),
                version.unwrap_or("-").into(),
                reason.unwrap_or("pass").into(),
                position.map_or("-".into(), |p| p.to_string()),
                if mirror { "yes" } else { "no" }.into(),
            ]),
        }
    });
    if args.output == Format::Text {
        if let Err(e) = std::io::Write::write_all(&mut out, table.render(0).as_bytes()) {
            failed.get_or_insert(e);
        }
    }
    if let Err(e) = std::io::Write::flush(&mut out) {
        failed.get_or_insert(e);
    }
    match failed {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::problems(format!("cannot write the output: {e}")))
        }
        _ => Ok(OK),
    }
}
