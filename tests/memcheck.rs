//! `make memcheck`: the native build's `unsafe`, checked at run time. Every pointer Dial hands
//! Envoy or reads back crosses `src/dynamic_module/abi.rs`; here real Envoy 1.40 runs the
//! native module under valgrind's memcheck through a bounded run of the end-to-end traffic
//! kinds: routing by header, cookie, rule, allowlist, override and sticky cookie; hostile
//! headers (huge values, many headers, non-UTF-8 bytes, client-sent Dial headers); policy
//! reloads over LDS (accepted and refused); a guard tripping on a canary that answers 500; and
//! panics caught (the panic-probe build).
//!
//! Two Envoys run side by side: the shipped build (`target/native/libdial.so`, optimized, as
//! Envoy loads it in production) with every kind but the panics, and the panic probe (the same
//! binding unoptimized with symbols, `make panic-probe`: memcheck's reports are exact there, and
//! only it can panic on request) with routing, hostile headers and panics. Each runs the same
//! round three times; valgrind's leak summary is read after each round (through vgdb, while
//! Envoy runs, once it has dropped the filter configurations the round replaced), and the run
//! must leave:
//!
//! - no memcheck error (invalid read, write or free, use of an uninitialised value, a bad
//!   syscall argument...) with a `libdial.so` frame in any of its stacks (where it happened,
//!   where the block was allocated or freed); Envoy's own errors are counted, not judged;
//! - no lost memory that grows with the requests: definitely and indirectly lost bytes the
//!   same after the second and third rounds as after the first (the warm-up), possibly lost
//!   (blocks reached only through an interior pointer, as an `Arc`'s) too;
//! - no leak with a `libdial.so` frame when Envoy exits (SIGTERM, so valgrind writes it).
//!
//! memcheck sees the allocations of Dial (its `malloc`, `realloc`, `free` and
//! `posix_memalign` resolve to the ones Envoy's executable exports, tcmalloc's) only with
//! `--soname-synonyms=somalloc=NONE`, which makes it replace the allocator in the executable
//! itself. Envoy's C++ `new` is not exported by its stripped binary and stays tcmalloc's: its
//! header maps are addressable memory to memcheck, not blocks with bounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::policies::{checkout, checkout_with, Core, HOST, PATH};
use support::{free_port, scratch_dir, Backend, Build, Client, Envoy, EnvoyConfig};

const ROUNDS: usize = 3;
/// Signed-in users routed by header each round (and as many by cookie).
const USERS: usize = 20;
/// Panics each round (the probe build).
const PANICS: usize = 10;

/// valgrind's command line, writing its XML report to `xml`.
fn memcheck(xml: &Path, log: &Path) -> Vec<String> {
    [
        "valgrind",
        "--tool=memcheck",
        // Replace the allocator in the executable (Envoy's tcmalloc), which Dial's calls reach.
        "--soname-synonyms=somalloc=NONE",
        // Envoy's frames run deep before the hook that called Dial's.
        "--num-callers=40",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect,possible",
        "--xml=yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--xml-file={}", xml.display()),
        format!("--log-file={}", log.display()),
    ])
    .collect()
}

/// Requests sent, per kind.
#[derive(Default, Debug, Clone)]
struct Sent(BTreeMap<&'static str, usize>);

impl Sent {
    fn add(&mut self, kind: &'static str, n: usize) {
        *self.0.entry(kind).or_default() += n;
    }

    fn total(&self) -> usize {
        self.0.values().sum()
    }
}

/// valgrind's leak summary at one point: bytes definitely, indirectly, possibly lost, and still
/// reachable (blocks memcheck tracks: Dial's and Envoy's `malloc`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leaks {
    definitely: u64,
    indirectly: u64,
    possibly: u64,
    reachable: u64,
}

/// Whether a loss record of vgdb's text names a frame of Dial's: the module by name for a
/// stripped build, Dial's own functions for one with symbols.
fn dial_record(record: &str) -> bool {
    record.contains("/libdial.so)") || record.contains(": dial::") || record.contains("<dial::")
}

/// The loss records of a `leak_check full` answer (each from its header line to its last frame).
fn records(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let body = line.split_once("== ").map_or(line, |(_, b)| b);
        if body.contains(" in loss record ") {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut() {
            if !body.trim().is_empty() {
                last.push_str(body);
                last.push('\n');
            }
        }
    }
    out
}

/// The leak summary now, and the loss records with a frame of Dial's that grew since the last
/// leak check (valgrind's `increased`: blocks still reachable included).
fn leak_point(pid: u32) -> (Leaks, Vec<String>) {
    let out = Command::new("vgdb")
        .args([
            &format!("--pid={pid}"),
            "leak_check",
            "full",
            "reachable",
            "increased",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run vgdb (valgrind's): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes = |what: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                l.split_once(&format!("{what}: "))?
                    .1
                    .split_whitespace()
                    .next()
            })
            .and_then(|n| n.replace(',', "").parse().ok())
            .unwrap_or_else(|| panic!("no `{what}` in vgdb's leak summary:\n{text}"))
    };
    let leaks = Leaks {
        definitely: bytes("definitely lost"),
        indirectly: bytes("indirectly lost"),
        possibly: bytes("possibly lost"),
        reachable: bytes("still reachable"),
    };
    let grew = records(&text)
        .into_iter()
        .filter(|r| dial_record(r))
        .collect();
    (leaks, grew)
}

/// How many of the heap blocks memcheck tracks were allocated by Dial (a frame in libdial.so:
/// by name for a stripped build, by Dial's own functions for one with symbols): none would mean
/// memcheck does not see Dial's allocations at all.
fn dial_blocks(pid: u32) -> usize {
    let out = Command::new("vgdb")
        .args([
            &format!("--pid={pid}"),
            "leak_check",
            "full",
            "reachable",
            "any",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run vgdb (valgrind's): {e}"));
    records(&String::from_utf8_lossy(&out.stdout))
        .iter()
        .filter(|r| dial_record(r))
        .count()
}

/// One error of valgrind's XML report: its kind, what it says, and every object of its stacks.
#[derive(Debug)]
struct VgError {
    kind: String,
    what: String,
    objects: Vec<String>,
    functions: Vec<String>,
    leaked_bytes: u64,
}

impl VgError {
    fn in_dial(&self) -> bool {
        self.objects.iter().any(|o| o.ends_with("/libdial.so"))
    }

    fn is_leak(&self) -> bool {
        self.kind.starts_with("Leak_")
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    text.split(open)
        .skip(1)
        .filter_map(|s| s.split_once(close).map(|(inside, _)| inside))
        .collect()
}

fn parse_errors(xml: &str) -> Vec<VgError> {
    between(xml, "<error>", "</error>")
        .into_iter()
        .map(|e| VgError {
            kind: between(e, "<kind>", "</kind>")
                .first()
                .unwrap_or(&"")
                .to_string(),
            what: between(e, "<text>", "</text>")
                .first()
                .or(between(e, "<what>", "</what>").first())
                .unwrap_or(&"")
                .to_string(),
            objects: between(e, "<obj>", "</obj>")
                .into_iter()
                .map(str::to_string)
                .collect(),
            functions: between(e, "<fn>", "</fn>")
                .into_iter()
                .map(str::to_string)
                .collect(),
            leaked_bytes: between(e, "<leakedbytes>", "</leakedbytes>")
                .first()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        })
        .collect()
}

/// The guard policy of round `round`: the example's, with a guard that trips on a 5% error
/// rate over 20 requests in 2 s. Each round's differs (`minRequests`), so each is a new policy
/// whose guard starts untripped (a trip is kept for the same policy across a reload).
fn guarded(round: usize) -> String {
    checkout_with(&[(
        "guard",
        json!({ "subset": "canary", "fallback": "stable", "window": "2s",
                "minRequests": 20 + round, "maxErrorRate": 0.05 }),
    )])
}

/// The second policy a round reloads: half and half, no guard.
fn halves() -> String {
    let mut doc = checkout();
    doc["releases"][0]["subsets"][0]["weight"] = json!(50);
    doc["releases"][0]["subsets"][1]["weight"] = json!(50);
    doc.to_string()
}

/// A policy Dial refuses (Envoy keeps the running one).
fn refused() -> String {
    checkout_with(&[(
        "subsets",
        json!([{ "name": "stable", "version": "v1", "weight": -5 }]),
    )])
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn assignment(r: &support::http::Response) -> String {
    r.header("x-dial-assignment").unwrap_or("").to_string()
}

/// Signed-in users by header and by cookie, each where the core puts them; the rules, the
/// allowlist, a trusted override, an anonymous user's sticky cookie, a write.
fn routing(c: &mut Client, policy: &str, round: usize, sent: &mut Sent) {
    let core = Core::new(policy);
    for i in 0..USERS {
        let user = format!("user-{round}-{i}");
        let want = core.subset_at(HOST, PATH, &user, now());
        let r = c.get(HOST, PATH, &[("x-user-id", &user)]);
        assert_eq!((r.status, r.backend()), (200, want.as_str()), "{user}");
        let r = c.get(
            HOST,
            PATH,
            &[("cookie", &format!("theme=dark; uid={user}"))],
        );
        assert_eq!((r.status, r.backend()), (200, want.as_str()), "{user}");
    }
    sent.add("routing by header and cookie (hash)", 2 * USERS);
    for (headers, reason) in [
        (vec![("x-user-id", "u"), ("x-beta", "true")], "header_rule"),
        (vec![("cookie", "a=1; beta=1; uid=u")], "cookie_rule"),
        (vec![("x-user-id", "alice")], "allowlist"),
        (
            vec![
                ("x-user-id", "u"),
                ("x-dial-override", "canary; token=qa-token-0123456789"),
            ],
            "override",
        ),
    ] {
        let r = c.get(HOST, PATH, &headers);
        assert_eq!(r.backend(), "canary", "{headers:?}");
        assert!(
            assignment(&r).ends_with(&format!("reason={reason}")),
            "{headers:?}: {}",
            assignment(&r)
        );
    }
    let first = c.get(HOST, PATH, &[]);
    let cookie = first
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no sticky cookie: {first:?}"))
        .to_string();
    let again = c.get(HOST, PATH, &[("cookie", &cookie)]);
    assert_eq!(again.backend(), first.backend());
    assert!(assignment(&again).ends_with("reason=sticky_cookie"));
    let r = c.send("POST", HOST, PATH, [("x-user-id", &b"alice"[..])], b"{}");
    assert_eq!(r.backend(), "canary");
    sent.add(
        "routing by rule, allowlist, override, sticky cookie, POST",
        7,
    );
}

/// Requests built to break a parser: every one is answered and assigned.
fn hostile(c: &mut Client, sent: &mut Sent) {
    let huge_cookie = format!("uid={}; beta=0", "x".repeat(50_000));
    let huge_key = "k".repeat(30_000);
    let many: Vec<(String, Vec<u8>)> = (0..90)
        .map(|i| (format!("x-filler-{i}"), vec![b'v'; 100]))
        .collect();
    let many: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .chain([("x-user-id", &b"many"[..])])
        .collect();
    let hostile: Vec<Vec<(&str, &[u8])>> = vec![
        vec![("cookie", huge_cookie.as_bytes())],
        vec![("x-user-id", huge_key.as_bytes())],
        many,
        vec![("x-user-id", b"\xff\xfe\x80 caf\xc3")],
        vec![("cookie", b"uid=\xff\xff; beta=\x80")],
        vec![("x-user-id", b"")],
        vec![
            ("x-user-id", b"a"),
            ("x-user-id", b"b"),
            ("x-user-id", b"c"),
        ],
        vec![("cookie", b";;;==;=;"), ("cookie", b"\"\"")],
        vec![("x-dial-override", b"\xff; token=\xfe")],
        vec![("x-beta", b"true\xff")],
        vec![("cookie", b"dial-checkout=\xff\xfe\x7e; uid=")],
        // Client-sent Dial headers: removed, never steering.
        vec![
            ("x-user-id", b"bob-not-allowlisted"),
            ("x-dial-subset", b"canary"),
            ("x-dial-mirror", b"1"),
            ("x-dial-version", b"v9"),
            ("x-dial-assignment", b"release=checkout; subset=canary"),
        ],
        vec![("x-dial-subset", b"\xff\xfe"), ("x-dial-subset", b"canary")],
    ];
    for headers in &hostile {
        let r = c.send("GET", HOST, PATH, headers.iter().copied(), b"");
        assert_eq!(r.status, 200, "{:?}", headers.first());
        assert!(
            !assignment(&r).is_empty(),
            "not assigned: {:?}",
            headers.first()
        );
    }
    sent.add("hostile headers", hostile.len());
}

/// The canary answers 500 until the guard pulls it back (bounded); then healthy again.
fn guard_trip(c: &mut Client, canary: &Backend, policy: &str, round: usize, sent: &mut Sent) {
    let core = Core::new(policy);
    let canary_users = core.users_on(HOST, PATH, "canary", 40);
    let stable_users = core.users_on(HOST, PATH, "stable", 40);
    canary.set_status(500);
    let mut tripped = false;
    let mut n = 0;
    while !tripped && n < 600 {
        let r = c.get(HOST, PATH, &[("x-user-id", &canary_users[n % 40])]);
        tripped = assignment(&r).ends_with("reason=guardrail");
        c.get(HOST, PATH, &[("x-user-id", &stable_users[n % 40])]);
        n += 1;
    }
    canary.set_status(200);
    assert!(
        tripped,
        "round {round}: the guard did not trip in {} requests",
        2 * n
    );
    sent.add("guard trips (canary answering 500)", 2 * n);
}

/// The probe build panics on `x-dial-panic-probe`: each request passes unsteered, the next is
/// steered again.
fn panics(c: &mut Client, sent: &mut Sent) {
    for i in 0..PANICS {
        let r = c.get(
            HOST,
            PATH,
            &[
                ("x-user-id", "alice"),
                ("x-dial-subset", "canary"),
                ("x-dial-panic-probe", &format!("memcheck {i}")),
            ],
        );
        assert_eq!((r.status, r.backend()), (200, "stable"), "{i}");
        let r = c.get(HOST, PATH, &[("x-user-id", "alice")]);
        assert_eq!(r.backend(), "canary", "{i}");
    }
    sent.add("panics caught (and the request after each)", 2 * PANICS);
}

/// Waits until Envoy has let go of every replaced filter configuration, so a snapshot counts
/// only the one in force. A reload that changes only the filter chains (the policy) is an
/// in-place update: the listener is not replaced (`total_listeners_draining` stays 0), its old
/// filter chain drains (`--drain-time-s`), then the workers remove it and the main thread
/// drops it, with its HTTP filter configurations (Dial's `config_destroy`), in the same step
/// that brings `total_filter_chains_draining` down. Before that, under load, the old
/// configuration is still alive at the snapshot and looks like one leaked per reload.
fn drained(envoy: &Envoy, label: &str) {
    const GAUGES: [&str; 2] = [
        "listener_manager.total_listeners_draining",
        "listener_manager.total_filter_chains_draining",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Both read from one answer, and only a gauge that is there counts: an admin API slow
        // to answer under valgrind is no drained listener (`Envoy::stat` would say 0).
        let text = envoy
            .admin_get(
                "/stats?filter=^listener_manager\\.total_(listeners|filter_chains)_draining$",
            )
            .unwrap_or_default();
        let draining = GAUGES.map(|gauge| {
            text.lines().find_map(|l| {
                l.strip_prefix(&format!("{gauge}: "))?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        });
        if draining == [Some(0), Some(0)] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: still draining after 60 s (listeners, filter chains): {draining:?}; /stats said:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One Envoy under memcheck, its rounds, and what valgrind found.
struct Outcome {
    label: &'static str,
    sent: Sent,
    reloads: usize,
    leaks: Vec<Leaks>,
    /// Per round, the loss records with a frame of Dial's that grew in it.
    dial_grew: Vec<Vec<String>>,
    errors: Vec<VgError>,
    panic_lines: usize,
    /// Heap blocks of Dial's that memcheck tracked at the end.
    dial_blocks: usize,
    seconds: f64,
}

fn session(label: &'static str, module: PathBuf, probe: bool) -> Outcome {
    let started = Instant::now();
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let mut config = EnvoyConfig::for_build(
        Build::Native,
        &guarded(0),
        &[("stable", stable.port), ("canary", canary.port)],
    );
    config.module = Some(module);
    config.port = free_port();
    let dir = scratch_dir(&format!("memcheck-{label}"));
    let lds = dir.join("lds.yaml");
    std::fs::write(&lds, config.lds_file()).unwrap();
    let (xml, log) = (dir.join("memcheck.xml"), dir.join("valgrind.log"));
    let envoy = Envoy::start_yaml_under(
        &format!("memcheck-{label}-envoy"),
        &config.bootstrap_lds(&lds),
        &memcheck(&xml, &log),
    );
    let mut sent = Sent::default();
    let mut leaks = Vec::new();
    let mut dial_grew = Vec::new();
    let mut reloads = 0;
    let mut c = Client::new(envoy.port);
    for round in 0..ROUNDS {
        let policy = guarded(round);
        if round > 0 && !probe {
            config.policy = policy.clone();
            envoy.reload_lds(&lds, &config.lds_file(), true);
            reloads += 1;
            // A keep-alive connection stays with the listener it was accepted by.
            c = Client::new(envoy.port);
        }
        routing(&mut c, &policy, round, &mut sent);
        hostile(&mut c, &mut sent);
        if probe {
            panics(&mut c, &mut sent);
        } else {
            guard_trip(&mut c, &canary, &policy, round, &mut sent);
            config.policy = halves();
            envoy.reload_lds(&lds, &config.lds_file(), true);
            c = Client::new(envoy.port);
            routing(&mut c, &halves(), round, &mut sent);
            let mut bad = config.clone();
            bad.policy = refused();
            envoy.reload_lds(&lds, &bad.lds_file(), false);
            routing(&mut c, &halves(), round + ROUNDS, &mut sent);
            reloads += 2;
        }
        drained(&envoy, label);
        let (point, grew) = leak_point(envoy.pid());
        leaks.push(point);
        dial_grew.push(grew);
    }
    let dial_blocks = dial_blocks(envoy.pid());
    let panic_lines = envoy.log().matches("dial: panicked at ").count();
    // SIGTERM: Envoy exits cleanly and valgrind writes its exit leak check and closes the XML.
    let pid = envoy.pid();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(120);
    let report = loop {
        let text = std::fs::read_to_string(&xml).unwrap_or_default();
        if text.trim_end().ends_with("</valgrindoutput>") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: valgrind did not finish its report; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(envoy);
    let errors = parse_errors(&report);
    // Kept for reading when the test fails.
    let kept = support::repo_root().join(format!("target/memcheck-{label}.xml"));
    std::fs::copy(&xml, &kept).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Outcome {
        label,
        sent,
        reloads,
        leaks,
        dial_grew,
        errors,
        panic_lines,
        dial_blocks,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn valgrind_installed() {
    let ok = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "valgrind is required: `make memcheck` installs it (make bench-tools)"
    );
}

#[test]
#[ignore = "a minute under valgrind: `make memcheck`"]
fn the_native_build_is_clean_under_memcheck() {
    valgrind_installed();
    let started = Instant::now();
    let shipped = std::thread::spawn(|| session("shipped", support::native_module_path(), false));
    let probe = session("probe", support::native_panic_probe_module(), true);
    let shipped = shipped.join().unwrap();
    let mut failures = Vec::new();
    for o in [&shipped, &probe] {
        println!(
            "memcheck [{}]: {} requests in {:.0} s, {} reloads",
            o.label,
            o.sent.total(),
            o.seconds,
            o.reloads
        );
        for (kind, n) in &o.sent.0 {
            println!("  {n:>5}  {kind}");
        }
        println!(
            "  heap blocks allocated by Dial that memcheck tracks: {}",
            o.dial_blocks
        );
        if o.dial_blocks == 0 {
            failures.push(format!(
                "{}: memcheck tracked none of Dial's allocations",
                o.label
            ));
        }
        for (round, l) in o.leaks.iter().enumerate() {
            println!(
                "  after round {}: definitely lost {} B, indirectly {} B, possibly {} B, still reachable {} B; Dial's records that grew: {}",
                round + 1,
                l.definitely,
                l.indirectly,
                l.possibly,
                l.reachable,
                o.dial_grew[round].len()
            );
            if round > 0 {
                for r in &o.dial_grew[round] {
                    let frames: Vec<&str> = r.lines().take(10).collect();
                    println!("    grew: {}", frames.join(" / "));
                }
            }
        }
        let mut kinds: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for e in &o.errors {
            let k = kinds.entry(&e.kind).or_default();
            k.0 += 1;
            k.1 += usize::from(e.in_dial());
        }
        for (kind, (all, dial)) in &kinds {
            println!("  {kind}: {all} error(s), {dial} with a libdial.so frame");
        }
        let dial_errors: Vec<&VgError> = o
            .errors
            .iter()
            .filter(|e| e.in_dial() && !e.is_leak())
            .collect();
        let dial_leaks: Vec<&VgError> = o
            .errors
            .iter()
            .filter(|e| e.in_dial() && e.is_leak())
            .collect();
        println!(
            "  errors with a libdial.so frame: {}; leaked at exit with a libdial.so frame: {} B in {} record(s); errors elsewhere (Envoy's own): {}",
            dial_errors.len(),
            dial_leaks.iter().map(|e| e.leaked_bytes).sum::<u64>(),
            dial_leaks.len(),
            o.errors.iter().filter(|e| !e.in_dial()).count()
        );
        for e in dial_errors.iter().chain(&dial_leaks) {
            failures.push(format!(
                "{}: {} {} (functions: {:?})",
                o.label,
                e.kind,
                e.what,
                &e.functions[..e.functions.len().min(12)]
            ));
        }
        // The last round repeats the one before it, with the same policy in force at both
        // points: nothing of Dial's may have grown in it.
        for r in o.dial_grew.last().unwrap() {
            failures.push(format!(
                "{}: a block of Dial's grew in the last round: {}",
                o.label,
                r.lines().take(8).collect::<Vec<_>>().join(" / ")
            ));
        }
        let first = o.leaks[0];
        for (round, l) in o.leaks.iter().enumerate().skip(1) {
            if (l.definitely, l.indirectly) != (first.definitely, first.indirectly) {
                failures.push(format!(
                    "{}: lost memory grew from round 1 to round {}: {first:?} -> {l:?}",
                    o.label,
                    round + 1
                ));
            }
        }
    }
    // Not vacuous: the probe's panics happened and were caught, and valgrind saw Dial's module.
    assert_eq!(probe.panic_lines, ROUNDS * PANICS, "panics logged");
    println!(
        "memcheck: {} requests, {} panics caught, {} reloads, in {:.0} s",
        shipped.sent.total() + probe.sent.total(),
        probe.panic_lines,
        shipped.reloads + probe.reloads,
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "memcheck found:\n{}",
        failures.join("\n")
    );
}

/// The judging itself, on valgrind's XML and vgdb's text: an error with a libdial.so frame in
/// any of its stacks (where it happened, or where the block was freed) is Dial's, one in
/// Envoy's frames only is not; a loss record is Dial's by its module or its functions.
#[test]
fn errors_and_records_are_attributed_by_their_frames() {
    let frame =
        |obj: &str, f: &str| format!("<frame><ip>0x1</ip><obj>{obj}</obj><fn>{f}</fn></frame>");
    let envoy = frame("/venv/envoy/_bin/envoy", "");
    let dial = frame(
        "/repo/target/native/libdial.so",
        "envoy_dynamic_module_on_http_filter_request_headers",
    );
    let xml = format!(
        "<valgrindoutput><error><kind>InvalidRead</kind><what>Invalid read of size 8</what>\
         <stack>{envoy}{envoy}</stack><auxwhat>Address is 0 bytes inside a block freed</auxwhat>\
         <stack>{envoy}{dial}</stack></error>\
         <error><kind>UninitCondition</kind><what>Conditional jump</what><stack>{envoy}</stack></error>\
         <error><kind>Leak_DefinitelyLost</kind><xwhat><text>8 bytes lost</text>\
         <leakedbytes>8</leakedbytes></xwhat><stack>{dial}</stack></error></valgrindoutput>"
    );
    let errors = parse_errors(&xml);
    let judged: Vec<(&str, bool, bool, u64)> = errors
        .iter()
        .map(|e| (e.kind.as_str(), e.in_dial(), e.is_leak(), e.leaked_bytes))
        .collect();
    assert_eq!(
        judged,
        [
            ("InvalidRead", true, false, 0),
            ("UninitCondition", false, false, 0),
            ("Leak_DefinitelyLost", true, true, 8)
        ]
    );
    assert_eq!(errors[2].what, "8 bytes lost");
    let text = "==1== 16 (+16) bytes in 1 (+1) blocks are still reachable in loss record 2 of 9\n\
                ==1==    at 0x1: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)\n\
                ==1==    by 0x2: ??? (in /repo/target/native/libdial.so)\n\
                ==1== \n\
                ==1== 8 bytes in 1 blocks are possibly lost in loss record 3 of 9\n\
                ==1==    at 0x1: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)\n\
                ==1==    by 0x3: ??? (in /venv/envoy/_bin/envoy)\n\
                ==1== \n\
                ==1== 4 bytes in 1 blocks are possibly lost in loss record 4 of 9\n\
                ==1==    by 0x4: dial::core::policy::Policy::parse (mod.rs:124)\n";
    let judged: Vec<bool> = records(text).iter().map(|r| dial_record(r)).collect();
    assert_eq!(judged, [true, false, true]);
}
