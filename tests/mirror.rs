//! Envoy end to end: shadow traffic. Dial marks a consistent sample of safe requests; the route
//! mirrors them to the shadow with a marker; clients only ever see the primary, fast, even when
//! the shadow is slow or down.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::time::{Duration, Instant};

use support::prometheus::value;
use support::{free_port, Backend, Client, Envoy, EnvoyConfig};

const PERCENT: f64 = 10.0;

fn policy() -> String {
    format!(
        r#"{{ "releases": [{{ "name": "checkout",
          "subsets": [ {{ "name": "stable", "version": "v1", "weight": 90 }},
                       {{ "name": "canary", "version": "v2", "weight": 10 }} ],
          "key": [ {{ "header": "x-user-id" }} ], "whenNoKey": {{ "subset": "stable" }},
          "mirror": {{ "version": "v3", "percent": {PERCENT} }} }}] }}"#
    )
}

fn config(stable: &Backend, canary: &Backend, shadow_port: u16) -> EnvoyConfig {
    let mut c = EnvoyConfig::new(
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

/// Waits until the shadow has received `n` requests (mirrors are sent asynchronously).
fn wait_for_count(backend: &Backend, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while backend.count() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_consistent_sample_of_safe_requests_reaches_the_shadow_with_a_marker() {
    let (stable, canary, shadow) = (
        Backend::start("stable"),
        Backend::start("canary"),
        Backend::start("shadow"),
    );
    let envoy = Envoy::start(&config(&stable, &canary, shadow.port));
    let mut client = Client::new(envoy.port);

    let users: Vec<String> = (0..5000).map(|i| format!("user-{i}")).collect();
    for u in &users {
        let r = client.get("h", "/", &[("x-user-id", u)]);
        assert_eq!(r.status, 200);
        assert!(
            ["stable", "canary"].contains(&r.backend()),
            "a client got {}",
            r.backend()
        );
    }
    let mirrored = value(
        &envoy.prometheus(),
        "dial_mirrored_requests_total",
        &[("release", "checkout"), ("version", "v3")],
    )
    .unwrap() as u64;
    wait_for_count(&shadow, mirrored);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        shadow.count(),
        mirrored,
        "every marked request, and only those, reached the shadow"
    );
    let share = mirrored as f64 * 100.0 / users.len() as f64;
    assert!(
        (share - PERCENT).abs() <= 2.0,
        "{share:.2}% mirrored for {PERCENT}%"
    );

    // The marker: the shadow knows it is a shadow, for which version, and of which version.
    let seen = shadow.seen();
    let sampled: Vec<String> = seen
        .iter()
        .map(|s| s.header("x-user-id").unwrap())
        .collect();
    for s in &seen {
        assert_eq!(s.header("x-dial-mirror").as_deref(), Some("v3"));
        let of = s.header("x-dial-shadow-of").expect("shadow marker");
        assert_eq!(Some(of), s.header("x-dial-version"));
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
    let before = shadow.count();
    for u in &users {
        client.get("h", "/", &[("x-user-id", u)]);
    }
    wait_for_count(&shadow, before * 2);
    std::thread::sleep(Duration::from_millis(200));
    let again: Vec<String> = shadow.seen()[before as usize..]
        .iter()
        .map(|s| s.header("x-user-id").unwrap())
        .collect();
    let (mut a, mut b) = (sampled.clone(), again);
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // Writes are never mirrored by default, even for sampled users.
    let before = shadow.count();
    for u in sampled.iter().take(300) {
        for method in ["POST", "PUT", "DELETE"] {
            let r = client.send(method, "h", "/", [("x-user-id", u.as_bytes())], b"{}");
            assert_eq!(r.status, 200);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(shadow.count(), before, "a write was mirrored");

    // A client cannot ask for mirroring: its x-dial-mirror is removed when not sampled.
    let unsampled = users.iter().find(|u| !sampled.contains(u)).unwrap();
    client.get(
        "h",
        "/",
        &[("x-user-id", unsampled), ("x-dial-mirror", "v3")],
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(shadow.count(), before);
}

#[test]
fn a_slow_or_dead_shadow_does_not_slow_or_fail_clients() {
    let (stable, canary, shadow) = (
        Backend::start("stable"),
        Backend::start("canary"),
        Backend::start("shadow"),
    );
    shadow.set_delay(Duration::from_secs(2));
    let slow = Envoy::start(&config(&stable, &canary, shadow.port));
    // Nothing listens on the dead shadow's port.
    let dead = Envoy::start(&config(&stable, &canary, free_port()));

    // Users Dial samples, found with the core the filter runs.
    let core = dial::core::policy::Policy::parse(policy().as_bytes()).unwrap();
    let sampled: Vec<String> = (0..)
        .map(|i| format!("user-{i}"))
        .filter(|u| {
            let r = dial::core::request::HeaderList::from_strs(&[
                (":method", "GET"),
                (":path", "/"),
                ("x-user-id", u),
            ]);
            matches!(dial::core::decide::decide(&core, &Default::default(), &r), dial::core::decide::Decision::Assign(a) if a.mirror)
        })
        .take(20)
        .collect();

    for envoy in [&slow, &dead] {
        let mut client = Client::new(envoy.port);
        let started = Instant::now();
        for u in &sampled {
            let t = Instant::now();
            let r = client.get("h", "/", &[("x-user-id", u)]);
            assert_eq!(r.status, 200);
            assert!(["stable", "canary"].contains(&r.backend()));
            // The shadow takes 2 s (or never answers); the client must not wait for it.
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "a mirrored request took {:?}",
                t.elapsed()
            );
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    wait_for_count(&shadow, 20);
    assert_eq!(shadow.count(), 20, "the slow shadow still got every copy");
}
