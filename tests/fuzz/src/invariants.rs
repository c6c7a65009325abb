//! Invariants shared by several targets: what any accepted policy looks like, what any decision
//! looks like, and what the exchange leaves on the upstream request.

use std::borrow::Cow;

use dial::core::baggage;
use dial::core::decide::{Context, Decision, KeyOrigin, Reason};
use dial::core::exchange::Engine;
use dial::core::policy::{KeySource, Policy, WhenNoKey, MAX_KEY_LEN};
use dial::core::recording::RecordingHost;
use dial::core::request::{HeaderList, RequestView};
use dial::core::rules::{Condition, RuleKind};
use dial::core::sticky::is_valid_key;

/// Finding F1 (reported with the fuzz targets): validation accepted a policy whose rules, key
/// sources or override read one of Dial's own routing headers (`x-dial-subset`,
/// `x-dial-version`, `x-dial-mirror` or the names chosen for them), so a client-sent copy of
/// that header steered the decision. Fixed: validation refuses them, and the `policy` target
/// asserts it.
pub const REFUSE_ROUTING_HEADER_READS: bool = true;

/// Finding F2 (reported with the fuzz targets): a secret (`override.token`, `secret`,
/// `previousSecret`) written with the wrong JSON type, `"token": 12345678901234567`, is repeated
/// in its problem's value and message, hence in Envoy's log. Fixed: a secret of any type is
/// hidden, and the `policy` target asserts it.
pub const HIDE_SECRETS_OF_ANY_TYPE: bool = true;

/// The request headers Dial sets (subset, version, mirror): a client's copies must never matter.
pub fn routing_headers(policy: &Policy) -> [&str; 3] {
    [
        policy.headers.subset.as_str(),
        policy.headers.version.as_str(),
        policy.headers.mirror.as_str(),
    ]
}

/// The routing headers a policy reads itself (in a rule, a key source or as an override
/// header): empty for a policy that cannot be steered by a client-sent Dial header.
pub fn routing_header_reads(policy: &Policy) -> Vec<String> {
    let routing = routing_headers(policy);
    let mut reads = Vec::new();
    for r in &policy.releases {
        for k in &r.key {
            if let KeySource::Header(h) = k {
                reads.push(h.clone());
            }
        }
        for rule in &r.rules {
            if let Condition::Header { name, .. } = &rule.condition {
                reads.push(name.clone());
            }
        }
        if let Some(o) = &r.override_ {
            reads.push(o.header.clone());
        }
    }
    reads.retain(|h| routing.contains(&h.as_str()));
    reads
}

fn lower_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
}

/// What every accepted policy must look like.
pub fn check_policy(policy: &Policy) {
    let h = &policy.headers;
    for name in routing_headers(policy) {
        assert!(lower_token(name), "header name {name:?}");
        assert!(policy.owned_request_headers.iter().any(|o| o == name));
    }
    assert!(h.subset != h.version && h.subset != h.mirror && h.version != h.mirror);
    if let Some(r) = &h.response {
        assert!(lower_token(r), "response header {r:?}");
    }
    assert!((1..=64).contains(&policy.releases.len()));
    for (i, r) in policy.releases.iter().enumerate() {
        assert!(!r.name.is_empty() && r.name.len() <= 63, "{:?}", r.name);
        assert!(
            policy.releases[..i].iter().all(|o| o.name != r.name),
            "two releases named {:?}",
            r.name
        );
        let n = r.subsets.len();
        assert!((1..=16).contains(&n));
        assert_eq!(r.cumulative.len(), n);
        let mut sum = 0u64;
        for (s, c) in r.subsets.iter().zip(&r.cumulative) {
            sum += u64::from(s.weight);
            assert_eq!(u64::from(*c), sum, "cumulative weights of {}", r.name);
        }
        assert!((1..=1_000_000).contains(&sum), "total {sum}");
        for (j, s) in r.subsets.iter().enumerate() {
            assert!(r.subsets[..j].iter().all(|o| o.name != s.name));
            assert_eq!(r.subset_index(s.name.as_bytes()), Some(j));
        }
        for rule in &r.rules {
            assert!(rule.subset < n);
            if let Condition::Header { name, .. } = &rule.condition {
                assert!(lower_token(name), "rule header {name:?}");
            }
        }
        for k in &r.key {
            if let KeySource::Header(name) = k {
                assert!(lower_token(name), "key header {name:?}");
            }
        }
        match &r.when_no_key {
            WhenNoKey::Subset(s) => assert!(*s < n),
            WhenNoKey::Sticky(c) => assert!(!c.name.is_empty()),
        }
        if r.key.is_empty() {
            // Without key sources an allowlist could never match.
            assert!(r
                .rules
                .iter()
                .all(|rule| rule.kind() != RuleKind::Allowlist));
        }
        if let Some(o) = &r.override_ {
            assert!(lower_token(&o.header));
            assert!(policy.owned_request_headers.contains(&o.header));
            let t = &o.trust;
            assert!(t.anyone || t.token.is_some() || !t.source_cidrs.is_empty());
        }
        if let Some(m) = &r.mirror {
            assert!(m.threshold <= 1 << 32);
            assert!(!m.methods.is_empty());
        }
        if let Some(ramp) = &r.ramp {
            assert!(ramp.subset < n);
            assert!(!ramp.steps.is_empty());
            let mut previous: Option<&dial::core::ramp::Step> = None;
            let mut begins = ramp.start;
            for (k, step) in ramp.steps.iter().enumerate() {
                assert!(step.share_ppm <= 1_000_000 && step.taken_ppm <= 1_000_000);
                assert_eq!(step.until.is_none(), k + 1 == ramp.steps.len());
                if let Some(p) = previous {
                    assert!(step.share_ppm >= p.share_ppm, "ramp steps go down");
                    assert!(step.taken_ppm >= p.taken_ppm, "ramp fractions go down");
                }
                if let Some(until) = step.until {
                    assert!(until >= begins, "steps end out of order");
                    begins = until;
                }
                previous = Some(step);
            }
        }
        if let Some(g) = &r.guard {
            assert!(g.subset < n && g.fallback < n && g.subset != g.fallback);
            assert!(g.min_requests >= 1 && g.window > 0);
        }
    }
    if REFUSE_ROUTING_HEADER_READS {
        let reads = routing_header_reads(policy);
        assert!(reads.is_empty(), "the policy reads Dial's own {reads:?}");
    }
}

/// The first release whose scope takes the request, as the policy's scopes say.
pub fn release_in_scope(policy: &Policy, request: &impl RequestView) -> Option<usize> {
    policy
        .releases
        .iter()
        .position(|r| r.scope.matches(request.host(), request.path()))
}

/// What every decision must look like.
pub fn check_decision(
    policy: &Policy,
    context: &Context,
    request: &impl RequestView,
    decision: &Decision,
) {
    let in_scope = release_in_scope(policy, request);
    let a = match decision {
        Decision::Pass => {
            assert_eq!(in_scope, None, "passed a request a release takes");
            return;
        }
        Decision::Assign(a) => a,
    };
    assert_eq!(Some(a.release), in_scope, "not the first release in scope");
    let r = &policy.releases[a.release];
    assert!(
        a.subset < r.subsets.len(),
        "subset {} of {}",
        a.subset,
        r.name
    );
    let tripped = context.is_tripped(a.release);
    let rule_reason = matches!(
        a.reason,
        Reason::HeaderRule | Reason::CookieRule | Reason::Allowlist
    );
    // A tripped guard moves the assignment and keeps what explains it (the rule, the key).
    let guarded = a.reason == Reason::Guardrail;
    if !guarded {
        assert_eq!(a.rule.is_some(), rule_reason, "{a:?}");
    }
    if let Some(i) = a.rule {
        let rule = &r.rules[i];
        if !guarded {
            assert_eq!(rule.subset, a.subset);
            let kind = match a.reason {
                Reason::HeaderRule => RuleKind::Header,
                Reason::CookieRule => RuleKind::Cookie,
                _ => RuleKind::Allowlist,
            };
            assert_eq!(rule.kind(), kind);
        }
        // It matched, and no earlier rule did.
        let key = user_key(r, request);
        let key = key.as_deref();
        assert!(rule.matches(request, key));
        assert!(r.rules[..i].iter().all(|e| !e.matches(request, key)));
    }
    match a.key {
        Some(KeyOrigin::Source(i)) => {
            assert!(i < r.key.len());
            assert!(user_key(r, request).is_some());
        }
        Some(KeyOrigin::StickyCookie | KeyOrigin::Minted) => {
            assert!(matches!(r.when_no_key, WhenNoKey::Sticky(_)));
            assert_eq!(user_key(r, request), None);
        }
        None => assert_eq!(user_key(r, request), None, "{a:?}"),
    }
    match a.reason {
        Reason::Override => {
            let o = r
                .override_
                .as_ref()
                .expect("an override without a policy for it");
            assert!(request.header(&o.header).is_some());
        }
        Reason::Hash => {
            assert!(a.position.is_some());
            assert!(matches!(a.key, Some(KeyOrigin::Source(_))));
        }
        Reason::StickyCookie => {
            assert!(a.position.is_some());
            assert!(matches!(
                a.key,
                Some(KeyOrigin::StickyCookie | KeyOrigin::Minted)
            ));
        }
        Reason::Guardrail => {
            let g = r.guard.as_ref().expect("guardrail without a guard");
            assert!(tripped && a.subset == g.fallback);
        }
        _ => {}
    }
    if matches!(a.reason, Reason::Hash | Reason::StickyCookie) {
        // Weight 0: nobody by hash, unless a ramp raises that very subset.
        let ramped = r.ramp.as_ref().is_some_and(|x| x.subset == a.subset);
        assert!(
            r.subsets[a.subset].weight > 0 || ramped,
            "hashed onto weight-0 subset {}",
            r.subsets[a.subset].name
        );
    }
    if let Some(g) = &r.guard {
        if tripped && a.reason != Reason::Override {
            assert_ne!(a.subset, g.subset, "a tripped subset still gets users");
        }
    }
    if let Some(k) = a.new_sticky_key {
        assert!(is_valid_key(&k));
        assert!(matches!(r.when_no_key, WhenNoKey::Sticky(_)));
        assert!(matches!(
            a.key,
            Some(KeyOrigin::Minted | KeyOrigin::StickyCookie)
        ));
    }
    if a.key == Some(KeyOrigin::Minted) {
        assert!(a.new_sticky_key.is_some());
    }
    if a.mirror {
        let m = r.mirror.as_ref().expect("mirrored without a mirror");
        let method = request.header(":method").unwrap_or_default();
        assert!(m.methods.iter().any(|x| x.as_bytes() == method));
        assert!(m.threshold > 0);
    }
}

/// The release's user key for a request, as docs/policy.md describes `releases[].key`: the first present, non-empty
/// source of at most `MAX_KEY_LEN` bytes.
pub fn user_key<'a>(
    r: &dial::core::policy::Release,
    request: &'a impl RequestView,
) -> Option<Cow<'a, [u8]>> {
    r.key.iter().find_map(|k| {
        let v = match k {
            KeySource::Header(h) => request.header(h).map(Cow::Borrowed),
            KeySource::Cookie(c) => request.cookie(c).map(Cow::Borrowed),
            KeySource::Baggage(m) => baggage::member(request.header_values("baggage"), m),
        };
        v.filter(|v| !v.is_empty() && v.len() <= MAX_KEY_LEN)
    })
}

/// Runs the request headers through the exchange against a recording host and checks what the
/// upstream would get: exactly Dial's values of its routing headers (none on a passed request),
/// no override header, every other header as the client sent it, in order. Then the response:
/// a minted sticky key comes back in a `Set-Cookie` that reads back as that key.
pub fn check_exchange(
    engine: &Engine,
    context: &Context,
    request: &HeaderList,
    decision: &Decision,
) {
    let policy = &engine.policy;
    for refuse in [false, true] {
        let mut host = RecordingHost::new(request);
        host.refuse = refuse;
        host.clock = context.now_nanos.unwrap_or(0);
        let mut exchange = engine.on_request_headers(&mut host, request, context);
        let expected = match decision {
            Decision::Pass => None,
            Decision::Assign(a) => Some((a.release, a.subset)),
        };
        assert_eq!(exchange.assigned(), expected);
        if refuse {
            // A host that refuses every call: nothing changes, nothing panics.
            assert_eq!(host.request.pairs, request.pairs);
            host.respond(200);
            exchange.on_response_headers(engine, &mut host);
            exchange.on_end(engine, &mut host);
            continue;
        }
        let (mut subset, mut version, mut mirror) = (None, None, None);
        if let Decision::Assign(a) = decision {
            let r = &policy.releases[a.release];
            let s = &r.subsets[a.subset];
            subset = Some(s.name.as_bytes());
            version = Some(s.version.as_bytes());
            if a.mirror {
                mirror = r.mirror.as_ref().map(|m| m.version.as_bytes());
            }
        }
        let h = &policy.headers;
        for (name, want) in [
            (&h.subset, subset),
            (&h.version, version),
            (&h.mirror, mirror),
        ] {
            let got = host.request_values(name);
            let want: Vec<&[u8]> = want.into_iter().collect();
            assert_eq!(got, want, "upstream {name}");
        }
        for owned in &policy.owned_request_headers {
            if !routing_headers(policy).contains(&owned.as_str()) {
                assert!(
                    host.request_values(owned).is_empty(),
                    "the override header {owned} reached the upstream"
                );
            }
        }
        let others = |pairs: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
            pairs
                .iter()
                .filter(|(n, _)| !policy.owned_request_headers.contains(n))
                .cloned()
                .collect()
        };
        assert_eq!(
            others(&host.request.pairs),
            others(&request.pairs),
            "headers Dial does not own were changed"
        );
        // Metrics: every index the lifecycle counted exists.
        host.respond(200);
        exchange.on_response_headers(engine, &mut host);
        host.clock = host.clock.saturating_add(5_000_000);
        exchange.on_end(engine, &mut host);
        let metrics = engine.catalog.metrics.len();
        assert!(host.counters.keys().all(|m| *m < metrics));
        assert!(host.records.iter().all(|(m, _)| *m < metrics));

        let cookies = host.response_values("set-cookie");
        let echo = h
            .response
            .as_ref()
            .map(|name| host.response_values(name))
            .unwrap_or_default();
        match decision {
            Decision::Pass => {
                assert!(cookies.is_empty() && echo.is_empty());
            }
            Decision::Assign(a) => {
                let r = &policy.releases[a.release];
                match (a.new_sticky_key, &r.when_no_key) {
                    (Some(key), WhenNoKey::Sticky(c)) => {
                        assert_eq!(cookies.len(), 1);
                        let value = cookies[0]
                            .strip_prefix(&format!("{}=", c.name))
                            .and_then(|v| v.split(';').next())
                            .expect("a Set-Cookie for the sticky cookie");
                        let read = c.read(value.as_bytes()).expect("Dial's own cookie");
                        assert_eq!(read.key, &key[..]);
                        assert!(!read.resign);
                    }
                    _ => assert!(cookies.is_empty(), "{cookies:?}"),
                }
                if h.response.is_some() {
                    let s = &r.subsets[a.subset];
                    let want = format!(
                        "release={}; subset={}; version={}; reason={}",
                        r.name,
                        s.name,
                        s.version,
                        a.reason.as_str()
                    );
                    assert_eq!(echo, [want.as_str()]);
                }
            }
        }
    }
}
