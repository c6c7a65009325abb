use super::*;
use crate::core::request::HeaderList;
use serde_json::json;

/// The example policy (tests/data/checkout.json) with some of its release's fields replaced.
pub(super) fn policy(extra: serde_json::Value) -> Policy {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/checkout.json")).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        doc["releases"][0][k] = v.clone();
    }
    Policy::parse(doc.to_string().as_bytes()).unwrap()
}

pub(super) fn request(extra: &[(&str, &str)]) -> HeaderList {
    let mut pairs = vec![
        (":authority", "shop.example.com"),
        (":path", "/checkout/pay"),
    ];
    pairs.extend_from_slice(extra);
    HeaderList::from_strs(&pairs)
}

fn assigned(p: &Policy, r: &HeaderList) -> (String, Reason) {
    match decide(p, &Context::default(), r) {
        Decision::Assign(a) => (
            p.releases[a.release].subsets[a.subset].name.clone(),
            a.reason,
        ),
        Decision::Pass => panic!("passed"),
    }
}

/// A user key that the 90/10 split puts on `subset`.
pub(super) fn user_on(p: &Policy, subset: &str) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|u| assigned(p, &request(&[("x-user-id", u)])).0 == subset)
        .unwrap()
}

#[test]
fn requests_outside_every_release_pass() {
    let p = policy(json!({}));
    for (host, path) in [
        ("other.example.com", "/checkout"),
        ("shop.example.com", "/cart"),
    ] {
        let r = HeaderList::from_strs(&[(":authority", host), (":path", path), ("x-beta", "true")]);
        assert_eq!(decide(&p, &Context::default(), &r), Decision::Pass);
    }
}

#[test]
fn rules_beat_the_hash_in_order() {
    let p = policy(json!({}));
    let stable_user = user_on(&p, "stable");
    let r = |extra: &[(&str, &str)]| {
        let mut e = vec![("x-user-id", stable_user.as_str())];
        e.extend_from_slice(extra);
        assigned(&p, &request(&e))
    };
    assert_eq!(r(&[]), ("stable".into(), Reason::Hash));
    assert_eq!(
        r(&[("x-beta", "true")]),
        ("canary".into(), Reason::HeaderRule)
    );
    assert_eq!(r(&[("x-beta", "TRUE")]), ("stable".into(), Reason::Hash));
    assert_eq!(
        r(&[("cookie", "a=b; beta=1")]),
        ("canary".into(), Reason::CookieRule)
    );
    assert_eq!(
        r(&[("x-beta", "true"), ("cookie", "beta=1")]),
        ("canary".into(), Reason::HeaderRule)
    );
    assert_eq!(
        assigned(&p, &request(&[("x-user-id", "alice")])),
        ("canary".into(), Reason::Allowlist)
    );
    // The allowlist matches the key from any source, here the uid cookie.
    assert_eq!(
        assigned(&p, &request(&[("cookie", "uid=bob")])),
        ("canary".into(), Reason::Allowlist)
    );
}

#[test]
fn the_same_user_always_gets_the_same_subset() {
    let p = policy(json!({}));
    for i in 0..500 {
        let u = format!("u{i}");
        let first = assigned(&p, &request(&[("x-user-id", &u)]));
        assert_eq!(first.1, Reason::Hash);
        // Same key from the cookie source hashes identically.
        assert_eq!(
            assigned(&p, &request(&[("cookie", &format!("uid={u}"))])),
            first
        );
    }
}

#[test]
fn the_header_key_wins_over_the_cookie_key() {
    let p = policy(json!({}));
    let r = request(&[("x-user-id", "carol"), ("cookie", "uid=alice")]);
    assert_eq!(assigned(&p, &r).1, Reason::Hash);
    let r = request(&[("x-user-id", ""), ("cookie", "uid=alice")]);
    assert_eq!(assigned(&p, &r), ("canary".into(), Reason::Allowlist));
}

#[test]
fn anonymous_users_get_a_sticky_key_and_keep_it() {
    let p = policy(json!({}));
    let mut r = request(&[]);
    r.entropy = 0x0123_4567_89ab_cdef;
    let Decision::Assign(first) = decide(&p, &Context::default(), &r) else {
        panic!()
    };
    assert_eq!(first.reason, Reason::StickyCookie);
    let key = first.new_sticky_key.unwrap();
    assert_eq!(&key, b"0123456789abcdef");

    // Back with the cookie: same subset, no new cookie, whatever the entropy.
    let mut again = request(&[("cookie", "dial-checkout=0123456789abcdef")]);
    again.entropy = 42;
    let Decision::Assign(second) = decide(&p, &Context::default(), &again) else {
        panic!()
    };
    assert_eq!(
        (second.subset, second.reason, second.new_sticky_key),
        (first.subset, Reason::StickyCookie, None)
    );

    // A forged value is not trusted: a fresh key is minted.
    let forged = request(&[("cookie", "dial-checkout=canary")]);
    let Decision::Assign(third) = decide(&p, &Context::default(), &forged) else {
        panic!()
    };
    assert!(third.new_sticky_key.is_some());
}

#[test]
fn keyless_requests_can_get_a_fixed_subset() {
    let p = policy(json!({ "whenNoKey": { "subset": "canary" } }));
    assert_eq!(
        assigned(&p, &request(&[])),
        ("canary".into(), Reason::Fallback)
    );
}

#[test]
fn hostile_keys_fall_back() {
    let p = policy(json!({ "whenNoKey": { "subset": "stable" } }));
    let huge = "x".repeat(MAX_KEY_LEN + 1);
    assert_eq!(
        assigned(&p, &request(&[("x-user-id", &huge)])),
        ("stable".into(), Reason::Fallback)
    );
    assert_eq!(
        assigned(&p, &request(&[("x-user-id", "")])),
        ("stable".into(), Reason::Fallback)
    );
    let mut r = request(&[]);
    r.pairs.push(("x-user-id".into(), vec![0xff, 0xfe, 0x00]));
    assert_eq!(assigned(&p, &r).1, Reason::Hash);
    // Repeated headers: the first value is the key.
    let a = assigned(&p, &request(&[("x-user-id", "u1"), ("x-user-id", "u2")]));
    assert_eq!(a, assigned(&p, &request(&[("x-user-id", "u1")])));
}

#[test]
fn overrides_need_trust() {
    let p = policy(
        json!({ "override": { "header": "x-dial-override", "token": "0123456789abcdef",
                                         "sourceCidrs": ["10.0.0.0/8"] } }),
    );
    let u = user_on(&p, "stable");
    let with = |value: &str, ip: Option<&str>| {
        let mut r = request(&[("x-user-id", &u), ("x-dial-override", value)]);
        r.source_ip = ip.map(|i| i.parse().unwrap());
        assigned(&p, &r)
    };
    assert_eq!(with("canary", None), ("stable".into(), Reason::Hash));
    assert_eq!(
        with("canary; token=wrong-token-value", None),
        ("stable".into(), Reason::Hash)
    );
    assert_eq!(
        with("canary; token=0123456789abcdef", None),
        ("canary".into(), Reason::Override)
    );
    assert_eq!(
        with("canary", Some("10.1.2.3")),
        ("canary".into(), Reason::Override)
    );
    assert_eq!(
        with("canary", Some("192.0.2.1")),
        ("stable".into(), Reason::Hash)
    );
    assert_eq!(
        with("nosuch", Some("10.1.2.3")),
        ("stable".into(), Reason::Hash)
    );
    // An override beats rules too.
    let mut r = request(&[
        ("x-user-id", "alice"),
        ("x-dial-override", "stable; token=0123456789abcdef"),
    ]);
    r.entropy = 1;
    assert_eq!(assigned(&p, &r), ("stable".into(), Reason::Override));
}

#[test]
fn headers_naming_an_address_never_stand_in_for_the_peer() {
    let p = policy(
        json!({ "override": { "header": "x-dial-override", "sourceCidrs": ["10.0.0.0/8"] } }),
    );
    let u = user_on(&p, "stable");
    for (name, value) in [
        ("x-forwarded-for", "10.1.2.3"),
        ("x-envoy-external-address", "10.1.2.3"),
        ("forwarded", "for=10.1.2.3"),
        ("x-real-ip", "10.1.2.3"),
    ] {
        let r = request(&[
            ("x-user-id", &u),
            ("x-dial-override", "canary"),
            (name, value),
        ]);
        assert_eq!(assigned(&p, &r), ("stable".into(), Reason::Hash), "{name}");
        // The address a binding reports for Envoy's header-derived `source.address`.
        let mut r = r.clone();
        r.source_ip = crate::core::trust::connection_peer(b"10.1.2.3:0");
        assert_eq!(assigned(&p, &r), ("stable".into(), Reason::Hash), "{name}");
    }
}

#[test]
fn the_first_fitting_release_applies_with_its_own_salt() {
    let doc = json!({ "releases": [
        { "name": "a", "match": { "pathPrefixes": ["/a"] }, "key": [{ "header": "x-user-id" }],
          "subsets": [{ "name": "s", "version": "1", "weight": 50 }, { "name": "c", "version": "2", "weight": 50 }] },
        { "name": "b", "key": [{ "header": "x-user-id" }],
          "subsets": [{ "name": "s", "version": "1", "weight": 50 }, { "name": "c", "version": "2", "weight": 50 }] }
    ]});
    let p = Policy::parse(doc.to_string().as_bytes()).unwrap();
    let mut differ = 0;
    for i in 0..1000 {
        let u = format!("u{i}");
        let on = |path: &str| match decide(
            &p,
            &Context::default(),
            &HeaderList::from_strs(&[(":path", path), ("x-user-id", &u)]),
        ) {
            Decision::Assign(a) => (a.release, a.subset),
            Decision::Pass => panic!(),
        };
        let (ra, sa) = on("/a/x");
        let (rb, sb) = on("/b");
        assert_eq!((ra, rb), (0, 1));
        differ += usize::from(sa != sb);
    }
    // Independent 50/50 splits disagree for about half the users.
    assert!((400..600).contains(&differ), "{differ}");
}

/// `decide_release` decides as the policy of that one release would, whatever the releases
/// before it catch, with the tripped bit of its own index.
#[test]
fn one_release_decides_as_the_policy_of_it_alone() {
    let a = json!({ "name": "a", "key": [{ "header": "x-user-id" }],
        "subsets": [{ "name": "s", "version": "1", "weight": 50 }, { "name": "c", "version": "2", "weight": 50 }] });
    let b = json!({ "name": "b", "match": { "pathPrefixes": ["/b"] }, "key": [{ "header": "x-user-id" }],
        "subsets": [{ "name": "s", "version": "1", "weight": 70 }, { "name": "c", "version": "2", "weight": 30 }],
        "guard": { "subset": "c", "fallback": "s", "window": "10s", "minRequests": 20, "maxErrorRate": 0.05 } });
    let parse = |releases: serde_json::Value| {
        Policy::parse(json!({ "releases": releases }).to_string().as_bytes()).unwrap()
    };
    let (both, alone) = (parse(json!([a, b])), parse(json!([b])));
    for (both_tripped, alone_tripped) in [(0, 0), (0b10, 0b1)] {
        let (c, ca) = (
            Context {
                now_nanos: None,
                tripped: both_tripped,
            },
            Context {
                now_nanos: None,
                tripped: alone_tripped,
            },
        );
        for i in 0..300 {
            let r = HeaderList::from_strs(&[(":path", "/b/x"), ("x-user-id", &format!("u{i}"))]);
            let (Decision::Assign(got), Decision::Assign(want)) =
                (decide_release(&both, 1, &c, &r), decide(&alone, &ca, &r))
            else {
                panic!("passed");
            };
            assert_eq!(
                (got.release, got.subset, got.reason),
                (1, want.subset, want.reason)
            );
            // The policy whole gives the request to release a, which catches every path.
            assert!(matches!(decide(&both, &c, &r), Decision::Assign(x) if x.release == 0));
        }
    }
    let outside = HeaderList::from_strs(&[(":path", "/a"), ("x-user-id", "u1")]);
    assert_eq!(
        decide_release(&both, 1, &Context::default(), &outside),
        Decision::Pass
    );
    assert_eq!(
        decide_release(&both, 2, &Context::default(), &outside),
        Decision::Pass
    );
}

fn mirrored(p: &Policy, r: &HeaderList) -> bool {
    match decide(p, &Context::default(), r) {
        Decision::Assign(a) => a.mirror,
        Decision::Pass => panic!("passed"),
    }
}

#[test]
fn mirror_sampling_is_consistent_per_user_and_near_the_percentage() {
    let p = policy(json!({ "mirror": { "version": "v3", "percent": 12.5 } }));
    let mut sampled = 0;
    let mut sampled_canary = 0;
    let mut canary = 0;
    for i in 0..40_000 {
        let u = format!("u{i}");
        let r = request(&[(":method", "GET"), ("x-user-id", &u)]);
        let m = mirrored(&p, &r);
        // The same user on another request (other path, other headers, other entropy): the
        // sampling follows the key alone.
        let mut other = request(&[(":method", "GET"), ("accept", "*/*"), ("x-user-id", &u)]);
        other.pairs[1].1 = b"/checkout/other".to_vec();
        other.entropy = u64::MAX - i;
        assert_eq!(m, mirrored(&p, &other), "{u}");
        let on_canary = assigned(&p, &r).0 == "canary";
        sampled += usize::from(m);
        canary += usize::from(on_canary);
        sampled_canary += usize::from(m && on_canary);
    }
    let share = sampled as f64 / 40_000.0 * 100.0;
    assert!((share - 12.5).abs() < 0.5, "{share}");
    // Independent of the subset split: canary users are sampled at the same rate.
    let canary_share = sampled_canary as f64 / canary as f64 * 100.0;
    assert!((canary_share - 12.5).abs() < 1.5, "{canary_share}");
}

#[test]
fn only_safe_methods_are_mirrored_by_default() {
    let p = policy(json!({ "mirror": { "version": "v3", "percent": 100 } }));
    for method in ["GET", "HEAD", "OPTIONS"] {
        assert!(
            mirrored(&p, &request(&[(":method", method), ("x-user-id", "u")])),
            "{method}"
        );
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "get", ""] {
        assert!(
            !mirrored(&p, &request(&[(":method", method), ("x-user-id", "u")])),
            "{method}"
        );
    }
    let writes =
        policy(json!({ "mirror": { "version": "v3", "percent": 100, "methods": ["POST"] } }));
    assert!(mirrored(
        &writes,
        &request(&[(":method", "POST"), ("x-user-id", "u")])
    ));
    assert!(!mirrored(
        &writes,
        &request(&[(":method", "GET"), ("x-user-id", "u")])
    ));
}

#[test]
fn zero_and_hundred_percent_are_exact() {
    let none = policy(json!({ "mirror": { "version": "v3", "percent": 0 } }));
    let all = policy(json!({ "mirror": { "version": "v3", "percent": 100 } }));
    for i in 0..2_000 {
        let mut r = request(&[(":method", "GET"), ("x-user-id", &format!("u{i}"))]);
        assert!(!mirrored(&none, &r));
        assert!(mirrored(&all, &r));
        r.pairs.retain(|(n, _)| n != "x-user-id");
        r.entropy = u64::MAX - i;
        assert!(!mirrored(&none, &r));
        assert!(mirrored(&all, &r));
    }
}

#[test]
fn keyless_requests_are_sampled_at_random() {
    let p = policy(json!({ "mirror": { "version": "v3", "percent": 50 },
                            "whenNoKey": { "subset": "stable" } }));
    let mut r = request(&[(":method", "GET")]);
    r.entropy = 0;
    assert!(mirrored(&p, &r));
    r.entropy = u64::from(u32::MAX);
    assert!(!mirrored(&p, &r));
}

pub(super) const T0: u64 = 1_796_115_600_000_000_000; // 2026-12-01T09:00:00Z
pub(super) const MINUTE: u64 = 60_000_000_000;

pub(super) fn ramped() -> Policy {
    policy(json!({
        "ramp": { "subset": "canary", "start": "2026-12-01T09:00:00Z",
                  "steps": [ { "weight": 10, "hold": "1m" }, { "weight": 25, "hold": "1m" },
                             { "weight": 50, "hold": "2m" }, { "weight": 100 } ] }
    }))
}

fn canary_users(p: &Policy, context: &Context, users: usize) -> Vec<bool> {
    (0..users)
        .map(|i| {
            let r = request(&[("x-user-id", &format!("user-{i}"))]);
            match decide(p, context, &r) {
                Decision::Assign(a) => a.subset == 1,
                Decision::Pass => panic!(),
            }
        })
        .collect()
}

#[test]
fn a_ramp_follows_the_clock_and_never_moves_a_user_back() {
    let p = ramped();
    let at = |t: Option<u64>| Context {
        now_nanos: t,
        tripped: 0,
    };
    // (time, the canary's share in percent)
    let times = [
        (None, 10.0),
        (Some(0), 10.0),
        (Some(T0 - 1), 10.0),
        (Some(T0), 10.0),
        (Some(T0 + MINUTE - 1), 10.0),
        (Some(T0 + MINUTE), 25.0),
        (Some(T0 + 2 * MINUTE), 50.0),
        (Some(T0 + 4 * MINUTE - 1), 50.0),
        (Some(T0 + 4 * MINUTE), 100.0),
        (Some(u64::MAX), 100.0),
    ];
    let mut previous = canary_users(&p, &at(None), 4000);
    for (t, want) in times {
        let now = canary_users(&p, &at(t), 4000);
        let share = now.iter().filter(|c| **c).count() as f64 / 40.0;
        assert!((share - want).abs() < 1.5, "at {t:?}: {share}% for {want}%");
        if t.is_some() {
            for (i, (before, after)) in previous.iter().zip(&now).enumerate() {
                assert!(!before || *after, "user-{i} left the canary at {t:?}");
            }
            previous = now;
        }
    }
}

#[test]
fn a_tripped_guard_sends_everyone_but_trusted_overrides_to_the_fallback() {
    let p = policy(json!({
        "guard": { "subset": "canary", "fallback": "stable", "window": "10s", "minRequests": 20,
                   "maxErrorRate": 0.05 }
    }));
    let tripped = Context {
        now_nanos: Some(T0),
        tripped: 1,
    };
    let canary = user_on(&p, "canary");
    let on = |r: &HeaderList, c: &Context| match decide(&p, c, r) {
        Decision::Assign(a) => (p.releases[0].subsets[a.subset].name.clone(), a.reason),
        Decision::Pass => panic!(),
    };
    let hashed = request(&[("x-user-id", &canary)]);
    assert_eq!(
        on(&hashed, &Context::default()),
        ("canary".into(), Reason::Hash)
    );
    assert_eq!(on(&hashed, &tripped), ("stable".into(), Reason::Guardrail));
    for rule in [
        ("x-beta", "true"),
        ("x-user-id", "alice"),
        ("cookie", "beta=1"),
    ] {
        assert_eq!(
            on(&request(&[rule]), &tripped),
            ("stable".into(), Reason::Guardrail)
        );
    }
    let mut anonymous = request(&[]);
    anonymous.entropy = (0..u64::MAX)
        .find(|e| {
            let mut r = request(&[]);
            r.entropy = *e;
            on(&r, &Context::default()).0 == "canary"
        })
        .unwrap();
    assert_eq!(
        on(&anonymous, &tripped),
        ("stable".into(), Reason::Guardrail)
    );
    let stable = user_on(&p, "stable");
    assert_eq!(
        on(&request(&[("x-user-id", &stable)]), &tripped),
        ("stable".into(), Reason::Hash)
    );
    // A trusted override still reaches the tripped canary, to debug it.
    let debug = request(&[
        ("x-user-id", &canary),
        ("x-dial-override", "canary; token=qa-token-0123456789"),
    ]);
    assert_eq!(on(&debug, &tripped), ("canary".into(), Reason::Override));
}

#[test]
fn a_tripped_guard_stops_the_ramp() {
    let mut doc = ramped_doc();
    doc["releases"][0]["guard"] = json!({ "subset": "stable", "fallback": "canary", "window": "10s",
                                          "minRequests": 1, "maxErrorRate": 0.5 });
    let p = Policy::parse(doc.to_string().as_bytes()).unwrap();
    let later = Context {
        now_nanos: Some(T0 + 2 * MINUTE),
        tripped: 0,
    };
    let tripped = Context {
        tripped: 1,
        ..later
    };
    let share = |c: &Context| canary_users(&p, c, 2000).iter().filter(|x| **x).count();
    assert!((950..1050).contains(&share(&later)), "{}", share(&later));
    // Stable tripped: everybody goes to the canary, by the guard, not the ramp.
    assert_eq!(share(&tripped), 2000);
}

pub(super) fn ramped_doc() -> serde_json::Value {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/checkout.json")).unwrap();
    doc["releases"][0]["ramp"] = json!({ "subset": "canary", "start": "2026-12-01T09:00:00Z",
        "steps": [ { "weight": 10, "hold": "1m" }, { "weight": 25, "hold": "1m" },
                   { "weight": 50, "hold": "2m" }, { "weight": 100 } ] });
    doc
}

fn signed_sticky(secret: &str, previous: Option<&str>) -> Policy {
    let mut cookie = json!({ "name": "dial-checkout", "maxAgeSeconds": 2592000, "secret": secret });
    if let Some(p) = previous {
        cookie["previousSecret"] = json!(p);
    }
    policy(json!({ "whenNoKey": { "stickyCookie": cookie } }))
}

fn sticky_of(p: &Policy, cookie: &str, entropy: u64) -> Assignment {
    let mut r = request(&[("cookie", cookie)]);
    r.entropy = entropy;
    match decide(p, &Context::default(), &r) {
        Decision::Assign(a) => a,
        Decision::Pass => panic!("passed"),
    }
}

/// The example's gap: with bare keys, `0000000000000001` lands on the canary every time. With a
/// secret, a key the client chose is not honoured: it gets a freshly minted one.
#[test]
fn a_signed_sticky_cookie_cannot_be_chosen_by_the_client() {
    let bare = policy(json!({}));
    let chosen = "dial-checkout=0000000000000001";
    let a = sticky_of(&bare, chosen, 7);
    assert_eq!(
        (a.reason, a.new_sticky_key, a.key),
        (Reason::StickyCookie, None, Some(KeyOrigin::StickyCookie))
    );

    let p = signed_sticky("a-long-random-secret-1", None);
    let forged = sticky_of(&p, chosen, 0x0123_4567_89ab_cdef);
    assert_eq!(forged.key, Some(KeyOrigin::Minted));
    assert_eq!(forged.new_sticky_key.as_ref(), Some(b"0123456789abcdef"));

    // The value Dial minted, signed, is honoured as it is: same subset, nothing to set.
    let WhenNoKey::Sticky(cookie) = &p.releases[0].when_no_key else {
        panic!()
    };
    let value = cookie.value(b"0123456789abcdef");
    let back = sticky_of(&p, &format!("dial-checkout={value}"), 99);
    assert_eq!(
        (back.subset, back.new_sticky_key, back.key),
        (forged.subset, None, Some(KeyOrigin::StickyCookie))
    );
}

#[test]
fn rotating_the_secret_keeps_every_anonymous_user_where_they_were() {
    let old = signed_sticky("the-first-secret-00", None);
    let rotated = signed_sticky("the-second-secret-0", Some("the-first-secret-00"));
    let WhenNoKey::Sticky(old_cookie) = &old.releases[0].when_no_key else {
        panic!()
    };
    for i in 0..300u64 {
        let key = crate::core::sticky::mint_key(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let value = format!("dial-checkout={}", old_cookie.value(&key));
        let before = sticky_of(&old, &value, 1);
        let after = sticky_of(&rotated, &value, 2);
        assert_eq!(after.subset, before.subset, "{value}");
        // Honoured, and to be signed again with the current secret.
        assert_eq!(after.key, Some(KeyOrigin::StickyCookie));
        assert_eq!(after.new_sticky_key, Some(key));
    }
}

fn subset_of_key(p: &Policy, key: &str) -> usize {
    match decide(p, &Context::default(), &request(&[("x-user-id", key)])) {
        Decision::Assign(a) => a.subset,
        Decision::Pass => panic!("passed"),
    }
}

fn reference_murmur(text: &str, seed: u32) -> u32 {
    murmur3::murmur3_32(&mut text.as_bytes(), seed).unwrap()
}

/// Each scheme's documented formula, from the reference murmur3: the wiring, not the agreement
/// with the SDKs themselves. (`% 100 + 1 <= p` is written as Unleash writes it.)
#[test]
#[allow(clippy::int_plus_one)]
fn each_scheme_buckets_by_its_own_formula() {
    let with = |bucketing: serde_json::Value, subsets: serde_json::Value| {
        policy(json!({ "bucketing": bucketing, "subsets": subsets, "rules": [] }))
    };
    let two = json!([{ "name": "stable", "version": "v1", "weight": 75 },
                     { "name": "canary", "version": "v2", "weight": 25 }]);
    let three = json!([{ "name": "a", "version": "v1", "weight": 500 },
                       { "name": "b", "version": "v2", "weight": 300 },
                       { "name": "c", "version": "v3", "weight": 200 }]);
    let rollout = with(
        json!({ "scheme": "unleash", "groupId": "new-checkout" }),
        two.clone(),
    );
    let variants = with(
        json!({ "scheme": "unleash", "groupId": "new-checkout" }),
        three.clone(),
    );
    let flagd = with(
        json!({ "scheme": "flagd", "flagKey": "new-checkout" }),
        three.clone(),
    );
    let flagd_v1 = with(
        json!({ "scheme": "flagd", "flagKey": "new-checkout", "version": 1 }),
        three,
    );
    for i in 0..2000 {
        let key = format!("user-{i}");
        let h = reference_murmur(&format!("new-checkout:{key}"), 0);
        assert_eq!(
            subset_of_key(&rollout, &key),
            usize::from(h % 100 + 1 <= 25),
            "{key}"
        );
        let v = reference_murmur(&format!("new-checkout:{key}"), 86_028_157) % 1000 + 1;
        let want = if v <= 500 {
            0
        } else if v <= 800 {
            1
        } else {
            2
        };
        assert_eq!(subset_of_key(&variants, &key), want, "{key}");
        let f = reference_murmur(&format!("new-checkout{key}"), 0);
        let bucket = ((u64::from(f) * 1000) >> 32) / 10;
        let want = if bucket < 50 {
            0
        } else if bucket < 80 {
            1
        } else {
            2
        };
        assert_eq!(subset_of_key(&flagd, &key), want, "{key}");
        let ratio = f64::from(f as i32).abs() / f64::from(i32::MAX) * 100.0;
        let want = if ratio < 50.0 {
            0
        } else if ratio < 80.0 {
            1
        } else {
            2
        };
        assert_eq!(subset_of_key(&flagd_v1, &key), want, "{key}");
    }
}

#[test]
#[allow(clippy::int_plus_one)]
fn an_unleash_ramp_raises_the_rollout_and_never_moves_a_user_back() {
    let p = policy(json!({
        "bucketing": { "scheme": "unleash", "groupId": "checkout" },
        "rules": [],
        "ramp": { "subset": "canary", "start": "2026-12-01T09:00:00Z",
                  "steps": [ { "weight": 10, "hold": "1m" }, { "weight": 25, "hold": "1m" }, { "weight": 100 } ] }
    }));
    let mut previous: Option<Vec<bool>> = None;
    for (t, rollout) in [(T0, 10), (T0 + MINUTE, 25), (T0 + 2 * MINUTE, 100)] {
        let context = Context {
            now_nanos: Some(t),
            tripped: 0,
        };
        let now: Vec<bool> = (0..2000)
            .map(|i| {
                let key = format!("user-{i}");
                let on = matches!(decide(&p, &context, &request(&[("x-user-id", &key)])),
                    Decision::Assign(a) if a.subset == 1);
                let h = reference_murmur(&format!("checkout:{key}"), 0);
                assert_eq!(on, h % 100 + 1 <= rollout, "{key} at {rollout}%");
                on
            })
            .collect();
        if let Some(before) = &previous {
            assert!(before.iter().zip(&now).all(|(b, a)| !b || *a));
        }
        previous = Some(now);
    }
}

#[test]
fn a_key_can_come_from_baggage() {
    let p = policy(json!({ "key": [ { "baggage": "user.id" }, { "header": "x-user-id" } ] }));
    let from_baggage = request(&[("baggage", "tenant=acme, user.id=carol%40example.com;p=1")]);
    let from_header = request(&[("x-user-id", "carol@example.com")]);
    let (a, b) = match (
        decide(&p, &Context::default(), &from_baggage),
        decide(&p, &Context::default(), &from_header),
    ) {
        (Decision::Assign(a), Decision::Assign(b)) => (a, b),
        _ => panic!("passed"),
    };
    assert_eq!(
        (a.subset, a.position, a.key),
        (b.subset, b.position, Some(KeyOrigin::Source(0)))
    );
    // A malformed member: no key from it; the next source is used.
    let malformed = request(&[
        ("baggage", "user.id=al ice"),
        ("x-user-id", "carol@example.com"),
    ]);
    match decide(&p, &Context::default(), &malformed) {
        Decision::Assign(m) => {
            assert_eq!((m.subset, m.key), (b.subset, Some(KeyOrigin::Source(1))))
        }
        Decision::Pass => panic!("passed"),
    }
}

/// flagd's version 3 hashes the canonical CBOR of the bucketing value; Unleash can split two
/// subsets as variants too.
#[test]
fn flagd_v3_hashes_cbor_and_unleash_splits_two_variants() {
    let two = json!([{ "name": "stable", "version": "v1", "weight": 500 },
                     { "name": "canary", "version": "v2", "weight": 500 }]);
    let with = |bucketing: serde_json::Value| {
        policy(json!({ "bucketing": bucketing, "subsets": two.clone(), "rules": [] }))
    };
    let v3 = with(json!({ "scheme": "flagd", "flagKey": "new-checkout", "version": 3 }));
    let v3_key_only = with(json!({ "scheme": "flagd", "flagKey": "", "version": 3 }));
    let variants =
        with(json!({ "scheme": "unleash", "groupId": "new-checkout", "mode": "variants" }));
    for i in 0..1000 {
        let key = format!("user-{i}");
        // [ "new-checkout", key ]: array(2), text(12) "new-checkout", text(len) key.
        let mut cbor = vec![0x82, 0x6c];
        cbor.extend_from_slice(b"new-checkout");
        cbor.push(0x60 | key.len() as u8);
        cbor.extend_from_slice(key.as_bytes());
        let h = murmur3::murmur3_32(&mut cbor.as_slice(), 0).unwrap();
        assert_eq!(
            subset_of_key(&v3, &key),
            usize::from((u64::from(h) * 1000) >> 32 >= 500)
        );
        let mut text = vec![0x60 | key.len() as u8];
        text.extend_from_slice(key.as_bytes());
        let h = murmur3::murmur3_32(&mut text.as_slice(), 0).unwrap();
        assert_eq!(
            subset_of_key(&v3_key_only, &key),
            usize::from((u64::from(h) * 1000) >> 32 >= 500)
        );
        let v = reference_murmur(&format!("new-checkout:{key}"), 86_028_157) % 1000 + 1;
        assert_eq!(
            subset_of_key(&variants, &key),
            usize::from(v > 500),
            "{key}"
        );
    }
}
