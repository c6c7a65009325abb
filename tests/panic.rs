//! Envoy end to end with the test-only panic probe (feature `panic-probe`: a request carrying
//! `x-dial-panic-probe` panics inside Dial). Proves that the panic hook logs the cause before the
//! VM traps, and shows what each failure policy does next: FAIL_CLOSED refuses requests, FAIL_OPEN
//! lets them through unsteered (so a client's own `x-dial-subset` then reaches the route table),
//! FAIL_RELOAD starts a fresh VM that steers again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::time::{Duration, Instant};

use support::policies::{CHECKOUT, HOST, PATH};
use support::{panic_probe_module, Backend, Client, Envoy, EnvoyConfig};

struct Setup {
    _stable: Backend,
    _canary: Backend,
    envoy: Envoy,
}

fn start(failure_policy: &str) -> Setup {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let mut config = EnvoyConfig::new(
        CHECKOUT,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    config.module = Some(panic_probe_module());
    config.failure_policy = failure_policy.into();
    let envoy = Envoy::start(&config);
    Setup {
        _stable: stable,
        _canary: canary,
        envoy,
    }
}

/// Steered normally, then the probe: the panic's message is in Envoy's log, and the request that
/// panicked is not served by an upstream.
fn trap(s: &Setup) -> Client {
    let mut c = Client::new(s.envoy.port);
    let r = c.get(HOST, PATH, &[("x-user-id", "alice")]);
    assert_eq!(r.backend(), "canary");
    let r = c.get(
        HOST,
        PATH,
        &[("x-user-id", "alice"), ("x-dial-panic-probe", "boom")],
    );
    assert!(r.status >= 500, "the panicking request got {}", r.status);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.envoy.log().contains("dial: panicked at ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = s.envoy.log();
    let line = log
        .lines()
        .find(|l| l.contains("dial: panicked at "))
        .unwrap_or_else(|| panic!("the panic was not logged:\n{log}"));
    assert!(
        line.contains("dial: panicked at src/wasm/mod.rs:")
            && line.ends_with(": panic probe: boom"),
        "{line}"
    );
    assert!(line.contains("[critical]"), "{line}");
    Client::new(s.envoy.port)
}

#[test]
fn fail_closed_logs_the_panic_then_refuses_requests() {
    let s = start("FAIL_CLOSED");
    let mut c = trap(&s);
    for _ in 0..5 {
        let r = c.get(HOST, PATH, &[("x-user-id", "alice")]);
        assert!(r.status >= 500, "a trapped VM served {}", r.status);
    }
}

#[test]
fn fail_open_serves_unsteered_so_clients_could_steer() {
    let s = start("FAIL_OPEN");
    let mut c = trap(&s);
    // Dial no longer runs: nothing is assigned, and the default route answers...
    let r = c.get(HOST, PATH, &[("x-user-id", "alice")]);
    assert_eq!((r.status, r.backend()), (200, "stable"));
    assert_eq!(r.header("x-dial-assignment"), None);
    // ...and nobody strips a client's own routing header any more.
    let r = c.get(HOST, PATH, &[("x-dial-subset", "canary")]);
    assert_eq!(r.backend(), "canary");
}

#[test]
fn fail_reload_starts_a_fresh_vm_that_steers_again() {
    let s = start("FAIL_RELOAD");
    let mut c = trap(&s);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.get(HOST, PATH, &[("x-user-id", "alice")]);
        if r.status == 200 && r.backend() == "canary" {
            assert!(r
                .header("x-dial-assignment")
                .unwrap()
                .ends_with("reason=allowlist"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no fresh VM after 20 s (last: {} from {})",
            r.status,
            r.backend()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
