//! Starts and stops a real Envoy for one test, and reads its admin API and log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::config::EnvoyConfig;
use super::{envoy_binary, envoy_executable, scratch_dir};

pub struct Envoy {
    child: Child,
    pub dir: PathBuf,
    pub admin_port: u16,
    /// The listener's port.
    pub port: u16,
    pub log_path: PathBuf,
}

/// Starts Envoy, or `wrapper` (a command line, e.g. valgrind's) with Envoy's executable and
/// arguments appended.
fn spawn(
    dir: &Path,
    bootstrap: &str,
    wrapper: &[String],
    workers: u32,
    env: &[(String, String)],
) -> (Child, PathBuf, PathBuf) {
    spawn_with_args(dir, bootstrap, wrapper, workers, &[], env)
}

/// The same, with more command-line options for Envoy (`--drain-strategy immediate`); an
/// `extra` `--drain-time-s` or `--log-level` replaces the tests' own. `env`: variables set on
/// Envoy's process (`EnvoyConfig::host_env`).
fn spawn_with_args(
    dir: &Path,
    bootstrap: &str,
    wrapper: &[String],
    workers: u32,
    extra: &[String],
    env: &[(String, String)],
) -> (Child, PathBuf, PathBuf) {
    let config_path = dir.join("envoy.yaml");
    std::fs::write(&config_path, bootstrap).unwrap();
    let log_path = dir.join("envoy.log");
    let admin_path = dir.join("admin-address");
    let mut command = match wrapper {
        [] => Command::new(envoy_binary()),
        [program, args @ ..] => {
            let mut c = Command::new(program);
            c.args(args).arg(envoy_executable());
            c
        }
    };
    let child = command
        .arg("-c")
        .arg(&config_path)
        .args(["--concurrency", &workers.to_string()])
        .arg("--disable-hot-restart")
        .args(if extra.iter().any(|a| a == "--drain-time-s") {
            &[][..]
        } else {
            &["--drain-time-s", "1"][..]
        })
        .args(extra)
        .args(if extra.iter().any(|a| a == "--log-level") {
            &[][..]
        } else {
            &[
                "--log-level",
                "warning",
                "--component-log-level",
                // Dial's own lines: the Wasm build's and the native build's.
                "wasm:info,dynamic_modules:info",
            ][..]
        })
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("--admin-address-path")
        .arg(&admin_path)
        // Admin on an ephemeral port; its address is written to admin_path.
        .args([
            "--config-yaml",
            "admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Envoy's log goes to stderr, which is written line by line (a --log-path file is
        // flushed only now and then), so tests can read it while Envoy runs.
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start Envoy: {e}"));
    (child, log_path, admin_path)
}

impl Envoy {
    /// Starts Envoy with a static bootstrap and waits until the listener accepts.
    pub fn start(config: &EnvoyConfig) -> Envoy {
        let dir = scratch_dir("envoy");
        Self::start_bootstrap(dir, &config.bootstrap_static(), &config.host_env)
    }

    /// The same with `workers` worker threads, each with its own Wasm VM.
    pub fn start_with_workers(config: &EnvoyConfig, workers: u32) -> Envoy {
        let dir = scratch_dir("envoy");
        Self::start_with(
            dir,
            &config.bootstrap_static(),
            &[],
            workers,
            Duration::from_secs(30),
            &config.host_env,
        )
    }

    /// Starts Envoy whose listener is read from an LDS file in its directory; returns the path
    /// to rewrite for reloads. `config.port` must be fixed (not 0) so reloads keep the port.
    pub fn start_lds(config: &EnvoyConfig) -> (Envoy, PathBuf) {
        assert_ne!(config.port, 0, "LDS reloads need a fixed port");
        let dir = scratch_dir("envoy-lds");
        let lds = dir.join("lds.yaml");
        std::fs::write(&lds, config.lds_file()).unwrap();
        let envoy = Self::start_bootstrap(dir, &config.bootstrap_lds(&lds), &config.host_env);
        (envoy, lds)
    }

    /// `start_lds` with `workers` worker threads and more Envoy options (`extra`, e.g.
    /// `["--drain-strategy", "immediate"]`; a `--drain-time-s` there replaces the tests' 1 s).
    pub fn start_lds_with(config: &EnvoyConfig, workers: u32, extra: &[&str]) -> (Envoy, PathBuf) {
        assert_ne!(config.port, 0, "LDS reloads need a fixed port");
        let dir = scratch_dir("envoy-lds");
        let lds = dir.join("lds.yaml");
        std::fs::write(&lds, config.lds_file()).unwrap();
        let bootstrap = config.bootstrap_lds(&lds);
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let (child, log_path, admin_path) =
            spawn_with_args(&dir, &bootstrap, &[], workers, &extra, &config.host_env);
        let envoy = Self::wait_started(child, dir, log_path, admin_path, Duration::from_secs(30));
        (envoy, lds)
    }

    /// `start_lds` with `workers` worker threads.
    pub fn start_lds_with_workers(config: &EnvoyConfig, workers: u32) -> (Envoy, PathBuf) {
        Self::start_lds_with(config, workers, &[])
    }

    /// Starts Envoy with any bootstrap whose first listener is on port 0 (benchmarks).
    pub fn start_yaml(label: &str, bootstrap: &str) -> Envoy {
        Self::start_bootstrap(scratch_dir(label), bootstrap, &[])
    }

    /// The same, with `env` added to Envoy's process environment (secrets a policy reads).
    pub fn start_yaml_with_env(label: &str, bootstrap: &str, env: &[(String, String)]) -> Envoy {
        Self::start_bootstrap(scratch_dir(label), bootstrap, env)
    }

    /// The same, under `wrapper` (valgrind, for the benchmark's instruction counts); such a
    /// start may take minutes.
    pub fn start_yaml_under(label: &str, bootstrap: &str, wrapper: &[String]) -> Envoy {
        Self::start_with(
            scratch_dir(label),
            bootstrap,
            wrapper,
            1,
            Duration::from_secs(300),
            &[],
        )
    }

    fn start_bootstrap(dir: PathBuf, bootstrap: &str, env: &[(String, String)]) -> Envoy {
        Self::start_with(dir, bootstrap, &[], 1, Duration::from_secs(30), env)
    }

    fn start_with(
        dir: PathBuf,
        bootstrap: &str,
        wrapper: &[String],
        workers: u32,
        wait: Duration,
        env: &[(String, String)],
    ) -> Envoy {
        let (child, log_path, admin_path) = spawn(&dir, bootstrap, wrapper, workers, env);
        Self::wait_started(child, dir, log_path, admin_path, wait)
    }

    /// Waits for a spawned Envoy's admin address and listener.
    fn wait_started(
        mut child: Child,
        dir: PathBuf,
        log_path: PathBuf,
        admin_path: PathBuf,
        wait: Duration,
    ) -> Envoy {
        let deadline = Instant::now() + wait;
        let admin_port = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "Envoy exited during start ({status}); its log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if let Some(port) = std::fs::read_to_string(&admin_path)
                .ok()
                .and_then(|a| a.trim().rsplit(':').next()?.parse::<u16>().ok())
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "Envoy did not write its admin address"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut envoy = Envoy {
            child,
            dir,
            admin_port,
            port: 0,
            log_path,
        };
        envoy.port = envoy.wait_for_listener(deadline);
        envoy
    }

    /// Polls the admin API until the listener is bound, and returns its port.
    fn wait_for_listener(&mut self, deadline: Instant) -> u16 {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("Envoy exited ({status}); its log:\n{}", self.log());
            }
            if let Some(body) = self.admin_get("/listeners?format=json") {
                let port = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                            .as_u64()
                    });
                if let Some(port) = port.filter(|p| *p > 0) {
                    if std::net::TcpStream::connect(("127.0.0.1", port as u16)).is_ok() {
                        return port as u16;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "Envoy's listener did not come up; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs Envoy with a bootstrap that must be refused; returns its exit status and log.
    pub fn start_expecting_failure(config: &EnvoyConfig) -> (ExitStatus, String) {
        let dir = scratch_dir("envoy-refused");
        let (mut child, log_path, _) =
            spawn(&dir, &config.bootstrap_static(), &[], 1, &config.host_env);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let _ = std::fs::remove_dir_all(&dir);
                return (status, log);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "Envoy kept running with a policy it should refuse; its log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A GET on the admin API; None if it is not answering yet.
    pub fn admin_get(&self, path: &str) -> Option<String> {
        admin_get(self.admin_port, path)
    }

    /// Envoy's Prometheus exposition, parsed.
    pub fn prometheus(&self) -> Vec<super::prometheus::Sample> {
        let text = self
            .admin_get("/stats/prometheus")
            .expect("/stats/prometheus answers");
        super::prometheus::parse(&text)
    }

    /// The value of a counter or gauge from `/stats` (0 if absent).
    pub fn stat(&self, name: &str) -> u64 {
        let body = self
            .admin_get(&format!("/stats?filter=^{}$", name.replace('.', "\\.")))
            .unwrap_or_default();
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: "))?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until `stat` reaches `at_least`.
    pub fn wait_for_stat(&self, name: &str, at_least: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.stat(name) < at_least {
            assert!(
                Instant::now() < deadline,
                "{name} stayed below {at_least}; Envoy's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replaces the LDS file atomically (Envoy watches for the move) and waits until Envoy
    /// has accepted (`accepted = true`) or rejected the new listener.
    pub fn reload_lds(&self, lds_path: &Path, content: &str, accepted: bool) {
        let stat = if accepted {
            "listener_manager.lds.update_success"
        } else {
            "listener_manager.lds.update_rejected"
        };
        let before = self.stat(stat);
        let tmp = lds_path.with_extension("tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, lds_path).unwrap();
        self.wait_for_stat(stat, before + 1);
        if accepted {
            // The new listener replaces the old one once its workers are warmed.
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.stat("listener_manager.total_listeners_warming") > 0 {
                assert!(Instant::now() < deadline, "listener stayed warming");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Whether the native module reads the connection's peer from Envoy's direct remote address
    /// (Envoy 1.40 and later) rather than the `source.address` attribute (1.39), as it logs once
    /// at startup. Fails unless it logged exactly one of the two.
    pub fn reads_direct_remote_address(&self) -> bool {
        let log = self.log();
        let direct = log.contains(
            "dial: sourceCidrs judge the connection's peer from Envoy's direct remote address",
        );
        let attribute = log.contains(
            "dial: sourceCidrs judge the connection's peer from the source.address attribute",
        );
        assert!(
            direct != attribute,
            "expected the native module's one line on the peer's source; Envoy's log:\n{log}"
        );
        direct
    }

    /// Log lines that show a panicked or trapped VM (V8 says "Uncaught RuntimeError: unreachable"):
    /// must never appear. A refused policy is not one of them, nor "bootstrap" (Envoy lists its
    /// bootstrap extensions at info level).
    pub fn vm_failures(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase().replace("bootstrap", "");
                [
                    "panicked",
                    "uncaught",
                    "unreachable",
                    "runtimeerror",
                    "trap",
                ]
                .iter()
                .any(|w| l.contains(w))
            })
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A GET on the admin API at `port`; None if it is not answering (yet), or not with 200.
pub fn admin_get(port: u16, path: &str) -> Option<String> {
    let (status, body) = super::http::get_once(port, path)?;
    (status == 200).then_some(body)
}
