//! Envoy end to end, two workers (`--concurrency 2`): the policy is reloaded through LDS every
//! 1.25 s while tens of keep-alive connections send continuous traffic of distinct users, for
//! 15 s (`DIAL_RELOAD_SECONDS` for longer: `make reload-soak`). The reloads are cosmetic changes
//! (nobody moves), ramp steps (the canary's share rises: written weights, then a ramp schedule)
//! and bad policies (refused with their JSON path while the running policy serves).
//!
//! Checked request by request: every response is a 2xx, no request fails at the connection level
//! (no reset, no close without a response), every user is where Dial's core puts it under the
//! weights in force (a user's subset changes only across a ramp step, never back from the
//! canary), and each bad policy is refused with its path in the log.
//!
//! Connections do close: a policy change is an in-place filter-chain update in Envoy, which
//! drains the old chain's connections (see docs/envoy.md on LDS reloads). Envoy runs as the
//! docs advise, `--drain-strategy immediate` and a drain time longer than any client leaves
//! its connection idle: every old connection gets `connection: close` on its next response and
//! its client reconnects (counted and reported). A connection Envoy closed without that, found
//! closed before reuse (the check HTTP clients make on a pooled connection), would fail the test
//! as a connection error does. A second test shows what Envoy's default drain does instead.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::policies::{checkout, Core, HOST, PATH};
use support::{bad_policies, free_port, Backend, Client, Envoy, EnvoyConfig};

/// Busy keep-alive connections, each cycling through its own users.
const CONNECTIONS: usize = 24;
const USERS_PER_CONNECTION: usize = 100;
/// Pause between two requests of a busy connection.
const PAUSE: Duration = Duration::from_millis(12);
/// Mostly idle keep-alive connections: one request every `IDLE_PAUSE`.
const IDLE_CONNECTIONS: usize = 4;
const IDLE_USERS: usize = 2;
const IDLE_PAUSE: Duration = Duration::from_millis(2_300);
const RELOAD_EVERY: Duration = Duration::from_millis(1_250);
/// Envoy's drain as docs/envoy.md advises: every connection of the old filter chain is told
/// `connection: close` on its next response, and the drain time (after which Envoy closes what
/// is left of the old chain without a word) is longer than the clients' idle pause.
const DRAIN: [&str; 4] = ["--drain-strategy", "immediate", "--drain-time-s", "5"];
/// After a reload is in force, every connection of the old chain has sent its next request
/// (and got `connection: close`) within the idle pause; from then on, a request must see the new
/// weights.
const SETTLE: Duration = Duration::from_millis(3_500);

/// The weights in force, one policy per ramp step: the example's 90/10; 75/25 written; a ramp
/// to 40%; its next step, 60%. The canary's share only rises.
fn weight_policies() -> Vec<Value> {
    let mut w0 = checkout();
    let mut w1 = checkout();
    w1["releases"][0]["subsets"] = json!([
        { "name": "stable", "version": "v1", "weight": 75 },
        { "name": "canary", "version": "v2", "weight": 25 }
    ]);
    let mut w2 = w1.clone();
    w2["releases"][0]["ramp"] = json!({ "subset": "canary", "start": "2020-01-01T00:00:00Z",
        "steps": [ { "weight": 40 } ] });
    let mut w3 = w1.clone();
    w3["releases"][0]["ramp"] = json!({ "subset": "canary", "start": "2020-01-01T00:00:00Z",
        "steps": [ { "weight": 40, "hold": "1h" }, { "weight": 60 } ] });
    // The example's allowlist names alice and bob; no load user is either.
    for p in [&mut w0, &mut w1, &mut w2, &mut w3] {
        assert_eq!(
            p["releases"][0]["rules"][2]["users"],
            json!(["alice", "bob"])
        );
    }
    vec![w0, w1, w2, w3]
}

/// A cosmetic variant of `policy`: nobody of the load moves (an allowlisted id nobody sends, the
/// sticky cookie's lifetime, the JSON's layout), but it is a new configuration for Envoy.
fn cosmetic(policy: &Value, n: usize) -> String {
    let mut p = policy.clone();
    p["releases"][0]["rules"][2]["users"] = json!(["alice", "bob", format!("cosmetic-{n}")]);
    p["releases"][0]["whenNoKey"]["stickyCookie"]["maxAgeSeconds"] = json!(2_592_000 + n);
    if n.is_multiple_of(2) {
        serde_json::to_string_pretty(&p).unwrap()
    } else {
        p.to_string()
    }
}

#[derive(Clone, Copy, Debug)]
enum Reload {
    Cosmetic,
    Step,
    Bad,
}

/// The reloads of a run of `seconds`: ramp steps at a quarter, half and three quarters of the
/// run, cosmetic changes and bad policies in turn between them.
fn schedule(seconds: u64) -> Vec<(Duration, Reload)> {
    let last = Duration::from_secs(seconds).saturating_sub(Duration::from_millis(500));
    let times: Vec<Duration> = (1..)
        .map(|k| RELOAD_EVERY * k)
        .take_while(|t| *t <= last)
        .collect();
    let n = times.len();
    let steps: Vec<usize> = (1..=3).map(|q| (n * q / 4).max(q) - 1).collect();
    assert!(n >= 6, "a run of {seconds} s is too short for the schedule");
    let mut other = 0;
    times
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = if steps.contains(&i) {
                Reload::Step
            } else {
                other += 1;
                if other % 2 == 1 {
                    Reload::Cosmetic
                } else {
                    Reload::Bad
                }
            };
            (t, kind)
        })
        .collect()
}

/// When each weight policy was written to the LDS file, and when Envoy had it in force.
#[derive(Default)]
struct Timeline {
    written: Vec<Instant>,
    in_force: Vec<Instant>,
}

impl Timeline {
    /// The newest weights a response received at `at` can have been decided under.
    fn newest(&self, at: Instant) -> usize {
        self.written.iter().filter(|w| **w <= at).count().max(1) - 1
    }

    /// The oldest weights a request sent at `at` may still see: older ones' connections are
    /// gone by then.
    fn oldest(&self, at: Instant) -> usize {
        self.in_force
            .iter()
            .filter(|f| **f + SETTLE <= at)
            .count()
            .max(1)
            - 1
    }
}

/// One user as the load saw it.
struct UserTrack {
    name: String,
    /// The subset Dial's core gives the user under each weight policy.
    predicted: Vec<String>,
    /// The weights the user's last response was decided under (the oldest that explains it and
    /// every response before it).
    epoch: usize,
    /// The weights of the user's first response.
    first_epoch: Option<usize>,
    last: Option<String>,
}

#[derive(Default, Debug)]
struct Tally {
    requests: u64,
    non_2xx: Vec<String>,
    errors: Vec<String>,
    /// Responses with `connection: close`: the client reconnects for the next request.
    closed_by_response: u64,
    /// Idle connections found closed by Envoy before reuse.
    closed_while_idle: u64,
    /// Subset changes seen, and those the weights between each user's first and last response
    /// make (a user moves at most once on a ramp up).
    moved: u64,
    expected_moves: u64,
    moved_back: Vec<String>,
    unexplained: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.requests += other.requests;
        self.non_2xx.extend(other.non_2xx);
        self.errors.extend(other.errors);
        self.closed_by_response += other.closed_by_response;
        self.closed_while_idle += other.closed_while_idle;
        self.moved += other.moved;
        self.expected_moves += other.expected_moves;
        self.moved_back.extend(other.moved_back);
        self.unexplained.extend(other.unexplained);
    }
}

/// One keep-alive connection's traffic: its users in turn, `pause` apart, until `stop`.
fn drive(
    port: u16,
    mut users: Vec<UserTrack>,
    pause: Duration,
    idle: bool,
    timeline: &Mutex<Timeline>,
    stop: &AtomicBool,
) -> Tally {
    let mut client = Client::new(port);
    let mut tally = Tally::default();
    let mut turn = 0;
    while !stop.load(Ordering::Relaxed) {
        let count = users.len();
        let user = &mut users[turn % count];
        turn += 1;
        if idle && client.drop_if_closed() {
            tally.closed_while_idle += 1;
        }
        let sent = Instant::now();
        let result = client.try_get(HOST, PATH, &[("x-user-id", &user.name)]);
        let received = Instant::now();
        tally.requests += 1;
        match result {
            Err(e) => tally.errors.push(format!(
                "{} ({}connection): {e}",
                user.name,
                if idle { "idle " } else { "busy " }
            )),
            Ok(r) if r.status / 100 != 2 => {
                tally
                    .non_2xx
                    .push(format!("{}: {} {}", user.name, r.status, r.text()));
            }
            Ok(r) => {
                if r.header("connection") == Some("close") {
                    tally.closed_by_response += 1;
                }
                let got = r.backend().to_string();
                let (oldest, newest) = {
                    let t = timeline.lock().unwrap();
                    (t.oldest(sent), t.newest(received))
                };
                let from = user.epoch.max(oldest);
                match (from..=newest).find(|&j| user.predicted[j] == got) {
                    Some(j) => user.epoch = j,
                    None => {
                        tally.unexplained.push(format!(
                            "{}: answered by {got}, but the weights in force (steps {from}..={newest}) put it on {:?}",
                            user.name,
                            user.predicted.get(from..=newest.max(from)).unwrap_or_default()
                        ));
                        user.epoch = from;
                    }
                }
                user.first_epoch.get_or_insert(user.epoch);
                if let Some(last) = &user.last {
                    if *last != got {
                        tally.moved += 1;
                        if last == "canary" {
                            tally
                                .moved_back
                                .push(format!("{}: canary -> {got}", user.name));
                        }
                    }
                }
                user.last = Some(got);
            }
        }
        thread::sleep(pause);
    }
    for u in &users {
        if let Some(first) = u.first_epoch {
            tally.expected_moves += u64::from(u.predicted[first] != u.predicted[u.epoch]);
        }
    }
    tally
}

fn run_seconds() -> u64 {
    std::env::var("DIAL_RELOAD_SECONDS")
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("DIAL_RELOAD_SECONDS={s:?} is not a whole number"))
        })
        .unwrap_or(15)
}

#[test]
fn reloads_under_load_keep_every_request_and_every_user() {
    let seconds = run_seconds();
    let plan = schedule(seconds);
    let weights = weight_policies();
    let now_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let cores: Vec<Core> = weights.iter().map(|p| Core::new(&p.to_string())).collect();
    let track = |name: String| UserTrack {
        predicted: cores
            .iter()
            .map(|c| c.subset_at(HOST, PATH, &name, now_nanos))
            .collect(),
        name,
        epoch: 0,
        first_epoch: None,
        last: None,
    };
    let busy: Vec<Vec<UserTrack>> = (0..CONNECTIONS)
        .map(|c| {
            (0..USERS_PER_CONNECTION)
                .map(|i| track(format!("c{c}-user-{i}")))
                .collect()
        })
        .collect();
    let idle: Vec<Vec<UserTrack>> = (0..IDLE_CONNECTIONS)
        .map(|c| {
            (0..IDLE_USERS)
                .map(|i| track(format!("idle{c}-user-{i}")))
                .collect()
        })
        .collect();
    // Ramps up only: each step moves users into the canary and none out (the core's promise,
    // which the load then checks Envoy keeps).
    let all_users = || busy.iter().chain(&idle).flatten();
    let predicted_moves = all_users()
        .filter(|u| u.predicted.first() != u.predicted.last())
        .count();
    for u in all_users() {
        for pair in u.predicted.windows(2) {
            assert!(
                !(pair[0] == "canary" && pair[1] == "stable"),
                "{}: {:?}",
                u.name,
                u.predicted
            );
        }
    }

    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let mut config = EnvoyConfig::new(
        &weights[0].to_string(),
        &[("stable", stable.port), ("canary", canary.port)],
    );
    config.port = free_port();
    let (envoy, lds) = Envoy::start_lds_with(&config, 2, &DRAIN);

    let timeline = Arc::new(Mutex::new(Timeline::default()));
    {
        let mut t = timeline.lock().unwrap();
        t.written.push(Instant::now());
        t.in_force.push(Instant::now());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let loaders: Vec<_> = busy
        .into_iter()
        .map(|users| (users, PAUSE, false))
        .chain(idle.into_iter().map(|users| (users, IDLE_PAUSE, true)))
        .map(|(users, pause, is_idle)| {
            let (timeline, stop, port) = (timeline.clone(), stop.clone(), envoy.port);
            thread::spawn(move || drive(port, users, pause, is_idle, &timeline, &stop))
        })
        .collect();

    let bad_cases = bad_policies::cases();
    let (mut step, mut cosmetics, mut bads) = (0, 0, 0);
    let mut refused_without_path = Vec::new();
    let mut slowest_reload = Duration::ZERO;
    for (at, kind) in &plan {
        if let Some(wait) = at.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
        let began = Instant::now();
        match kind {
            Reload::Cosmetic => {
                cosmetics += 1;
                config.policy = cosmetic(&weights[step], cosmetics);
                envoy.reload_lds(&lds, &config.lds_file(), true);
            }
            Reload::Step => {
                step += 1;
                config.policy = weights[step].to_string();
                timeline.lock().unwrap().written.push(Instant::now());
                envoy.reload_lds(&lds, &config.lds_file(), true);
                timeline.lock().unwrap().in_force.push(Instant::now());
            }
            Reload::Bad => {
                let (name, policy, error) = &bad_cases[(bads * 13) % bad_cases.len()];
                bads += 1;
                let mut bad = config.clone();
                bad.policy = policy.clone();
                envoy.reload_lds(&lds, &bad.lds_file(), false);
                let log = envoy.log();
                if !log
                    .lines()
                    .any(|l| l.contains("dial: policy rejected") && l.contains(error.as_str()))
                {
                    refused_without_path.push(format!("{name}: no log line with {error:?}"));
                }
            }
        }
        slowest_reload = slowest_reload.max(began.elapsed());
        // Long runs: the backends need not remember every request.
        stable.clear_seen();
        canary.clear_seen();
    }
    // The last weights hold to the end of the run.
    if let Some(wait) = Duration::from_secs(seconds).checked_sub(started.elapsed()) {
        thread::sleep(wait);
    }
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for t in loaders {
        tally.add(t.join().unwrap());
    }
    let elapsed = started.elapsed();

    let accepted = (cosmetics + step) as u64;
    let in_place = envoy.stat("listener_manager.listener_in_place_updated");
    let metrics = envoy.prometheus();
    let counter = |name| support::prometheus::value(&metrics, name, &[]);
    println!(
        "reload under load: {:.1} s, {} requests ({:.0}/s) on {} busy and {} idle keep-alive connections, {} users; \
         {} reloads ({} cosmetic, {} ramp steps to 60%, {} bad), slowest {:?}; \
         non-2xx {}, connection errors {}; connections closed by Envoy's drain: {} with `connection: close` on a response, \
         {} without it (found closed before reuse); in-place filter-chain updates {}; \
         users moved {} (as the core predicts for the steps each user saw: {}; over the whole ramp {}), moved back {}, unexplained moves {}",
        elapsed.as_secs_f64(),
        tally.requests,
        tally.requests as f64 / elapsed.as_secs_f64(),
        CONNECTIONS,
        IDLE_CONNECTIONS,
        CONNECTIONS * USERS_PER_CONNECTION + IDLE_CONNECTIONS * IDLE_USERS,
        plan.len(),
        cosmetics,
        step,
        bads,
        slowest_reload,
        tally.non_2xx.len(),
        tally.errors.len(),
        tally.closed_by_response,
        tally.closed_while_idle,
        in_place,
        tally.moved,
        tally.expected_moves,
        predicted_moves,
        tally.moved_back.len(),
        tally.unexplained.len(),
    );

    let first = |v: &[String]| v.iter().take(10).cloned().collect::<Vec<_>>();
    assert!(
        tally.non_2xx.is_empty(),
        "non-2xx: {:?}",
        first(&tally.non_2xx)
    );
    assert!(
        tally.errors.is_empty(),
        "connection errors: {:?}",
        first(&tally.errors)
    );
    assert_eq!(
        tally.closed_while_idle, 0,
        "Envoy closed idle connections without `connection: close`"
    );
    // The old chains' connections were closed, by `connection: close`: at least the busy ones,
    // once per accepted reload.
    assert!(tally.closed_by_response >= accepted * CONNECTIONS as u64);
    assert!(
        tally.unexplained.is_empty(),
        "users whose subset changed while the weights did not: {:?}",
        first(&tally.unexplained)
    );
    assert!(
        tally.moved_back.is_empty(),
        "canary users moved back: {:?}",
        first(&tally.moved_back)
    );
    assert!(refused_without_path.is_empty(), "{refused_without_path:?}");
    assert_eq!(step, 3);
    // Every user the steps moved while it was being watched was seen to move, once.
    assert_eq!(tally.moved, tally.expected_moves);
    assert_eq!(
        envoy.stat("listener_manager.lds.update_rejected"),
        bads as u64
    );
    assert_eq!(counter("dial_policy_rejections_total"), Some(bads as f64));
    assert_eq!(
        counter("dial_policy_loads_total"),
        Some((1 + accepted) as f64)
    );
    // Each accepted policy replaced the filter chain in place (the listener stayed).
    assert_eq!(in_place, accepted);
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
}

/// What Envoy's drain does to the keep-alive connections of the old filter chain when a policy
/// changes through LDS, the listener itself unchanged (docs/envoy.md's note): with the default
/// `--drain-strategy gradual` and a one-second drain time, no connection is told to close and
/// Envoy closes every one at the end of the drain, whatever its client was doing (a request
/// sent then gets no response); with `--drain-strategy immediate`, each gets `connection: close`
/// on its next response, and none is closed under its client.
#[test]
fn envoy_default_drain_closes_keep_alive_connections_without_a_word() {
    for (strategy, extra) in [
        ("gradual (default)", &[][..]),
        ("immediate", &["--drain-strategy", "immediate"][..]),
    ] {
        let stable = Backend::start("stable");
        let canary = Backend::start("canary");
        let weights = weight_policies();
        let mut config = EnvoyConfig::new(
            &weights[0].to_string(),
            &[("stable", stable.port), ("canary", canary.port)],
        );
        config.port = free_port();
        let (envoy, lds) = Envoy::start_lds_with(&config, 2, extra);
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..8)
            .map(|c| {
                let (stop, port) = (stop.clone(), envoy.port);
                thread::spawn(move || {
                    let mut client = Client::new(port);
                    // (told to close at, closed without a word at: found closed before
                    // reuse, or a request that got no response)
                    let mut events: Vec<(Option<Instant>, Option<Instant>)> = Vec::new();
                    let mut lost = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if client.drop_if_closed() {
                            events.push((None, Some(Instant::now())));
                        }
                        match client.try_get(HOST, PATH, &[("x-user-id", &format!("drain-{c}"))]) {
                            Ok(r) => {
                                assert_eq!(r.status, 200);
                                if r.header("connection") == Some("close") {
                                    events.push((Some(Instant::now()), None));
                                }
                            }
                            Err(_) => {
                                lost += 1;
                                events.push((None, Some(Instant::now())));
                            }
                        }
                        thread::sleep(PAUSE);
                    }
                    (events, lost)
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(500));
        config.policy = cosmetic(&weights[0], 1);
        let reloaded = Instant::now();
        envoy.reload_lds(&lds, &config.lds_file(), true);
        // The drain time (1 s) and then some.
        thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let (events, lost_per_connection): (Vec<Vec<_>>, Vec<u32>) =
            threads.into_iter().map(|t| t.join().unwrap()).unzip();
        let lost: u32 = lost_per_connection.iter().sum();
        let told: Vec<Duration> = events
            .iter()
            .flatten()
            .filter_map(|(t, _)| Some(t.as_ref()?.duration_since(reloaded)))
            .collect();
        let found: Vec<Duration> = events
            .iter()
            .flatten()
            .filter_map(|(_, f)| Some(f.as_ref()?.duration_since(reloaded)))
            .collect();
        println!(
            "drain {strategy}, 8 busy keep-alive connections, one policy reload: \
             {} told `connection: close` (after {:?}), {} closed by Envoy without it (after {:?}; \
             {} of them with a request on its way, which got no response)",
            told.len(),
            told,
            found.len(),
            found,
            lost
        );
        assert_eq!(envoy.stat("listener_manager.listener_in_place_updated"), 1);
        // A lost request is one sent on a connection Envoy closed without a word (and is one
        // of `found` too). Each client connection is closed so at most once: the drain closes
        // the old chain's connections, and the one the client opens next is the new chain's,
        // which is not draining. So: at most one lost request per connection with the default
        // drain (whether a request was on its way at the drain's end is timing, so may be
        // none), and none at all with `immediate`, which closes no connection under its client.
        if extra.is_empty() {
            assert!(
                lost_per_connection.iter().all(|n| *n <= 1),
                "{strategy}: lost requests per connection {lost_per_connection:?}"
            );
        } else {
            assert_eq!(lost, 0, "{strategy}: {lost_per_connection:?}");
        }
        if extra.is_empty() {
            assert!(told.is_empty(), "{strategy}: {told:?}");
            assert_eq!(found.len(), 8, "{strategy}: {found:?}");
            assert!(
                found.iter().all(|f| *f >= Duration::from_millis(900)),
                "{strategy}: closed before the drain's end: {found:?}"
            );
        } else {
            assert!(found.is_empty(), "{strategy}: {found:?}");
            assert_eq!(told.len(), 8, "{strategy}: {told:?}");
            assert!(
                told.iter().all(|t| *t < Duration::from_millis(500)),
                "{strategy}: {told:?}"
            );
        }
    }
}
