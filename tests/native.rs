//! Envoy end to end, the native build (Dial as an Envoy dynamic module) against the Wasm build:
//! the same traffic through both gives the same route for every one of 1,000 users and the same
//! `/stats/prometheus` series; the module speaks only callbacks Envoy exports; a panic inside it
//! leaves Envoy up and serving; the override's trusted ranges read the same peer address.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use support::policies::{checkout_with, Core, HOST, PATH};
use support::prometheus::Sample;
use support::{
    envoy_executable, for_each_build, native_module_path, Backend, Build, Client, Envoy,
    EnvoyConfig,
};

const USERS: usize = 1_000;

/// The example policy with everything that has metrics of its own: a mirror, a ramp (long
/// past its last step, so its share is constant: 30%) and a guard that never trips here.
fn policy() -> String {
    checkout_with(&[
        ("mirror", json!({ "version": "v3", "percent": 10 })),
        (
            "ramp",
            json!({ "subset": "canary", "start": "2020-01-01T00:00:00Z",
                    "steps": [ { "weight": 25, "hold": "1h" }, { "weight": 30 } ] }),
        ),
        (
            "guard",
            json!({ "subset": "canary", "fallback": "stable", "window": "10s",
                    "minRequests": 100000, "maxErrorRate": 0.5,
                    "maxSlowRate": { "overMs": 5000, "rate": 0.5 } }),
        ),
    ])
}

struct Setup {
    stable: Backend,
    canary: Backend,
    _shadow: Backend,
    envoy: Envoy,
}

fn start(build: Build) -> Setup {
    let (stable, canary, shadow) = (
        Backend::start("stable"),
        Backend::start("canary"),
        Backend::start("shadow"),
    );
    let mut config = EnvoyConfig::for_build(
        build,
        &policy(),
        &[
            ("stable", stable.port),
            ("canary", canary.port),
            ("shadow", shadow.port),
        ],
    );
    config.routes.retain(|r| r.value != "shadow");
    config.mirror_cluster = Some("shadow".into());
    let envoy = Envoy::start(&config);
    Setup {
        stable,
        canary,
        _shadow: shadow,
        envoy,
    }
}

/// What one request got: the backend that answered, its status and Dial's echo.
type Seen = (String, u16, Option<String>);

fn seen(r: &support::http::Response) -> Seen {
    (
        r.backend().to_string(),
        r.status,
        r.header("x-dial-assignment").map(str::to_string),
    )
}

/// The same traffic, request by request: 1,000 signed-in users, rules, overrides, sticky keys,
/// requests outside the release, writes, and a canary that fails for a while.
fn traffic(s: &Setup) -> (Vec<Seen>, Vec<Seen>) {
    let mut c = Client::new(s.envoy.port);
    let users: Vec<Seen> = (0..USERS)
        .map(|i| seen(&c.get(HOST, PATH, &[("x-user-id", &format!("user-{i}"))])))
        .collect();
    let mut other = Vec::new();
    for i in 0..10 {
        let u = format!("user-{i}");
        other.push(seen(&c.get(
            HOST,
            PATH,
            &[("x-user-id", &u), ("x-beta", "true")],
        )));
        // (Keys everywhere: a request without one is sampled for the mirror at random.)
        let cookie = format!("a=1; beta=1; uid=u{i}");
        other.push(seen(&c.get(HOST, PATH, &[("cookie", &cookie)])));
        other.push(seen(&c.get(
            HOST,
            PATH,
            &[("cookie", &format!("dial-checkout={i:016x}"))],
        )));
        other.push(seen(&c.get(
            HOST,
            PATH,
            &[
                ("x-user-id", &u),
                ("x-dial-override", "canary; token=qa-token-0123456789"),
            ],
        )));
        other.push(seen(&c.get(
            "other.example.com",
            PATH,
            &[("x-dial-subset", "canary")],
        )));
        let r = c.send("POST", HOST, PATH, [("x-user-id", u.as_bytes())], b"{}");
        other.push(seen(&r));
    }
    for u in ["alice", "bob"] {
        other.push(seen(&c.get(HOST, PATH, &[("x-user-id", u)])));
    }
    s.canary.set_status(503);
    for i in 0..200 {
        other.push(seen(&c.get(
            HOST,
            PATH,
            &[("x-user-id", &format!("user-{i}"))],
        )));
    }
    s.canary.set_status(200);
    (users, other)
}

/// Dial's series once the histograms are flushed (every second in tests), by name and labels.
fn dial_series(envoy: &Envoy, assigned: f64) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let count = |m: &[Sample]| -> f64 {
        m.iter()
            .filter(|s| s.name == "dial_request_duration_milliseconds_count")
            .map(|s| s.value)
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut m = envoy.prometheus();
    while count(&m) < assigned && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        m = envoy.prometheus();
    }
    assert_eq!(count(&m), assigned, "histograms not flushed");
    m.into_iter()
        .filter(|s| s.name.starts_with("dial_"))
        .map(|s| ((s.name, s.labels), s.value))
        .collect()
}

/// The `# TYPE` lines of Dial's metrics.
fn dial_types(envoy: &Envoy) -> BTreeSet<String> {
    envoy
        .admin_get("/stats/prometheus")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("# TYPE dial_") && !l.contains("dial_vm_memory_bytes"))
        .map(str::to_string)
        .collect()
}

#[test]
fn both_builds_route_every_user_alike_and_report_the_same_series() {
    let wasm = start(Build::Wasm);
    let native = start(Build::Native);
    let (wasm_users, wasm_other) = traffic(&wasm);
    let (native_users, native_other) = traffic(&native);

    // Every one of 1,000 users, by both builds, where Dial's core puts them now.
    let core = Core::new(&policy());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let differ: Vec<String> = (0..USERS)
        .filter(|&i| wasm_users[i] != native_users[i])
        .map(|i| {
            format!(
                "user-{i}: wasm {:?}, native {:?}",
                wasm_users[i], native_users[i]
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{} users differ: {:?}",
        differ.len(),
        &differ[..differ.len().min(10)]
    );
    for (i, (backend, status, echo)) in native_users.iter().enumerate() {
        let u = format!("user-{i}");
        assert_eq!(
            (backend.as_str(), *status),
            (core.subset_at(HOST, PATH, &u, now).as_str(), 200),
            "{u}"
        );
        assert!(
            echo.as_deref().is_some_and(|e| e.ends_with("reason=hash")),
            "{u}: {echo:?}"
        );
    }
    let canary = native_users.iter().filter(|s| s.0 == "canary").count();
    assert!(
        (250..=350).contains(&canary),
        "{canary} of {USERS} on the ramped canary (30%)"
    );
    assert_eq!(wasm_other, native_other);

    // The same series, with the same values: counters and gauges exactly; histograms by count
    // (their buckets and sums are each proxy's own timings). The VM memory gauge is the Wasm
    // VM's own (the native build has no VM).
    let assigned = (native_users.len() + native_other.len() - 10) as f64;
    let timing = |(name, labels): &(String, BTreeMap<String, String>)| {
        name.ends_with("_sum") || (name.ends_with("_bucket") && labels["le"] != "+Inf")
    };
    let series = |envoy: &Envoy| -> BTreeMap<_, _> {
        dial_series(envoy, assigned)
            .into_iter()
            .filter(|(k, _)| k.0 != "dial_vm_memory_bytes")
            .map(|(k, v)| {
                let v = if timing(&k) { None } else { Some(v) };
                (k, v)
            })
            .collect()
    };
    let (w, n) = (series(&wasm.envoy), series(&native.envoy));
    let only = |a: &BTreeMap<_, _>, b: &BTreeMap<_, _>| -> Vec<String> {
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k:?} = {v:?}"))
            .take(10)
            .collect()
    };
    assert_eq!(only(&w, &n), Vec::<String>::new(), "in wasm, not native");
    assert_eq!(only(&n, &w), Vec::<String>::new(), "in native, not wasm");
    assert_eq!(dial_types(&wasm.envoy), dial_types(&native.envoy));
    // Not vacuous: the counters moved, and the ramp's gauge says 30%.
    let value = |name: &str, labels: &[(&str, &str)]| {
        support::prometheus::value(&native.envoy.prometheus(), name, labels)
    };
    let subset = |s| [("release", "checkout"), ("subset", s)];
    assert_eq!(value("dial_subset_weight", &subset("canary")), Some(3000.0));
    assert_eq!(value("dial_guard_tripped", &subset("canary")), Some(0.0));
    assert_eq!(value("dial_policy_loads_total", &[]), Some(1.0));
    assert!(
        value(
            "dial_responses_total",
            &[
                ("release", "checkout"),
                ("subset", "canary"),
                ("version", "v2"),
                ("status_class", "5xx")
            ]
        )
        .unwrap()
            > 0.0
    );
    assert!(wasm.stable.count() > 0 && native.canary.count() > 0);
    // Envoy 1.40 loads the module of ABI v0.1.0 (with its deprecation warning).
    let log = native.envoy.log();
    assert!(log.contains("Dynamic module ABI version v0.1.0"), "{log}");
    for s in [&wasm, &native] {
        assert!(
            s.envoy.vm_failures().is_empty(),
            "{:?}",
            s.envoy.vm_failures()
        );
    }
}

/// The `envoy_dynamic_module_*` symbols of an ELF file's dynamic table, as `nm` lists them.
fn symbols(args: &[&str], file: &std::path::Path) -> BTreeSet<String> {
    let out = Command::new("nm").args(args).arg(file).output().unwrap();
    assert!(out.status.success(), "nm {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("envoy_dynamic_module_"))
        .map(str::to_string)
        .collect()
}

/// Envoy 1.40's callback for the connection's own peer, which Envoy 1.39 lacks: the module looks
/// it up at run time instead of importing it.
const DIRECT_REMOTE_ADDRESS: &str =
    "envoy_dynamic_module_callback_http_get_downstream_direct_remote_address";

/// The callbacks the module imports are all symbols Envoy's binary exports, the one it may
/// lack is no import, and the hooks the module exports include every one Envoy requires of an
/// HTTP filter module.
#[test]
fn the_module_uses_only_what_envoy_exports() {
    let module = native_module_path();
    let envoy = envoy_executable();
    let called = symbols(&["-D", "--undefined-only"], &module);
    let exported = symbols(&["-D", "--defined-only"], &module);
    let envoy_exports = symbols(&["-D", "--defined-only"], &envoy);
    assert!(called.len() >= 10, "{called:?}");
    let missing: Vec<&String> = called.difference(&envoy_exports).collect();
    assert!(missing.is_empty(), "Envoy does not export {missing:?}");
    assert!(!called.contains(DIRECT_REMOTE_ADDRESS), "{called:?}");
    // The hooks Envoy 1.40 refuses to load an HTTP filter module without.
    for hook in [
        "program_init",
        "http_filter_config_new",
        "http_filter_config_destroy",
        "http_filter_new",
        "http_filter_request_headers",
        "http_filter_request_body",
        "http_filter_request_trailers",
        "http_filter_response_headers",
        "http_filter_response_body",
        "http_filter_response_trailers",
        "http_filter_stream_complete",
        "http_filter_destroy",
        "http_filter_http_callout_done",
        "http_filter_http_stream_headers",
        "http_filter_http_stream_data",
        "http_filter_http_stream_trailers",
        "http_filter_http_stream_complete",
        "http_filter_http_stream_reset",
        "http_filter_scheduled",
        "http_filter_downstream_above_write_buffer_high_watermark",
        "http_filter_downstream_below_write_buffer_low_watermark",
    ] {
        let name = format!("envoy_dynamic_module_on_{hook}");
        assert!(
            exported.contains(&name),
            "the module does not export {name}"
        );
    }
}

/// The module reads the connection's peer from Envoy's direct remote address exactly where
/// Envoy's binary exports that callback (1.40), and from the `source.address` attribute where
/// it does not (1.39); either way it loads and serves.
#[test]
fn the_module_reads_the_peer_where_envoy_offers_it() {
    let offered =
        symbols(&["-D", "--defined-only"], &envoy_executable()).contains(DIRECT_REMOTE_ADDRESS);
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let envoy = Envoy::start(&EnvoyConfig::for_build(
        Build::Native,
        support::policies::CHECKOUT,
        &[("stable", stable.port), ("canary", canary.port)],
    ));
    assert_eq!(
        envoy.reads_direct_remote_address(),
        offered,
        "{}",
        envoy.log()
    );
    let r = Client::new(envoy.port).get(HOST, PATH, &[("x-user-id", "alice")]);
    assert_eq!(r.backend(), "canary");
}

/// A panic inside the native module (the test-only probe: a request carrying
/// `x-dial-panic-probe`) is caught where Envoy called in: logged on one critical line, the
/// request passes unsteered (a client's own steering header removed), Envoy stays up, and the
/// next requests are steered again, on the same connection and on new ones.
#[test]
fn a_native_panic_is_caught_and_envoy_keeps_serving() {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let mut config = EnvoyConfig::for_build(
        Build::Native,
        support::policies::CHECKOUT,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    config.module = Some(Build::Native.panic_probe());
    let envoy = Envoy::start(&config);
    let mut c = Client::new(envoy.port);
    assert_eq!(
        c.get(HOST, PATH, &[("x-user-id", "alice")]).backend(),
        "canary"
    );
    for i in 0..100 {
        let r = c.get(
            HOST,
            PATH,
            &[
                ("x-user-id", "alice"),
                ("x-dial-subset", "canary"),
                ("x-dial-panic-probe", &format!("boom {i}")),
            ],
        );
        // Passed, unsteered: the default route, and the client's own header did not steer.
        assert_eq!((r.status, r.backend()), (200, "stable"), "{i}");
        assert_eq!(r.header("x-dial-assignment"), None);
        let upstream = stable.seen().pop().unwrap();
        assert!(
            upstream.headers_named("x-dial-subset").is_empty(),
            "{upstream:?}"
        );
        // Steered again right after, on the same connection.
        let r = c.get(HOST, PATH, &[("x-user-id", "alice")]);
        assert_eq!(r.backend(), "canary", "{i}");
        assert!(r
            .header("x-dial-assignment")
            .unwrap()
            .ends_with("reason=allowlist"));
    }
    let log = envoy.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("dial: panicked at "))
        .collect();
    assert_eq!(lines.len(), 100, "{log}");
    assert!(
        lines[0].contains("[critical]")
            && lines[0].contains("dial: panicked at src/dynamic_module/mod.rs:")
            && lines[0].ends_with(": panic probe: boom 0"),
        "{}",
        lines[0]
    );
    // Envoy never went down: the same process answers on new connections, and was not
    // restarted (its admin API still answers, its listener still takes new clients).
    assert!(envoy.admin_get("/ready").is_some());
    let r = Client::new(envoy.port).get(HOST, PATH, &[("x-user-id", "bob")]);
    assert_eq!(r.backend(), "canary");
    assert_eq!(envoy.stat("server.live"), 1);
}

/// `override.sourceCidrs` trusts the downstream connection's peer: natively Envoy's direct
/// remote address (the `source.address` attribute on Envoy 1.39), in the Wasm build the
/// `source.address` property (`tests/source_trust.rs` shows what no header can change in
/// either).
fn trusted_ranges_read_the_peer_address(build: Build) {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    for (cidrs, trusted) in [(["127.0.0.0/8"], true), (["10.0.0.0/8"], false)] {
        let policy = checkout_with(&[(
            "override",
            json!({ "header": "x-dial-override", "sourceCidrs": cidrs }),
        )]);
        let envoy = Envoy::start(&EnvoyConfig::for_build(
            build,
            &policy,
            &[("stable", stable.port), ("canary", canary.port)],
        ));
        let core = Core::new(&policy);
        let user = core.users_on(HOST, PATH, "stable", 1).pop().unwrap();
        let r = Client::new(envoy.port).get(
            HOST,
            PATH,
            &[("x-user-id", &user), ("x-dial-override", "canary")],
        );
        let want = if trusted { "canary" } else { "stable" };
        assert_eq!(r.backend(), want, "{cidrs:?}");
    }
}

for_each_build!(trusted_ranges_read_the_peer_address);

/// `envoy-config/native.yaml` is `envoy.yaml` with the native filter: the same policy, the same
/// routes and clusters, and the runtime flag that gives its metrics the Wasm build's names
/// (both files pass `envoy --mode validate` in tests/envoy_configs.rs).
#[test]
fn the_native_example_runs_the_wasm_examples_policy_and_routes() {
    let read = |name: &str| {
        std::fs::read_to_string(support::repo_root().join("envoy-config").join(name)).unwrap()
    };
    let (wasm, native) = (read("envoy.yaml"), read("native.yaml"));
    // The embedded policy: the `value: |` block, dedented.
    let policy = |yaml: &str| -> serde_json::Value {
        let mut lines = yaml.lines().skip_while(|l| l.trim() != "value: |").skip(1);
        let first = lines.clone().next().unwrap();
        let indent = first.len() - first.trim_start().len();
        let block: String = lines
            .by_ref()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
            .map(|l| format!("{}\n", l.trim()))
            .collect();
        serde_json::from_str(&block).unwrap()
    };
    assert_eq!(policy(&native), policy(&wasm));
    // Routes and clusters: everything from the route table to the filters, and after them.
    let between = |yaml: &str, from: &str, to: &str| -> String {
        let start = yaml.find(from).unwrap();
        let end = start + yaml[start..].find(to).unwrap();
        yaml[start..end].to_string()
    };
    assert_eq!(
        between(&native, "static_resources:", "http_filters:"),
        between(&wasm, "static_resources:", "http_filters:")
    );
    let tail =
        |yaml: &str| yaml[yaml.find("- name: envoy.filters.http.router").unwrap()..].to_string();
    assert_eq!(tail(&native), tail(&wasm));
    assert!(
        native.contains("envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix: true")
    );
    assert!(native.contains("filename: target/native/libdial.so"));
    assert_eq!(
        between(&native, "stats_config:", "\n\n"),
        between(&wasm, "stats_config:", "\n\n")
    );
}

/// The Envoy Gateway example (`envoy-config/gateway/`) carries the native example's policy but
/// for its dated ramp (Envoy Gateway hands the EnvoyExtensionPolicy's `config` to Dial as JSON
/// text), gives the proxy every secret the policy reads from the environment, and the same
/// stats tags and runtime flag.
#[test]
fn the_gateway_example_carries_the_same_policy_and_metrics_settings() {
    let read = |name: &str| {
        std::fs::read_to_string(support::repo_root().join("envoy-config").join(name)).unwrap()
    };
    let policy = read("gateway/envoyextensionpolicy.yaml");
    assert!(policy.contains("kind: EnvoyExtensionPolicy"));
    let config: String = policy
        .lines()
        .skip_while(|l| l.trim() != "config:")
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    // Dial's own parser accepts it, with the secrets in the proxy's environment.
    support::policies::parse_with_example_env(&config.to_string()).unwrap();
    let native = read("native.yaml");
    let block: String = native
        .lines()
        .skip_while(|l| l.trim() != "value: |")
        .skip(1)
        .take_while(|l| l.trim().is_empty() || l.starts_with("                  "))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut native_policy: serde_json::Value = serde_json::from_str(&block).unwrap();
    let ramp = native_policy["releases"][0]
        .as_object_mut()
        .unwrap()
        .remove("ramp");
    assert!(ramp.is_some(), "native.yaml's checkout release ramps");
    assert_eq!(config, native_policy);
    let proxy = read("gateway/envoyproxy.yaml");
    for (name, _) in support::policies::EXAMPLE_ENV {
        assert!(
            policy.contains(&format!("\"fromEnv\": \"{name}\"")),
            "the policy reads {name}"
        );
        assert!(
            proxy.contains(&format!(
                "- name: {name}\n            valueFrom:\n              secretKeyRef:"
            )),
            "the EnvoyProxy sets {name} from a Secret"
        );
    }
    assert!(proxy.contains("kind: EnvoyProxy"));
    for tag in dial::core::stats::TAGS {
        let line = format!("regex: \"({tag}=\\\\.=(.*?);\\\\.;)\"");
        assert!(proxy.contains(&line) && native.contains(&line), "{line}");
    }
    let flag = "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix: true";
    assert!(proxy.contains(flag) && native.contains(flag));
    assert!(proxy.contains("path: /etc/envoy/dynamic-modules/libdial.so"));
}
