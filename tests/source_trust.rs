//! Envoy end to end: `override.sourceCidrs` judges the downstream connection's own peer, and no
//! request header can buy that trust. Every client here is on 127.0.0.1, with no token.
//!
//! `tests/data/source-trust.json` has two releases, each with a token-less override: one trusts
//! `10.0.0.0/8` and `fd00::/8` (the client is outside both), the other `127.0.0.1/32` (the
//! client's own address). Each test runs with the connection manager's `use_remote_address`
//! unset (Envoy's default, an Istio sidecar's: Envoy then sets `source.address` from the last
//! `X-Forwarded-For` entry) and set to true (an edge's).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use support::http::Response;
use support::{for_each_build, Backend, Build, Client, Envoy, EnvoyConfig};

const POLICY: &str = include_str!("data/source-trust.json");
/// The release whose ranges exclude the client.
const UNTRUSTED: &str = "shop.example.com";
/// The release whose range is the client's own address.
const TRUSTED: &str = "ops.example.com";
const PATH: &str = "/checkout";
const OVERRIDE: (&str, &str) = ("x-dial-override", "canary");
const USER: (&str, &str) = ("x-user-id", "user-1");

/// The connection manager's two modes: `use_remote_address` unset, and true.
const MODES: [Option<bool>; 2] = [None, Some(true)];

/// Headers that name an address inside the untrusted release's ranges (`10.0.0.0/8`,
/// `fd00::/8`), each the way a client can write it.
const FORGERIES: &[(&str, &[(&str, &str)])] = &[
    ("one hop", &[("x-forwarded-for", "10.1.2.3")]),
    (
        "several hops",
        &[("x-forwarded-for", "203.0.113.7, 10.9.9.9, 10.1.2.3")],
    ),
    ("no spaces", &[("x-forwarded-for", "203.0.113.7,10.1.2.3")]),
    ("IPv6", &[("x-forwarded-for", "fd00::1")]),
    (
        "IPv4-mapped IPv6",
        &[("x-forwarded-for", "::ffff:10.1.2.3")],
    ),
    (
        "repeated headers",
        &[
            ("x-forwarded-for", "10.1.2.3"),
            ("x-forwarded-for", "10.4.5.6"),
        ],
    ),
    ("with a port", &[("x-forwarded-for", "10.1.2.3:4567")]),
    ("IPv6 with a port", &[("x-forwarded-for", "[fd00::1]:443")]),
    (
        "x-envoy-external-address",
        &[("x-envoy-external-address", "10.1.2.3")],
    ),
    ("forwarded", &[("forwarded", "for=10.1.2.3")]),
    ("forwarded IPv6", &[("forwarded", "for=\"[fd00::1]:443\"")]),
    ("x-real-ip", &[("x-real-ip", "10.1.2.3")]),
    (
        "all at once",
        &[
            ("x-real-ip", "10.1.2.3"),
            ("forwarded", "for=10.1.2.3"),
            ("x-envoy-external-address", "10.1.2.3"),
            ("x-forwarded-for", "10.1.2.3"),
        ],
    ),
];

fn start(build: Build, use_remote_address: Option<bool>) -> (Backend, Backend, Envoy) {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let mut config = EnvoyConfig::for_build(
        build,
        POLICY,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    config.use_remote_address = use_remote_address;
    let envoy = Envoy::start(&config);
    (stable, canary, envoy)
}

/// `(backend, release, reason)` of a response.
fn outcome(r: &Response) -> (String, String, String) {
    let echo = r.header("x-dial-assignment").unwrap_or("<none>");
    let field = |name: &str| {
        echo.split("; ")
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or("<none>")
            .to_string()
    };
    (r.backend().to_string(), field("release="), field("reason="))
}

fn want(backend: &str, release: &str, reason: &str) -> (String, String, String) {
    (backend.into(), release.into(), reason.into())
}

for_each_build!(
    forged_addresses_never_satisfy_source_cidrs,
    a_trusted_peer_is_honoured,
);

fn forged_addresses_never_satisfy_source_cidrs(build: Build) {
    for mode in MODES {
        let (_stable, _canary, envoy) = start(build, mode);
        let mut c = Client::new(envoy.port);

        // The override itself works (the trusted release) and the untrusted one refuses the
        // plain request: both halves of what a forgery would have to change.
        let r = c.get(TRUSTED, PATH, &[USER, OVERRIDE]);
        assert_eq!(
            outcome(&r),
            want("canary", "trusted-peer", "override"),
            "{mode:?}"
        );
        let r = c.get(UNTRUSTED, PATH, &[USER, OVERRIDE]);
        assert_eq!(
            outcome(&r),
            want("stable", "untrusted-peer", "hash"),
            "{mode:?}"
        );

        for (what, forged) in FORGERIES {
            let mut headers = vec![USER, OVERRIDE];
            headers.extend_from_slice(forged);
            let r = c.get(UNTRUSTED, PATH, &headers);
            assert_eq!(
                outcome(&r),
                want("stable", "untrusted-peer", "hash"),
                "{what} ({forged:?}), use_remote_address {mode:?}"
            );
        }
        assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
    }
}

fn a_trusted_peer_is_honoured(build: Build) {
    for mode in MODES {
        let (_stable, canary, envoy) = start(build, mode);
        let mut c = Client::new(envoy.port);

        let r = c.get(TRUSTED, PATH, &[USER, OVERRIDE]);
        assert_eq!(
            outcome(&r),
            want("canary", "trusted-peer", "override"),
            "{mode:?}"
        );
        let seen = canary.seen().pop().unwrap();
        assert!(seen.headers_named("x-dial-override").is_empty(), "{seen:?}");

        // A header naming another address takes nothing from a trusted peer where the host
        // shows the peer: the native build on Envoy 1.40 (Envoy's direct remote address)
        // always; the Wasm build, and the native build on Envoy 1.39 (the `source.address`
        // attribute), when Envoy uses the remote address. With `use_remote_address` unset,
        // their only address is the one Envoy took from `X-Forwarded-For`: not the peer, so no
        // range matches (it fails closed, never open). The native module says which it reads.
        let shows_peer = build == Build::Native && envoy.reads_direct_remote_address();
        let hidden = !shows_peer && mode.is_none();
        for xff in ["203.0.113.9", "10.1.2.3", "127.0.0.1"] {
            let r = c.get(TRUSTED, PATH, &[USER, OVERRIDE, ("x-forwarded-for", xff)]);
            let expected = if hidden {
                want("stable", "trusted-peer", "hash")
            } else {
                want("canary", "trusted-peer", "override")
            };
            assert_eq!(
                outcome(&r),
                expected,
                "x-forwarded-for {xff}, use_remote_address {mode:?}"
            );
        }
        assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
    }
}
