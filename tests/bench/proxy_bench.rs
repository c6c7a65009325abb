//! Dial inside Envoy 1.40 (one worker), against its floors and the alternatives, loaded by wrk
//! from a second process on loopback. Routes answer with direct_response, so no upstream is
//! measured (except for Envoy's native weighted_clusters, which needs clusters: its requests go
//! to a sink Envoy, an extra hop the table says). Configurations run interleaved, round after
//! round, and the median round counts.

use std::process::Command;
use std::time::Duration;

use crate::support::{module_path, repo_root, scratch_dir, Envoy};

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
}

fn floor_module() -> std::path::PathBuf {
    let path = repo_root().join("target/wasm32-wasip1/release/dial_bench_floor.wasm");
    assert!(path.exists(), "{} missing: run make bench", path.display());
    path
}

fn wasm_filter(name: &str, module: &std::path::Path, configuration: &str) -> String {
    format!(
        r#"
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {name}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {configuration}
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {module} }} }}"#,
        configuration = serde_json::to_string(configuration).unwrap(),
        module = module.display()
    )
}

/// Routes on the subset header, answered by Envoy itself.
const STEERED_ROUTES: &str = r#"
              - match:
                  prefix: /
                  headers: [ { name: x-dial-subset, string_match: { exact: canary } } ]
                direct_response: { status: 200, body: { inline_string: canary } }
              - match: { prefix: / }
                direct_response: { status: 200, body: { inline_string: stable } }"#;

/// Envoy's native equivalent: header rules as route matches (cookies by regex), then a weighted
/// split hashed on the user key. No 10,000-id allowlist: the route table has no set lookup.
fn native_routes() -> String {
    r#"
              - match: { prefix: /checkout, headers: [ { name: x-beta, string_match: { exact: "true" } } ] }
                route: { cluster: canary }
              - match: { prefix: /checkout, headers: [ { name: x-group, string_match: { safe_regex: { regex: "qa|staff" } } } ] }
                route: { cluster: canary }
              - match: { prefix: /checkout, headers: [ { name: cookie, string_match: { safe_regex: { regex: "(.*; )?beta=1(;.*)?" } } } ] }
                route: { cluster: canary }
              - match: { prefix: /checkout }
                route:
                  weighted_clusters:
                    clusters: [ { name: stable, weight: 90 }, { name: canary, weight: 10 } ]
                    use_hash_policy: true
                  hash_policy: [ { header: { header_name: x-user-id } } ]
              - match: { prefix: / }
                route: { cluster: stable }"#
        .to_string()
}

fn bootstrap(filters: &str, routes: &str, clusters: &str) -> String {
    format!(
        r#"{stats}static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:{routes}
          http_filters:{filters}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:{clusters}
"#,
        stats = crate::support::config::stats_config()
    )
}

fn sink_clusters(port: u16) -> String {
    ["stable", "canary"]
        .iter()
        .map(|name| {
            format!(
                r#"
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment: {{ cluster_name: {name}, endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }} ] }} ] }}"#
            )
        })
        .collect()
}

fn lua_filter() -> String {
    let script = include_str!("assign.lua");
    let indented: String = script
        .lines()
        .map(|l| format!("                  {l}\n"))
        .collect();
    format!(
        r#"
          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                inline_string: |
{indented}"#
    )
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

fn wrk(port: u16, connections: u32, seconds: u64, script: &std::path::Path) -> (f64, f64, f64) {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), "--latency"])
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("wrk is installed (make bench installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("Non-2xx"), "errors under load:\n{text}");
    parse_wrk(&text)
}

fn get_port(variants: &[Variant], key: &str) -> u16 {
    variants
        .iter()
        .find(|v| v.key == key)
        .map(|v| v.envoy.port)
        .unwrap_or(0)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[s.len() / 2]
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
    let policy = crate::core_bench::realistic_policy(10_000, 0, 0);
    let floor_with =
        |calls: &str| bootstrap(&wasm_filter("floor", &floor, calls), STEERED_ROUTES, " []");
    vec![
        (
            "none",
            "1. Envoy, no wasm filter",
            bootstrap("", STEERED_ROUTES, " []"),
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
            bootstrap(&wasm_filter("dial", &dial, &policy), STEERED_ROUTES, " []"),
        ),
        (
            "native",
            "4. native routes + weighted_clusters (via a sink Envoy)",
            bootstrap("", &native_routes(), &sink_clusters(sink_port)),
        ),
        (
            "lua",
            "5. Lua filter doing the same assignment",
            bootstrap(&lua_filter(), STEERED_ROUTES, " []"),
        ),
    ]
}

/// A bootstrap with the floor filter making `calls` (see tests/bench/floor).
pub fn floor_bootstrap(calls: &str) -> String {
    bootstrap(
        &wasm_filter("floor", &floor_module(), calls),
        STEERED_ROUTES,
        " []",
    )
}

/// A sink Envoy answering everything itself: the upstream of the native configuration.
pub fn sink() -> Envoy {
    Envoy::start_yaml(
        "bench-sink",
        &bootstrap("", "\n              - match: { prefix: / }\n                direct_response: { status: 200, body: { inline_string: sink } }", " []"),
    )
}

pub fn run(smoke: bool) -> String {
    let sink = sink();
    let configs = configurations(sink.port);
    let mut variants: Vec<Variant> = configs
        .into_iter()
        .map(|(key, name, yaml)| Variant {
            key,
            name,
            envoy: Envoy::start_yaml(key, &yaml),
            rps: Vec::new(),
            p50: Vec::new(),
            p99: Vec::new(),
            solo_p50: Vec::new(),
            solo_p99: Vec::new(),
        })
        .collect();

    // The Lua filter must make Dial's assignment, or the comparison means nothing.
    let mut on_dial = crate::support::Client::new(get_port(&variants, "dial"));
    let mut on_lua = crate::support::Client::new(get_port(&variants, "lua"));
    for i in 0..500 {
        let user = format!("user-{i}");
        let h = [("x-user-id", user.as_str())];
        let (d, l) = (
            on_dial.get("shop.example.com", "/checkout", &h),
            on_lua.get("shop.example.com", "/checkout", &h),
        );
        assert_eq!(d.text(), l.text(), "Dial and Lua disagree on {user}");
    }

    let dir = scratch_dir("bench-wrk");
    let script = dir.join("users.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let (rounds, seconds) = if smoke { (1, 1) } else { (5, 4) };
    for v in &variants {
        wrk(v.envoy.port, 8, 1, &script); // warm up: JIT, connection pools
    }
    for _ in 0..rounds {
        for v in variants.iter_mut() {
            let (rps, p50, p99) = wrk(v.envoy.port, 8, seconds, &script);
            v.rps.push(rps);
            v.p50.push(p50);
            v.p99.push(p99);
            std::thread::sleep(Duration::from_millis(200));
            let (_, p50, p99) = wrk(v.envoy.port, 1, seconds.div_ceil(2), &script);
            v.solo_p50.push(p50);
            v.solo_p99.push(p99);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for v in &variants {
        assert!(
            v.envoy.vm_failures().is_empty(),
            "{}: {:?}",
            v.key,
            v.envoy.vm_failures()
        );
    }

    // Dial's own view: requests it assigned, and its VM's linear memory after them.
    let metrics = variants
        .iter()
        .find(|v| v.key == "dial")
        .unwrap()
        .envoy
        .prometheus();
    let assigned: f64 = metrics
        .iter()
        .filter(|m| m.name == "dial_requests_total")
        .map(|m| m.value)
        .sum();
    let memory = crate::support::prometheus::value(&metrics, "dial_vm_memory_bytes", &[])
        .unwrap_or(f64::NAN);

    let get = |key: &str| variants.iter().find(|v| v.key == key).unwrap();
    let (dial_v, floor_v, lua_v) = (get("dial"), get("set1"), get("lua"));
    let vs_reader = median(&dial_v.rps) / median(&get("read1").rps);
    let vs_calls = median(&dial_v.rps) / median(&get("calls").rps);
    let mut out = format!(
        "## Dial inside Envoy\n\nEnvoy 1.40 with one worker; wrk (1 thread, 8 connections, {seconds} s per run) on \
         loopback, each request a different user of 100,000 with browser-like headers and cookies, on \
         `/checkout`. {rounds} interleaved rounds; medians.\n\n\
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
    let module_size = std::fs::metadata(module_path())
        .map(|m| m.len())
        .unwrap_or(0);
    let floor_size = std::fs::metadata(floor_module())
        .map(|m| m.len())
        .unwrap_or(0);
    out.push_str(&format!(
        "\n| Target | Measured | |\n|---|---:|---|\n\
         | Dial ≥ 0.90× the steering floor (2b) throughput | {through:.2}× | {} |\n\
         | (for context: Dial ÷ the floor that also reads the headers, 2c) | {vs_reader:.2}× | |\n\
         | (for context: Dial ÷ the floor making Dial's host calls, 2d) | {vs_calls:.2}× | |\n\
         | p99 added over the steering floor ≤ 30 µs (one connection) | {added_p99:.0} µs | {p99_mark} |\n\
         | (service time added per request over 2b, from throughput) | {added_service:.1} µs | {} |\n\
         | Dial at least as fast as the Lua filter | {vs_lua:.2}× | {} |\n\
         | Module ≤ 200 KB | {:.0} KB (the floor filter alone: {:.0} KB) | {} |\n\
         | Linear memory ≤ 2 MB per worker | {:.2} MB after {:.0} requests | {} |\n",
        mark(through >= 0.90),
        mark(added_service <= 30.0),
        mark(vs_lua >= 1.0),
        module_size as f64 / 1024.0,
        floor_size as f64 / 1024.0,
        mark(module_size <= 200 * 1024),
        memory / 1_048_576.0,
        assigned,
        mark(memory <= 2.0 * 1_048_576.0),
    ));
    out
}
