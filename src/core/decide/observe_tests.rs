//! What `decide_observed` reports: the facts `dial explain` prints, from the core itself.

use super::tests::{policy, ramped, request, user_on, MINUTE, T0};
use super::*;
use crate::core::request::HeaderList;
use crate::core::trust::{SourceCheck, TokenCheck};
use serde_json::json;

/// Every fact reported, in order.
#[derive(Debug, Default)]
struct Facts {
    scopes: Vec<(usize, ScopeFit)>,
    sources: Vec<(usize, Option<Vec<u8>>, KeyRead)>,
    overrides: Vec<String>,
    lanes: Vec<Read>,
    rules: Vec<(usize, bool)>,
    ramps: Vec<RampState>,
    splits: Vec<Split>,
    fallbacks: Vec<Fallback>,
    guards: Vec<(usize, usize)>,
    mirrors: Vec<MirrorSample>,
}

impl Observer for Facts {
    fn scope(&mut self, release: usize, fit: ScopeFit) {
        self.scopes.push((release, fit));
    }
    fn key_source(&mut self, index: usize, value: Option<&[u8]>, read: KeyRead) {
        self.sources.push((index, value.map(<[u8]>::to_vec), read));
    }
    fn override_(&mut self, seen: OverrideSeen<'_>) {
        self.overrides.push(format!("{seen:?}"));
    }
    fn lane(&mut self, read: Read) {
        self.lanes.push(read);
    }
    fn rule(&mut self, index: usize, matched: bool) {
        self.rules.push((index, matched));
    }
    fn ramp(&mut self, state: RampState) {
        self.ramps.push(state);
    }
    fn split(&mut self, split: Split) {
        self.splits.push(split);
    }
    fn fallback(&mut self, why: Fallback) {
        self.fallbacks.push(why);
    }
    fn guard(&mut self, from: usize, to: usize) {
        self.guards.push((from, to));
    }
    fn mirror(&mut self, sample: MirrorSample) {
        self.mirrors.push(sample);
    }
}

/// The decision and its facts; the decision is always `decide`'s own.
fn observe(p: &Policy, context: &Context, r: &HeaderList) -> (Decision, Facts) {
    let mut facts = Facts::default();
    let decision = decide_observed(p, context, r, &mut facts);
    assert_eq!(
        decision,
        decide(p, context, r),
        "observing changed the decision"
    );
    (decision, facts)
}

fn assignment(d: Decision) -> Assignment {
    match d {
        Decision::Assign(a) => a,
        Decision::Pass => panic!("passed"),
    }
}

const FITS: ScopeFit = ScopeFit {
    host: Some(true),
    path: Some(true),
};

#[test]
fn a_scope_reports_which_half_missed() {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/checkout.json")).unwrap();
    let mut other = doc["releases"][0].clone();
    other["name"] = json!("rest");
    other["match"] = json!({ "pathPrefixes": ["/"] });
    doc["releases"].as_array_mut().unwrap().push(other);
    let p = Policy::parse(doc.to_string().as_bytes()).unwrap();
    let at = |host: &str, path: &str| {
        let r = HeaderList::from_strs(&[(":authority", host), (":path", path)]);
        observe(&p, &Context::default(), &r).1.scopes
    };
    let any_host = |path| ScopeFit { host: None, path };
    // By host: the path fits, the host does not; the next release (any host) applies.
    assert_eq!(
        at("other.example.com", "/checkout"),
        [
            (
                0,
                ScopeFit {
                    host: Some(false),
                    path: Some(true)
                }
            ),
            (1, any_host(Some(true))),
        ]
    );
    // By path.
    assert_eq!(
        at("shop.example.com", "/cart")[0],
        (
            0,
            ScopeFit {
                host: Some(true),
                path: Some(false)
            }
        )
    );
    // By both; and the first fitting release ends the search.
    assert_eq!(
        at("other.example.com", "/cart")[0],
        (
            0,
            ScopeFit {
                host: Some(false),
                path: Some(false)
            }
        )
    );
    assert_eq!(at("SHOP.example.com:8443", "/checkout/pay"), [(0, FITS)]);
    // A request no release takes: every scope reported, and nothing else.
    let only = policy(json!({}));
    let r = HeaderList::from_strs(&[(":authority", "shop.example.com"), (":path", "/cart")]);
    let (decision, facts) = observe(&only, &Context::default(), &r);
    assert_eq!(decision, Decision::Pass);
    assert_eq!(facts.scopes.len(), 1);
    assert!(facts.sources.is_empty() && facts.rules.is_empty() && facts.splits.is_empty());
}

#[test]
fn key_sources_are_reported_up_to_the_key() {
    let p = policy(json!({}));
    let long = "k".repeat(MAX_KEY_LEN + 1);
    for (headers, want) in [
        (
            vec![("x-user-id", "carol")],
            vec![(0, Some(&b"carol"[..]), KeyRead::Key)],
        ),
        (
            vec![("x-user-id", ""), ("cookie", "uid=dave")],
            vec![
                (0, Some(&b""[..]), KeyRead::Empty),
                (1, Some(b"dave"), KeyRead::Key),
            ],
        ),
        (
            vec![("x-user-id", long.as_str())],
            vec![
                (0, Some(long.as_bytes()), KeyRead::TooLong),
                (1, None, KeyRead::Absent),
            ],
        ),
        (
            vec![],
            vec![(0, None, KeyRead::Absent), (1, None, KeyRead::Absent)],
        ),
    ] {
        let (_, facts) = observe(&p, &Context::default(), &request(&headers));
        let got: Vec<_> = facts
            .sources
            .iter()
            .map(|(i, v, read)| (*i, v.as_deref(), *read))
            .collect();
        assert_eq!(got, want, "{headers:?}");
    }
}

#[test]
fn an_override_reports_its_trust_verdict_and_why() {
    let p = policy(
        json!({ "override": { "header": "x-dial-override", "token": "0123456789abcdef",
                              "sourceCidrs": ["10.0.0.0/8"] } }),
    );
    let u = user_on(&p, "stable");
    let seen = |value: Option<&str>, ip: Option<&str>| {
        let mut headers = vec![("x-user-id", u.as_str())];
        headers.extend(value.map(|v| ("x-dial-override", v)));
        let mut r = request(&headers);
        r.source_ip = ip.map(|i| i.parse().unwrap());
        let (d, facts) = observe(&p, &Context::default(), &r);
        (assignment(d).reason, facts)
    };
    let judged = |verdict| format!("{:?}", OverrideSeen::Judged { subset: 1, verdict });
    let refused = |token, source| judged(Verdict::Refused { token, source });

    let (reason, facts) = seen(None, None);
    assert_eq!(
        (reason, facts.overrides),
        (Reason::Hash, vec!["Absent".to_string()])
    );
    let (reason, facts) = seen(Some("canary; token=guess"), Some("192.0.2.1"));
    assert_eq!(reason, Reason::Hash);
    assert_eq!(
        facts.overrides,
        [refused(
            TokenCheck::Wrong,
            SourceCheck::Outside("192.0.2.1".parse().unwrap())
        )]
    );
    // Untrusted, the override leaves the decision to the rules and the split, which it reports.
    assert_eq!(facts.rules, [(0, false), (1, false), (2, false)]);
    assert!(facts.splits[0].decided);
    let (_, facts) = seen(Some("canary"), None);
    assert_eq!(
        facts.overrides,
        [refused(TokenCheck::Missing, SourceCheck::Unknown)]
    );
    let (_, facts) = seen(Some("nosuch; token=0123456789abcdef"), None);
    assert_eq!(
        facts.overrides,
        [format!("{:?}", OverrideSeen::NoSuchSubset(b"nosuch"))]
    );

    // Trusted: by the token, or by the peer's range.
    let (reason, facts) = seen(Some("canary; token=0123456789abcdef"), None);
    assert_eq!(
        (reason, facts.overrides),
        (Reason::Override, vec![judged(Verdict::Token)])
    );
    // No rule is tried, and the split says where it would have put the user.
    assert!(facts.rules.is_empty());
    assert_eq!(facts.splits.len(), 1);
    assert!(!facts.splits[0].decided);
    assert_eq!(p.releases[0].subsets[facts.splits[0].subset].name, "stable");
    let (_, facts) = seen(Some("canary"), Some("10.1.2.3"));
    assert_eq!(
        facts.overrides,
        [judged(Verdict::Source("10.1.2.3".parse().unwrap()))]
    );

    let anyone =
        policy(json!({ "override": { "header": "x-dial-override", "allowAnyone": true } }));
    let r = request(&[("x-dial-override", "canary")]);
    let (_, facts) = observe(&anyone, &Context::default(), &r);
    assert_eq!(facts.overrides, [judged(Verdict::Anyone)]);
}

#[test]
fn rules_report_up_to_the_match_and_where_the_split_would_have_put_the_user() {
    let p = policy(json!({}));
    let u = user_on(&p, "stable");
    let (d, facts) = observe(
        &p,
        &Context::default(),
        &request(&[("x-user-id", &u), ("cookie", "beta=1")]),
    );
    let a = assignment(d);
    assert_eq!((a.reason, a.rule), (Reason::CookieRule, Some(1)));
    assert_eq!(facts.rules, [(0, false), (1, true)]);
    // The split alone: the user's own place, as a request without the rule gets it.
    let alone = assignment(decide(
        &p,
        &Context::default(),
        &request(&[("x-user-id", &u)]),
    ));
    let split = facts.splits[0];
    assert_eq!(
        (split.subset, Some(split.position), split.decided),
        (alone.subset, alone.position, false)
    );
    // The allowlist matches the key the sources gave.
    let (d, facts) = observe(&p, &Context::default(), &request(&[("cookie", "uid=bob")]));
    assert_eq!(assignment(d).reason, Reason::Allowlist);
    assert_eq!(facts.rules, [(0, false), (1, false), (2, true)]);
}

#[test]
fn the_split_reports_its_position_and_bucket() {
    let p = policy(json!({}));
    for i in 0..200 {
        let r = request(&[("x-user-id", &format!("user-{i}"))]);
        let (d, facts) = observe(&p, &Context::default(), &r);
        let a = assignment(d);
        assert_eq!(a.reason, Reason::Hash);
        let position = a.position.unwrap();
        assert_eq!(
            facts.splits,
            [Split {
                subset: a.subset,
                position,
                bucket: Some(bucket::bucket(position, 100)),
                decided: true
            }]
        );
        assert!(facts.fallbacks.is_empty() && facts.guards.is_empty());
    }
    // Another scheme's formula: no Dial bucket.
    let unleash = policy(json!({ "bucketing": { "scheme": "unleash", "groupId": "g" } }));
    let (_, facts) = observe(
        &unleash,
        &Context::default(),
        &request(&[("x-user-id", "u1")]),
    );
    assert_eq!(facts.splits[0].bucket, None);
    // No key and a fixed subset for keyless requests: the fallback, and why.
    let fixed = policy(json!({ "whenNoKey": { "subset": "stable" } }));
    let (d, facts) = observe(&fixed, &Context::default(), &request(&[]));
    assert_eq!(assignment(d).reason, Reason::Fallback);
    assert_eq!(facts.fallbacks, [Fallback::NoKey]);
    assert!(facts.splits.is_empty());
}

#[test]
fn the_ramp_and_a_tripped_guard_are_reported() {
    let p = ramped();
    let at = |now, tripped| Context {
        now_nanos: now,
        tripped,
    };
    let ramp_at = |c: Context| observe(&p, &c, &request(&[("x-user-id", "u7")])).1.ramps;
    assert_eq!(ramp_at(at(Some(T0 - 1), 0)), [RampState::NotStarted]);
    assert_eq!(ramp_at(at(Some(T0), 0)), [RampState::Step(0)]);
    assert_eq!(ramp_at(at(Some(T0 + 2 * MINUTE), 0)), [RampState::Step(2)]);
    assert_eq!(ramp_at(at(None, 0)), [RampState::NoClock]);

    let mut guarded = policy(json!({
        "guard": { "subset": "canary", "fallback": "stable", "window": "10s", "minRequests": 20,
                   "maxErrorRate": 0.05 }
    }));
    let canary = user_on(&guarded, "canary");
    let (d, facts) = observe(
        &guarded,
        &at(Some(T0), 1),
        &request(&[("x-user-id", &canary)]),
    );
    assert_eq!(assignment(d).reason, Reason::Guardrail);
    // The split gave the canary; the guard moved the user to stable.
    assert_eq!(
        (facts.splits[0].subset, facts.guards.as_slice()),
        (1, &[(1, 0)][..])
    );
    // With a ramp, a tripped guard stops it.
    guarded = {
        let mut doc = super::tests::ramped_doc();
        doc["releases"][0]["guard"] = json!({ "subset": "canary", "fallback": "stable",
            "window": "10s", "minRequests": 1, "maxErrorRate": 0.5 });
        Policy::parse(doc.to_string().as_bytes()).unwrap()
    };
    let (_, facts) = observe(
        &guarded,
        &at(Some(T0 + MINUTE), 1),
        &request(&[("x-user-id", "u")]),
    );
    assert_eq!(facts.ramps, [RampState::Stopped]);
}

#[test]
fn mirror_sampling_reports_what_it_sampled_on() {
    let p = policy(json!({ "mirror": { "version": "v9", "percent": 50 } }));
    let sample = |headers: &[(&str, &str)]| {
        let (d, facts) = observe(&p, &Context::default(), &request(headers));
        (assignment(d).mirror, facts.mirrors)
    };
    let (_, mirrors) = sample(&[(":method", "POST"), ("x-user-id", "u1")]);
    assert_eq!(mirrors, [MirrorSample::Method]);
    for i in 0..50 {
        let (marked, mirrors) = sample(&[(":method", "GET"), ("x-user-id", &format!("u{i}"))]);
        let [MirrorSample::Key { sampled, .. }] = mirrors[..] else {
            panic!("{mirrors:?}")
        };
        assert_eq!(sampled, marked);
    }
    // Keyless, with a fixed subset: no key to follow, so at random.
    let fixed = policy(json!({ "whenNoKey": { "subset": "stable" },
                               "mirror": { "version": "v9", "percent": 50 } }));
    let (d, facts) = observe(&fixed, &Context::default(), &request(&[(":method", "GET")]));
    assert_eq!(
        facts.mirrors,
        [MirrorSample::Random {
            sampled: assignment(d).mirror
        }]
    );
}

#[test]
fn a_following_release_reports_the_lane_it_read() {
    let p = policy(
        json!({ "lanes": { "secret": "lane-secret-current-0123", "follow": true,
                                      "base": "stable", "maxAge": "1h" } }),
    );
    let (_, facts) = observe(
        &p,
        &Context::at(T0),
        &request(&[("baggage", "dial-lane=junk")]),
    );
    assert_eq!(
        facts.lanes,
        [Read::Rejected(crate::core::lane::Rejection::Malformed)]
    );
    let (_, facts) = observe(&p, &Context::at(T0), &request(&[]));
    assert_eq!(facts.lanes, [Read::Absent]);
}
