//! The demo's last part: the example policy's ramp and guard in demo time. Envoy with two
//! workers and steady load from several connections; the ramp advances step by step; then the
//! canary answers 500 and the guard pulls it back. Every 500 ms a row: who answered (the
//! clients' `x-backend` and Dial's `x-dial-assignment` echo), the canary's 5xx rate, and Envoy's
//! own gauges (`dial_subset_weight`, `dial_guard_tripped`). Printed as a table, drawn as an SVG.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::prometheus::{value, Sample};
use crate::support::{repo_root, Backend, Client, Envoy, EnvoyConfig};
use crate::svg;

const HOST: &str = "shop.example.com";
const PATH: &str = "/checkout";
/// Demo time: each held step of the ramp lasts this long (the example's hold for hours).
const HOLD_SECONDS: u64 = 4;
/// The guard's window in demo time (the example's is 10 s).
const WINDOW: &str = "3s";
/// The timeline starts this long before the ramp: the written split first.
const LEAD: Duration = Duration::from_secs(2);
/// The canary starts failing this long into the ramp's last held step.
const FAIL_INTO_STEP: Duration = Duration::from_millis(1500);
/// The timeline goes on this long after the trip.
const AFTER_TRIP: Duration = Duration::from_secs(4);
/// The demo fails if the guard has not tripped this long after the canary started failing.
const TRIP_DEADLINE: Duration = Duration::from_secs(10);
const INTERVAL: Duration = Duration::from_millis(500);
/// The clients start this long before the timeline.
const WARM_UP: Duration = Duration::from_millis(300);
/// Clients, each on its own connection with its own 500 signed-in users.
const CONNECTIONS: usize = 8;
/// Requests a second per connection.
const PER_CONNECTION: u32 = 50;
const CANARY_BACKEND: &str = "checkout-v2";

/// One response, as a client saw it.
struct Seen {
    at: Instant,
    canary: bool,
    error: bool,
    guardrail: bool,
}

/// Clients on their own connections, each sending its users' requests in turn at a steady
/// pace, until stopped; every response is recorded.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let period = Duration::from_secs(1) / PER_CONNECTION;
        let threads = (0..CONNECTIONS)
            .map(|c| {
                let (stop, seen) = (stop.clone(), seen.clone());
                let users: Vec<String> = (0..500)
                    .map(|i| format!("user-{}", c * 100_000 + i))
                    .collect();
                // Staggered, so the connections do not send in bursts.
                let mut next = Instant::now() + period * c as u32 / CONNECTIONS as u32;
                thread::spawn(move || {
                    let mut client = Client::new(port);
                    for n in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        thread::sleep(next.saturating_duration_since(Instant::now()));
                        // Late (a busy machine): carry on from now, without a burst to catch up.
                        next = (next + period).max(Instant::now());
                        let user = &users[n % users.len()];
                        let r = client.get(HOST, PATH, &[("x-user-id", user)]);
                        let response = Seen {
                            at: Instant::now(),
                            canary: r.backend() == CANARY_BACKEND,
                            error: r.status >= 500,
                            guardrail: r
                                .header("x-dial-assignment")
                                .is_some_and(|a| a.ends_with("reason=guardrail")),
                        };
                        seen.lock().unwrap().push(response);
                    }
                })
            })
            .collect();
        Load {
            stop,
            seen,
            threads,
        }
    }

    /// The responses since the last call.
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// One 500 ms interval of the timeline.
struct Row {
    /// The interval's end, in seconds since the timeline began.
    t: f64,
    requests: usize,
    errors: usize,
    canary: usize,
    canary_errors: usize,
    guardrail: usize,
    /// Envoy's gauges at the interval's end: the canary's effective weight (basis points),
    /// whether its guard is tripped.
    weight: Option<f64>,
    tripped: bool,
    events: Vec<String>,
}

fn pct(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

fn show(p: Option<f64>) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{p:.1}%"))
}

impl Row {
    fn print(&self) {
        println!(
            "{}",
            row_text(
                [
                    format!("{:.1}", self.t),
                    self.weight
                        .map_or_else(|| "-".into(), |w| format!("{}%", w / 100.0)),
                    self.requests.to_string(),
                    show(pct(self.requests - self.canary, self.requests)),
                    show(pct(self.canary, self.requests)),
                    show(pct(self.canary_errors, self.canary)),
                    show(pct(self.guardrail, self.requests)),
                    if self.tripped { "TRIPPED" } else { "ok" }.to_string(),
                ],
                &self.events.join("; "),
            )
        );
    }
}

/// A row's line: its columns (t, weight, reqs, stable, canary, canary 5xx, guardrail, guard)
/// as shown, and its events.
fn row_text(cols: [String; 8], events: &str) -> String {
    let [t, weight, reqs, stable, canary, errors, guardrail, guard] = cols;
    format!(
        "  {t:>5}  {weight:>6}  {reqs:>5}  {stable:>6}  {canary:>6}  {errors:>10}  {guardrail:>9}  {guard:<7}  {events}"
    )
    .trim_end()
    .to_string()
}

/// A ramp step's event in the row where it begins.
fn ramp_event(first: bool, weight: f64, not_taken: bool) -> String {
    match (first, not_taken) {
        (_, true) => format!("ramp step {weight}%: not taken (guard tripped)"),
        (true, false) => format!("ramp starts: {weight}%"),
        (false, false) => format!("ramp step: {weight}%"),
    }
}

const FAILS: &str = "canary fails (500)";
const TRIPPED: &str = "guard tripped";

// Used by tests/demo_safety.rs (the README's copy of this output), not by the demo itself.
#[allow(dead_code)]
/// Whether `line` is a row of the timeline as `Row::print` writes it, whatever its values
/// (which depend on timing): each column in its shape, the events among those a row can show,
/// and the line exactly as the columns and events would be printed.
pub fn is_row(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 8 {
        return false;
    }
    let number = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.');
    let percent = |w: &str| w == "-" || w.strip_suffix('%').is_some_and(number);
    let shapes = number(words[0])
        && percent(words[1])
        && words[2].chars().all(|c| c.is_ascii_digit())
        && words[3..7].iter().all(|w| percent(w))
        && (words[7] == "ok" || words[7] == "TRIPPED");
    let events = words[8..].join(" ");
    let templates: Vec<String> = [
        ramp_event(true, 0.0, false),
        ramp_event(false, 0.0, false),
        ramp_event(false, 0.0, true),
        FAILS.to_string(),
        TRIPPED.to_string(),
    ]
    .iter()
    .map(|e| mask_numbers(e))
    .collect();
    let known = events.is_empty()
        || events
            .split("; ")
            .all(|e| templates.contains(&mask_numbers(e)));
    let cols: [String; 8] = std::array::from_fn(|i| words[i].to_string());
    shapes && known && row_text(cols, &events) == line.trim_end()
}

// Used by tests/demo_safety.rs (the README's copy of this output), not by the demo itself.
#[allow(dead_code)]
/// Every number (digits, with a decimal point) as `#`.
pub fn mask_numbers(s: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in s.chars() {
        let digit = c.is_ascii_digit() || (in_number && c == '.');
        if digit && !in_number {
            out.push('#');
        } else if !digit {
            out.push(c);
        }
        in_number = digit;
    }
    out
}

/// An RFC 3339 UTC time `seconds` after the epoch.
fn rfc3339(seconds: u64) -> String {
    dial::core::time::format_instant(seconds * 1_000_000_000)
}

/// The example's checkout release rewritten for demo time: the ramp starts at `start` (seconds
/// since the epoch) and holds each step HOLD_SECONDS; the guard judges a WINDOW.
fn demo_time(example: &Value, start: u64) -> Value {
    let mut doc = example.clone();
    let release = doc["releases"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["name"] == "checkout")
        .expect("the example has a checkout release");
    assert!(
        release["ramp"].is_object() && release["guard"].is_object(),
        "the example's checkout release has no ramp or no guard: see envoy-config/envoy.yaml"
    );
    let ramp = &mut release["ramp"];
    ramp["start"] = Value::from(rfc3339(start));
    for step in ramp["steps"].as_array_mut().unwrap() {
        if step.get("hold").is_some() {
            step["hold"] = Value::from(format!("{HOLD_SECONDS}s"));
        }
    }
    release["guard"]["window"] = Value::from(WINDOW);
    doc
}

fn checkout(doc: &Value) -> &Value {
    doc["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "checkout")
        .unwrap()
}

fn canary_gauge(samples: &[Sample], name: &str) -> Option<f64> {
    value(
        samples,
        name,
        &[("release", "checkout"), ("subset", "canary")],
    )
}

/// The lines before the rows: what runs, when the ramp starts (`ramp_t`, seconds into the
/// timeline) and the canary fails (`fail_t`), and what the columns mean.
fn intro(example: &Value, ramp_t: f64, fail_t: f64) -> String {
    let doc = demo_time(example, 0);
    let (shipped, demo) = (checkout(example), checkout(&doc));
    let steps: Vec<f64> = demo["ramp"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["weight"].as_f64().unwrap())
        .collect();
    let holds: Vec<&str> = shipped["ramp"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["hold"].as_str())
        .collect();
    let guard = &demo["guard"];
    let mut out = format!(
        "\nRamp and guardrail on a timeline: the example's checkout policy in demo time (the ramp's holds of {} cut to\n{HOLD_SECONDS}s each, the guard's window of {} to {WINDOW}); Envoy with 2 workers; ~{} requests/s of signed-in users on {CONNECTIONS} connections.",
        holds.join(", "),
        shipped["guard"]["window"].as_str().unwrap_or("?"),
        CONNECTIONS as u32 * PER_CONNECTION
    );
    out.push_str(&format!(
        "\n  ramp: canary {} from t={ramp_t:.1} s",
        steps
            .iter()
            .map(|w| format!("{w}%"))
            .collect::<Vec<_>>()
            .join(" -> "),
    ));
    out.push_str(&format!(
        "\n  guard: canary -> stable once its 5xx rate is {} points above stable's over {WINDOW} (at least {} canary responses)",
        guard["maxErrorRate"].as_f64().unwrap_or(0.0) * 100.0,
        guard["minRequests"]
    ));
    out.push_str(&format!(
        "\n  at t={fail_t:.1} s the canary ({CANARY_BACKEND}) starts answering 500"
    ));
    out.push_str("\n\n  Each row: the 500 ms up to t. weight: the canary's effective share (Envoy's dial_subset_weight gauge).");
    out.push_str(
        "\n  stable, canary: who answered (x-backend). canary 5xx: share of the canary's answers.",
    );
    out.push_str("\n  guardrail: sent to stable by the tripped guard (reason in x-dial-assignment). guard: dial_guard_tripped.");
    out.push_str(&format!(
        "\n  {:>5}  {:>6}  {:>5}  {:>6}  {:>6}  {:>10}  {:>9}  {:<7}  event",
        "t (s)", "weight", "reqs", "stable", "canary", "canary 5xx", "guardrail", "guard"
    ));
    out
}

// Used by tests/demo_safety.rs (the README's copy of this output), not by the demo itself.
#[allow(dead_code)]
/// The intro as `run` prints it when nothing is late: the ramp LEAD into the timeline, the
/// failure FAIL_INTO_STEP into the ramp's last held step.
pub fn intro_as_planned(example: &Value) -> String {
    let steps = checkout(example)["ramp"]["steps"]
        .as_array()
        .map_or(0, |s| s.len());
    let ramp_t = LEAD.as_secs_f64();
    let fail_t = ramp_t
        + (HOLD_SECONDS * steps.saturating_sub(2) as u64) as f64
        + FAIL_INTO_STEP.as_secs_f64();
    intro(example, ramp_t, fail_t)
}

/// What the timeline ends with: when the canary failed, the trip, what the clients got.
struct Outcome {
    first_500: f64,
    tripped_after: f64,
    tripped_at: f64,
    last_after: f64,
    last_at: f64,
    requests: usize,
    end: f64,
    errors: usize,
    canary_errors: usize,
    guardrail: usize,
    /// Envoy's log line of the trip.
    log_line: Option<String>,
    /// dial_subset_weight of canary and stable, dial_guard_tripped, dial_guard_trips_total.
    gauges: [String; 4],
}

fn outcome(o: &Outcome) -> String {
    let mut out = format!("\nThe canary's first 500: t={:.2} s.", o.first_500);
    out.push_str(&format!(
        "\nThe guard tripped within {:.2} s of it (t={:.2} s: the first request sent to stable with reason=guardrail).",
        o.tripped_after, o.tripped_at,
    ));
    out.push_str(&format!(
        "\nThe last request reached the canary {:.2} s after its first 500 (t={:.2} s).",
        o.last_after, o.last_at
    ));
    out.push_str(&format!(
        "\n{} requests in {:.1} s; {} answered 5xx ({}); {} sent to stable by the guardrail.",
        o.requests,
        o.end,
        o.errors,
        if o.errors == o.canary_errors {
            "all by the canary".to_string()
        } else {
            format!("{} by the canary", o.canary_errors)
        },
        o.guardrail
    ));
    if let Some(line) = &o.log_line {
        out.push_str(&format!("\nEnvoy's log: {line}"));
    }
    let [canary, stable, tripped, trips] = &o.gauges;
    out.push_str(&format!(
        "\nEnvoy's gauges now: dial_subset_weight canary {canary}, stable {stable}; dial_guard_tripped {tripped}; dial_guard_trips_total {trips}"
    ));
    out
}

// Used by tests/demo_safety.rs (the README's copy of this output), not by the demo itself.
#[allow(dead_code)]
/// The timeline's last lines as any run prints them: its numbers are the run's own (compare
/// them masked), and so is the rest of Envoy's log line after `GUARD_LOG`.
pub fn outcome_template() -> String {
    outcome(&Outcome {
        first_500: 0.0,
        tripped_after: 0.0,
        tripped_at: 0.0,
        last_after: 0.0,
        last_at: 0.0,
        requests: 0,
        end: 0.0,
        errors: 0,
        canary_errors: 0,
        guardrail: 0,
        log_line: Some(format!("{GUARD_LOG}…")),
        gauges: ["0".into(), "0".into(), "0".into(), "0".into()],
    }) + "\n"
        + DRAWN
}

// Used by tests/demo_safety.rs (the README's copy of this output), not by the demo itself.
#[allow(dead_code)]
/// The start of Envoy's log line when the example's guard trips.
pub const GUARD_LOG: &str = "dial: guard tripped: release checkout, subset canary goes to stable: ";
const DRAWN: &str =
    "Timeline drawn: target/demo/timeline.svg (Envoy's log: target/demo/timeline-envoy.log)";

/// Runs the timeline with the example policy `example` (the one `envoy-config/envoy.yaml`
/// ships), its secrets in Envoy's environment; panics (the demo fails) if the guard does not pull the failing canary back.
pub fn run(example: &Value, secrets: &[(String, String)]) {
    // The ramp starts a few seconds from now, at a whole second (RFC 3339 as a policy writes
    // it), leaving Envoy time to start before the timeline begins LEAD ahead of the ramp.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let start = now.as_secs() + 5;
    let doc = demo_time(example, start);
    let demo = checkout(&doc);
    let steps: Vec<f64> = demo["ramp"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["weight"].as_f64().unwrap())
        .collect();
    let guard = &demo["guard"];
    assert!(
        steps.len() >= 2,
        "the example's ramp needs two steps or more"
    );

    let stable = Backend::start("checkout-v1");
    let canary = Backend::start(CANARY_BACKEND);
    let mut config = EnvoyConfig::new(
        &doc.to_string(),
        &[("stable", stable.port), ("canary", canary.port)],
    );
    config.host_env = secrets.to_vec();
    let envoy = Envoy::start_with_workers(&config, 2);
    crate::envoy_started(envoy.pid());

    // The timeline's t = 0: LEAD before the ramp's start.
    let until_start = (UNIX_EPOCH + Duration::from_secs(start))
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let ramp_at = Instant::now() + until_start;
    let t0 = ramp_at
        .checked_sub(LEAD)
        .unwrap_or(ramp_at)
        .max(Instant::now() + WARM_UP);
    let secs = |at: Instant| at.saturating_duration_since(t0).as_secs_f64();
    let hold = Duration::from_secs(HOLD_SECONDS);
    let boundaries: Vec<f64> = (0..steps.len())
        .map(|i| secs(ramp_at + hold * i as u32))
        .collect();
    // In the last held step (the one before the ramp's last).
    let fail_at = ramp_at + hold * (steps.len() - 2) as u32 + FAIL_INTO_STEP;

    println!("{}", intro(example, boundaries[0], secs(fail_at)));

    // The clients start a moment early, so the first interval is as full as the others.
    thread::sleep(t0.saturating_duration_since(Instant::now() + WARM_UP));
    let load = Load::start(envoy.port);
    thread::sleep(t0.saturating_duration_since(Instant::now()));
    load.take();
    let mut rows: Vec<Row> = Vec::new();
    let mut failed: Option<Instant> = None;
    // The first request the tripped guard sent to stable: the trip, as the clients saw it.
    let mut tripped: Option<Instant> = None;
    let mut marked_trip = false;
    for k in 1u32.. {
        let due = t0 + INTERVAL * k;
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let batch = load.take();
        let samples = envoy.prometheus();
        let t = secs(due);
        let gauge_tripped = canary_gauge(&samples, "dial_guard_tripped") == Some(1.0);
        if tripped.is_none() {
            tripped = batch.iter().filter(|s| s.guardrail).map(|s| s.at).min();
        }
        let mut events = Vec::new();
        let from = t - INTERVAL.as_secs_f64();
        for (i, (b, w)) in boundaries.iter().zip(&steps).enumerate() {
            // A step that begins at an interval's end shows in the next one.
            if from <= *b && *b < t {
                events.push(ramp_event(
                    i == 0,
                    *w,
                    tripped.is_some_and(|at| secs(at) < *b),
                ));
            }
        }
        if failed.is_some_and(|at| from <= secs(at) && secs(at) < t) {
            events.push(FAILS.into());
        }
        if !marked_trip && (tripped.is_some() || gauge_tripped) {
            marked_trip = true;
            events.push(TRIPPED.into());
        }
        let row = Row {
            t,
            requests: batch.len(),
            errors: batch.iter().filter(|s| s.error).count(),
            canary: batch.iter().filter(|s| s.canary).count(),
            canary_errors: batch.iter().filter(|s| s.canary && s.error).count(),
            guardrail: batch.iter().filter(|s| s.guardrail).count(),
            weight: canary_gauge(&samples, "dial_subset_weight"),
            tripped: gauge_tripped,
            events,
        };
        row.print();
        rows.push(row);

        if let Some(at) = tripped {
            if Instant::now() >= at + AFTER_TRIP {
                break;
            }
        }
        if let Some(at) = failed {
            if Instant::now() >= at + TRIP_DEADLINE {
                load.stop();
                panic!(
                    "the guard did not trip within {TRIP_DEADLINE:?} of the canary failing; Envoy's log:\n{}",
                    envoy.log()
                );
            }
        } else if Instant::now() + INTERVAL / 10 >= fail_at {
            canary.set_status(500);
            failed = Some(Instant::now());
        }
    }
    load.stop();
    let end = secs(Instant::now());
    let (failed, tripped) = (failed.unwrap(), tripped.unwrap());

    // The canary's own account: its first 500 and the last request it received.
    let at_canary = canary.seen();
    let first_500 = at_canary
        .iter()
        .filter(|s| s.status >= 500)
        .map(|s| s.at)
        .min()
        .unwrap_or(failed);
    let last = at_canary.iter().map(|s| s.at).max().unwrap_or(first_500);
    let after = |at: Instant| at.saturating_duration_since(first_500).as_secs_f64();
    let requests: usize = rows.iter().map(|r| r.requests).sum();
    let errors: usize = rows.iter().map(|r| r.errors).sum();
    let canary_errors: usize = rows.iter().map(|r| r.canary_errors).sum();
    let guardrail: usize = rows.iter().map(|r| r.guardrail).sum();
    let log = envoy.log();
    let samples = envoy.prometheus();
    let weight = |subset| {
        value(
            &samples,
            "dial_subset_weight",
            &[("release", "checkout"), ("subset", subset)],
        )
        .map_or_else(|| "-".into(), |w| w.to_string())
    };
    println!(
        "{}",
        outcome(&Outcome {
            first_500: secs(first_500),
            tripped_after: after(tripped),
            tripped_at: secs(tripped),
            last_after: after(last),
            last_at: secs(last),
            requests,
            end,
            errors,
            canary_errors,
            guardrail,
            log_line: log.lines().find_map(|l| {
                l.find("dial: guard tripped")
                    .map(|i| l.get(i..).unwrap_or(l).to_string())
            }),
            gauges: [
                weight("canary"),
                weight("stable"),
                canary_gauge(&samples, "dial_guard_tripped")
                    .unwrap_or(-1.0)
                    .to_string(),
                canary_gauge(&samples, "dial_guard_trips_total")
                    .unwrap_or(-1.0)
                    .to_string(),
            ],
        })
    );

    let dir = repo_root().join("target/demo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("timeline-envoy.log"), &log).unwrap();
    let chart = svg::Chart {
        points: rows
            .iter()
            .map(|r| svg::Point {
                t: r.t,
                stable: pct(r.requests - r.canary, r.requests),
                canary: pct(r.canary, r.requests),
                guardrail: pct(r.guardrail, r.requests),
                errors: pct(r.canary_errors, r.canary),
                weight: r.weight.map(|w| w / 100.0),
            })
            .collect(),
        interval: INTERVAL.as_secs_f64(),
        end,
        steps: boundaries
            .iter()
            .copied()
            .zip(steps.iter().copied())
            .collect(),
        written: demo["subsets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "canary")
            .and_then(|s| {
                let total: f64 = demo["subsets"]
                    .as_array()?
                    .iter()
                    .filter_map(|s| s["weight"].as_f64())
                    .sum();
                Some(s["weight"].as_f64()? * 100.0 / total)
            })
            .unwrap_or(0.0),
        failed: secs(first_500),
        tripped: secs(tripped),
        last_canary: secs(last),
        threshold: guard["maxErrorRate"].as_f64().unwrap_or(0.0) * 100.0,
        window: WINDOW.to_string(),
        load: format!(
            "~{} requests/s of signed-in users on {CONNECTIONS} connections",
            CONNECTIONS as u32 * PER_CONNECTION
        ),
    };
    let path = dir.join("timeline.svg");
    std::fs::write(&path, svg::render(&chart)).unwrap();
    println!("{DRAWN}");
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
    crate::envoy_stopped(envoy.pid());
}
