//! Envoy end to end: Dial's assignment really changes the route, rules beat the hash, client
//! headers cannot steer, and hostile requests get a correct fallback instead of a trap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use support::policies::{Core, CHECKOUT, HOST};
use support::{for_each_build, Backend, Build, Client, Envoy, EnvoyConfig};

struct Setup {
    stable: Backend,
    canary: Backend,
    envoy: Envoy,
}

fn setup(build: Build) -> Setup {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let config = EnvoyConfig::for_build(
        build,
        CHECKOUT,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    let envoy = Envoy::start(&config);
    Setup {
        stable,
        canary,
        envoy,
    }
}

/// The first `n` users the 90/10 split puts on `subset`, found with Dial's core (the code the
/// filter runs), so each test also checks that Envoy sends them there.
fn users_on(subset: &str, n: usize) -> Vec<String> {
    Core::new(CHECKOUT).users_on(HOST, "/checkout", subset, n)
}

for_each_build!(
    the_subset_header_changes_the_route_and_reaches_the_upstream,
    rules_beat_the_hash,
    client_sent_dial_headers_never_steer,
    overrides_need_the_token_and_never_reach_the_upstream,
    anonymous_users_get_a_sticky_cookie_and_keep_their_subset,
    hostile_requests_get_a_fallback_not_a_trap,
    an_absolute_host_name_is_inside_the_release,
);

fn the_subset_header_changes_the_route_and_reaches_the_upstream(build: Build) {
    let s = setup(build);
    let mut c = Client::new(s.envoy.port);
    let (stable_users, canary_users) = (users_on("stable", 1), users_on("canary", 1));

    let r = c.get(HOST, "/checkout", &[("x-user-id", &canary_users[0])]);
    assert_eq!((r.status, r.backend()), (200, "canary"));
    assert_eq!(
        r.header("x-dial-assignment"),
        Some("release=checkout; subset=canary; version=v2; reason=hash")
    );
    let seen = s.canary.seen().pop().unwrap();
    assert_eq!(seen.header("x-dial-subset").as_deref(), Some("canary"));
    assert_eq!(seen.header("x-dial-version").as_deref(), Some("v2"));

    let r = c.get(HOST, "/checkout", &[("x-user-id", &stable_users[0])]);
    assert_eq!(r.backend(), "stable");
    assert_eq!(
        s.stable
            .seen()
            .pop()
            .unwrap()
            .header("x-dial-version")
            .as_deref(),
        Some("v1")
    );
    assert!(
        s.envoy.vm_failures().is_empty(),
        "{:?}",
        s.envoy.vm_failures()
    );
}

fn rules_beat_the_hash(build: Build) {
    let s = setup(build);
    let mut c = Client::new(s.envoy.port);
    let stable_users = users_on("stable", 1);
    let u = stable_users[0].as_str();

    // (request headers, backend that must answer, reason Dial must report)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 6] = [
        (&[("x-user-id", u)], "stable", "hash"),
        (
            &[("x-user-id", u), ("x-beta", "true")],
            "canary",
            "header_rule",
        ),
        (&[("x-user-id", u), ("x-beta", "yes")], "stable", "hash"),
        (
            &[("x-user-id", u), ("cookie", "a=1; beta=1")],
            "canary",
            "cookie_rule",
        ),
        (&[("x-user-id", "alice")], "canary", "allowlist"),
        (
            &[("cookie", "theme=dark"), ("cookie", "uid=bob")],
            "canary",
            "allowlist",
        ),
    ];
    for (headers, backend, reason) in cases {
        let r = c.get(HOST, "/checkout/pay", headers);
        assert_eq!(r.backend(), backend, "{headers:?}");
        let echo = r.header("x-dial-assignment").unwrap();
        assert!(
            echo.ends_with(&format!("reason={reason}")),
            "{headers:?}: {echo}"
        );
    }
}

fn client_sent_dial_headers_never_steer(build: Build) {
    let s = setup(build);
    let mut c = Client::new(s.envoy.port);
    let stable_users = users_on("stable", 1);
    let u = stable_users[0].as_str();

    // Inside the release: Dial's value replaces the client's, even when sent twice.
    let r = c.get(
        HOST,
        "/checkout",
        &[
            ("x-user-id", u),
            ("x-dial-subset", "canary"),
            ("x-dial-subset", "canary"),
            ("x-dial-version", "v9"),
        ],
    );
    assert_eq!(r.backend(), "stable");
    let seen = s.stable.seen().pop().unwrap();
    assert_eq!(seen.headers_named("x-dial-subset"), ["stable"]);
    assert_eq!(seen.headers_named("x-dial-version"), ["v1"]);

    // Outside every release: the client's copies are removed, so the route's default applies.
    let r = c.get(
        "other.example.com",
        "/checkout",
        &[("x-dial-subset", "canary"), ("x-dial-version", "v2")],
    );
    assert_eq!(r.backend(), "stable");
    let seen = s.stable.seen().pop().unwrap();
    assert!(seen.headers_named("x-dial-subset").is_empty(), "{seen:?}");
    assert!(seen.headers_named("x-dial-version").is_empty(), "{seen:?}");
    assert_eq!(r.header("x-dial-assignment"), None);
}

fn overrides_need_the_token_and_never_reach_the_upstream(build: Build) {
    let s = setup(build);
    let mut c = Client::new(s.envoy.port);
    let stable_users = users_on("stable", 1);
    let u = stable_users[0].as_str();

    let r = c.get(
        HOST,
        "/checkout",
        &[("x-user-id", u), ("x-dial-override", "canary")],
    );
    assert_eq!(
        r.backend(),
        "stable",
        "an anonymous override must not pick the canary"
    );
    let r = c.get(
        HOST,
        "/checkout",
        &[("x-user-id", u), ("x-dial-override", "canary; token=guess")],
    );
    assert_eq!(r.backend(), "stable");
    let r = c.get(
        HOST,
        "/checkout",
        &[
            ("x-user-id", u),
            ("x-dial-override", "canary; token=qa-token-0123456789"),
        ],
    );
    assert_eq!(r.backend(), "canary");
    assert!(r
        .header("x-dial-assignment")
        .unwrap()
        .ends_with("reason=override"));
    let seen = s.canary.seen().pop().unwrap();
    assert!(
        seen.headers_named("x-dial-override").is_empty(),
        "the token leaked upstream: {seen:?}"
    );
}

fn anonymous_users_get_a_sticky_cookie_and_keep_their_subset(build: Build) {
    let s = setup(build);
    let mut c = Client::new(s.envoy.port);
    let core = Core::new(CHECKOUT);
    let mut seen_backends = std::collections::HashSet::new();
    for _ in 0..60 {
        let first = c.get(HOST, "/checkout", &[]);
        let set_cookie = first
            .header("set-cookie")
            .expect("a sticky cookie")
            .to_string();
        assert!(
            set_cookie.starts_with("dial-checkout=")
                && set_cookie.ends_with("; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax"),
            "{set_cookie}"
        );
        let pair = set_cookie.split(';').next().unwrap().to_string();
        seen_backends.insert(first.backend().to_string());
        // The cookie holds the key Dial hashed: the core, given it, puts the visitor where
        // Envoy did.
        let by_core = core
            .decide(&[
                (":authority", HOST),
                (":path", "/checkout"),
                ("cookie", &pair),
            ])
            .unwrap();
        assert_eq!(first.backend(), core.subset_name(&by_core), "{pair}");
        for _ in 0..3 {
            let again = c.get(HOST, "/checkout", &[("cookie", &pair)]);
            assert_eq!(again.backend(), first.backend(), "{pair}");
            assert_eq!(again.header("set-cookie"), None, "the cookie is set once");
            assert!(again
                .header("x-dial-assignment")
                .unwrap()
                .ends_with("reason=sticky_cookie"));
        }
    }
    assert!(seen_backends.contains("stable"));
}

fn hostile_requests_get_a_fallback_not_a_trap(build: Build) {
    let s = setup(build);
    let mut c = Client::new(s.envoy.port);
    let huge_cookie = format!("uid={}; beta=0", "x".repeat(50_000));
    let long_key = "k".repeat(5_000);
    let hostile: Vec<Vec<(&str, &[u8])>> = vec![
        vec![("cookie", huge_cookie.as_bytes())],
        vec![("x-user-id", b"\xff\xfe\x80 caf\xc3")],
        vec![("cookie", b"uid=\xff\xff; beta=\x80")],
        vec![("x-user-id", b"")],
        vec![("x-user-id", long_key.as_bytes())],
        vec![
            ("x-user-id", b"a"),
            ("x-user-id", b"b"),
            ("x-user-id", b"c"),
        ],
        vec![("cookie", b";;;==;=;"), ("cookie", b"\"\"")],
        vec![("x-dial-override", b"\xff; token=\xfe")],
        vec![("x-beta", b"true\xff")],
    ];
    for headers in &hostile {
        let r = c.send("GET", HOST, "/checkout", headers.iter().copied(), b"");
        assert_eq!(r.status, 200, "{headers:?}");
        assert!(["stable", "canary"].contains(&r.backend()));
        assert!(
            r.header("x-dial-assignment").is_some(),
            "not assigned: {headers:?}"
        );
    }
    // Still serving normally, and no VM trapped.
    assert_eq!(
        c.get(HOST, "/checkout", &[("x-user-id", "alice")])
            .backend(),
        "canary"
    );
    assert!(
        s.envoy.vm_failures().is_empty(),
        "{:?}",
        s.envoy.vm_failures()
    );
}

fn an_absolute_host_name_is_inside_the_release(build: Build) {
    let s = setup(build);
    let mut c = Client::new(s.envoy.port);
    let users: Vec<(String, &str)> = users_on("stable", 3)
        .into_iter()
        .map(|u| (u, "stable"))
        .chain(users_on("canary", 3).into_iter().map(|u| (u, "canary")))
        .collect();
    for (u, subset) in &users {
        let plain = c.get(HOST, "/checkout", &[("x-user-id", u)]);
        for host in [
            "shop.example.com.",
            "SHOP.Example.com.",
            "shop.example.com.:10000",
        ] {
            let r = c.get(host, "/checkout", &[("x-user-id", u)]);
            assert_eq!((r.status, r.backend()), (200, *subset), "{host} {u}");
            assert_eq!(
                r.header("x-dial-assignment"),
                plain.header("x-dial-assignment"),
                "{host} {u}"
            );
            assert!(r.header("x-dial-assignment").is_some(), "{host} {u}");
            // Envoy passed the host on as the client wrote it: Dial, not Envoy, took the dot.
            let backend = if *subset == "canary" {
                &s.canary
            } else {
                &s.stable
            };
            assert_eq!(
                backend.seen().pop().unwrap().header("host").as_deref(),
                Some(host)
            );
        }
    }
    // Only one root dot, and only the release's own name.
    for host in [
        "shop.example.com..",
        "shop.example.com.evil",
        "example.com.",
    ] {
        let r = c.get(host, "/checkout", &[("x-user-id", &users[3].0)]);
        assert_eq!((r.status, r.backend()), (200, "stable"), "{host}");
        assert_eq!(r.header("x-dial-assignment"), None, "{host}");
    }
}
