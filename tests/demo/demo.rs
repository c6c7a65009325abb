//! `make demo`: Envoy with Dial and the example policy in `envoy-config/envoy.yaml`, four demo
//! backends on loopback, traffic from thousands of synthetic users, and a table of where they
//! went; then a release bucketed as Unleash buckets, beside the official Unleash SDK
//! (`unleash.rs`); then the example's ramp and guard in demo time, on a timeline (`timeline.rs`),
//! drawn into `target/demo/timeline.svg` (`svg.rs`). `make up` (`--keep-running`) leaves the first
//! part running for curl.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// The end-to-end harness's backends and client, shared rather than written twice.
mod first_part;
mod prepare;
mod showcase;
#[path = "../support/mod.rs"]
mod support;
mod svg;
mod timeline;
mod unleash;

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use first_part::{assignment_field, HOST, PORT};
use serde_json::Value;
use support::policies::embedded_policy;
use support::{envoy_binary, module_path, repo_root, Backend};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        envoy_stopped(self.0.id());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Envoys this demo started and has not stopped. The release profile aborts on a panic, so
/// no destructor stops them then, and a leftover Envoy would keep the demo's ports: the panic
/// hook stops them instead.
static ENVOYS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn envoys() -> std::sync::MutexGuard<'static, Vec<u32>> {
    ENVOYS.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn envoy_started(pid: u32) {
    envoys().push(pid);
}

pub fn envoy_stopped(pid: u32) {
    envoys().retain(|p| *p != pid);
}

fn stop_envoys_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        for pid in envoys().drain(..) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }));
}

/// The example configuration as this run uses it (`prepare`): written to target/demo/envoy.yaml.
fn demo_config() -> String {
    let root = repo_root();
    let shipped = std::fs::read_to_string(root.join("envoy-config/envoy.yaml")).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let config = prepare::with_ramp_from_now(&shipped, now.as_secs());
    std::fs::create_dir_all(root.join("target/demo")).unwrap();
    std::fs::write(root.join("target/demo/envoy.yaml"), &config).unwrap();
    config
}

fn start_envoy(secrets: &[(String, String)]) -> Running {
    let root = repo_root();
    let log_dir = root.join("target/demo");
    std::fs::create_dir_all(&log_dir).unwrap();
    let log = log_dir.join("envoy.log");
    let child = Command::new(envoy_binary())
        .current_dir(&root)
        .envs(secrets.iter().map(|(k, v)| (k, v)))
        .args(["-c", "target/demo/envoy.yaml", "--concurrency", "1"])
        .args(["--disable-hot-restart", "--log-level", "warning"])
        .args(["--component-log-level", "wasm:info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("start Envoy");
    envoy_started(child.id());
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

fn main() {
    let demo_started = Instant::now();
    stop_envoys_on_panic();
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
    let secrets = prepare::fresh_secrets();
    let config = demo_config();
    let envoy = start_envoy(&secrets);
    println!("{}", first_part::header(&envoy_binary(), &module));

    // The policy Envoy runs, read from its config: the tables follow it.
    let policy_text = embedded_policy(&config);
    let policy: Value = serde_json::from_str(&policy_text).unwrap();
    let started = Instant::now();
    let target = first_part::Target {
        port: PORT,
        admin_port: first_part::ADMIN_PORT,
    };
    let requests = first_part::run(
        &mut |line| println!("{line}"),
        &target,
        &policy_text,
        &secrets,
        &_backends[4],
    );
    println!(
        "{}",
        first_part::summary(requests, started.elapsed().as_secs_f64())
    );

    if keep_running {
        println!(
            "\nRunning until Ctrl-C. Try:\n  curl -si -H 'host: {HOST}' -H 'x-user-id: alice' http://127.0.0.1:{PORT}/checkout\n  curl -si -H 'host: {HOST}' http://127.0.0.1:{PORT}/checkout   # anonymous: note the set-cookie\n  curl -si -H 'host: {HOST}' -H 'x-dial-override: canary; token={}' http://127.0.0.1:{PORT}/checkout   # this run's token\n  Envoy admin: http://127.0.0.1:9901/",
            secrets
                .iter()
                .find(|(k, _)| k == "DIAL_CHECKOUT_OVERRIDE_TOKEN")
                .map_or("", |(_, v)| v.as_str())
        );
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    drop(envoy);
    unleash::run(&mut |line| println!("{line}"));
    timeline::run(&policy, &secrets);
    println!("{}", first_part::took(demo_started.elapsed().as_secs_f64()));
}
