//! Dial inside Envoy 1.40 (one worker), against its floors and the alternatives, loaded by wrk
//! from a second process on loopback. Routes answer with direct_response, so no upstream is
//! measured (except for Envoy's native weighted_clusters, which needs clusters: its requests go
//! to a sink Envoy, an extra hop the table says). Configurations run interleaved, round after
//! round, and the median round counts. Before measuring, every configuration must answer 500
//! users as it should (counted checks); a smoke run then loads them all side by side, briefly.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use dial::core::decide::{decide, Context, Decision};
use dial::core::policy::Policy;
use dial::core::request::HeaderList;
use serde_json::{json, Value};

use crate::checks::Checks;
use crate::core_bench::{now_nanos, realistic_policy, with_ramp_and_guard, RAMP_START};
use crate::support::config;
use crate::support::policies::Core;
use crate::support::prometheus::{value, Sample};
use crate::support::{module_path, native_module_path, repo_root, scratch_dir, Build, Envoy};

/// The throughput of Dial with a ramp and a guard (3b) in this run, requests/s on one worker:
/// the instruction counts put the cost of its VM's tick per request at this rate.
pub static RAMP_GUARD_RPS: OnceLock<f64> = OnceLock::new();

const HOST: &str = "shop.example.com";

struct Variant {
    key: &'static str,
    name: &'static str,
    envoy: Envoy,
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    /// Latency with one connection, one request at a time: the time a request takes, without
    /// the queueing a saturating load adds.
    solo_p50: Vec<f64>,
    solo_p99: Vec<f64>,
    /// wrk runs that failed (reported by a check).
    wrk_errors: Vec<String>,
}

fn floor_module() -> std::path::PathBuf {
    let path = repo_root().join("target/wasm32-wasip1/release/dial_bench_floor.wasm");
    assert!(path.exists(), "{} missing: run make bench", path.display());
    path
}

/// A proxy-wasm filter: `module` as plugin and VM `name`, given `configuration`.
fn wasm_filter(name: &str, module: &Path, configuration: &str) -> Value {
    config::wasm_filter(json!({
        "name": name,
        "root_id": name,
        "configuration": config::string_value(configuration),
        "vm_config": {
            "vm_id": name,
            "runtime": "envoy.wasm.runtime.v8",
            "code": { "local": { "filename": module.display().to_string() } },
        },
    }))
}

/// Dial as an Envoy dynamic module (`make build-native`), with the same policy: the filter as
/// tests/support/config.rs configures it for `Build::Native`.
fn native_filter(policy: &str) -> Value {
    dynamic_module_filter("dial", &native_module_path(), policy)
}

/// A bootstrap with the native floor making `calls` (see tests/bench/native_floor).
pub fn native_floor_bootstrap(calls: &str) -> String {
    steered(Build::Native, vec![native_floor_filter(calls)])
}

/// The native floor (tests/bench/native_floor) making `calls`.
fn native_floor_filter(calls: &str) -> Value {
    let path = repo_root().join("target/native/libdial_bench_native_floor.so");
    assert!(path.exists(), "{} missing: run make bench", path.display());
    dynamic_module_filter("floor", &path, calls)
}

fn dynamic_module_filter(name: &str, module: &Path, configuration: &str) -> Value {
    config::dynamic_module_filter(
        name,
        module,
        name,
        Some(config::string_value(configuration)),
    )
}

/// A route answered by Envoy itself with `body`.
fn answered(route_match: Value, body: &str) -> Value {
    json!({
        "match": route_match,
        "direct_response": { "status": 200, "body": { "inline_string": body } },
    })
}

/// Routes on the subset header, answered by Envoy itself.
fn steered_routes() -> Vec<Value> {
    vec![
        answered(
            json!({
                "prefix": "/",
                "headers": [ { "name": "x-dial-subset", "string_match": { "exact": "canary" } } ],
            }),
            "canary",
        ),
        answered(json!({ "prefix": "/" }), "stable"),
    ]
}

/// Envoy's native equivalent: header rules as route matches (cookies by regex), then a weighted
/// split hashed on the user key. No 10,000-id allowlist: the route table has no set lookup.
fn native_routes() -> Vec<Value> {
    let to_canary = |header: &str, string_match: Value| {
        json!({
            "match": {
                "prefix": "/checkout",
                "headers": [ { "name": header, "string_match": string_match } ],
            },
            "route": { "cluster": "canary" },
        })
    };
    vec![
        to_canary("x-beta", json!({ "exact": "true" })),
        to_canary("x-group", json!({ "safe_regex": { "regex": "qa|staff" } })),
        to_canary(
            "cookie",
            json!({ "safe_regex": { "regex": "(.*; )?beta=1(;.*)?" } }),
        ),
        json!({
            "match": { "prefix": "/checkout" },
            "route": {
                "weighted_clusters": {
                    "clusters": [ { "name": "stable", "weight": 90 }, { "name": "canary", "weight": 10 } ],
                    "use_hash_policy": true,
                },
                "hash_policy": [ { "header": { "header_name": "x-user-id" } } ],
            },
        }),
        json!({ "match": { "prefix": "/" }, "route": { "cluster": "stable" } }),
    ]
}

/// A bootstrap for `build` (the native build's runtime flag strips the dynamic modules' stat
/// namespace, so Dial's metrics have the Wasm build's names): `filters` before the router,
/// `routes`, `clusters`, as the text Envoy reads.
fn bootstrap(
    build: Build,
    filters: Vec<Value>,
    routes: Vec<Value>,
    clusters: Vec<Value>,
) -> String {
    let manager = config::connection_manager(
        "bench",
        json!({ "virtual_hosts": [ { "name": "all", "domains": ["*"], "routes": routes } ] }),
        filters,
    );
    config::text(&config::bootstrap(
        build,
        json!({ "static_resources": {
            "listeners": [config::listener(0, manager)],
            "clusters": clusters,
        } }),
    ))
}

/// A bootstrap of `filters` and the steered routes, without clusters.
fn steered(build: Build, filters: Vec<Value>) -> String {
    bootstrap(build, filters, steered_routes(), vec![])
}

fn sink_clusters(port: u16) -> Vec<Value> {
    ["stable", "canary"]
        .iter()
        .map(|name| config::static_cluster(name, port))
        .collect()
}

fn lua_filter() -> Value {
    json!({
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": { "inline_string": include_str!("assign.lua") },
        },
    })
}

/// The wrk script: each request is a different user (of 100,000), browser-like headers.
const WRK_SCRIPT: &str = r#"
local n = 0
request = function()
  n = n + 1
  local user = "user-" .. (n % 100000)
  return wrk.format("GET", "/checkout/cart?step=2", {
    ["Host"] = "shop.example.com",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0",
    ["Accept"] = "text/html,application/xhtml+xml",
    ["Accept-Language"] = "en-US,en;q=0.5",
    ["x-user-id"] = user,
    ["Cookie"] = "session=3f2a9c; theme=dark; uid=" .. user .. "; consent=yes",
  })
end
"#;

/// Parses wrk's `--latency` report: requests/s, p50 and p99 in microseconds.
fn parse_wrk(out: &str) -> (f64, f64, f64) {
    let micros = |v: &str| -> f64 {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n,
            "ms" => n * 1000.0,
            "s" => n * 1_000_000.0,
            _ => f64::NAN,
        }
    };
    let percentile = |p: &str| {
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with(p))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(micros)
            .unwrap_or(f64::NAN)
    };
    let rps = out
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(f64::NAN);
    (rps, percentile("50%"), percentile("99%"))
}

/// One wrk run: requests/s, p50 and p99 in µs; an error if wrk failed, an answer was not 2xx
/// or its report does not parse.
fn wrk(
    port: u16,
    connections: u32,
    seconds: u64,
    script: &std::path::Path,
) -> Result<(f64, f64, f64), String> {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), "--latency"])
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .map_err(|e| format!("cannot run wrk (make bench installs it): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if text.contains("Non-2xx") {
        return Err(format!("errors under load:\n{text}"));
    }
    let (rps, p50, p99) = parse_wrk(&text);
    if !(rps > 0.0 && p50 > 0.0 && p99 >= p50) {
        return Err(format!(
            "unreadable wrk report ({rps}, {p50}, {p99}):\n{text}"
        ));
    }
    Ok((rps, p50, p99))
}

/// NaN for no runs (a configuration whose runs all failed, which a check reports).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The host calls Dial makes for one request of the benchmark's traffic, in the floor's
/// terms: the request header map, the subset and version headers, the request counter and
/// the clock; the response's `:status`; then the response counter, the clock and the duration.
pub const DIALS_HOST_CALLS: &str =
    "read-headers,set-header,set-second-header,count,clock,read-status,count,clock,record";

/// Every configuration measured: (key, name in the tables, Envoy bootstrap).
pub fn configurations(sink_port: u16) -> Vec<(&'static str, &'static str, String)> {
    let dial = module_path();
    let floor = floor_module();
    let policy = realistic_policy(10_000, 0, 0);
    let ramped = with_ramp_and_guard(&policy);
    let floor_with = |calls: &str| steered(Build::Wasm, vec![wasm_filter("floor", &floor, calls)]);
    vec![
        (
            "none",
            "1. Envoy, no wasm filter",
            steered(Build::Wasm, vec![]),
        ),
        ("empty", "2. empty proxy-wasm filter", floor_with("")),
        (
            "set1",
            "2b. proxy-wasm filter setting one header",
            floor_with("set-header"),
        ),
        (
            "read1",
            "2c. proxy-wasm filter reading the header map, setting one header",
            floor_with("read-headers,set-header"),
        ),
        (
            "calls",
            "2d. proxy-wasm filter making Dial's host calls, without Dial's logic",
            floor_with(DIALS_HOST_CALLS),
        ),
        (
            "dial",
            "3. Dial, realistic policy",
            steered(Build::Wasm, vec![wasm_filter("dial", &dial, &policy)]),
        ),
        (
            "dial-rg",
            "3b. Dial, realistic policy with a ramp and a guard active",
            steered(Build::Wasm, vec![wasm_filter("dial", &dial, &ramped)]),
        ),
        (
            "native",
            "4. native routes + weighted_clusters (via a sink Envoy)",
            bootstrap(
                Build::Wasm,
                vec![],
                native_routes(),
                sink_clusters(sink_port),
            ),
        ),
        (
            "lua",
            "5. Lua filter doing the same assignment",
            steered(Build::Wasm, vec![lua_filter()]),
        ),
        (
            "dial-native",
            "6. Dial, native dynamic module, realistic policy",
            steered(Build::Native, vec![native_filter(&policy)]),
        ),
        (
            "native-empty",
            "6a. empty dynamic module (the native floor)",
            native_floor_bootstrap(""),
        ),
        (
            "native-calls",
            "6b. dynamic module making Dial's host calls, without Dial's logic",
            native_floor_bootstrap(DIALS_HOST_CALLS),
        ),
    ]
}

/// Dial with lanes, in each build (counted by instructions only: the load generator's requests
/// carry no baggage): the realistic policy issuing lanes, and following the lane member every
/// request of the instruction count carries (`instructions::lane_baggage`); and the realistic
/// policy given the same requests, baggage and all, to tell Envoy's share of a longer request
/// from Dial's.
pub fn lane_configurations() -> Vec<(&'static str, &'static str, String)> {
    let dial = module_path();
    let policy = realistic_policy(10_000, 0, 0);
    let issuing = crate::core_bench::with_lanes(&policy, true);
    let following = crate::core_bench::with_lanes(&policy, false);
    let wasm = |p: &str| steered(Build::Wasm, vec![wasm_filter("dial", &dial, p)]);
    let native = |p: &str| steered(Build::Native, vec![native_filter(p)]);
    vec![
        (
            "dial-baggage",
            "3'. Dial, realistic policy, the requests carrying 3d's baggage",
            wasm(&policy),
        ),
        (
            "dial-lane-issue",
            "3c. Dial, realistic policy issuing lanes",
            wasm(&issuing),
        ),
        (
            "dial-lane-follow",
            "3d. Dial, realistic policy following the lane each request carries",
            wasm(&following),
        ),
        (
            "native-baggage",
            "6'. Dial, native, realistic policy, the requests carrying 6d's baggage",
            native(&policy),
        ),
        (
            "native-lane-issue",
            "6c. Dial, native, realistic policy issuing lanes",
            native(&issuing),
        ),
        (
            "native-lane-follow",
            "6d. Dial, native, realistic policy following the lane each request carries",
            native(&following),
        ),
    ]
}

/// What 3b's Envoy says of its ramp and guard: the canary's weight gauge at the ramp's step
/// (25%, 2500 basis points, set by the VM's tick), and the guard untripped (a trip would send the
/// canary's users to stable and stop the ramp: 3b would measure something else).
pub fn check_ramp_and_guard(name: &str, metrics: &[Sample], checks: &mut Checks) {
    let canary = [("release", "checkout"), ("subset", "canary")];
    let weight = value(metrics, "dial_subset_weight", &canary);
    let tripped = value(metrics, "dial_guard_tripped", &canary);
    let trips = value(metrics, "dial_guard_trips_total", &canary);
    checks.check(
        weight == Some(2500.0) && tripped == Some(0.0) && trips == Some(0.0),
        format!(
            "{name}: the canary's weight at the ramp's step, 2500 basis points ({weight:?}), its guard never tripped (tripped {tripped:?}, trips {trips:?})"
        ),
    );
}

/// A bootstrap with the floor filter making `calls` (see tests/bench/floor).
pub fn floor_bootstrap(calls: &str) -> String {
    steered(
        Build::Wasm,
        vec![wasm_filter("floor", &floor_module(), calls)],
    )
}

/// A sink Envoy answering everything itself: the upstream of the native configuration.
pub fn sink() -> Envoy {
    Envoy::start_yaml(
        "bench-sink",
        &bootstrap(
            Build::Wasm,
            vec![],
            vec![answered(json!({ "prefix": "/" }), "sink")],
            vec![],
        ),
    )
}

/// The headers of user `i` in the answer check: browser-like, like wrk's, and every tenth user
/// of a kind that exercises one rule (or the cookie key) instead of the hash.
fn user_headers(i: usize) -> Vec<(String, String)> {
    let user = format!("user-{i}");
    let mut cookie = format!("session=3f2a9c; theme=dark; uid={user}; consent=yes");
    let mut headers = vec![(
        "user-agent".to_string(),
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0".to_string(),
    )];
    let mut key = Some(user);
    match i % 10 {
        1 => headers.push(("x-beta".into(), "true".into())),
        2 => headers.push(("x-group".into(), "staff".into())),
        3 => cookie.push_str("; beta=1"),
        4 => cookie.push_str("; plan=enterprise-gold"),
        5 => key = Some(format!("vip-{i}")),
        6 => key = None, // the key comes from the `uid` cookie
        _ => {}
    }
    headers.extend(key.map(|k| ("x-user-id".to_string(), k)));
    headers.push(("cookie".into(), cookie));
    headers
}

/// The subset Dial's core gives each of `users` users of the answer check, deciding at `now`
/// as the filter does with the host's clock (`Context::at`): a ramp's step depends on it.
fn decided_at(policy: &Policy, now: u64, users: usize) -> Vec<String> {
    (0..users)
        .map(|i| {
            let headers = user_headers(i);
            let mut h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            h.extend([
                (":authority", HOST),
                (":path", "/checkout"),
                (":method", "GET"),
            ]);
            match decide(policy, &Context::at(now), &HeaderList::from_strs(&h)) {
                Decision::Assign(a) => {
                    format!("200 {}", policy.releases[a.release].subsets[a.subset].name)
                }
                Decision::Pass => "no release applies".to_string(),
            }
        })
        .collect()
}

/// Every configuration answers the same users as it must, user by user: Dial as its core
/// decides, the Lua filter as Dial does (or the comparison means nothing), the native routes
/// through the sink, and the floors (which always set `stable`) and Envoy alone with stable.
/// Dial with a ramp (3b) as its core decides at the time of the check: the same step must be in
/// force from its start to its end (no step boundary in between), and that step must move
/// users the written weights would not (the ramp is active, not merely configured).
fn check_answers(variants: &[Variant], checks: &mut Checks) {
    let core = Core::new(&realistic_policy(10_000, 0, 0));
    let ramped = Policy::parse(with_ramp_and_guard(&realistic_policy(10_000, 0, 0)).as_bytes())
        .expect("the ramped bench policy parses");
    let ramp = ramped.releases[0]
        .ramp
        .as_ref()
        .expect("a ramp on the checkout release");
    let users = 500;
    let began = now_nanos();
    let mut answers: Vec<Vec<String>> = Vec::new();
    for v in variants {
        let mut client = crate::support::Client::new(v.envoy.port);
        answers.push(
            (0..users)
                .map(|i| {
                    let headers = user_headers(i);
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    let r = client.get(HOST, "/checkout", &h);
                    format!("{} {}", r.status, r.text())
                })
                .collect(),
        );
    }
    let ended = now_nanos();
    let step = |t| ramp.step_at(Some(t)).map(|(i, s)| (i, s.share_ppm));
    let in_force = step(began);
    checks.check(
        in_force.is_some() && in_force == step(ended),
        format!(
            "3b's ramp had one step in force throughout the answer check ({:?} at its start, {:?} at its end: (step, share in ppm))",
            in_force,
            step(ended)
        ),
    );
    let with_ramp = decided_at(&ramped, began, users);
    let written = decided_at(&ramped, 0, users);
    let moved = (0..users).filter(|&i| with_ramp[i] != written[i]).count();
    let moved_back = (0..users)
        .filter(|&i| with_ramp[i] != written[i] && written[i] == "200 canary")
        .count();
    checks.check(
        moved > 0 && moved_back == 0,
        format!(
            "3b's ramp is active: it puts {moved} of the {users} users on the canary whom the written weights keep on stable ({moved_back} moved the other way)"
        ),
    );
    let dial = variants.iter().position(|v| v.key == "dial").unwrap();
    for (v, got) in variants.iter().zip(&answers) {
        let (want, what): (Vec<String>, &str) = match v.key {
            "dial" | "dial-native" => (
                (0..users)
                    .map(|i| {
                        let headers = user_headers(i);
                        let mut h: Vec<(&str, &str)> = headers
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_str()))
                            .collect();
                        h.extend([(":authority", HOST), (":path", "/checkout")]);
                        let a = core.decide(&h).expect("the checkout release applies");
                        format!("200 {}", core.subset_name(&a))
                    })
                    .collect(),
                "assigned as Dial's core decides",
            ),
            "dial-rg" => (
                with_ramp.clone(),
                "assigned as Dial's core decides at the time of the check (ramp step in force)",
            ),
            "lua" => (answers[dial].clone(), "assigned as Dial did"),
            "native" => (
                vec!["200 sink".to_string(); users],
                "answered through the sink",
            ),
            _ => (
                vec!["200 stable".to_string(); users],
                "answered by the stable route",
            ),
        };
        let wrong: Vec<usize> = (0..users).filter(|&i| got[i] != want[i]).collect();
        checks.check(
            wrong.is_empty(),
            format!(
                "{}: {} of {users} users {what}{}",
                v.name,
                users - wrong.len(),
                wrong
                    .first()
                    .map(|&i| format!(
                        " (first wrong: user {i}, {:?} instead of {:?})",
                        got[i], want[i]
                    ))
                    .unwrap_or_default()
            ),
        );
    }
}

pub fn run(smoke: bool, checks: &mut Checks) -> String {
    let sink = sink();
    // Started side by side: a start's work (V8 compiling the module) does not affect a
    // measurement, which begins once every configuration is up.
    let mut variants: Vec<Variant> = std::thread::scope(|s| {
        let starts: Vec<_> = configurations(sink.port)
            .into_iter()
            .map(|(key, name, yaml)| {
                s.spawn(move || Variant {
                    key,
                    name,
                    envoy: Envoy::start_yaml(key, &yaml),
                    rps: Vec::new(),
                    p50: Vec::new(),
                    p99: Vec::new(),
                    solo_p50: Vec::new(),
                    solo_p99: Vec::new(),
                    wrk_errors: Vec::new(),
                })
            })
            .collect();
        starts
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });

    check_answers(&variants, checks);

    let dir = scratch_dir("bench-wrk");
    let script = dir.join("users.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let (rounds, seconds) = if smoke { (1, 1) } else { (5, 4) };
    let measure = |v: &mut Variant| {
        let pause = || {
            if !smoke {
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        match wrk(v.envoy.port, 8, seconds, &script) {
            Ok((rps, p50, p99)) => {
                v.rps.push(rps);
                v.p50.push(p50);
                v.p99.push(p99);
            }
            Err(e) => v.wrk_errors.push(e),
        }
        pause();
        match wrk(v.envoy.port, 1, seconds.div_ceil(2), &script) {
            Ok((_, p50, p99)) => {
                v.solo_p50.push(p50);
                v.solo_p99.push(p99);
            }
            Err(e) => v.wrk_errors.push(e),
        }
        pause();
    };
    if !smoke {
        for v in &variants {
            let _ = wrk(v.envoy.port, 8, 1, &script); // warm up: JIT, connection pools
        }
    }
    for _ in 0..rounds {
        if smoke {
            // A smoke run's numbers mean nothing; what it proves is that every configuration
            // serves wrk's load and its report reads. Side by side, that takes two seconds.
            let measure = &measure;
            std::thread::scope(|s| {
                for v in variants.iter_mut() {
                    s.spawn(move || measure(v));
                }
            });
        } else {
            for v in variants.iter_mut() {
                measure(v);
            }
        }
    }
    for v in &variants {
        checks.check(
            v.wrk_errors.is_empty(),
            format!(
                "{}: {} wrk runs, every answer 2xx and the report read{}",
                v.name,
                rounds * 2,
                v.wrk_errors
                    .first()
                    .map(|e| format!(" ({} failed, first: {e})", v.wrk_errors.len()))
                    .unwrap_or_default()
            ),
        );
    }
    let failures: Vec<String> = variants
        .iter()
        .flat_map(|v| {
            v.envoy
                .vm_failures()
                .into_iter()
                .map(move |f| format!("{}: {f}", v.key))
        })
        .collect();
    checks.check(
        failures.is_empty(),
        format!(
            "no wasm VM panicked or trapped in any of the {} configurations{}",
            variants.len(),
            failures
                .first()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        ),
    );

    // Dial's own view: requests it assigned, and its VM's linear memory after them; with a
    // ramp and a guard, that the ramp's step was applied and the guard held throughout.
    let mut dial_view = |key: &str| {
        let v = variants.iter().find(|v| v.key == key).unwrap();
        let metrics = v.envoy.prometheus();
        let assigned: f64 = metrics
            .iter()
            .filter(|m| m.name == "dial_requests_total")
            .map(|m| m.value)
            .sum();
        let memory = value(&metrics, "dial_vm_memory_bytes", &[]).unwrap_or(f64::NAN);
        // Every request of this run was on /checkout, in a release: Dial assigned each one.
        let received = v.envoy.stat("http.bench.downstream_rq_total");
        checks.check(
            assigned == received as f64 && received > 0,
            format!(
                "{}: Dial counted every request Envoy received as assigned ({assigned} of {received})",
                v.name
            ),
        );
        // The native build has no VM, hence no linear memory to report.
        if key != "dial-native" {
            checks.check(
                memory > 0.0,
                format!(
                    "{}: Dial reported its VM's linear memory ({memory} bytes)",
                    v.name
                ),
            );
        }
        if key == "dial-rg" {
            check_ramp_and_guard(v.name, &metrics, checks);
        }
        (assigned, memory)
    };
    let (assigned, memory) = dial_view("dial");
    let (assigned_rg, memory_rg) = dial_view("dial-rg");
    dial_view("dial-native");

    let get = |key: &str| variants.iter().find(|v| v.key == key).unwrap();
    let (dial_v, floor_v, lua_v) = (get("dial"), get("set1"), get("lua"));
    let rg_rps = median(&get("dial-rg").rps);
    if rg_rps > 0.0 {
        let _ = RAMP_GUARD_RPS.set(rg_rps);
    }
    let vs_plain = rg_rps / median(&dial_v.rps);
    let vs_reader = median(&dial_v.rps) / median(&get("read1").rps);
    let vs_calls = median(&dial_v.rps) / median(&get("calls").rps);
    let native_vs_none = median(&get("dial-native").rps) / median(&get("none").rps);
    let native_vs_wasm = median(&get("dial-native").rps) / median(&dial_v.rps);
    let native_vs_floor = median(&get("dial-native").rps) / median(&get("native-calls").rps);
    let mut out = format!(
        "## Dial inside Envoy\n\nEnvoy 1.40 with one worker; wrk (1 thread, 8 connections, {seconds} s per run) on \
         loopback, each request a different user of 100,000 with browser-like headers and cookies, on \
         `/checkout`. {rounds} interleaved rounds; medians. 3b runs Dial's policy with a ramp on \
         its canary (started {RAMP_START}: at its 25% step throughout) and a guard (error and slow \
         rates against stable's over 10 s); the run checks that the step was in force and the \
         guard never tripped.\n\n\
         Throughput and the first latencies under a saturating load (8 connections: the \
         latencies are mostly queueing); then the latency of one connection sending one request at a time \
         ({half} s per run), the time a request takes.\n\n\
         | Configuration | requests/s | p50 µs | p99 µs | one connection: p50 µs | p99 µs | Dial's throughput ÷ this |\n|---|---:|---:|---:|---:|---:|---:|\n",
        half = seconds.div_ceil(2)
    );
    for v in &variants {
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} |\n",
            v.name,
            median(&v.rps),
            median(&v.p50),
            median(&v.p99),
            median(&v.solo_p50),
            median(&v.solo_p99),
            median(&dial_v.rps) / median(&v.rps)
        ));
    }
    let through = median(&dial_v.rps) / median(&floor_v.rps);
    let added_p99 = median(&dial_v.solo_p99) - median(&floor_v.solo_p99);
    let mark = |ok: bool| if ok { "met" } else { "**missed**" };
    // What Dial adds to each request's work, from throughput at saturation (one worker).
    let added_service = 1e6 / median(&dial_v.rps) - 1e6 / median(&floor_v.rps);
    let p99_mark = if added_p99 < 0.0 {
        "below this machine's noise (see the service time)"
    } else {
        mark(added_p99 <= 30.0)
    };
    let vs_lua = median(&dial_v.rps) / median(&lua_v.rps);
    // Missing modules fail here (a module of 0 bytes would pass the budget).
    let module_size = crate::module_size::size_of(&module_path()).unwrap();
    let floor_size = crate::module_size::size_of(&floor_module()).unwrap();
    out.push_str(&format!(
        "\n| Target | Measured | |\n|---|---:|---|\n\
         | Dial ≥ 0.90× the steering floor (2b) throughput | {through:.2}× | {} |\n\
         | (for context: Dial ÷ the floor that also reads the headers, 2c) | {vs_reader:.2}× | |\n\
         | (for context: Dial ÷ the floor making Dial's host calls, 2d) | {vs_calls:.2}× | |\n\
         | p99 added over the steering floor ≤ 30 µs (one connection) | {added_p99:.0} µs | {p99_mark} |\n\
         | (service time added per request over 2b, from throughput) | {added_service:.1} µs | {} |\n\
         | Dial at least as fast as the Lua filter | {vs_lua:.2}× | {} |\n\
         | (for context: native Dial, 6, ÷ Envoy with no filter, 1; judged by instruction count below) | {native_vs_none:.2}× | |\n\
         | (for context: native Dial, 6, ÷ Dial in Wasm, 3) | {native_vs_wasm:.2}× | |\n\
         | (for context: native Dial, 6, ÷ the native floor making Dial's host calls, 6b) | {native_vs_floor:.2}× | |\n\
         | (for context: Dial with a ramp and a guard, 3b, ÷ Dial, 3; judged by instruction count below) | {vs_plain:.2}× | |\n\
         | Module ≤ 300 KB | {:.0} KB (the floor filter alone: {:.0} KB) | {} |\n\
         | Linear memory ≤ 2 MB per worker | {:.2} MB after {:.0} requests (3b: {:.2} MB after {:.0}) | {} |\n",
        mark(through >= 0.90),
        mark(added_service <= 30.0),
        mark(vs_lua >= 1.0),
        module_size as f64 / 1024.0,
        floor_size as f64 / 1024.0,
        mark(module_size <= crate::module_size::BUDGET),
        memory / 1_048_576.0,
        assigned,
        memory_rg / 1_048_576.0,
        assigned_rg,
        mark(memory.max(memory_rg) <= 2.0 * 1_048_576.0),
    ));
    out
}
