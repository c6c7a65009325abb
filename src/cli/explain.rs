//! `dial explain`: which release and subset a request gets, and why: the releases tried, the
//! key and where it came from, the override, each rule, the hash position and bucket, the
//! result, the mirror, and the headers Dial sets and removes (the exchange run against a
//! recording host, so they are exactly the filter's).

use std::net::IpAddr;

use dial::core::decide::{
    decide, decide_observed, Assignment, Context, Decision, KeyOrigin, KeyRead, MirrorSample,
    Observer, OverrideSeen, RampState, Reason, ScopeFit, Split,
};
use dial::core::exchange::{Engine, LanePlan};
use dial::core::lane::{Lanes, Read, Rejection};
use dial::core::policy::{Release, WhenNoKey, MAX_KEY_LEN};
use dial::core::ramp;
use dial::core::recording::{Call, RecordingHost};
use dial::core::request::{fresh_entropy, HeaderList, RequestView};
use dial::core::rules::{Condition, Matcher};
use dial::core::scope::{HostPattern, Scope};
use dial::core::secret::Secret;
use dial::core::trust::{SourceCheck, TokenCheck, Verdict};
use serde_json::{json, Map, Value};

use crate::common::{
    key_source, slot_for, tripped_bits, Failure, Format, Loaded, Outcome, SharedArgs, OK,
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
#[command(
    mut_arg("at", |a| a.help("When the request arrives (a ramp's step depends on it): RFC 3339, `now`, or +DURATION")),
    mut_arg("output", |a| a.help("`json`: the explanation as one object (with --users or --keys, one object per line)")),
)]
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
    /// Take the guard of this release as tripped (repeat it)
    #[arg(long, value_name = "RELEASE")]
    pub tripped: Vec<String>,
    #[command(flatten)]
    pub shared: SharedArgs,
    /// Explain the request for N users (user-0 …), one line each, each key in the release's key source
    #[arg(long, value_name = "N", conflicts_with = "keys")]
    pub users: Option<u64>,
    /// Explain the request for each user key in FILE, one per line
    #[arg(long, value_name = "FILE")]
    pub keys: Option<String>,
}

pub fn run(args: &Args) -> Outcome {
    let loaded = args.shared.load(&args.file)?;
    let now = args.shared.at()?;
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
    match args.shared.output {
        Format::Json => {
            let mut json = explanation.json;
            if let Value::Object(map) = &mut json {
                map.insert("policy".into(), loaded.source_json());
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

/// What the core told of its decision (`decide_observed`): `explain` only puts it in words.
#[derive(Default)]
struct Seen {
    /// Each release's scope, in order up to the first that fits.
    scopes: Vec<(usize, ScopeFit)>,
    /// The key sources read, in order up to the key: what each holds and what it is.
    sources: Vec<(usize, Option<Vec<u8>>, KeyRead)>,
    override_: Option<Overridden>,
    /// The rules tried, in order up to the first that matches.
    rules: Vec<(usize, bool)>,
    ramp: Option<RampState>,
    split: Option<Split>,
    mirror: Option<MirrorSample>,
}

/// `OverrideSeen`, kept.
enum Overridden {
    Absent,
    NoSuchSubset(Vec<u8>),
    Judged { subset: usize, verdict: Verdict },
}

impl Observer for Seen {
    fn scope(&mut self, release: usize, fit: ScopeFit) {
        self.scopes.push((release, fit));
    }

    fn key_source(&mut self, index: usize, value: Option<&[u8]>, read: KeyRead) {
        self.sources.push((index, value.map(<[u8]>::to_vec), read));
    }

    fn override_(&mut self, seen: OverrideSeen<'_>) {
        self.override_ = Some(match seen {
            OverrideSeen::Absent => Overridden::Absent,
            OverrideSeen::NoSuchSubset(asked) => Overridden::NoSuchSubset(asked.to_vec()),
            OverrideSeen::Judged { subset, verdict } => Overridden::Judged { subset, verdict },
        });
    }

    fn rule(&mut self, index: usize, matched: bool) {
        self.rules.push((index, matched));
    }

    fn ramp(&mut self, state: RampState) {
        self.ramp = Some(state);
    }

    fn split(&mut self, split: Split) {
        self.split = Some(split);
    }

    fn mirror(&mut self, sample: MirrorSample) {
        self.mirror = Some(sample);
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

    let mut seen = Seen::default();
    let decision = decide_observed(policy, context, request, &mut seen);

    // The releases tried, in order, up to the first whose scope fits.
    let mut tried = Vec::new();
    for (i, fit) in &seen.scopes {
        let Some(r) = policy.releases.get(*i) else {
            continue;
        };
        let (applies, why) = (fit.fits(), scope_words(&r.scope, fit, host, path));
        tried.push(json!({ "index": i, "name": r.name, "applies": applies, "why": why }));
        b.line(
            "Release",
            format!(
                "{} (releases[{i}]): {why}{}",
                r.name,
                if applies { "" } else { ": skipped" }
            ),
        );
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
        assigned(&mut b, loaded, context, request, release, a, &seen);
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

/// How the core judged a scope, in words.
fn scope_words(scope: &Scope, fit: &ScopeFit, host: Option<&[u8]>, path: Option<&[u8]>) -> String {
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
    let host_part = match fit.host {
        None => "any host".to_string(),
        Some(true) => format!("host {h} matches {hosts}"),
        Some(false) => format!("host {h} is not {hosts}"),
    };
    let path_part = match fit.path {
        None => "any path".to_string(),
        Some(true) => format!("path {p} starts with {prefixes}"),
        Some(false) => format!("path {p} does not start with {prefixes}"),
    };
    format!("{host_part}, {path_part}")
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
    seen: &Seen,
) {
    b.set(
        "release",
        json!({ "index": a.release, "name": release.name }),
    );

    // The key: the sources the core read, up to the one that gave it.
    let key_index = match a.key {
        Some(KeyOrigin::Source(i)) => Some(i),
        _ => None,
    };
    let mut key = None;
    let mut sources = Vec::new();
    for (i, value, read) in &seen.sources {
        let value = value.as_deref().unwrap_or_default();
        let state = match read {
            KeyRead::Key if key_index == Some(*i) => {
                key = Some(value);
                format!("{}: the key", text(value))
            }
            KeyRead::Key => format!("{}: not used", text(value)),
            KeyRead::Absent => "absent".to_string(),
            KeyRead::Empty => "empty: skipped".to_string(),
            KeyRead::TooLong => format!("{} bytes, over {MAX_KEY_LEN}: ignored", value.len()),
        };
        let source = release.key.get(*i).map(key_source).unwrap_or_default();
        sources.push(json!({ "index": i, "source": source, "state": state }));
        b.line("Key", format!("key[{i}] {source}: {state}"));
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
            "value": key.map(|v| String::from_utf8_lossy(v).into_owned()),
            "origin": origin,
            "sources": sources,
        }),
    );

    // The override.
    if let (Some(o), Some(seen)) = (&release.override_, &seen.override_) {
        let verdict = match seen {
            Overridden::Absent => format!("{}: absent", o.header),
            Overridden::NoSuchSubset(asked) => format!(
                "{}: asks for {}, which is not a subset: ignored",
                o.header,
                String::from_utf8_lossy(asked)
            ),
            Overridden::Judged { subset, verdict } => {
                let subset = subset_name(release, *subset);
                match verdict {
                    Verdict::Refused { token, source } => format!(
                        "{}: asks for {subset}: ignored, not trusted: {}",
                        o.header,
                        refused_because(*token, *source)
                    ),
                    trusted => format!(
                        "{}: asks for {subset}: honoured, {}",
                        o.header,
                        trusted_because(trusted)
                    ),
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
        // What an issuing release writes, as the exchange plans it.
        let plan = l.issue.then(|| {
            loaded
                .engine
                .plan_for(request, context, Decision::Assign(*a))
                .lane
        });
        lane(b, release, a, l, plan.as_ref());
    }

    // The rules, in order, up to the first the core found to match.
    let mut rules = Vec::new();
    for (i, rule) in release.rules.iter().enumerate() {
        let then = subset_name(release, rule.subset);
        let described = condition(&rule.condition, request, key);
        let tried = seen.rules.iter().find(|(r, _)| *r == i).map(|(_, m)| *m);
        let state = match (tried, a.reason) {
            (Some(true), _) => "matches",
            (Some(false), _) => "no",
            (None, Reason::Override) => "not tried (the override decided)",
            (None, Reason::Lane | Reason::LaneFallback) => "not tried (the lane decided)",
            (None, _) => "not tried",
        };
        let matched = tried == Some(true);
        b.line("Rules", format!("[{i}] {described} -> {then}: {state}"));
        rules.push(json!({ "index": i, "condition": described, "subset": then, "matched": matched, "state": state }));
    }
    if release.rules.is_empty() {
        b.line("Rules", "none".into());
    }
    b.set("rules", Value::Array(rules));

    // The split.
    split(b, release, a, seen);

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
    let mirror = match (&release.mirror, seen.mirror) {
        (Some(m), Some(sample)) => {
            let percent = m.percent();
            let basis = match sample {
                MirrorSample::Method => {
                    let method = request.header(":method").unwrap_or_default();
                    format!(
                        "{} is not mirrored (methods: {})",
                        String::from_utf8_lossy(method),
                        m.methods.join(", ")
                    )
                }
                MirrorSample::Key { .. }
                    if matches!(a.key, Some(KeyOrigin::StickyCookie | KeyOrigin::Minted)) =>
                {
                    format!("sampling follows the sticky key; {percent:.2}% of keys are sampled")
                }
                MirrorSample::Key { position, sampled } => format!(
                    "the key's sampling position {position} is {} {} ({percent:.2}% of 2^32)",
                    if sampled { "below" } else { "not below" },
                    m.threshold
                ),
                MirrorSample::Random { .. } => {
                    format!("no key: sampled at random, {percent:.2}% of requests")
                }
            };
            let line = match (sample, a.mirror) {
                (MirrorSample::Method, _) => format!("no: {basis}"),
                (_, true) => format!("yes: a copy goes to version {} ({basis})", m.version),
                (_, false) => format!("no ({basis})"),
            };
            b.line("Mirror", line);
            json!({ "configured": true, "marked": a.mirror, "version": m.version, "percent": percent })
        }
        _ => {
            b.line("Mirror", "no mirror in this release".into());
            json!({ "configured": false, "marked": false })
        }
    };
    b.set("mirror", mirror);
}

/// The lane decision: the member a following release read (valid, expired, wrong tag, unknown
/// lane, fallback), and the member an issuing release writes.
fn lane(b: &mut Builder, release: &Release, a: &Assignment, l: &Lanes, plan: Option<&LanePlan>) {
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
    if let Some(plan) = plan {
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

/// The variable of a secret read from the environment but not set in the CLI's.
fn unresolved(secret: Option<&Secret>) -> Option<&str> {
    secret.filter(|s| s.value().is_none())?.variable()
}

/// Why the core trusted an override.
fn trusted_because(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Anyone => "allowAnyone".into(),
        Verdict::Token => "the token matches".into(),
        Verdict::Source(ip) => format!("source {ip} is in sourceCidrs"),
        Verdict::Refused { .. } => "not trusted".into(),
    }
}

/// Why the core did not.
fn refused_because(token: TokenCheck, source: SourceCheck) -> String {
    let mut why = Vec::new();
    match token {
        TokenCheck::Unused => {}
        TokenCheck::Missing => why.push("no token".to_string()),
        TokenCheck::Wrong => why.push("the token does not match".to_string()),
    }
    match source {
        SourceCheck::Unused => {}
        SourceCheck::Unknown => why.push("source address unknown (--source-ip gives it)".into()),
        SourceCheck::Outside(ip) => why.push(format!("source {ip} is outside sourceCidrs")),
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

/// The hash position and bucket of the key, and the subsets' intervals, as the core placed it.
/// When a rule or the override decided, where the split alone would have put the request.
fn split(b: &mut Builder, release: &Release, a: &Assignment, seen: &Seen) {
    // The ramp's step in force, as the core found it.
    let mut taken = None;
    if let (Some(r), Some(state)) = (&release.ramp, seen.ramp) {
        let ramped = subset_name(release, r.subset);
        let line = match state {
            RampState::Step(k) => {
                let step = r.steps.get(k);
                taken = step.map(|s| (r.subset, s.taken_ppm));
                let since = r.step_start(k);
                format!(
                    "ramp of {ramped}: step {} of {} ({}% since {})",
                    k + 1,
                    r.steps.len(),
                    ramp::percent(u64::from(step.map_or(0, |s| s.share_ppm))),
                    report::instant(since)
                )
            }
            RampState::Stopped => format!(
                "ramp of {ramped}: stopped: the guard is tripped; the written weights apply"
            ),
            RampState::NotStarted => format!(
                "ramp of {ramped}: not started (starts {}); the written weights apply",
                report::instant(r.start)
            ),
            RampState::NoClock => {
                format!("ramp of {ramped}: no clock to tell the step; the written weights apply")
            }
        };
        b.line("Split", line);
    }
    // Where the split put the request or, when a rule or the override decided, would have.
    let would = matches!(
        a.reason,
        Reason::HeaderRule | Reason::CookieRule | Reason::Allowlist | Reason::Override
    );
    let Some(placed) = seen.split.filter(|s| s.decided || would) else {
        if a.reason == Reason::Fallback {
            b.line("Split", "not used: no key".into());
        } else {
            b.line("Split", "not used".into());
        }
        b.set("split", Value::Null);
        return;
    };
    let (position, hypothetical) = (placed.position, !placed.decided);
    let total = release.cumulative.last().copied().unwrap_or(0);
    let fraction = f64::from(position) / 4_294_967_296.0;
    let lead = if hypothetical {
        "if no rule or override had decided: "
    } else {
        ""
    };
    // Buckets and intervals are Dial's split: shown when Dial's scheme placed the key.
    match placed.bucket {
        Some(bucket) => b.line(
            "Split",
            format!(
                "{lead}position {position} of 2^32 ({fraction:.6}), bucket {bucket} of {total}"
            ),
        ),
        None => b.line(
            "Split",
            format!(
                "{lead}hash {position}, placed by the release's bucketing scheme ({})",
                release.scheme.name()
            ),
        ),
    }
    let mut intervals = Vec::new();
    if placed.bucket.is_some() {
        let pieces = ramp::intervals(&release.cumulative, taken);
        for (i, (s, own)) in release.subsets.iter().zip(&pieces).enumerate() {
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
            let here = if i == placed.subset {
                " <- the key"
            } else {
                ""
            };
            b.line("Split", format!("  {} {spans}{here}", s.name));
        }
    }
    b.line(
        "Split",
        format!(
            "{}subset {}",
            if hypothetical {
                "the split would give "
            } else {
                "the split gives "
            },
            subset_name(release, placed.subset)
        ),
    );
    b.set(
        "split",
        json!({
            "position": position,
            "fraction": fraction,
            "bucket": placed.bucket,
            "total": total,
            "intervals": intervals,
            "subset": subset_name(release, placed.subset),
            "decided": !hypothetical,
        }),
    );
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
        match args.shared.output {
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
    if args.shared.output == Format::Text {
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
