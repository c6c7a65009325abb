//! `make memory-soak` (not in `make test`): a million requests over 100,000 distinct users
//! through Envoy and Dial, with the signed sticky cookie minting for the anonymous half, and
//! `dial_vm_memory_bytes` (the linear memory of the Wasm VM) must not grow after the warm-up.
//!
//! Users `soak-<i>`, i < DIAL_SOAK_USERS (100,000): even ones signed in (`x-user-id`), odd ones
//! anonymous. An anonymous user's first request has no cookie and gets a freshly minted, signed
//! one, which it sends back on every later request; one request in fifty of a returning
//! anonymous user carries a forged (unsigned) cookie instead, which Dial replaces with a new
//! minted key. Every user must stay on its subset, with no `Set-Cookie` once it has its cookie.
//! The warm-up is the first tenth of the requests (every user's first visit, each anonymous
//! cookie minted, has happened by then for most users); the gauge is read then and every few
//! seconds after, and must never exceed the warm-up figure. DIAL_SOAK_REQUESTS (1,000,000) and
//! DIAL_SOAK_MAX_SECONDS (1,800) bound the run; hitting the time bound fails the test, with the
//! rate reached.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::policies::{checkout_with, HOST, PATH};
use support::prometheus::value;
use support::{Backend, Client, Envoy, EnvoyConfig};

const CONNECTIONS: usize = 8;
const COOKIE: &str = "dial-checkout";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|s| {
            s.replace(['_', ','], "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}={s:?} is not a whole number"))
        })
        .unwrap_or(default)
}

/// The VM's memory as Envoy reports it.
fn vm_memory(envoy: &Envoy) -> u64 {
    value(&envoy.prometheus(), "dial_vm_memory_bytes", &[]).unwrap_or(0.0) as u64
}

/// Envoy's resident memory (kB), for the record.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Default)]
struct Outcome {
    requests: u64,
    failed: u64,
    /// The first failures.
    failures: Vec<String>,
    minted: u64,
    forged: u64,
}

/// One connection's share of the users (those with `i % CONNECTIONS == c`), visited round after
/// round until `quota` requests are sent or `stop` is set.
fn drive(
    port: u16,
    c: usize,
    users: usize,
    quota: u64,
    done: &AtomicU64,
    stop: &AtomicBool,
) -> Outcome {
    let mut client = Client::new(port);
    let mine: Vec<usize> = (c..users).step_by(CONNECTIONS).collect();
    let mut backend: Vec<u8> = vec![0; mine.len()];
    let mut cookies: HashMap<usize, String> = HashMap::new();
    let mut out = Outcome::default();
    let fail = |out: &mut Outcome, m: String| {
        out.failed += 1;
        if out.failures.len() < 20 {
            out.failures.push(m);
        }
    };
    let mut visit = 0u64;
    'run: loop {
        for (slot, &i) in mine.iter().enumerate() {
            if out.requests >= quota || stop.load(Ordering::Relaxed) {
                break 'run;
            }
            visit += 1;
            let user = format!("soak-{i}");
            let signed_in = i % 2 == 0;
            let forged = !signed_in && cookies.contains_key(&i) && visit.is_multiple_of(50);
            let header;
            let headers: Vec<(&str, &str)> = if signed_in {
                vec![("x-user-id", user.as_str())]
            } else if forged {
                header = format!("{COOKIE}={:016x}", visit);
                vec![("cookie", header.as_str())]
            } else if let Some(value) = cookies.get(&i) {
                header = format!("{COOKIE}={value}");
                vec![("cookie", header.as_str())]
            } else {
                vec![]
            };
            let r = match client.try_get(HOST, PATH, &headers) {
                Ok(r) => r,
                Err(e) => {
                    out.requests += 1;
                    fail(&mut out, format!("{user}: {e}"));
                    continue;
                }
            };
            out.requests += 1;
            done.fetch_add(1, Ordering::Relaxed);
            if r.status != 200 {
                fail(&mut out, format!("{user}: status {}", r.status));
                continue;
            }
            let b = match r.backend() {
                "stable" => 1,
                "canary" => 2,
                other => {
                    fail(&mut out, format!("{user}: answered by {other}"));
                    continue;
                }
            };
            let set_cookie = r.header("set-cookie");
            if signed_in || (cookies.contains_key(&i) && !forged) {
                // Known users: the same subset every visit, and no new cookie.
                if backend[slot] != 0 && backend[slot] != b {
                    fail(
                        &mut out,
                        format!("{user}: moved from {} to {b}", backend[slot]),
                    );
                }
                if let Some(sc) = set_cookie {
                    fail(&mut out, format!("{user}: unexpected set-cookie {sc}"));
                }
                backend[slot] = b;
            } else {
                // A first visit or a forged cookie: a freshly minted, signed key.
                let Some(value) = set_cookie
                    .and_then(|sc| sc.strip_prefix(&format!("{COOKIE}=")))
                    .and_then(|v| v.split(';').next())
                else {
                    fail(&mut out, format!("{user}: no sticky cookie minted"));
                    continue;
                };
                if value.len() != 33 || value.as_bytes()[16] != b'.' {
                    fail(&mut out, format!("{user}: not a signed key: {value}"));
                }
                if forged {
                    out.forged += 1;
                } else {
                    out.minted += 1;
                    cookies.insert(i, value.to_string());
                    backend[slot] = b;
                }
            }
        }
    }
    out
}

#[test]
#[ignore = "make memory-soak: a million requests, minutes"]
fn vm_memory_does_not_grow_over_a_million_requests() {
    let total = env_u64("DIAL_SOAK_REQUESTS", 1_000_000);
    let users = env_u64("DIAL_SOAK_USERS", 100_000) as usize;
    let max_time = Duration::from_secs(env_u64("DIAL_SOAK_MAX_SECONDS", 1_800));
    let warm_up = total / 10;

    let policy = checkout_with(&[(
        "whenNoKey",
        json!({ "stickyCookie": { "name": COOKIE, "maxAgeSeconds": 2_592_000,
                                  "secret": "soak-secret-0123456789abcdef" } }),
    )]);
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let config = EnvoyConfig::new(&policy, &[("stable", stable.port), ("canary", canary.port)]);
    let envoy = Envoy::start(&config);

    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (done, stop, port) = (done.clone(), stop.clone(), envoy.port);
            let quota =
                total / CONNECTIONS as u64 + u64::from((c as u64) < total % CONNECTIONS as u64);
            thread::spawn(move || drive(port, c, users, quota, &done, &stop))
        })
        .collect();

    // (requests done, seconds, VM memory, Envoy RSS kB)
    let mut samples: Vec<(u64, f64, u64, u64)> = Vec::new();
    let mut warm: Option<(u64, f64, u64, u64)> = None;
    let mut next_report = warm_up;
    let mut timed_out = false;
    while threads.iter().any(|t| !t.is_finished()) {
        thread::sleep(Duration::from_secs(2));
        // The backends need not remember a million requests.
        stable.clear_seen();
        canary.clear_seen();
        let n = done.load(Ordering::Relaxed);
        let sample = (
            n,
            started.elapsed().as_secs_f64(),
            vm_memory(&envoy),
            rss_kb(envoy.pid()),
        );
        if warm.is_none() && n >= warm_up {
            warm = Some(sample);
        }
        if warm.is_some() {
            samples.push(sample);
        }
        if n >= next_report {
            println!(
                "{n} requests in {:.0} s ({:.0}/s): dial_vm_memory_bytes {}, Envoy RSS {} kB",
                sample.1,
                n as f64 / sample.1,
                sample.2,
                sample.3
            );
            next_report += warm_up;
        }
        if started.elapsed() > max_time {
            timed_out = true;
            stop.store(true, Ordering::Relaxed);
        }
    }
    let mut out = Outcome::default();
    for t in threads {
        let o = t.join().unwrap();
        out.requests += o.requests;
        out.failed += o.failed;
        out.failures.extend(o.failures);
        out.minted += o.minted;
        out.forged += o.forged;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The gauge is sampled every 1,024 requests: what the last ones left.
    let end = (
        out.requests,
        elapsed,
        vm_memory(&envoy),
        rss_kb(envoy.pid()),
    );
    samples.push(end);
    let warm = warm.expect("the warm-up ended");
    let peak = samples.iter().map(|s| s.2).max().unwrap_or(0);
    println!(
        "memory soak: {} requests over {} users ({} cookies minted and signed, {} forged cookies re-minted) \
         in {:.0} s ({:.0}/s); dial_vm_memory_bytes after the warm-up ({} requests): {} ({} KiB), \
         at the end: {} ({} KiB), highest after the warm-up: {}; Envoy RSS {} kB -> {} kB",
        out.requests,
        users,
        out.minted,
        out.forged,
        elapsed,
        out.requests as f64 / elapsed,
        warm.0,
        warm.2,
        warm.2 / 1024,
        end.2,
        end.2 / 1024,
        peak,
        warm.3,
        end.3
    );
    assert!(
        !timed_out,
        "stopped after {max_time:?} at {} requests ({:.0}/s): raise DIAL_SOAK_MAX_SECONDS or lower DIAL_SOAK_REQUESTS",
        out.requests,
        out.requests as f64 / elapsed
    );
    assert_eq!(
        out.failed,
        0,
        "failures, the first: {:?}",
        &out.failures[..out.failures.len().min(20)]
    );
    assert_eq!(out.requests, total);
    assert!(warm.2 > 0, "dial_vm_memory_bytes was never reported");
    assert!(
        peak <= warm.2,
        "the VM's memory grew after the warm-up: {} -> {peak}",
        warm.2
    );
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
}
