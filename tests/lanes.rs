//! Envoy end to end, both builds: release lanes hold one assignment for a whole call chain.
//! Three services on loopback, each behind its own Envoy with Dial: the edge issues lanes for
//! service A (stable and canary); A's outbound calls go through a second Envoy that follows
//! them for service B (stable and canary); B's go through a third that follows them for
//! service C (stable only). A and B are small apps that copy their inbound `baggage` onto
//! their outbound call, as OpenTelemetry's propagators do, and nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::policies::lane_member;
use support::prometheus::value;
use support::relay::Relay;
use support::{for_each_build, Backend, Build, Client, Envoy, EnvoyConfig};

const HOST: &str = "shop.example.com";
const PATH: &str = "/checkout";
const SECRET: &str = "lane-secret-current-0123";
const OLD_SECRET: &str = "lane-secret-previous-012";
const QA_TOKEN: &str = "qa-token-0123456789";

/// Users through the edge; `DIAL_LANE_USERS` changes it.
fn users() -> usize {
    std::env::var("DIAL_LANE_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn lanes_follow() -> Value {
    json!({ "secret": { "fromEnv": "DIAL_LANE_SECRET" }, "follow": true, "base": "stable", "maxAge": "1h" })
}

/// The edge: a 50/50 split of the user key, a beta-header rule, a QA override with a token,
/// and lanes issued.
fn edge_policy() -> Value {
    json!({
        "headers": { "response": "x-dial-assignment" },
        "releases": [{
            "name": "checkout",
            "key": [{ "header": "x-user-id" }],
            "subsets": [
                { "name": "stable", "version": "v1", "weight": 50 },
                { "name": "canary", "version": "v2", "weight": 50 }
            ],
            "rules": [{ "header": { "name": "x-beta", "equals": "true" }, "subset": "canary" }],
            "override": { "header": "x-dial-override", "token": { "fromEnv": "DIAL_QA_TOKEN" } },
            "lanes": { "secret": { "fromEnv": "DIAL_LANE_SECRET" }, "issue": true, "maxAge": "1h" }
        }]
    })
}

/// B: its own split (no key reaches it: keyless requests go to stable), no beta rule.
fn b_policy(lanes: Value) -> Value {
    json!({
        "headers": { "response": "x-dial-assignment" },
        "releases": [{
            "name": "pricing",
            "key": [{ "header": "x-user-id" }],
            "subsets": [
                { "name": "stable", "version": "v1", "weight": 90 },
                { "name": "canary", "version": "v2", "weight": 10 }
            ],
            "whenNoKey": { "subset": "stable" },
            "lanes": lanes
        }]
    })
}

/// C: stable only.
fn c_policy() -> Value {
    json!({
        "headers": { "response": "x-dial-assignment" },
        "releases": [{
            "name": "inventory",
            "subsets": [{ "name": "stable", "version": "v1", "weight": 1 }],
            "whenNoKey": { "subset": "stable" },
            "lanes": lanes_follow()
        }]
    })
}

fn env(secret: &str) -> Vec<(String, String)> {
    vec![
        ("DIAL_LANE_SECRET".into(), secret.into()),
        ("DIAL_QA_TOKEN".into(), QA_TOKEN.into()),
    ]
}

fn envoy(build: Build, policy: &Value, subsets: &[(&str, u16)], secret: &str) -> Envoy {
    let mut config = EnvoyConfig::for_build(build, &policy.to_string(), subsets);
    config.host_env = env(secret);
    Envoy::start_with_workers(&config, 2)
}

struct Chain {
    edge: Envoy,
    b_envoy: Envoy,
    c_envoy: Envoy,
    _c: Backend,
    relays: Vec<Relay>,
}

impl Chain {
    fn relay(&self, name: &str) -> &Relay {
        self.relays.iter().find(|r| r.name == name).unwrap()
    }
}

fn chain(build: Build) -> Chain {
    chain_with(build, &b_policy(lanes_follow()))
}

fn chain_with(build: Build, b_policy: &Value) -> Chain {
    let c = Backend::start("c-stable");
    let c_envoy = envoy(build, &c_policy(), &[("stable", c.port)], SECRET);
    let b_stable = Relay::start("b-stable", c_envoy.port);
    let b_canary = Relay::start("b-canary", c_envoy.port);
    let b_envoy = envoy(
        build,
        b_policy,
        &[("stable", b_stable.port), ("canary", b_canary.port)],
        SECRET,
    );
    let a_stable = Relay::start("a-stable", b_envoy.port);
    let a_canary = Relay::start("a-canary", b_envoy.port);
    let edge = envoy(
        build,
        &edge_policy(),
        &[("stable", a_stable.port), ("canary", a_canary.port)],
        SECRET,
    );
    Chain {
        edge,
        b_envoy,
        c_envoy,
        _c: c,
        relays: vec![a_stable, a_canary, b_stable, b_canary],
    }
}

/// One request's route through the chain, as the services answered it.
#[derive(Debug, Clone)]
struct Route {
    edge: String,
    a: String,
    b_echo: String,
    b: String,
    c_echo: String,
    c: String,
    /// The baggage C received.
    baggage: String,
}

fn route(client: &mut Client, headers: &[(&str, &str)]) -> Route {
    let (status, route) = any_route(client, headers);
    assert_eq!(status, 200, "{route:?}");
    route
}

/// A route and the status the edge answered with (a failing service's included).
fn any_route(client: &mut Client, headers: &[(&str, &str)]) -> (u16, Route) {
    let r = client.get(HOST, PATH, headers);
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    let baggage = lines
        .iter()
        .filter_map(|l| l.strip_prefix("baggage: "))
        .collect::<Vec<_>>()
        .join(",");
    let line = |i: usize| lines.get(i).copied().unwrap_or("-").to_string();
    let route = Route {
        edge: r.header("x-dial-assignment").unwrap_or("-").to_string(),
        a: line(0),
        b_echo: line(1),
        b: line(2),
        c_echo: line(3),
        c: line(4),
        baggage,
    };
    (r.status, route)
}

/// The lane member of a route's baggage (as C received it).
fn member(route: &Route) -> String {
    route
        .baggage
        .split(',')
        .find(|m| m.trim_start().starts_with("dial-lane="))
        .unwrap()
        .trim()
        .to_string()
}

fn counter(envoy: &Envoy, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(&envoy.prometheus(), name, labels).unwrap_or(0.0)
}

fn rejected(envoy: &Envoy, release: &str, reason: &str) -> f64 {
    counter(
        envoy,
        "dial_lane_rejected_total",
        &[("release", release), ("reason", reason)],
    )
}

fn requests(envoy: &Envoy, release: &str, subset: &str, reason: &str) -> f64 {
    let version = if subset == "stable" { "v1" } else { "v2" };
    counter(
        envoy,
        "dial_requests_total",
        &[
            ("release", release),
            ("subset", subset),
            ("version", version),
            ("reason", reason),
        ],
    )
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

for_each_build!(
    one_lane_holds_for_the_whole_chain,
    forged_and_tampered_lanes_fail_closed_and_are_counted,
    a_rotation_honours_the_previous_secret_until_it_is_dropped,
    a_downstream_guard_pulls_its_lane_traffic_back_while_upstream_keeps_it,
);

/// B's guard: a canary failing 20 points more than stable over 2 s is pulled back.
const GUARD_WINDOW_SECONDS: u64 = 2;

fn a_downstream_guard_pulls_its_lane_traffic_back_while_upstream_keeps_it(build: Build) {
    let mut b = b_policy(lanes_follow());
    b["releases"][0]["guard"] = json!({
        "subset": "canary", "fallback": "stable", "window": format!("{GUARD_WINDOW_SECONDS}s"),
        "minRequests": 10, "maxErrorRate": 0.2
    });
    let chain = chain_with(build, &b);
    let stop = AtomicBool::new(false);
    let failing_from = std::sync::OnceLock::new();
    // Four clients through the edge, each over its own users (half of them on each side).
    let seen: Vec<(Instant, u16, Route)> = thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (port, stop) = (chain.edge.port, &stop);
                s.spawn(move || {
                    let mut client = Client::new(port);
                    let mut seen = Vec::new();
                    for i in (t..).step_by(4) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let user = format!("user-{}", i % 400);
                        let (status, route) = any_route(&mut client, &[("x-user-id", &user)]);
                        seen.push((Instant::now(), status, route));
                    }
                    seen
                })
            })
            .collect();
        thread::sleep(Duration::from_secs(GUARD_WINDOW_SECONDS + 1));
        failing_from.set(Instant::now()).unwrap();
        chain.relay("b-canary").fail_with(503);
        thread::sleep(Duration::from_secs(GUARD_WINDOW_SECONDS + 2));
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let failing_from = *failing_from.get().unwrap();
    let canary: Vec<&(Instant, u16, Route)> = seen
        .iter()
        .filter(|(_, _, r)| r.edge.contains("subset=canary"))
        .collect();
    assert!(canary.len() > 100, "{} canary-lane requests", canary.len());
    // A's canary keeps its lane traffic throughout: the edge issues, A follows it.
    for (_, _, r) in &canary {
        assert_eq!(r.a, "a-canary", "{r:?}");
    }
    // B's canary lost it within the guard's window and a second of failing.
    let last_on_b_canary = canary
        .iter()
        .filter(|(_, _, r)| r.b == "b-canary")
        .map(|(at, _, _)| *at)
        .max()
        .unwrap();
    let kept = last_on_b_canary.saturating_duration_since(failing_from);
    eprintln!("{build:?}: B's canary had lane traffic {kept:?} after it started failing");
    assert!(
        kept <= Duration::from_secs(GUARD_WINDOW_SECONDS + 1),
        "B's canary kept its lane traffic {kept:?} after failing"
    );
    // Now a canary-lane request: A's canary, B's stable by the guard, and the lane goes on
    // untouched to C.
    let (_, last) = canary.last().map(|(_, s, r)| (*s, r.clone())).unwrap();
    assert_eq!(
        (last.a.as_str(), last.b.as_str()),
        ("a-canary", "b-stable"),
        "{last:?}"
    );
    assert!(
        last.b_echo.ends_with("reason=guardrail; lane=canary"),
        "{last:?}"
    );
    assert!(
        last.c_echo.ends_with("reason=lane_fallback; lane=canary"),
        "{last:?}"
    );
    assert_eq!(
        value(
            &chain.b_envoy.prometheus(),
            "dial_guard_tripped",
            &[("release", "pricing"), ("subset", "canary")]
        ),
        Some(1.0)
    );
}

fn one_lane_holds_for_the_whole_chain(build: Build) {
    let chain = chain(build);
    let n = users();
    let threads = 4;
    let started = Instant::now();
    let routes: Vec<(usize, Route)> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let port = chain.edge.port;
                s.spawn(move || {
                    let mut client = Client::new(port);
                    (t..n)
                        .step_by(threads)
                        .map(|i| {
                            let user = format!("user-{i}");
                            (i, route(&mut client, &[("x-user-id", &user)]))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    eprintln!(
        "{build:?}: {n} users through three Envoys in {:?}",
        started.elapsed()
    );

    let mut canary = 0;
    for (i, r) in &routes {
        let side = r.a.strip_prefix("a-").unwrap();
        // Zero mixed chains: A and B on the same side, every time.
        assert_eq!(r.b, format!("b-{side}"), "user-{i}: {r:?}");
        assert_eq!(r.c, "c-stable", "user-{i}: {r:?}");
        assert!(
            r.edge.ends_with(&format!("reason=hash; lane={side}")),
            "user-{i}: {r:?}"
        );
        assert!(
            r.b_echo.ends_with(&format!("reason=lane; lane={side}")),
            "user-{i}: {r:?}"
        );
        // C has no canary: canary lane requests take its base.
        let c_reason = if side == "canary" {
            "lane_fallback"
        } else {
            "lane"
        };
        assert!(
            r.c_echo.ends_with(&format!(
                "subset=stable; version=v1; reason={c_reason}; lane={side}"
            )),
            "user-{i}: {r:?}"
        );
        canary += usize::from(side == "canary");
    }
    assert_eq!(routes.len(), n);
    // About half on each side (a 50/50 split): both sides exercised.
    assert!(
        canary > n / 3 && canary < 2 * n / 3,
        "{canary} of {n} on canary"
    );
    // What C's Envoy counted agrees.
    assert_eq!(
        requests(&chain.c_envoy, "inventory", "stable", "lane_fallback"),
        canary as f64
    );
    assert_eq!(
        requests(&chain.c_envoy, "inventory", "stable", "lane"),
        (n - canary) as f64
    );
    assert_eq!(
        requests(&chain.b_envoy, "pricing", "canary", "lane"),
        canary as f64
    );

    // Whatever decides at the edge carries to B: a QA override with its token, and a beta
    // header B's own rules do not mention, for a user the split puts on stable.
    let stable_user = routes
        .iter()
        .find(|(_, r)| r.a == "a-stable")
        .map(|(i, _)| format!("user-{i}"))
        .unwrap();
    let mut client = Client::new(chain.edge.port);
    let qa = format!("canary; token={QA_TOKEN}");
    for (extra, reason) in [
        (("x-dial-override", qa.as_str()), "override"),
        (("x-beta", "true"), "header_rule"),
    ] {
        let r = route(&mut client, &[("x-user-id", &stable_user), extra]);
        assert_eq!(
            (r.a.as_str(), r.b.as_str()),
            ("a-canary", "b-canary"),
            "{r:?}"
        );
        assert!(
            r.edge.contains(&format!("reason={reason}; lane=canary")),
            "{r:?}"
        );
        assert!(r.b_echo.ends_with("reason=lane; lane=canary"), "{r:?}");
        assert!(
            r.c_echo.ends_with("reason=lane_fallback; lane=canary"),
            "{r:?}"
        );
    }
    // Without a token the override is not honoured, and the lane says so.
    let r = route(
        &mut client,
        &[("x-user-id", &stable_user), ("x-dial-override", "canary")],
    );
    assert_eq!(
        (r.a.as_str(), r.b.as_str()),
        ("a-stable", "b-stable"),
        "{r:?}"
    );
}

fn forged_and_tampered_lanes_fail_closed_and_are_counted(build: Build) {
    let chain = chain(build);
    let mut edge = Client::new(chain.edge.port);
    let user_on = |client: &mut Client, side: &str| {
        (0..)
            .map(|i| format!("user-{i}"))
            .map(|u| (route(client, &[("x-user-id", &u)]), u))
            .find(|(r, _)| r.a == format!("a-{side}"))
            .unwrap()
    };
    let (canary_route, _) = user_on(&mut edge, "canary");
    let (stable_route, stable_user) = user_on(&mut edge, "stable");
    let canary = member(&canary_route);
    let stable = member(&stable_route);
    assert!(canary.starts_with("dial-lane=v1.canary."), "{canary}");

    // At the edge: a stable user sends the canary member it copied from someone else's call,
    // alone and among its own members. The edge replaces it with its own decision.
    for bag in [canary.clone(), format!("tenant=acme,{canary},x=1")] {
        let r = route(&mut edge, &[("x-user-id", &stable_user), ("baggage", &bag)]);
        assert_eq!(
            (r.a.as_str(), r.b.as_str()),
            ("a-stable", "b-stable"),
            "{r:?}"
        );
        assert_eq!(r.baggage.matches("dial-lane=").count(), 1, "{r:?}");
        assert!(member(&r).starts_with("dial-lane=v1.stable."), "{r:?}");
    }
    let r = route(
        &mut edge,
        &[("x-user-id", &stable_user), ("baggage", "tenant=acme,x=1")],
    );
    assert!(
        r.baggage
            .starts_with("tenant=acme,x=1,dial-lane=v1.stable."),
        "{r:?}"
    );
    assert_eq!(rejected(&chain.edge, "checkout", "replaced"), 2.0);

    // Baggage at W3C's limits: the edge adds nothing, counts it, and still assigns A; B sees
    // no lane and assigns as if there were none.
    let full: Vec<String> = (0..180).map(|i| format!("k{i}=v")).collect();
    let full = full.join(",");
    let (_, canary_user) = user_on(&mut edge, "canary");
    let r = route(
        &mut edge,
        &[("x-user-id", &canary_user), ("baggage", &full)],
    );
    assert_eq!(
        (r.a.as_str(), r.b.as_str()),
        ("a-canary", "b-stable"),
        "{r:?}"
    );
    assert!(!r.baggage.contains("dial-lane"), "{r:?}");
    assert!(r.b_echo.ends_with("reason=fallback"), "{r:?}");
    assert_eq!(rejected(&chain.edge, "checkout", "baggage_full"), 1.0);

    // Inside the mesh, as app A would send them to B's Envoy: every tampered member is
    // refused, counted by reason, and B assigns as without a lane (keyless: stable).
    let mut b = Client::new(chain.b_envoy.port);
    // The edge's own requests above went through B too.
    let genuine = requests(&chain.b_envoy, "pricing", "canary", "lane");
    let now = now_seconds();
    let stable_value = stable.strip_prefix("dial-lane=").unwrap();
    let canary_value = canary.strip_prefix("dial-lane=").unwrap();
    let cases = [
        // The stable member with its lane changed to canary.
        (stable.replacen(".stable.", ".canary.", 1), "bad_tag"),
        // Its issue time changed.
        (
            {
                let parts: Vec<&str> = canary_value.split('.').collect();
                format!(
                    "dial-lane=v1.canary.{}.{}",
                    parts[2].parse::<u64>().unwrap() - 1,
                    parts[3]
                )
            },
            "bad_tag",
        ),
        // A truncated tag.
        (canary[..canary.len() - 2].to_string(), "malformed"),
        // The lane name alone, as an unauthenticated lane system would write it.
        ("dial-lane=canary".to_string(), "malformed"),
        // A tag under another secret.
        (
            lane_member("some-other-lane-secret-0", "canary", now),
            "bad_tag",
        ),
        // Issued two hours ago under the right secret.
        (lane_member(SECRET, "canary", now - 7200), "expired"),
        // Two members that disagree.
        (format!("{canary},dial-lane={stable_value}"), "conflict"),
        (format!("{stable},x=1,{canary}"), "conflict"),
    ];
    let mut expected = std::collections::BTreeMap::new();
    for (bag, reason) in &cases {
        let r = b.get(HOST, PATH, &[("baggage", bag)]);
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(text.starts_with("b-stable\n"), "{reason}: {bag}: {text}");
        let echo = r.header("x-dial-assignment").unwrap();
        assert!(
            echo.ends_with(&format!("reason=fallback; lane_rejected={reason}")),
            "{echo}"
        );
        *expected.entry(*reason).or_insert(0.0) += 1.0;
    }
    for (reason, count) in &expected {
        assert_eq!(
            rejected(&chain.b_envoy, "pricing", reason),
            *count,
            "{reason}"
        );
    }
    // A member past W3C's limits is one no propagator keeps: B ignores it (absent).
    let r = b.get(HOST, PATH, &[("baggage", &format!("{full},{canary}"))]);
    assert!(r.text().starts_with("b-stable\n"), "{}", r.text());
    // Zero forged lanes reached B's canary; the genuine member still does.
    assert_eq!(
        requests(&chain.b_envoy, "pricing", "canary", "lane"),
        genuine
    );
    let r = b.get(HOST, PATH, &[("baggage", &canary)]);
    assert!(r.text().starts_with("b-canary\n"), "{}", r.text());
    assert_eq!(
        requests(&chain.b_envoy, "pricing", "canary", "lane"),
        genuine + 1.0
    );
}

fn a_rotation_honours_the_previous_secret_until_it_is_dropped(build: Build) {
    let stable = Backend::start("b-stable");
    let canary = Backend::start("b-canary");
    let backends = [("stable", stable.port), ("canary", canary.port)];
    let now = now_seconds();
    let before = lane_member(OLD_SECRET, "canary", now);
    let after = lane_member(SECRET, "canary", now);
    let rotating = json!({
        "secret": { "fromEnv": "DIAL_LANE_SECRET" },
        "previousSecret": { "fromEnv": "DIAL_LANE_SECRET_PREVIOUS" },
        "follow": true, "base": "stable", "maxAge": "1h"
    });
    let mut config = EnvoyConfig::for_build(build, &b_policy(rotating).to_string(), &backends);
    config.host_env = env(SECRET);
    config
        .host_env
        .push(("DIAL_LANE_SECRET_PREVIOUS".into(), OLD_SECRET.into()));
    let during = Envoy::start(&config);
    let mut client = Client::new(during.port);
    for bag in [&before, &after] {
        let r = client.get(HOST, PATH, &[("baggage", bag)]);
        assert_eq!(r.backend(), "b-canary", "during the rotation: {bag}");
    }
    drop(during);

    let dropped = envoy(build, &b_policy(lanes_follow()), &backends, SECRET);
    let mut client = Client::new(dropped.port);
    let r = client.get(HOST, PATH, &[("baggage", &before)]);
    assert_eq!(r.backend(), "b-stable");
    let r = client.get(HOST, PATH, &[("baggage", &after)]);
    assert_eq!(r.backend(), "b-canary");
    assert_eq!(rejected(&dropped, "pricing", "bad_tag"), 1.0);
}
