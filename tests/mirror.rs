//! Envoy end to end: shadow traffic. Dial marks a consistent sample of safe requests; the route
//! mirrors them to the shadow with a marker; clients only ever see the primary, fast, even when
//! the shadow is slow or down.
//!
//! Exact, not statistical: Dial's core says which users are sampled, Dial's own counter must say
//! exactly that many, and the shadow must receive exactly those users. Absence is never proven by
//! sleeping: after requests that must not be mirrored comes a sentinel that must be, and once the
//! sentinel has reached the shadow, nothing else may have reached it since (nor may Envoy have
//! sent or queued anything else for it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use support::policies::{checkout_with, Core, HOST, PATH};
use support::prometheus::value;
use support::{for_each_build, free_port, Backend, Build, Client, Envoy, EnvoyConfig};

const PERCENT: f64 = 10.0;

/// The example policy, mirroring PERCENT of its safe requests to v3.
fn policy() -> String {
    checkout_with(&[("mirror", json!({ "version": "v3", "percent": PERCENT }))])
}

fn config(build: Build, stable: &Backend, canary: &Backend, shadow_port: u16) -> EnvoyConfig {
    let mut c = EnvoyConfig::for_build(
        build,
        &policy(),
        &[
            ("stable", stable.port),
            ("canary", canary.port),
            ("shadow", shadow_port),
        ],
    );
    c.routes.retain(|r| r.value != "shadow");
    c.mirror_cluster = Some("shadow".into());
    c
}

/// Waits for a known event (mirrors are sent asynchronously), failing after 20 s.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Dial's own count of requests it marked for the mirror: incremented on the request path, so
/// exact as soon as the client has its answer.
fn dial_mirrored(envoy: &Envoy) -> u64 {
    value(
        &envoy.prometheus(),
        "dial_mirrored_requests_total",
        &[("release", "checkout"), ("version", "v3")],
    )
    .expect("Dial's mirror counter is defined") as u64
}

/// Requests Envoy sent the shadow cluster, and ones still waiting for a connection to it.
fn envoy_to_shadow(envoy: &Envoy) -> (u64, u64) {
    (
        envoy.stat("cluster.shadow.upstream_rq_total"),
        envoy.stat("cluster.shadow.upstream_rq_pending_active"),
    )
}

/// Each user id the shadow received (from its `x-user-id`), with how many times.
fn user_counts<'a>(users: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for u in users {
        *counts.entry(u.clone()).or_insert(0) += 1;
    }
    counts
}

fn shadow_users(shadow: &Backend, from: usize) -> Vec<String> {
    shadow.seen()[from..]
        .iter()
        .map(|s| s.header("x-user-id").unwrap_or_default())
        .collect()
}

/// Where the shadow stands once everything mirrored so far has arrived: Envoy sent it exactly
/// what it received, and has nothing queued for it.
fn settled(envoy: &Envoy, shadow: &Backend) -> usize {
    let received = shadow.count();
    assert_eq!(
        envoy_to_shadow(envoy),
        (received, 0),
        "Envoy sent the shadow other than what it received"
    );
    received as usize
}

/// Sends a GET that must be mirrored (`user` is sampled), told apart by a unique header; waits
/// until it reaches the shadow, then asserts that nothing but it reached the shadow after the
/// first `since` requests, and that Envoy sent and queued nothing else for it.
fn sentinel(client: &mut Client, envoy: &Envoy, shadow: &Backend, user: &str, since: usize) {
    let mirrored = dial_mirrored(envoy);
    let tag = format!("sentinel-{since}-{user}");
    let r = client.get(HOST, PATH, &[("x-user-id", user), ("x-sentinel", &tag)]);
    assert_eq!(r.status, 200);
    assert_eq!(
        dial_mirrored(envoy),
        mirrored + 1,
        "the sentinel was not marked"
    );
    wait_until(&format!("{tag} reaches the shadow"), || {
        shadow
            .seen()
            .iter()
            .any(|s| s.header("x-sentinel").as_deref() == Some(tag.as_str()))
    });
    let since_then: Vec<Option<String>> = shadow.seen()[since..]
        .iter()
        .map(|s| s.header("x-sentinel"))
        .collect();
    assert_eq!(
        since_then,
        [Some(tag)],
        "the shadow received other requests than the sentinel"
    );
    settled(envoy, shadow);
}

for_each_build!(
    a_consistent_sample_of_safe_requests_reaches_the_shadow_with_a_marker,
    a_slow_or_dead_shadow_does_not_slow_or_fail_clients,
);

fn a_consistent_sample_of_safe_requests_reaches_the_shadow_with_a_marker(build: Build) {
    let (stable, canary, shadow) = (
        Backend::start("stable"),
        Backend::start("canary"),
        Backend::start("shadow"),
    );
    let envoy = Envoy::start(&config(build, &stable, &canary, shadow.port));
    let mut client = Client::new(envoy.port);

    // Which users Dial samples, and where it sends them, by the core the filter runs.
    let core = Core::new(&policy());
    let users: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
    let sampled: Vec<String> = users
        .iter()
        .filter(|u| core.user(HOST, PATH, u).mirror)
        .cloned()
        .collect();
    let share = sampled.len() as f64 * 100.0 / users.len() as f64;
    assert!(
        (share - PERCENT).abs() <= 2.0,
        "{share:.2}% sampled for {PERCENT}%"
    );

    for u in &users {
        let r = client.get(HOST, PATH, &[("x-user-id", u)]);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.backend(),
            core.subset_of(HOST, PATH, u),
            "{u}: a client got another answer than the primary's"
        );
    }
    assert_eq!(
        dial_mirrored(&envoy),
        sampled.len() as u64,
        "Dial marked other requests than the sampled users'"
    );
    wait_until("every sampled user's copy reaches the shadow", || {
        shadow.count() >= sampled.len() as u64
    });
    assert_eq!(
        user_counts(&shadow_users(&shadow, 0)),
        user_counts(&sampled),
        "the shadow received other users than the sampled ones (or one twice)"
    );
    settled(&envoy, &shadow);

    // The marker: the shadow knows it is a shadow, for which version, and of which version.
    for s in shadow.seen() {
        let user = s.header("x-user-id").unwrap();
        let version = &core.policy.releases[0].subsets[core.user(HOST, PATH, &user).subset].version;
        assert_eq!(s.header("x-dial-mirror").as_deref(), Some("v3"));
        assert_eq!(s.header("x-dial-version").as_ref(), Some(version));
        assert_eq!(
            s.header("x-dial-shadow-of").as_ref(),
            Some(version),
            "shadow marker"
        );
        assert!(
            s.header("host").unwrap().ends_with("-shadow"),
            "{:?}",
            s.header("host")
        );
    }
    for s in stable.seen().iter().chain(canary.seen().iter()) {
        assert_eq!(
            s.header("x-dial-shadow-of"),
            None,
            "a primary was told it is a shadow"
        );
    }

    // Consistent per user: the same users again are mirrored again, and nobody else is.
    let before = shadow.count() as usize;
    for u in &users {
        client.get(HOST, PATH, &[("x-user-id", u)]);
    }
    assert_eq!(dial_mirrored(&envoy), 2 * sampled.len() as u64);
    wait_until("the second round's copies reach the shadow", || {
        shadow.count() as usize >= before + sampled.len()
    });
    assert_eq!(
        user_counts(&shadow_users(&shadow, before)),
        user_counts(&sampled)
    );
    let since = settled(&envoy, &shadow);

    // Writes are never mirrored by default, even for sampled users, even when they ask.
    let mirrored = dial_mirrored(&envoy);
    for u in sampled.iter().take(100) {
        for method in ["POST", "PUT", "DELETE"] {
            let r = client.send(method, HOST, PATH, [("x-user-id", u.as_bytes())], b"{}");
            assert_eq!(r.status, 200);
        }
        let r = client.send(
            "POST",
            HOST,
            PATH,
            [("x-user-id", u.as_bytes()), ("x-dial-mirror", b"v3")],
            b"{}",
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(dial_mirrored(&envoy), mirrored, "Dial marked a write");
    sentinel(&mut client, &envoy, &shadow, &sampled[0], since);

    // A client cannot ask for mirroring: its x-dial-mirror is removed when not sampled.
    let since = shadow.count() as usize;
    let mirrored = dial_mirrored(&envoy);
    for u in users.iter().filter(|u| !sampled.contains(u)).take(100) {
        let r = client.get(HOST, PATH, &[("x-user-id", u), ("x-dial-mirror", "v3")]);
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        dial_mirrored(&envoy),
        mirrored,
        "Dial marked an unsampled user"
    );
    sentinel(&mut client, &envoy, &shadow, &sampled[1], since);
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
}

fn a_slow_or_dead_shadow_does_not_slow_or_fail_clients(build: Build) {
    let (stable, canary, shadow) = (
        Backend::start("stable"),
        Backend::start("canary"),
        Backend::start("shadow"),
    );
    shadow.set_delay(Duration::from_secs(2));
    let slow = Envoy::start(&config(build, &stable, &canary, shadow.port));
    // Nothing listens on the dead shadow's port.
    let dead = Envoy::start(&config(build, &stable, &canary, free_port()));

    // Users Dial samples, found with the core the filter runs.
    let core = Core::new(&policy());
    let sampled: Vec<String> = (0..)
        .map(|i| format!("user-{i}"))
        .filter(|u| core.user(HOST, PATH, u).mirror)
        .take(20)
        .collect();

    for envoy in [&slow, &dead] {
        let mut client = Client::new(envoy.port);
        let started = Instant::now();
        for u in &sampled {
            let t = Instant::now();
            let r = client.get(HOST, PATH, &[("x-user-id", u)]);
            assert_eq!(r.status, 200);
            assert_eq!(r.backend(), core.subset_of(HOST, PATH, u));
            // The shadow takes 2 s (or never answers); the client must not wait for it.
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "a mirrored request took {:?}",
                t.elapsed()
            );
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // Fast, though every one of them was marked for a copy.
        assert_eq!(dial_mirrored(envoy), sampled.len() as u64);
    }
    // The slow shadow still got every copy, and nothing else.
    wait_until("the slow shadow has every copy", || shadow.count() >= 20);
    assert_eq!(
        user_counts(&shadow_users(&shadow, 0)),
        user_counts(&sampled)
    );
    assert_eq!(envoy_to_shadow(&slow), (20, 0));
    // Envoy did try the dead shadow.
    dead.wait_for_stat("cluster.shadow.upstream_cx_connect_fail", 1);
}
