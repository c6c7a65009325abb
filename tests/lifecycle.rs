//! The exchange's whole life, natively, against a host that records every call: what reaches
//! the upstream, what the client gets back, which metrics move. These are the checks only a
//! real Envoy could make before the lifecycle moved into the core; Envoy end to end still
//! proves the binding (tests/routing.rs, tests/stats.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dial::core::decide::{decide, Context, Decision, KeyOrigin, Reason};
use dial::core::exchange::Engine;
use dial::core::policy::MAX_KEY_LEN;
use dial::core::recording::{Call, RecordingHost};
use dial::core::request::{serialize, HeaderList, SerializedHeaders, SerializedRequest};
use dial::core::stats::tagged;
use serde_json::{json, Value};

const CHECKOUT: &str = include_str!("data/checkout.json");
const HOST: &str = "shop.example.com";
/// When the request headers arrive, and how long the exchange takes.
const START: u64 = 1_800_000_000_000_000_000;
const TOOK_MS: u64 = 250;

fn engine() -> Engine {
    Engine::from_config(CHECKOUT.as_bytes()).unwrap()
}

/// The example policy with one change to its release.
fn engine_with(field: &str, value: Value) -> Engine {
    let mut doc: Value = serde_json::from_str(CHECKOUT).unwrap();
    doc["releases"][0][field] = value;
    Engine::from_config(doc.to_string().as_bytes()).unwrap()
}

fn request(extra: &[(&str, &[u8])]) -> HeaderList {
    let mut pairs: Vec<(String, Vec<u8>)> = vec![
        (":authority".into(), HOST.into()),
        (":path".into(), b"/checkout/pay".to_vec()),
        (":method".into(), b"GET".to_vec()),
    ];
    pairs.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_vec())));
    HeaderList::new(pairs)
}

/// One whole exchange: request headers at START, the upstream answers `status`, the exchange
/// ends TOOK_MS later. Returns the host with everything recorded.
fn exchange(engine: &Engine, request: &HeaderList, status: u32) -> RecordingHost {
    let mut host = RecordingHost::new(request);
    host.clock = START;
    let mut exchange = engine.on_request_headers(&mut host, request, &Context::at(START));
    host.respond(status);
    exchange.on_response_headers(engine, &mut host);
    host.clock = START + TOOK_MS * 1_000_000;
    exchange.on_end(engine, &mut host);
    host
}

fn metric(engine: &Engine, name: &str) -> usize {
    engine
        .catalog
        .metrics
        .iter()
        .position(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn requests(subset: &str, version: &str, reason: &str) -> String {
    tagged(
        &[
            ("release", "checkout"),
            ("subset", subset),
            ("version", version),
            ("reason", reason),
        ],
        "dial_requests_total",
    )
}

fn responses(subset: &str, version: &str, class: &str) -> String {
    tagged(
        &[
            ("release", "checkout"),
            ("subset", subset),
            ("version", version),
            ("status_class", class),
        ],
        "dial_responses_total",
    )
}

fn duration(subset: &str, version: &str) -> String {
    tagged(
        &[
            ("release", "checkout"),
            ("subset", subset),
            ("version", version),
        ],
        "dial_request_duration_milliseconds",
    )
}

/// A user id the core puts on `subset` by hash.
fn user_on(engine: &Engine, subset: &str) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|u| subset_of(engine, &request(&[("x-user-id", u.as_bytes())])).0 == subset)
        .unwrap()
}

fn subset_of(engine: &Engine, r: &HeaderList) -> (String, Reason) {
    match decide(&engine.policy, &Context::default(), r) {
        Decision::Assign(a) => (
            engine.policy.releases[a.release].subsets[a.subset]
                .name
                .clone(),
            a.reason,
        ),
        Decision::Pass => panic!("passed"),
    }
}

fn text(values: Vec<&[u8]>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn a_hashed_user_is_steered_counted_and_timed_with_exactly_these_calls() {
    let e = engine();
    let user = user_on(&e, "canary");
    let r = request(&[("x-user-id", user.as_bytes())]);
    let host = exchange(&e, &r, 200);

    let set = |n: &str, v: &str| Call::SetRequestHeader(n.into(), v.into());
    assert_eq!(
        host.calls,
        [
            set("x-dial-subset", "canary"),
            set("x-dial-version", "v2"),
            Call::Increment(metric(&e, &requests("canary", "v2", "hash"))),
            Call::ResponseStatus,
            Call::SetResponseHeader(
                "x-dial-assignment".into(),
                "release=checkout; subset=canary; version=v2; reason=hash".into()
            ),
            Call::Increment(metric(&e, &responses("canary", "v2", "2xx"))),
            Call::Now,
            Call::Record(metric(&e, &duration("canary", "v2")), TOOK_MS),
        ]
    );
    // The upstream gets the client's headers plus Dial's two, once each.
    let mut want = r.pairs.clone();
    want.push(("x-dial-subset".into(), b"canary".to_vec()));
    want.push(("x-dial-version".into(), b"v2".to_vec()));
    assert_eq!(host.request.pairs, want);
    assert_eq!(
        host.counted(&e.catalog),
        [
            (requests("canary", "v2", "hash").as_str(), 1),
            (responses("canary", "v2", "2xx").as_str(), 1)
        ]
    );
    assert_eq!(
        host.recorded(&e.catalog),
        [(duration("canary", "v2").as_str(), TOOK_MS)]
    );
}

#[test]
fn client_sent_dial_headers_never_reach_the_upstream_inside_a_release() {
    let e = engine();
    let user = user_on(&e, "stable");
    let r = request(&[
        ("x-dial-subset", b"canary"),
        ("x-user-id", user.as_bytes()),
        ("x-dial-subset", b"canary"),
        ("x-dial-version", b"v9"),
        ("x-dial-mirror", b"v3"),
        ("x-dial-override", b"canary"),
    ]);
    let host = exchange(&e, &r, 200);
    assert_eq!(text(host.request_values("x-dial-subset")), ["stable"]);
    assert_eq!(text(host.request_values("x-dial-version")), ["v1"]);
    assert!(host.request_values("x-dial-mirror").is_empty());
    assert!(host.request_values("x-dial-override").is_empty());
    assert_eq!(text(host.request_values("x-user-id")), [user.as_str()]);
    // Removed: only what Dial will not set anyway (set replaces the rest).
    let removed: Vec<&Call> = host
        .calls
        .iter()
        .filter(|c| matches!(c, Call::RemoveRequestHeader(_)))
        .collect();
    assert_eq!(
        removed,
        [
            &Call::RemoveRequestHeader("x-dial-mirror".into()),
            &Call::RemoveRequestHeader("x-dial-override".into())
        ]
    );
    assert_eq!(
        host.counted(&e.catalog)[0],
        (requests("stable", "v1", "hash").as_str(), 1)
    );
}

#[test]
fn outside_every_release_client_copies_are_removed_and_nothing_is_counted() {
    let e = engine();
    for (authority, path) in [("other.example.com", "/checkout"), (HOST, "/cart")] {
        let r = HeaderList::new(vec![
            (":authority".into(), authority.into()),
            (":path".into(), path.into()),
            ("x-dial-version".into(), b"v2".to_vec()),
            ("x-dial-subset".into(), b"canary".to_vec()),
            (
                "x-dial-override".into(),
                b"canary; token=qa-token-0123456789".to_vec(),
            ),
            ("x-dial-subset".into(), b"canary".to_vec()),
        ]);
        let host = exchange(&e, &r, 200);
        assert_eq!(
            host.calls,
            [
                Call::RemoveRequestHeader("x-dial-subset".into()),
                Call::RemoveRequestHeader("x-dial-version".into()),
                Call::RemoveRequestHeader("x-dial-override".into()),
            ],
            "{authority}{path}"
        );
        assert_eq!(host.request.pairs, r.pairs[..2]);
        assert_eq!(host.response, [(":status".to_string(), "200".to_string())]);
        assert!(host.counters.is_empty() && host.records.is_empty());
    }
    // Nothing to remove: no host call at all.
    let quiet = HeaderList::from_strs(&[(":authority", "other.example.com"), (":path", "/")]);
    assert!(exchange(&e, &quiet, 200).calls.is_empty());
}

#[test]
fn an_anonymous_user_gets_a_sticky_cookie_once_and_keeps_the_subset() {
    let e = engine();
    let mut first = request(&[]);
    first.entropy = 0x0123_4567_89ab_cdef;
    let host = exchange(&e, &first, 200);
    let cookie = "dial-checkout=0123456789abcdef; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax";
    assert_eq!(host.response_values("set-cookie"), [cookie]);
    let subset = text(host.request_values("x-dial-subset"));
    assert_eq!(subset.len(), 1);
    let echo = host.response_values("x-dial-assignment")[0].to_string();
    assert!(echo.ends_with("reason=sticky_cookie"), "{echo}");

    // Back with the cookie (among others): same subset, no new cookie, whatever the entropy.
    let mut again = request(&[("cookie", b"theme=dark; dial-checkout=0123456789abcdef")]);
    again.entropy = 42;
    let host = exchange(&e, &again, 200);
    assert!(host.response_values("set-cookie").is_empty());
    assert_eq!(text(host.request_values("x-dial-subset")), subset);
    let version = if subset[0] == "stable" { "v1" } else { "v2" };
    assert_eq!(
        host.counted(&e.catalog)[0],
        (requests(&subset[0], version, "sticky_cookie").as_str(), 1)
    );
}

#[test]
fn forged_or_broken_sticky_values_are_replaced_with_a_minted_key() {
    let e = engine();
    let forged: [&[u8]; 7] = [
        b"canary",
        b"0123456789ABCDEF",
        b"0123456789abcdef0",
        b"0123456789abcde",
        b"0123456789abcdeg",
        b"",
        b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0",
    ];
    for value in forged {
        let mut cookie = b"dial-checkout=".to_vec();
        cookie.extend_from_slice(value);
        let mut r = request(&[("cookie", &cookie)]);
        r.entropy = 0xffff_0000_ffff_0000;
        let host = exchange(&e, &r, 200);
        assert_eq!(
            host.response_values("set-cookie"),
            ["dial-checkout=ffff0000ffff0000; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax"],
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn hostile_keys_get_a_correct_fallback() {
    let e = engine();
    let at_limit = "k".repeat(MAX_KEY_LEN);
    let over_limit = "k".repeat(MAX_KEY_LEN + 1);
    let canary = user_on(&e, "canary");
    // (headers, the key the core must use, or None for "no key": a sticky cookie is minted)
    type Case<'a> = (Vec<(&'a str, &'a [u8])>, Option<&'a [u8]>);
    let cases: Vec<Case> = vec![
        (
            vec![("x-user-id", b"\xff\xfe\x80 caf\xc3")],
            Some(b"\xff\xfe\x80 caf\xc3"),
        ),
        (
            vec![("x-user-id", canary.as_bytes()), ("x-user-id", b"other")],
            Some(canary.as_bytes()),
        ),
        (
            vec![("x-user-id", b""), ("cookie", b"uid=bob-2")],
            Some(b"bob-2"),
        ),
        (
            vec![("x-user-id", at_limit.as_bytes())],
            Some(at_limit.as_bytes()),
        ),
        (vec![("x-user-id", over_limit.as_bytes())], None),
        (vec![("x-user-id", b"")], None),
        (vec![("cookie", b";;;==;=;"), ("cookie", b"\"\"")], None),
        (
            vec![
                ("x-user-id", b"u1"),
                ("x-dial-override", b"\xff; token=\xfe"),
            ],
            Some(b"u1"),
        ),
        (
            vec![("x-user-id", b"u1"), ("x-beta", b"true\xff")],
            Some(b"u1"),
        ),
    ];
    for (headers, key) in cases {
        let mut r = request(&headers);
        r.entropy = 7;
        let host = exchange(&e, &r, 200);
        let subset = text(host.request_values("x-dial-subset"));
        assert_eq!(subset.len(), 1, "{headers:?}");
        let reason = host.response_values("x-dial-assignment")[0]
            .rsplit("reason=")
            .next()
            .unwrap()
            .to_string();
        match key {
            Some(key) => {
                // Exactly where the key alone would put the user.
                let alone = request(&[("x-user-id", key)]);
                assert_eq!(
                    (subset[0].clone(), reason.as_str()),
                    (subset_of(&e, &alone).0, "hash"),
                    "{headers:?}"
                );
                assert!(host.response_values("set-cookie").is_empty());
            }
            None => {
                assert_eq!(reason, "sticky_cookie", "{headers:?}");
                assert_eq!(host.response_values("set-cookie").len(), 1);
            }
        }
        assert!(host.request_values("x-dial-override").is_empty());
    }
}

#[test]
fn status_classes_and_durations_are_counted_per_subset() {
    let e = engine();
    let user = user_on(&e, "stable");
    let r = request(&[("x-user-id", user.as_bytes())]);
    for (status, class) in [
        (200, Some("2xx")),
        (302, Some("3xx")),
        (404, Some("4xx")),
        (503, Some("5xx")),
        (101, None),
    ] {
        let host = exchange(&e, &r, status);
        let counted = host.counted(&e.catalog);
        let want: Vec<String> = [Some(requests("stable", "v1", "hash"))]
            .into_iter()
            .chain([class.map(|c| responses("stable", "v1", c))])
            .flatten()
            .collect();
        let got: Vec<String> = counted.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(got, want, "{status}");
        assert_eq!(
            host.recorded(&e.catalog),
            [(duration("stable", "v1").as_str(), TOOK_MS)]
        );
    }

    // A response without a usable :status counts no class; a clock that went backwards records 0;
    // a request whose start time is unknown records no duration.
    let mut host = RecordingHost::new(&r);
    let mut x = e.on_request_headers(&mut host, &r, &Context::at(START));
    host.response = vec![(":status".into(), "abc".into())];
    x.on_response_headers(&e, &mut host);
    host.clock = START - 5;
    x.on_end(&e, &mut host);
    assert_eq!(host.counted(&e.catalog).len(), 1);
    assert_eq!(
        host.recorded(&e.catalog),
        [(duration("stable", "v1").as_str(), 0)]
    );
    let mut host = RecordingHost::new(&r);
    let mut x = e.on_request_headers(&mut host, &r, &Context::default());
    host.respond(200);
    x.on_response_headers(&e, &mut host);
    x.on_end(&e, &mut host);
    assert!(host.records.is_empty());
    assert!(!host.calls.contains(&Call::Now));
}

#[test]
fn the_debug_echo_replaces_an_upstream_copy() {
    let e = engine();
    let r = request(&[("x-user-id", b"alice")]);
    let mut host = RecordingHost::new(&r);
    let mut x = e.on_request_headers(&mut host, &r, &Context::at(START));
    host.response = vec![
        (":status".into(), "200".into()),
        ("x-dial-assignment".into(), "forged".into()),
    ];
    x.on_response_headers(&e, &mut host);
    assert_eq!(
        host.response_values("x-dial-assignment"),
        ["release=checkout; subset=canary; version=v2; reason=allowlist"]
    );
    // Response headers are handled once: a second pass (a 100-continue, say) adds nothing.
    x.on_response_headers(&e, &mut host);
    assert_eq!(host.response_values("x-dial-assignment").len(), 1);
}

#[test]
fn sampled_requests_are_marked_for_the_mirror_and_counted() {
    let e = engine_with("mirror", json!({ "version": "v3", "percent": 100 }));
    let mirrored = tagged(
        &[("release", "checkout"), ("version", "v3")],
        "dial_mirrored_requests_total",
    );
    let host = exchange(&e, &request(&[("x-user-id", b"u1")]), 200);
    assert_eq!(text(host.request_values("x-dial-mirror")), ["v3"]);
    assert!(host.counted(&e.catalog).contains(&(mirrored.as_str(), 1)));

    // A write is not mirrored, and a client cannot ask for it.
    let mut post = request(&[("x-user-id", b"u1"), ("x-dial-mirror", b"v3")]);
    post.pairs[2].1 = b"POST".to_vec();
    let host = exchange(&e, &post, 200);
    assert!(host.request_values("x-dial-mirror").is_empty());
    assert!(host
        .calls
        .contains(&Call::RemoveRequestHeader("x-dial-mirror".into())));
    assert!(!host.counted(&e.catalog).iter().any(|(n, _)| *n == mirrored));
}

#[test]
fn a_host_that_refuses_every_call_costs_no_panic() {
    let e = engine();
    let r = request(&[("x-dial-subset", b"canary"), ("x-dial-mirror", b"v3")]);
    let mut host = RecordingHost::new(&r);
    host.refuse = true;
    let mut x = e.on_request_headers(&mut host, &r, &Context::at(START));
    host.respond(200);
    x.on_response_headers(&e, &mut host);
    x.on_end(&e, &mut host);
    // Every call was tried, none changed anything.
    assert!(host
        .calls
        .contains(&Call::RemoveRequestHeader("x-dial-mirror".into())));
    assert!(host.calls.contains(&Call::ResponseStatus));
    assert_eq!(host.request.pairs, r.pairs);
    assert!(host.counters.is_empty() && host.records.is_empty());
}

/// The binding reads the host's serialized header map, not a list: the same requests must make
/// the same calls through it.
#[test]
fn the_serialized_header_map_gives_the_same_exchange() {
    let e = engine_with("mirror", json!({ "version": "v3", "percent": 30 }));
    for i in 0..300 {
        let user = format!("user-{i}");
        let r = request(&[
            ("x-user-id", user.as_bytes()),
            ("cookie", b"beta=0; uid=x"),
            ("x-dial-subset", b"canary"),
            ("x-dial-mirror", b"v3"),
        ]);
        let bytes = serialize(r.pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())));
        let view = SerializedRequest {
            headers: SerializedHeaders::new(&bytes).unwrap(),
            source_ip: || None,
        };
        let mut from_list = RecordingHost::new(&r);
        e.on_request_headers(&mut from_list, &r, &Context::at(START));
        let mut from_map = RecordingHost::new(&r);
        e.on_request_headers(&mut from_map, &view, &Context::at(START));
        assert_eq!(from_list.calls, from_map.calls, "{user}");
    }
}

#[test]
fn a_decision_explains_itself() {
    let e = engine();
    let explain = |r: &HeaderList| match decide(&e.policy, &Context::default(), r) {
        Decision::Assign(a) => (a.reason, a.rule, a.key, a.position.is_some()),
        Decision::Pass => panic!("passed"),
    };
    assert_eq!(
        explain(&request(&[("x-user-id", b"carol")])),
        (Reason::Hash, None, Some(KeyOrigin::Source(0)), true)
    );
    assert_eq!(
        explain(&request(&[("cookie", b"uid=bob")])),
        (
            Reason::Allowlist,
            Some(2),
            Some(KeyOrigin::Source(1)),
            false
        )
    );
    assert_eq!(
        explain(&request(&[("cookie", b"beta=1")])),
        (Reason::CookieRule, Some(1), None, false)
    );
    assert_eq!(
        explain(&request(&[])),
        (Reason::StickyCookie, None, Some(KeyOrigin::Minted), true)
    );
    assert_eq!(
        explain(&request(&[("cookie", b"dial-checkout=00000000000000ff")])),
        (
            Reason::StickyCookie,
            None,
            Some(KeyOrigin::StickyCookie),
            true
        )
    );
}
