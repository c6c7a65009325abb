//! The Grafana dashboard (istio/analysis/grafana-dashboard.json) as an image, docs/images/dashboard.svg.
//!
//! No Grafana can be installed here (it is no Debian, PyPI or npm package), so `make
//! dashboard-image` (the ignored test below) draws the dashboard's own panels (titles, types,
//! units, min/max, legends, thresholds, on its grid) from the results of the panels' own PromQL,
//! evaluated over a range by a real Prometheus (Debian's, as tests/prometheus.rs runs it)
//! scraping a real Envoy with Dial: the example's checkout release in fast time, its ramp
//! stepping 10% -> 25% -> 50%, the canary slower than stable, then answering 500 until the guard
//! pulls it back. `$release` is `checkout`; `$__rate_interval` what Grafana makes of a 1 s
//! scrape and a 1 s step (4 s).
//!
//! In `make test`: the committed image shows every panel of the dashboard JSON, with its title,
//! type, unit and every target's legend and expression, so a changed dashboard without a
//! regenerated image fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#[path = "dashboard/render.rs"]
mod render;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::policies::{envoy_example, EXAMPLE_ENV, HOST, PATH};
use support::prometheus_server::{urlencode, PrometheusServer};
use support::{free_port, repo_root, Backend, Client, Envoy, EnvoyConfig};

const DASHBOARD: &str = "istio/analysis/grafana-dashboard.json";
const IMAGE: &str = "docs/images/dashboard.svg";
/// Grafana's `$__rate_interval` for a 1 s scrape interval and a 1 s step: max(step + scrape,
/// 4 x scrape).
const RATE_INTERVAL: &str = "4s";
/// The run, in seconds from the first request: the ramp starts, holds each step, the canary
/// fails (in the 50% step), the run ends.
const RAMP_AT: u64 = 15;
const HOLD: u64 = 10;
const FAIL_AT: u64 = 40;
const END_AT: u64 = 60;
const CONNECTIONS: usize = 4;
const PER_CONNECTION: u32 = 50;

fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_root().join(DASHBOARD)).unwrap()).unwrap()
}

fn panels(d: &Value) -> &Vec<Value> {
    d["panels"].as_array().expect("the dashboard's panels")
}

fn unit(panel: &Value) -> &str {
    panel["fieldConfig"]["defaults"]["unit"]
        .as_str()
        .unwrap_or("")
}

// --- In make test ----------------------------------------------------------------------------

/// What of dashboard `d` the image `svg` does not show: its title, each panel (id, type, unit,
/// title) with each target (refId, legendFormat, expr), each panel with data.
fn not_shown(d: &Value, svg: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let title = d["title"].as_str().unwrap_or_default();
    if !svg.contains(&format!(
        "data-dashboard-title=\"{}\"",
        render::escape(title)
    )) {
        missing.push(format!("the title {title:?}"));
    }
    let groups = svg.matches("<g data-panel-id=").count();
    if groups != panels(d).len() {
        missing.push(format!("{} panels (it shows {groups})", panels(d).len()));
    }
    for p in panels(d) {
        let name = p["title"].as_str().unwrap_or_default();
        let head = format!(
            "<g data-panel-id=\"{}\" data-panel-type=\"{}\" data-unit=\"{}\">",
            p["id"],
            render::escape(p["type"].as_str().unwrap_or_default()),
            render::escape(unit(p))
        );
        let Some(at) = svg.find(&head) else {
            missing.push(format!("panel {} ({name:?}) as {head}", p["id"]));
            continue;
        };
        let group = &svg[at..at + svg[at..].find("</g>").unwrap_or(svg.len() - at)];
        if !group.contains(&format!(">{}</text>", render::escape(name))) {
            missing.push(format!("the title {name:?} of panel {}", p["id"]));
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let desc = format!(
                "<desc data-ref=\"{}\" data-legend-format=\"{}\" data-expr=\"{}\"/>",
                render::escape(t["refId"].as_str().unwrap_or_default()),
                render::escape(t["legendFormat"].as_str().unwrap_or("")),
                render::escape(t["expr"].as_str().unwrap_or_default())
            );
            if !group.contains(&desc) {
                missing.push(format!(
                    "target {} of panel {name:?} (its legend and expr)",
                    t["refId"]
                ));
            }
        }
        if group.contains(">No data</text>") {
            missing.push(format!("data in panel {name:?}"));
        }
    }
    missing
}

#[test]
fn the_image_shows_every_panel_of_the_dashboard() {
    let svg = std::fs::read_to_string(repo_root().join(IMAGE))
        .unwrap_or_else(|e| panic!("{IMAGE}: {e}: run `make dashboard-image`"));
    let missing = not_shown(&dashboard(), &svg);
    assert!(
        missing.is_empty(),
        "{IMAGE} does not show, of {DASHBOARD}: {}. Run `make dashboard-image`",
        missing.join("; ")
    );
}

/// The check fails for a dashboard changed after the image was drawn, one change at a time.
#[test]
fn a_changed_dashboard_no_longer_matches_the_image() {
    let svg = std::fs::read_to_string(repo_root().join(IMAGE)).unwrap();
    type Change = fn(&mut Value);
    let changes: [(&str, Change); 7] = [
        ("title", |d| d["title"] = "Dial: releases".into()),
        ("panel title", |d| d["panels"][0]["title"] = "Share".into()),
        ("unit", |d| {
            d["panels"][1]["fieldConfig"]["defaults"]["unit"] = "short".into()
        }),
        ("type", |d| d["panels"][4]["type"] = "gauge".into()),
        ("expr", |d| {
            let e = d["panels"][2]["targets"][0]["expr"]
                .as_str()
                .unwrap()
                .replace("5xx", "4xx");
            d["panels"][2]["targets"][0]["expr"] = e.into();
        }),
        ("legend", |d| {
            d["panels"][3]["targets"][0]["legendFormat"] = "{{version}}".into()
        }),
        ("a new panel", |d| {
            let mut extra = d["panels"][5].clone();
            extra["id"] = 7.into();
            d["panels"].as_array_mut().unwrap().push(extra);
        }),
    ];
    assert!(not_shown(&dashboard(), &svg).is_empty());
    for (what, change) in changes {
        let mut d = dashboard();
        change(&mut d);
        assert!(
            !not_shown(&d, &svg).is_empty(),
            "a changed {what} went unnoticed"
        );
    }
    let empty = svg.replacen("</g>", "<text>No data</text></g>", 1);
    assert!(!not_shown(&dashboard(), &empty).is_empty());
}

#[test]
fn values_are_shown_in_the_panels_units() {
    assert_eq!(render::format(0.4567, "percentunit", None), "45.7%");
    assert_eq!(render::format(50.0, "percent", None), "50%");
    assert_eq!(render::format(2.5, "ms", None), "2.5 ms");
    assert_eq!(render::format(12.0, "reqps", None), "12 req/s");
    assert_eq!(render::format(1.0, "none", Some(0)), "1");
    assert_eq!(render::format(f64::NAN, "ms", None), "-");
}

// --- make dashboard-image --------------------------------------------------------------------

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The example policy, its checkout release in fast time: the ramp from `ramp_start` (Unix
/// seconds) holding each step HOLD seconds, the guard judging 5 s.
fn fast_example(ramp_start: u64) -> String {
    let mut doc: Value = serde_json::from_str(&envoy_example()).unwrap();
    let release = doc["releases"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["name"] == "checkout")
        .expect("the example's checkout release");
    let ramp = &mut release["ramp"];
    ramp["start"] = Value::from(dial::core::time::format_instant(ramp_start * 1_000_000_000));
    for step in ramp["steps"].as_array_mut().unwrap() {
        if step.get("hold").is_some() {
            step["hold"] = Value::from(format!("{HOLD}s"));
        }
    }
    release["guard"]["window"] = Value::from("5s");
    doc.to_string()
}

/// Signed-in users on several connections at a steady pace, until stopped.
fn load(port: u16, stop: Arc<AtomicBool>) -> Vec<thread::JoinHandle<usize>> {
    let period = Duration::from_secs(1) / PER_CONNECTION;
    (0..CONNECTIONS)
        .map(|c| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut client = Client::new(port);
                let mut next = Instant::now() + period * c as u32 / CONNECTIONS as u32;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                    next = (next + period).max(Instant::now());
                    let user = format!("user-{}", c * 100_000 + n % 1000);
                    client.get(HOST, PATH, &[("x-user-id", &user)]);
                    n += 1;
                }
                n
            })
        })
        .collect()
}

/// A range query's series: (labels, points), NaN where Prometheus has no number.
fn query_range(
    prometheus: &PrometheusServer,
    expr: &str,
    start: f64,
    end: f64,
) -> Vec<(Value, Vec<(f64, f64)>)> {
    let path = format!(
        "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step=1",
        urlencode(expr)
    );
    let (status, body) = prometheus
        .get(&path)
        .unwrap_or_else(|| panic!("Prometheus does not answer {path}"));
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {status} {body}"));
    assert_eq!(v["status"], "success", "{expr}: {body}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let points = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let value = p[1].as_str().unwrap().parse().unwrap_or(f64::NAN);
                    (p[0].as_f64().unwrap(), value)
                })
                .collect();
            (s["metric"].clone(), points)
        })
        .collect()
}

/// Grafana's legend for a series: `{{label}}` replaced by the label's value.
fn legend(format: &str, labels: &Value) -> String {
    let mut out = format.to_string();
    if let Some(labels) = labels.as_object() {
        for (k, v) in labels {
            out = out.replace(&format!("{{{{{k}}}}}"), v.as_str().unwrap_or_default());
        }
    }
    if out.is_empty() {
        labels.to_string()
    } else {
        out
    }
}

#[test]
#[ignore = "make dashboard-image: a minute of traffic through Envoy into Prometheus"]
fn draw_the_dashboard_from_real_data() {
    let d = dashboard();
    let first_request = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 8;
    let policy = fast_example(first_request + RAMP_AT);
    let stable = Backend::start("checkout-v1");
    let canary = Backend::start("checkout-v2");
    // The canary is slower, so the p99 panel tells them apart.
    canary.set_delay(Duration::from_millis(25));
    let mut config = EnvoyConfig::new(&policy, &[("stable", stable.port), ("canary", canary.port)]);
    config.host_env = EXAMPLE_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let envoy = Envoy::start_with_workers(&config, 2);
    let prometheus =
        PrometheusServer::start("dashboard-image", free_port(), &[envoy.admin_port], &[]);
    let version = prometheus
        .get("/api/v1/status/buildinfo")
        .map(|(_, b)| serde_json::from_str::<Value>(&b).unwrap()["data"]["version"].clone())
        .unwrap();

    let at = UNIX_EPOCH + Duration::from_secs(first_request);
    thread::sleep(at.duration_since(SystemTime::now()).unwrap_or_default());
    let start = unix_now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(envoy.port, stop.clone());
    let until = |s: u64| {
        thread::sleep(Duration::from_secs_f64(
            (start + s as f64 - unix_now()).max(0.0),
        ));
    };
    until(FAIL_AT);
    canary.set_status(500);
    println!("t={FAIL_AT}s: the canary answers 500");
    until(END_AT);
    stop.store(true, Ordering::Relaxed);
    let sent: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let end = unix_now();
    // The last scrape.
    thread::sleep(Duration::from_secs(2));
    let tripped = envoy
        .prometheus()
        .iter()
        .any(|s| s.name == "dial_guard_tripped" && s.value == 1.0);
    assert!(
        tripped,
        "the guard did not trip; Envoy's log:\n{}",
        envoy.log()
    );

    let mut drawn = Vec::new();
    for p in panels(&d) {
        let defaults = &p["fieldConfig"]["defaults"];
        let targets = p["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let expr = t["expr"].as_str().unwrap();
                let filled = expr
                    .replace("${release}", "checkout")
                    .replace("$release", "checkout")
                    .replace("${__rate_interval}", RATE_INTERVAL)
                    .replace("$__rate_interval", RATE_INTERVAL);
                assert!(!filled.contains('$'), "an unknown variable in {expr}");
                let format = t["legendFormat"].as_str().unwrap_or("");
                let mut series: Vec<render::Series> = query_range(&prometheus, &filled, start, end)
                    .into_iter()
                    .map(|(labels, points)| render::Series {
                        name: legend(format, &labels),
                        points,
                    })
                    .collect();
                series.sort_by(|a, b| b.name.cmp(&a.name));
                println!("{} {}: {} series", p["title"], t["refId"], series.len());
                render::Target {
                    ref_id: t["refId"].as_str().unwrap().to_string(),
                    expr: expr.to_string(),
                    legend_format: format.to_string(),
                    series,
                }
            })
            .collect();
        let grid = &p["gridPos"];
        drawn.push(render::Panel {
            id: p["id"].as_u64().unwrap(),
            kind: p["type"].as_str().unwrap().to_string(),
            title: p["title"].as_str().unwrap().to_string(),
            unit: unit(p).to_string(),
            min: defaults["min"].as_f64(),
            max: defaults["max"].as_f64(),
            decimals: defaults["decimals"].as_u64().map(|d| d as usize),
            thresholds: defaults["thresholds"]["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    (
                        s["value"].as_f64(),
                        s["color"].as_str().unwrap_or("green").to_string(),
                    )
                })
                .collect(),
            grid: (
                grid["x"].as_f64().unwrap(),
                grid["y"].as_f64().unwrap(),
                grid["w"].as_f64().unwrap(),
                grid["h"].as_f64().unwrap(),
            ),
            targets,
        });
    }
    let image = render::Dashboard {
        title: d["title"].as_str().unwrap().to_string(),
        variables: vec![
            ("Data source".into(), format!("Prometheus {}", version.as_str().unwrap_or("?"))),
            ("Release".into(), "checkout".into()),
        ],
        caption: vec![
            format!(
                "{DASHBOARD}, drawn by make dashboard-image from its panels' queries, evaluated by a real Prometheus over {:.0} s of traffic through Envoy with Dial ({sent} requests):",
                end - start
            ),
            format!(
                "the example's checkout release in fast time: its ramp 10% -> 25% -> 50% ({HOLD} s a step), the canary 25 ms slower than stable, answering 500 from t = {FAIL_AT} s until the guard trips."
            ),
        ],
        start,
        end,
        panels: drawn,
    };
    let path = repo_root().join(IMAGE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, render::render(&image)).unwrap();
    println!("wrote {IMAGE}");
}
