//! Envoy end to end, two workers (`--concurrency 2`): a guard pulls a failing or slow canary
//! back within its window plus a second, judged over both workers' traffic; it does not trip on
//! a healthy canary, on an incident that fails stable as much, or below `minRequests`; a ramp
//! with second-scale holds moves the split step by step and never moves a user back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dial::core::decide::{decide, Context, Decision};
use dial::core::policy::Policy;
use dial::core::request::HeaderList;
use dial::core::time::NANOS_PER_SECOND;
use serde_json::{json, Value};
use support::prometheus::value;
use support::{for_each_build, Backend, Build, Client, Envoy, EnvoyConfig};

const HOST: &str = "shop.example.com";
const PATH: &str = "/checkout";
const WINDOW_SECONDS: u64 = 2;

/// The example policy with a guard (and whatever else `extra` sets on its release).
fn policy(guard: Value, extra: Value) -> String {
    let mut doc = support::policies::checkout();
    doc["releases"][0]["guard"] = guard;
    for (k, v) in extra.as_object().unwrap() {
        doc["releases"][0][k] = v.clone();
    }
    doc.to_string()
}

fn error_guard() -> Value {
    json!({ "subset": "canary", "fallback": "stable", "window": format!("{WINDOW_SECONDS}s"),
            "minRequests": 20, "maxErrorRate": 0.05 })
}

/// Distinct users the core puts on `subset` by hash, `n` of them, from `from` on.
fn users_on(policy: &str, subset: &str, from: usize, n: usize) -> Vec<String> {
    let p = Policy::parse(policy.as_bytes()).unwrap();
    (from..)
        .map(|i| format!("user-{i}"))
        .filter(|u| {
            let r =
                HeaderList::from_strs(&[(":authority", HOST), (":path", PATH), ("x-user-id", u)]);
            matches!(decide(&p, &Context::default(), &r),
                Decision::Assign(a) if p.releases[0].subsets[a.subset].name == subset)
        })
        .take(n)
        .collect()
}

/// Clients on their own connections, each sending requests of its own users in turn (a tenth of
/// them canary users, as the split gives them), about 250 a second each, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<u64>>,
}

impl Load {
    fn start(port: u16, connections: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..connections)
            .map(|c| {
                let stop = stop.clone();
                let users: Vec<String> = (0..500)
                    .map(|i| format!("user-{}", c * 100_000 + i))
                    .collect();
                thread::spawn(move || {
                    let mut client = Client::new(port);
                    let mut sent = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let u = &users[sent as usize % users.len()];
                        client.get(HOST, PATH, &[("x-user-id", u)]);
                        sent += 1;
                        thread::sleep(Duration::from_millis(4));
                    }
                    sent
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap()).sum()
    }
}

fn start(build: Build, policy: &str) -> (Backend, Backend, Envoy) {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let config = EnvoyConfig::for_build(
        build,
        policy,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    let envoy = Envoy::start_with_workers(&config, 2);
    (stable, canary, envoy)
}

fn guard_value(envoy: &Envoy, name: &str) -> Option<f64> {
    value(
        &envoy.prometheus(),
        name,
        &[("release", "checkout"), ("subset", "canary")],
    )
}

for_each_build!(
    a_failing_canary_is_pulled_back_within_the_window_and_a_second,
    no_false_trips,
    a_slow_canary_trips_on_the_slow_rate,
    a_ramp_with_second_scale_holds_follows_each_step,
);

fn a_failing_canary_is_pulled_back_within_the_window_and_a_second(build: Build) {
    let p = policy(error_guard(), json!({}));
    let (stable, canary, envoy) = start(build, &p);
    let load = Load::start(envoy.port, 4);
    thread::sleep(Duration::from_secs(WINDOW_SECONDS + 1));
    assert_eq!(guard_value(&envoy, "dial_guard_tripped"), Some(0.0));
    canary.set_status(500);
    thread::sleep(Duration::from_secs(WINDOW_SECONDS + 2));
    let sent = load.stop();

    let seen = canary.seen();
    let first_500 = seen
        .iter()
        .filter(|s| s.status == 500)
        .map(|s| s.at)
        .min()
        .unwrap();
    let last = seen.iter().map(|s| s.at).max().unwrap();
    let pulled_back = last.duration_since(first_500);
    println!(
        "guard: {} requests; canary got {} ({} failed); last request reached the canary {:?} after its first 500",
        sent,
        seen.len(),
        seen.iter().filter(|s| s.status == 500).count(),
        pulled_back
    );
    assert!(
        pulled_back <= Duration::from_secs(WINDOW_SECONDS + 1),
        "the canary kept traffic for {pulled_back:?} after failing"
    );
    assert!(stable.count() > 0);

    // Nothing but a trusted override reaches the canary now.
    let before = canary.count();
    let mut client = Client::new(envoy.port);
    let canary_users = users_on(&p, "canary", 0, 50);
    for u in &canary_users {
        let r = client.get(HOST, PATH, &[("x-user-id", u)]);
        assert_eq!(r.backend(), "stable");
        assert!(r
            .header("x-dial-assignment")
            .unwrap()
            .ends_with("reason=guardrail"));
    }
    assert_eq!(canary.count(), before);
    let r = client.get(
        HOST,
        PATH,
        &[
            ("x-user-id", &canary_users[0]),
            ("x-dial-override", "canary; token=qa-token-0123456789"),
        ],
    );
    assert_eq!((r.backend(), r.status), ("canary", 500));

    assert_eq!(guard_value(&envoy, "dial_guard_tripped"), Some(1.0));
    assert_eq!(guard_value(&envoy, "dial_guard_trips_total"), Some(1.0));
    let weight = |subset| {
        value(
            &envoy.prometheus(),
            "dial_subset_weight",
            &[("release", "checkout"), ("subset", subset)],
        )
    };
    assert_eq!(
        (weight("stable"), weight("canary")),
        (Some(10_000.0), Some(0.0))
    );
    let log = envoy.log();
    assert_eq!(
        log.matches(
            "dial: guard tripped: release checkout, subset canary goes to stable: error rate"
        )
        .count(),
        1,
        "{log}"
    );
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
}

/// The tick marks of `no_false_trips`: a ramp of the canary from 11% up by one point a second
/// from `start` (Unix seconds) on. A tick refreshes the weight gauges right after it judges the
/// guard (`Runtime::on_tick`), so the canary's gauge at `MARK_FROM + k` percent (in basis
/// points, 100 times that) shows that a tick at `start + k` s or later ran and judged; a
/// tripped guard would show 0 there instead.
/// (Ramping up moves users onto the canary only: every canary user the cases pick stays one.)
const MARK_FROM: u64 = 11;
const MARK_TO: u64 = 90;

fn tick_marks(start: u64) -> Value {
    let steps: Vec<Value> = (MARK_FROM..=MARK_TO)
        .map(|w| match w {
            MARK_TO => json!({ "weight": w }),
            _ => json!({ "weight": w, "hold": "1s" }),
        })
        .collect();
    json!({ "subset": "canary", "start": rfc3339(start), "steps": steps })
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Waits until Envoy has counted all `responses` of release checkout (each when its exchange
/// ends, just after the client has read it) and returns when that was seen (Unix ns): a tick
/// after it judges every one of them.
fn all_counted(envoy: &Envoy, responses: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counted: f64 = envoy
            .prometheus()
            .iter()
            .filter(|s| s.name == "dial_responses_total" && s.labels["release"] == "checkout")
            .map(|s| s.value)
            .sum();
        // (More only if a client's retry had reached Envoy: every response is counted then.)
        if counted >= responses as f64 {
            return unix_nanos();
        }
        assert!(
            Instant::now() < deadline,
            "Envoy counted {counted} of the {responses} responses"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the tick marks (`tick_marks(start)`) to show a tick at or after `after` (Unix ns),
/// or for the guard to show a trip. In the native build ticks run on requests, so each look is
/// preceded by one outside the release's scope (counted by no release).
fn wait_for_a_tick_after(envoy: &Envoy, start: u64, after: u64) {
    let marks = (after.saturating_sub(start * NANOS_PER_SECOND)).div_ceil(NANOS_PER_SECOND);
    let want = (MARK_FROM + marks) as f64 * 100.0;
    assert!(
        MARK_FROM + marks <= MARK_TO,
        "the traffic outlasted the tick marks"
    );
    let mut client = Client::new(envoy.port);
    let deadline = Instant::now() + Duration::from_secs(marks + 10);
    loop {
        let r = client.get(HOST, "/tick", &[]);
        assert_eq!(r.header("x-dial-assignment"), None, "out of scope");
        let canary = guard_value(envoy, "dial_subset_weight");
        if canary >= Some(want) || guard_value(envoy, "dial_guard_tripped") != Some(0.0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no tick judged the guard after the traffic: the canary's weight gauge is \
             {canary:?}, the mark of a tick {marks} s after the ramp's start is {want}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn no_false_trips(build: Build) {
    // A healthy canary; then both failing alike; then a failing canary below minRequests.
    for case in ["healthy", "both failing", "below minRequests"] {
        let marks_from = unix_nanos() / NANOS_PER_SECOND + 1;
        let p = policy(error_guard(), json!({ "ramp": tick_marks(marks_from) }));
        let (stable, canary, envoy) = start(build, &p);
        let responses = if case == "below minRequests" {
            canary.set_status(500);
            let mut client = Client::new(envoy.port);
            // 10 failing canary responses per window, for three windows.
            let users = users_on(&p, "canary", 0, 10);
            for _ in 0..3 {
                for u in &users {
                    let r = client.get(HOST, PATH, &[("x-user-id", u)]);
                    assert_eq!(
                        (r.status, r.header("x-dial-assignment")),
                        (
                            500,
                            Some("release=checkout; subset=canary; version=v2; reason=hash")
                        ),
                        "{u}"
                    );
                }
                thread::sleep(Duration::from_secs(WINDOW_SECONDS) + Duration::from_millis(100));
            }
            3 * users.len() as u64
        } else {
            if case == "both failing" {
                stable.set_status(503);
                canary.set_status(503);
            }
            let load = Load::start(envoy.port, 4);
            thread::sleep(Duration::from_secs(WINDOW_SECONDS * 2 + 1));
            load.stop()
        };
        // A tick after the last response was counted has judged the guard over all of them.
        let after = all_counted(&envoy, responses);
        wait_for_a_tick_after(&envoy, marks_from, after);
        assert_eq!(
            guard_value(&envoy, "dial_guard_tripped"),
            Some(0.0),
            "{case}"
        );
        assert_eq!(
            guard_value(&envoy, "dial_guard_trips_total"),
            Some(0.0),
            "{case}"
        );
        assert!(!envoy.log().contains("guard tripped"), "{case}");
        assert!(canary.count() > 0, "{case}");
    }
}

fn a_slow_canary_trips_on_the_slow_rate(build: Build) {
    let guard = json!({ "subset": "canary", "fallback": "stable", "window": "3s", "minRequests": 5,
                        "maxSlowRate": { "overMs": 500, "rate": 0.05 } });
    let p = policy(guard, json!({}));
    let (_stable, canary, envoy) = start(build, &p);
    canary.set_delay(Duration::from_secs(1));
    // Canary users only, on eight connections: eight slow responses a second.
    let users = users_on(&p, "canary", 0, 8);
    let started = Instant::now();
    let threads: Vec<_> = users
        .into_iter()
        .map(|u| {
            let port = envoy.port;
            thread::spawn(move || {
                let mut client = Client::new(port);
                let mut reasons = Vec::new();
                for _ in 0..6 {
                    let r = client.get(HOST, PATH, &[("x-user-id", &u)]);
                    reasons.push(
                        r.header("x-dial-assignment")
                            .unwrap()
                            .rsplit('=')
                            .next()
                            .unwrap()
                            .to_string(),
                    );
                }
                reasons
            })
        })
        .collect();
    let reasons: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    // Each user was on the canary at first, and on stable by the guardrail at the end.
    for r in &reasons {
        assert_eq!(r.first().map(String::as_str), Some("hash"), "{r:?}");
        assert_eq!(r.last().map(String::as_str), Some("guardrail"), "{r:?}");
    }
    println!(
        "slow guard: tripped within {:?} of the first request",
        started.elapsed()
    );
    assert_eq!(guard_value(&envoy, "dial_guard_tripped"), Some(1.0));
    let log = envoy.log();
    assert!(
        log.contains(
            "dial: guard tripped: release checkout, subset canary goes to stable: slow rate"
        ),
        "{log}"
    );
}

/// An RFC 3339 UTC time `seconds` after the epoch.
fn rfc3339(seconds: u64) -> String {
    dial::core::time::format_instant(seconds * 1_000_000_000)
}

fn a_ramp_with_second_scale_holds_follows_each_step(build: Build) {
    const HOLD: u64 = 4;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = now + 2;
    let ramp = json!({ "subset": "canary", "start": rfc3339(start),
        "steps": [ { "weight": 10, "hold": format!("{HOLD}s") }, { "weight": 30, "hold": format!("{HOLD}s") },
                   { "weight": 60, "hold": format!("{HOLD}s") }, { "weight": 100 } ] });
    let p = policy(error_guard(), json!({ "ramp": ramp }));
    let (_stable, _canary, envoy) = start_plain(build, &p);
    let users: Vec<String> = (0..2000).map(|i| format!("ramp-user-{i}")).collect();
    let mut previous: Option<Vec<String>> = None;
    for (step, share) in [10.0, 30.0, 60.0, 100.0].into_iter().enumerate() {
        // Half a second into the step.
        let at = UNIX_EPOCH
            + Duration::from_secs(start + step as u64 * HOLD)
            + Duration::from_millis(500);
        if let Ok(wait) = at.duration_since(SystemTime::now()) {
            thread::sleep(wait);
        }
        let began = Instant::now();
        let halves: Vec<_> = users
            .chunks(1000)
            .map(|chunk| {
                let chunk = chunk.to_vec();
                let port = envoy.port;
                thread::spawn(move || {
                    let mut c = Client::new(port);
                    chunk
                        .iter()
                        .map(|u| c.get(HOST, PATH, &[("x-user-id", u)]).backend().to_string())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let backends: Vec<String> = halves.into_iter().flat_map(|h| h.join().unwrap()).collect();
        assert!(
            began.elapsed() < Duration::from_millis(HOLD * 1000 - 600),
            "step {step}: 2,000 requests took {:?}, longer than the step",
            began.elapsed()
        );
        let got = backends.iter().filter(|b| *b == "canary").count() as f64 / 20.0;
        assert!(
            (got - share).abs() <= 2.0,
            "step {step}: {got}% on the canary for {share}%"
        );
        if let Some(before) = &previous {
            let back = before
                .iter()
                .zip(&backends)
                .filter(|(b, a)| *b == "canary" && *a != "canary")
                .count();
            assert_eq!(back, 0, "step {step}: users moved back");
        }
        let gauge = value(
            &envoy.prometheus(),
            "dial_subset_weight",
            &[("release", "checkout"), ("subset", "canary")],
        );
        assert_eq!(gauge, Some(share * 100.0), "step {step}");
        previous = Some(backends);
    }
}

/// One worker is enough for the ramp (and keeps two clients ahead of the clock).
fn start_plain(build: Build, policy: &str) -> (Backend, Backend, Envoy) {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let config = EnvoyConfig::for_build(
        build,
        policy,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    let envoy = Envoy::start(&config);
    (stable, canary, envoy)
}
