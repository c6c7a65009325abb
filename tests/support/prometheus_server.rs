//! A real Prometheus (Debian's package, `make prometheus-tools`) on loopback, scraping Envoys'
//! admin APIs every second: the tests of the shipped PromQL (tests/prometheus.rs) and of the
//! fleet verdict (tests/fleet.rs) start it the same way.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::scratch_dir;

/// A tool from Debian's prometheus package (`prometheus`, `promtool`) on the PATH; missing, a
/// loud failure that says how to install it.
pub fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: run `make prometheus-tools` (Debian's prometheus \
                 package, which ships prometheus and promtool), or `make test`"
            )
        })
}

/// A Prometheus on 127.0.0.1:`port`, scraping `/stats/prometheus` of each admin port in
/// `targets` every second, with `rule_files` loaded. Stopped (and its directory removed, unless
/// the test is panicking) when dropped.
pub struct PrometheusServer {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
}

impl PrometheusServer {
    pub fn start(
        label: &str,
        port: u16,
        targets: &[u16],
        rule_files: &[PathBuf],
    ) -> PrometheusServer {
        let dir = scratch_dir(label);
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let rules: String = rule_files
            .iter()
            .map(|f| format!("- {}\n", f.display()))
            .collect();
        let rules = if rules.is_empty() {
            String::new()
        } else {
            format!("rule_files:\n{rules}")
        };
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 {rules}scrape_configs:\n- job_name: envoy\n  metrics_path: /stats/prometheus\n  \
                 static_configs:\n  - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let child = Command::new(tool("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("prometheus.log")).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Prometheus: {e}"));
        let mut p = PrometheusServer {
            child: Some(child),
            dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(port, "/-/ready").map(|(s, _)| s) != Some(200) {
            if let Some(status) = p.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "Prometheus exited during start ({status}); its log:\n{}",
                    p.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not get ready; its log:\n{}",
                p.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Stops it now (a test of what Dial does when the query API is gone).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A GET on its HTTP API: the status and body; None if nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "Prometheus' directory (config, log, data) is kept: {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A PromQL expression as a query-string value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A GET on 127.0.0.1:`port`: the status and body; None if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    super::http::get_once(port, path)
}
