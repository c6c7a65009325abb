//! `make demo`: Envoy with Dial and the example policy in `envoy-config/envoy.yaml`, four demo
//! backends on loopback, traffic from thousands of synthetic users, and a table of where they
//! went. `make up` (`--keep-running`) leaves it all running for curl.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// The end-to-end harness's backends and client, shared rather than written twice.
#[path = "../support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{envoy_binary, module_path, repo_root, Backend, Client};

const PORT: u16 = 10000;
const HOST: &str = "shop.example.com";
const SIGNED_IN: usize = 4000;
const ANONYMOUS: usize = 1000;
const SEARCHERS: usize = 2000;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_envoy() -> Running {
    let root = repo_root();
    let log_dir = root.join("target/demo");
    std::fs::create_dir_all(&log_dir).unwrap();
    let log = log_dir.join("envoy.log");
    let child = Command::new(envoy_binary())
        .current_dir(&root)
        .args(["-c", "envoy-config/envoy.yaml", "--concurrency", "1"])
        .args(["--disable-hot-restart", "--log-level", "warning"])
        .args(["--component-log-level", "wasm:info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("start Envoy");
    let mut envoy = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        if let Some(status) = envoy.0.try_wait().unwrap() {
            panic!(
                "Envoy exited ({status}); its log ({}):\n{}",
                log.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "Envoy did not start; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    envoy
}

/// One row per subset: how many users landed there and whether they stayed.
#[derive(Default)]
struct Row {
    users: usize,
    stayed: usize,
    backends: HashMap<String, usize>,
}

fn assignment_field<'a>(r: &'a support::http::Response, key: &str) -> &'a str {
    r.header("x-dial-assignment")
        .unwrap_or("")
        .split("; ")
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("-")
}

fn print_table(
    title: &str,
    weights: &[(&str, &str, u32)],
    rows: &HashMap<String, Row>,
    total: usize,
) {
    println!("\n{title}");
    println!(
        "  {:<9} {:<8} {:>6} {:>7} {:>7}  {:<13} same subset on 2nd visit",
        "subset", "version", "weight", "users", "share", "answered by"
    );
    for (subset, version, weight) in weights {
        let row = rows.get(*subset);
        let users = row.map_or(0, |r| r.users);
        let stayed = row.map_or(0, |r| r.stayed);
        let backend = row
            .and_then(|r| {
                r.backends
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(b, _)| b.clone())
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "  {:<9} {:<8} {:>6} {:>7} {:>6.1}%  {:<13} {:.1}%",
            subset,
            version,
            weight,
            users,
            users as f64 * 100.0 / total as f64,
            backend,
            if users == 0 {
                0.0
            } else {
                stayed as f64 * 100.0 / users as f64
            }
        );
    }
}

/// Each user visits twice (the second time on a new connection, with any cookie Dial set).
fn visit_twice(
    path: &str,
    users: usize,
    key: impl Fn(usize) -> Option<String>,
) -> HashMap<String, Row> {
    let mut first_client = Client::new(PORT);
    let mut second_client = Client::new(PORT);
    let mut rows: HashMap<String, Row> = HashMap::new();
    for i in 0..users {
        let user = key(i);
        let headers: Vec<(&str, &str)> = user.iter().map(|u| ("x-user-id", u.as_str())).collect();
        let first = first_client.get(HOST, path, &headers);
        let cookie = first
            .header("set-cookie")
            .map(|c| c.split(';').next().unwrap_or_default().to_string());
        let mut again: Vec<(&str, &str)> = headers.clone();
        if let Some(c) = &cookie {
            again.push(("cookie", c));
        }
        let second = second_client.get(HOST, path, &again);
        let subset = assignment_field(&first, "subset").to_string();
        let row = rows.entry(subset.clone()).or_default();
        row.users += 1;
        *row.backends.entry(first.backend().to_string()).or_default() += 1;
        if assignment_field(&second, "subset") == subset && second.backend() == first.backend() {
            row.stayed += 1;
        }
    }
    rows
}

fn showcase() {
    println!("\nRules and safety, one request each (curl -H ... http://127.0.0.1:{PORT}/checkout -H 'host: {HOST}'):");
    let mut c = Client::new(PORT);
    let cases: [(&str, Vec<(&str, &str)>); 7] = [
        ("a stable user", vec![("x-user-id", "user-1")]),
        (
            "x-beta: true",
            vec![("x-user-id", "user-1"), ("x-beta", "true")],
        ),
        (
            "cookie beta=1",
            vec![("x-user-id", "user-1"), ("cookie", "beta=1")],
        ),
        ("x-user-id: alice (allowlist)", vec![("x-user-id", "alice")]),
        (
            "client sends x-dial-subset: canary",
            vec![("x-user-id", "user-1"), ("x-dial-subset", "canary")],
        ),
        (
            "x-dial-override: canary (no token)",
            vec![("x-user-id", "user-1"), ("x-dial-override", "canary")],
        ),
        (
            "x-dial-override: canary; token=...",
            vec![
                ("x-user-id", "user-1"),
                ("x-dial-override", "canary; token=demo-token-change-me"),
            ],
        ),
    ];
    for (what, headers) in cases {
        let r = c.get(HOST, "/checkout", &headers);
        println!(
            "  {:<38} -> {:<7} answered by {:<12} reason={}",
            what,
            assignment_field(&r, "subset"),
            r.backend(),
            assignment_field(&r, "reason")
        );
    }
}

/// What the shadow received, and Dial's metrics as Prometheus scrapes them.
fn shadow_and_metrics(shadow: &Backend) {
    // Mirrors are sent asynchronously; give the last ones a moment.
    std::thread::sleep(Duration::from_millis(300));
    let seen = shadow.seen();
    let gets = seen.iter().filter(|s| s.method == "GET").count();
    println!(
        "\nShadow traffic: checkout mirrors 5% of safe requests (by user) to v3. The shadow received {} copies ({} GET), each marked x-dial-mirror: {} and x-dial-shadow-of: {}",
        seen.len(),
        gets,
        seen.first().and_then(|s| s.header("x-dial-mirror")).unwrap_or_default(),
        seen.first().and_then(|s| s.header("x-dial-shadow-of")).unwrap_or_default(),
    );

    let text = support::envoy::admin_get(9901, "/stats/prometheus").unwrap_or_default();
    println!("\nDial's metrics from http://127.0.0.1:9901/stats/prometheus (non-zero series):");
    for line in text.lines().filter(|l| {
        (l.starts_with("dial_requests_total")
            || l.starts_with("dial_responses_total")
            || l.starts_with("dial_mirrored_requests_total")
            || l.starts_with("dial_policy"))
            && !l.ends_with(" 0")
    }) {
        println!("  {line}");
    }
}

fn main() {
    let keep_running = std::env::args().any(|a| a == "--keep-running");
    let module = module_path();
    let _backends: Vec<Backend> = [
        ("checkout-v1", 18001),
        ("checkout-v2", 18002),
        ("search-a", 18003),
        ("search-b", 18004),
        ("checkout-v3-shadow", 18005),
    ]
    .iter()
    .map(|(name, port)| Backend::start_on(name, *port))
    .collect();
    let envoy = start_envoy();
    println!(
        "Dial demo: Envoy ({}) with {} ({} bytes) on 127.0.0.1:{PORT}, policy from envoy-config/envoy.yaml",
        envoy_binary().display(),
        module.display(),
        std::fs::metadata(&module).map(|m| m.len()).unwrap_or(0)
    );

    let started = Instant::now();
    let rows = visit_twice("/checkout", SIGNED_IN, |i| Some(format!("user-{i}")));
    print_table(
        &format!("checkout: {SIGNED_IN} signed-in users (key: x-user-id), murmur3 split 90/10"),
        &[("stable", "v1", 90), ("canary", "v2", 10)],
        &rows,
        SIGNED_IN,
    );
    let rows = visit_twice("/checkout", ANONYMOUS, |_| None);
    print_table(
        &format!("checkout: {ANONYMOUS} anonymous visitors (no key: Dial sets a sticky cookie)"),
        &[("stable", "v1", 90), ("canary", "v2", 10)],
        &rows,
        ANONYMOUS,
    );
    let rows = visit_twice("/search", SEARCHERS, |i| Some(format!("user-{i}")));
    print_table(
        &format!("search: {SEARCHERS} users, A/B test 50/50 (salted by release: independent of checkout)"),
        &[("ranker-a", "r1", 50), ("ranker-b", "r2", 50)],
        &rows,
        SEARCHERS,
    );
    showcase();
    shadow_and_metrics(&_backends[4]);
    let requests = 2 * (SIGNED_IN + ANONYMOUS + SEARCHERS) + 7;
    // (The table above counts client requests; the shadow copies are extra.)
    println!(
        "\n{requests} requests through Envoy in {:.1}s. Envoy's log: target/demo/envoy.log",
        started.elapsed().as_secs_f64()
    );

    if keep_running {
        println!(
            "\nRunning until Ctrl-C. Try:\n  curl -si -H 'host: {HOST}' -H 'x-user-id: alice' http://127.0.0.1:{PORT}/checkout\n  curl -si -H 'host: {HOST}' http://127.0.0.1:{PORT}/checkout   # anonymous: note the set-cookie\n  Envoy admin: http://127.0.0.1:9901/"
        );
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    drop(envoy);
}
