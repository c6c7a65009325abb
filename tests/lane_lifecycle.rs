//! Release lanes through the exchange's whole life, natively, against a host that records
//! every call: what an issuing release writes into the baggage (and keeps of it), what a
//! following release decides from it, the precedence of lanes among Dial's other reasons, and
//! what each refused member counts. Envoy end to end proves the chain (tests/lanes.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dial::core::decide::{decide, Context, Decision, Reason};
use dial::core::exchange::Engine;
use dial::core::lane::Rejection;
use dial::core::recording::{Call, RecordingHost};
use dial::core::request::HeaderList;
use dial::core::stats::tagged;
use serde_json::{json, Value};

const CHECKOUT: &str = include_str!("data/checkout.json");
const HOST: &str = "shop.example.com";
const SECRET: &str = "lane-secret-current-0123";
const OLD: &str = "lane-secret-previous-012";
/// Unix seconds when the request headers arrive.
const NOW: u64 = 1_800_000_000;

fn at(seconds: u64) -> Context {
    Context::at(seconds * 1_000_000_000)
}

/// The example policy (rules, a beta header, an override with a token), with lanes.
fn policy(lanes: Value) -> Value {
    let mut doc: Value = serde_json::from_str(CHECKOUT).unwrap();
    doc["releases"][0]["lanes"] = lanes;
    doc
}

fn engine(doc: &Value) -> Engine {
    Engine::from_config(doc.to_string().as_bytes()).unwrap()
}

fn edge() -> Engine {
    engine(&policy(
        json!({ "secret": SECRET, "issue": true, "maxAge": "1h" }),
    ))
}

fn follower() -> Engine {
    engine(&policy(
        json!({ "secret": SECRET, "follow": true, "base": "stable", "maxAge": "1h" }),
    ))
}

/// A service with a stable subset only, following.
fn stable_only() -> Engine {
    let mut doc = policy(json!({ "secret": SECRET, "follow": true, "base": "stable" }));
    doc["releases"][0]["subsets"] = json!([{ "name": "stable", "version": "v1", "weight": 1 }]);
    doc["releases"][0]["rules"] = json!([]);
    engine(&doc)
}

fn request(extra: &[(&str, &str)]) -> HeaderList {
    let mut pairs = vec![
        (":authority", HOST),
        (":path", "/checkout/pay"),
        (":method", "GET"),
    ];
    pairs.extend_from_slice(extra);
    HeaderList::from_strs(&pairs)
}

fn exchange_at(engine: &Engine, request: &HeaderList, context: &Context) -> RecordingHost {
    let mut host = RecordingHost::new(request);
    host.clock = context.now_nanos.unwrap_or(0);
    let mut exchange = engine.on_request_headers(&mut host, request, context);
    host.respond(200);
    exchange.on_response_headers(engine, &mut host);
    exchange.on_end(engine, &mut host);
    host
}

fn exchange(engine: &Engine, request: &HeaderList) -> RecordingHost {
    exchange_at(engine, request, &at(NOW))
}

fn subset(host: &RecordingHost) -> String {
    String::from_utf8(host.request_values("x-dial-subset")[0].to_vec()).unwrap()
}

fn baggage(host: &RecordingHost) -> Vec<String> {
    host.request_values("baggage")
        .iter()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
        .collect()
}

fn echo(host: &RecordingHost) -> String {
    host.response_values("x-dial-assignment")[0].to_string()
}

/// The lane member an edge issues for a request (the whole `name=value`).
fn issued(engine: &Engine, request: &HeaderList) -> String {
    let host = exchange(engine, request);
    baggage(&host)
        .last()
        .unwrap()
        .rsplit(',')
        .next()
        .unwrap()
        .to_string()
}

fn user_on(engine: &Engine, subset: &str) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|u| {
            let Decision::Assign(a) = decide(
                &engine.policy,
                &at(NOW),
                &request(&[("x-user-id", u.as_str())]),
            ) else {
                panic!("passed")
            };
            engine.policy.releases[0].subsets[a.subset].name == subset && a.reason == Reason::Hash
        })
        .unwrap()
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

fn rejected(why: Rejection) -> String {
    tagged(
        &[("release", "checkout"), ("reason", why.as_str())],
        "dial_lane_rejected_total",
    )
}

fn count(engine: &Engine, host: &RecordingHost, name: &str) -> u64 {
    host.counted(&engine.catalog)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, v)| v)
}

#[test]
fn the_edge_appends_its_lane_and_keeps_every_other_member_byte_for_byte() {
    let e = edge();
    let user = user_on(&e, "canary");
    let others = "tenant=acme ; p=1,  user.id = alice%20b ,odd%2Ckey=x;flag";
    let r = request(&[("x-user-id", &user), ("baggage", others)]);
    let host = exchange(&e, &r);
    assert_eq!(subset(&host), "canary");
    let written = baggage(&host);
    assert_eq!(written.len(), 1);
    let (kept, member) = written[0].rsplit_once(',').unwrap();
    assert_eq!(kept, others);
    let value = member.strip_prefix("dial-lane=").unwrap();
    assert!(value.starts_with(&format!("v1.canary.{NOW}.")), "{value}");
    // Verifiable by the lane secret, and only by it.
    let lanes = follower().policy.releases[0].lanes.clone().unwrap();
    assert!(lanes
        .verify(value.as_bytes(), Some(NOW * 1_000_000_000))
        .is_ok());
    assert_eq!(
        echo(&host),
        "release=checkout; subset=canary; version=v2; reason=hash; lane=canary"
    );
    // Without baggage the member is the whole header; the stable user's lane is stable.
    let host = exchange(&e, &request(&[("x-user-id", &user_on(&e, "stable"))]));
    let written = baggage(&host);
    assert!(written[0].starts_with(&format!("dial-lane=v1.stable.{NOW}.")));
    assert!(!written[0].contains(','));
    // Several baggage headers become one list, in order.
    let host = exchange(
        &e,
        &request(&[
            ("x-user-id", &user),
            ("baggage", "a=1"),
            ("baggage", "b=2;q"),
        ]),
    );
    assert!(baggage(&host)[0].starts_with("a=1,b=2;q,dial-lane=v1.canary."));
    // Nothing counted on a clean request.
    assert!(host
        .counted(&e.catalog)
        .iter()
        .all(|(n, _)| !n.contains("lane_rejected")));
}

#[test]
fn the_edge_replaces_a_client_sent_member_even_a_valid_one() {
    let e = edge();
    let stable_user = user_on(&e, "stable");
    let canary_user = user_on(&e, "canary");
    // A member the edge itself issued to a canary user, copied by a stable user.
    let copied = issued(&e, &request(&[("x-user-id", &canary_user)]));
    assert!(copied.contains(".canary."));
    let r = request(&[
        ("x-user-id", &stable_user),
        ("baggage", &format!("{copied},tenant=acme,{copied}")),
    ]);
    let host = exchange(&e, &r);
    assert_eq!(subset(&host), "stable");
    let written = baggage(&host);
    assert!(
        written[0].starts_with(&format!("tenant=acme,dial-lane=v1.stable.{NOW}.")),
        "{written:?}"
    );
    assert_eq!(written[0].matches("dial-lane").count(), 1);
    assert_eq!(count(&e, &host, &rejected(Rejection::Replaced)), 1);
}

#[test]
fn whatever_decided_at_the_edge_is_the_lane() {
    let e = edge();
    let stable_user = user_on(&e, "stable");
    for (extra, reason) in [
        (vec![("x-beta", "true")], "header_rule"),
        (
            vec![("x-dial-override", "canary; token=qa-token-0123456789")],
            "override",
        ),
        (vec![("cookie", "beta=1")], "cookie_rule"),
    ] {
        let mut headers = vec![("x-user-id", stable_user.as_str())];
        headers.extend(extra);
        let host = exchange(&e, &request(&headers));
        assert_eq!(subset(&host), "canary", "{reason}");
        assert!(
            baggage(&host)[0].starts_with("dial-lane=v1.canary."),
            "{reason}"
        );
        assert!(echo(&host).contains(&format!("reason={reason}; lane=canary")));
    }
}

#[test]
fn a_follower_takes_the_lane_over_rules_and_split_and_forwards_it_untouched() {
    let (e, f) = (edge(), follower());
    let stable_user = user_on(&f, "stable");
    let canary_user = user_on(&f, "canary");
    let canary = issued(&e, &request(&[("x-user-id", &canary_user)]));
    let stable = issued(&e, &request(&[("x-user-id", &stable_user)]));
    // The member, among others; the follower's own key would say otherwise.
    let bag = format!("a=1,{canary},b=2");
    let host = exchange(
        &f,
        &request(&[("x-user-id", &stable_user), ("baggage", &bag)]),
    );
    assert_eq!(subset(&host), "canary");
    assert_eq!(baggage(&host), std::slice::from_ref(&bag));
    assert!(!host
        .calls
        .iter()
        .any(|c| matches!(c, Call::SetRequestHeader(n, _) | Call::RemoveRequestHeader(n) if n == "baggage")));
    assert_eq!(count(&f, &host, &requests("canary", "v2", "lane")), 1);
    assert_eq!(
        echo(&host),
        "release=checkout; subset=canary; version=v2; reason=lane; lane=canary"
    );
    // A stable lane beats the follower's beta rule and its allowlist.
    let host = exchange(
        &f,
        &request(&[
            ("x-user-id", "alice"),
            ("x-beta", "true"),
            ("baggage", &stable),
        ]),
    );
    assert_eq!(subset(&host), "stable");
    assert_eq!(count(&f, &host, &requests("stable", "v1", "lane")), 1);
    // A trusted override beats the lane.
    let host = exchange(
        &f,
        &request(&[
            ("x-dial-override", "stable; token=qa-token-0123456789"),
            ("baggage", &canary),
        ]),
    );
    assert_eq!(subset(&host), "stable");
    assert!(echo(&host).contains("reason=override; lane=canary"));
    assert_eq!(baggage(&host), std::slice::from_ref(&canary));
}

#[test]
fn a_service_without_the_lanes_subset_takes_its_base() {
    let (e, c) = (edge(), stable_only());
    let canary = issued(&e, &request(&[("x-user-id", &user_on(&e, "canary"))]));
    let host = exchange(&c, &request(&[("baggage", &canary)]));
    assert_eq!(subset(&host), "stable");
    assert_eq!(
        count(&c, &host, &requests("stable", "v1", "lane_fallback")),
        1
    );
    assert!(echo(&host).ends_with("reason=lane_fallback; lane=canary"));
    let stable = issued(&e, &request(&[("x-user-id", &user_on(&e, "stable"))]));
    let host = exchange(&c, &request(&[("baggage", &stable)]));
    assert_eq!(count(&c, &host, &requests("stable", "v1", "lane")), 1);
}

#[test]
fn every_refused_member_is_counted_and_assigned_as_if_absent() {
    let (e, f) = (edge(), follower());
    let user = user_on(&f, "stable");
    let canary = issued(&e, &request(&[("x-user-id", &user_on(&e, "canary"))]));
    let value = canary.strip_prefix("dial-lane=").unwrap();
    let tag = value.rsplit('.').next().unwrap();
    let wrong_secret = engine(&policy(
        json!({ "secret": "a-different-lane-secret", "issue": true }),
    ));
    let foreign = issued(
        &wrong_secret,
        &request(&[("x-user-id", &user_on(&e, "canary"))]),
    );
    let old = engine(&policy(json!({ "secret": SECRET, "issue": true })));
    let expired = exchange_at(
        &old,
        &request(&[("x-user-id", &user_on(&e, "canary"))]),
        &at(NOW - 3601),
    );
    let expired = baggage(&expired)[0].clone();
    let declared = engine(&policy(json!({
        "secret": SECRET, "follow": true, "base": "stable", "names": ["stable", "canary"]
    })));
    let qa = format!(
        "dial-lane={}",
        declared.policy.releases[0]
            .lanes
            .as_ref()
            .unwrap()
            .issue_value("qa", NOW)
            .unwrap()
    );
    for (engine, member, why) in [
        (
            &f,
            format!("dial-lane=v1.canary.{NOW}.{tag}").replace(".canary.", ".stable."),
            Rejection::BadTag,
        ),
        (
            &f,
            format!("dial-lane=v1.canary.{NOW}.{}", &tag[..30]),
            Rejection::Malformed,
        ),
        (&f, foreign, Rejection::BadTag),
        (&f, expired, Rejection::Expired),
        (
            &f,
            format!("{canary},dial-lane=v1.canary.{NOW}.{}", "0".repeat(32)),
            Rejection::Conflict,
        ),
        (&f, "dial-lane=canary".to_string(), Rejection::Malformed),
        (&declared, qa, Rejection::UnknownLane),
    ] {
        let r = request(&[("x-user-id", &user), ("baggage", &member)]);
        let host = exchange(engine, &r);
        assert_eq!(subset(&host), "stable", "{why:?} {member}");
        assert_eq!(count(engine, &host, &rejected(why)), 1, "{why:?} {member}");
        assert!(echo(&host).ends_with(&format!("reason=hash; lane_rejected={}", why.as_str())));
        // Forwarded untouched: a follower that does not issue never writes baggage.
        assert_eq!(baggage(&host), std::slice::from_ref(&member));
    }
}

#[test]
fn rotation_honours_the_previous_secret_until_it_is_dropped() {
    let old_edge = engine(&policy(json!({ "secret": OLD, "issue": true })));
    let canary = issued(
        &old_edge,
        &request(&[("x-user-id", &user_on(&old_edge, "canary"))]),
    );
    let rotating = engine(&policy(json!({
        "secret": SECRET, "previousSecret": OLD, "follow": true, "base": "stable"
    })));
    let user = user_on(&rotating, "stable");
    let host = exchange(
        &rotating,
        &request(&[("x-user-id", &user), ("baggage", &canary)]),
    );
    assert_eq!(subset(&host), "canary");
    let host = exchange(
        &follower(),
        &request(&[("x-user-id", &user), ("baggage", &canary)]),
    );
    assert_eq!(subset(&host), "stable");
    assert_eq!(count(&follower(), &host, &rejected(Rejection::BadTag)), 1);
}

#[test]
fn a_tripped_guard_wins_over_the_lane_and_a_ramp_does_not_move_it() {
    let e = edge();
    let canary = issued(&e, &request(&[("x-user-id", &user_on(&e, "canary"))]));
    let stable = issued(&e, &request(&[("x-user-id", &user_on(&e, "stable"))]));
    let mut doc = policy(json!({ "secret": SECRET, "follow": true, "base": "stable" }));
    doc["releases"][0]["guard"] = json!({
        "subset": "canary", "fallback": "stable", "window": "10s", "minRequests": 5, "maxErrorRate": 0.05
    });
    // A ramp that has taken every user to canary by now.
    doc["releases"][0]["ramp"] = json!({
        "subset": "canary", "start": "2020-01-01T00:00:00Z", "steps": [{ "weight": 100 }]
    });
    let g = engine(&doc);
    let tripped = Context {
        tripped: 1,
        ..at(NOW)
    };
    let host = exchange_at(&g, &request(&[("baggage", &canary)]), &tripped);
    assert_eq!(subset(&host), "stable");
    assert!(echo(&host).contains("reason=guardrail; lane=canary"));
    // Still forwarded: downstream services keep the lane.
    assert_eq!(baggage(&host), std::slice::from_ref(&canary));
    let host = exchange(&g, &request(&[("baggage", &canary)]));
    assert_eq!(subset(&host), "canary");
    // The ramp puts a keyed user on canary; a stable lane keeps the request on stable.
    let user = "someone";
    let host = exchange(&g, &request(&[("x-user-id", user)]));
    assert_eq!(subset(&host), "canary");
    let host = exchange(&g, &request(&[("x-user-id", user), ("baggage", &stable)]));
    assert_eq!(subset(&host), "stable");
}

#[test]
fn a_middle_service_forwards_a_valid_lane_and_issues_its_own_otherwise() {
    let e = edge();
    let both = engine(&policy(json!({
        "secret": SECRET, "issue": true, "follow": true, "base": "stable", "maxAge": "1h"
    })));
    let canary = issued(&e, &request(&[("x-user-id", &user_on(&e, "canary"))]));
    let bag = format!("x=1,{canary}");
    let host = exchange(
        &both,
        &request(&[("x-user-id", &user_on(&both, "stable")), ("baggage", &bag)]),
    );
    assert_eq!(subset(&host), "canary");
    assert_eq!(baggage(&host), [bag]);
    // A forged member is refused, counted once, and replaced by this release's own decision.
    let user = user_on(&both, "stable");
    let forged = format!("dial-lane=v1.canary.{NOW}.{}", "0".repeat(32));
    let host = exchange(
        &both,
        &request(&[("x-user-id", &user), ("baggage", &forged)]),
    );
    assert_eq!(subset(&host), "stable");
    assert!(baggage(&host)[0].starts_with(&format!("dial-lane=v1.stable.{NOW}.")));
    assert_eq!(count(&both, &host, &rejected(Rejection::BadTag)), 1);
    assert_eq!(count(&both, &host, &rejected(Rejection::Replaced)), 0);
}

#[test]
fn at_w3c_limits_the_edge_does_not_add_but_still_removes_and_assigns() {
    let e = edge();
    let user = user_on(&e, "canary");
    let member_len = issued(&e, &request(&[("x-user-id", &user)])).len();
    // 179 members: room for one more.
    let members = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let host = exchange(
        &e,
        &request(&[("x-user-id", &user), ("baggage", &members(179))]),
    );
    let written = &baggage(&host)[0];
    assert!(written.starts_with(&members(179)));
    assert!(written.contains(&format!(",dial-lane=v1.canary.{NOW}.")));
    assert_eq!(count(&e, &host, &rejected(Rejection::BaggageFull)), 0);
    // 180: no room. Not added, counted, and the request is still assigned here.
    let full = members(180);
    let host = exchange(&e, &request(&[("x-user-id", &user), ("baggage", &full)]));
    assert_eq!(subset(&host), "canary");
    assert_eq!(baggage(&host), std::slice::from_ref(&full));
    assert_eq!(count(&e, &host, &rejected(Rejection::BaggageFull)), 1);
    assert!(echo(&host).ends_with("reason=hash"));
    // A client-sent member is still removed when there is no room for Dial's.
    let with_forged = format!("{full},dial-lane=v1.canary.1.{}", "0".repeat(32));
    let host = exchange(
        &e,
        &request(&[("x-user-id", &user), ("baggage", &with_forged)]),
    );
    assert_eq!(baggage(&host), [full]);
    assert_eq!(count(&e, &host, &rejected(Rejection::Replaced)), 1);
    assert_eq!(count(&e, &host, &rejected(Rejection::BaggageFull)), 1);
    // 8,192 bytes: a header that leaves exactly room for the member gets it; one byte more
    // and it does not.
    let pad = |n: usize| format!("p={}", "x".repeat(n - 2));
    let room = 8192 - member_len - 1;
    let fits = format!("{},{}", pad(4000), pad(room - 4001));
    assert_eq!(fits.len() + 1 + member_len, 8192);
    let host = exchange(&e, &request(&[("x-user-id", &user), ("baggage", &fits)]));
    assert_eq!(baggage(&host)[0].len(), 8192);
    let over = format!("{},{}", pad(4000), pad(room - 4000));
    let host = exchange(&e, &request(&[("x-user-id", &user), ("baggage", &over)]));
    assert_eq!(baggage(&host), [over]);
    assert_eq!(count(&e, &host, &rejected(Rejection::BaggageFull)), 1);
}

#[test]
fn lane_reasons_are_counted_only_where_lanes_are_followed() {
    let names =
        |e: &Engine| -> Vec<String> { e.catalog.metrics.iter().map(|m| m.name.clone()).collect() };
    let plain = Engine::from_config(CHECKOUT.as_bytes()).unwrap();
    assert!(!names(&plain).iter().any(|n| n.contains("lane")));
    assert!(!names(&edge()).iter().any(|n| n.contains("reason=.=lane")));
    let f = names(&follower());
    assert!(f.contains(&requests("canary", "v2", "lane_fallback")));
    for why in Rejection::ALL {
        assert!(f.contains(&rejected(why)), "{why:?}");
    }
}
