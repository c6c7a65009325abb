//! The VM's tick, natively: guards judged over the whole proxy's counters, a trip shared with
//! every VM through shared data and counted once, and the weight and guard gauges. Two
//! `Runtime`s on one recording host stand for two workers of one Envoy: the host's counters
//! and shared data are process-wide, as Envoy's are. The fleet verdict's part of the tick too:
//! the election of the worker that asks, the query in flight, and what an answer may do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dial::core::decide::{decide, Decision, Reason};
use dial::core::exchange::Engine;
use dial::core::fleet::Failure;
use dial::core::recording::RecordingHost;
use dial::core::request::HeaderList;
use dial::core::runtime::{Answer, FleetQuery, Runtime, Shared};
use dial::core::stats::tagged;
use serde_json::{json, Value};

const CHECKOUT: &str = include_str!("data/checkout.json");
const T0: u64 = 1_796_115_600_000_000_000; // 2026-12-01T09:00:00Z
const SECOND: u64 = 1_000_000_000;

fn engine(release: Value) -> Engine {
    let mut doc: Value = serde_json::from_str(CHECKOUT).unwrap();
    for (k, v) in release.as_object().unwrap() {
        doc["releases"][0][k] = v.clone();
    }
    Engine::from_config(doc.to_string().as_bytes()).unwrap()
}

fn guarded() -> Engine {
    engine(json!({
        "guard": { "subset": "canary", "fallback": "stable", "window": "10s", "minRequests": 20,
                   "maxErrorRate": 0.05, "maxSlowRate": { "overMs": 800, "rate": 0.01 } }
    }))
}

fn shared(fingerprint: &[u8]) -> Shared {
    Shared {
        prefix: "dial.test".into(),
        fingerprint: fingerprint.to_vec(),
    }
}

/// One whole exchange of `user` through `runtime`'s context on the shared host: the upstream
/// answers `status` after `millis`. Returns the subset and reason.
fn serve(
    e: &Engine,
    runtime: &Runtime,
    host: &mut RecordingHost,
    now: u64,
    user: &str,
    status: u32,
    millis: u64,
) -> (String, Reason) {
    let r = HeaderList::from_strs(&[
        (":authority", "shop.example.com"),
        (":path", "/checkout"),
        ("x-user-id", user),
    ]);
    let context = runtime.context(Some(now));
    let decision = decide(&e.policy, &context, &r);
    host.clock = now;
    let mut x = e.apply(host, &r, &context, decision);
    host.respond(status);
    x.on_response_headers(e, host);
    host.clock = now + millis * 1_000_000;
    x.on_end(e, host);
    match decision {
        Decision::Assign(a) => (
            e.policy.releases[0].subsets[a.subset].name.clone(),
            a.reason,
        ),
        Decision::Pass => panic!("passed"),
    }
}

/// Users the written split puts on each side.
fn users(e: &Engine, subset: &str, n: usize) -> Vec<String> {
    let idle = Runtime::new(e);
    (0..)
        .map(|i| format!("user-{i}"))
        .filter(|u| {
            let r = HeaderList::from_strs(&[
                (":authority", "shop.example.com"),
                (":path", "/checkout"),
                ("x-user-id", u),
            ]);
            matches!(decide(&e.policy, &idle.context(None), &r),
                Decision::Assign(a) if e.policy.releases[0].subsets[a.subset].name == subset)
        })
        .take(n)
        .collect()
}

fn metric(e: &Engine, name: &str) -> usize {
    e.catalog
        .metrics
        .iter()
        .position(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn guard_metric(name: &str) -> String {
    tagged(&[("release", "checkout"), ("subset", "canary")], name)
}

/// `seconds` seconds of traffic, a tick of both VMs after each: every second, `per_second`
/// requests from each of the canary and stable users, the canary answering `canary_status`
/// after `canary_millis`. Returns the second at which each VM first saw the guard tripped.
#[allow(clippy::too_many_arguments)]
fn run(
    e: &Engine,
    vms: &mut [Runtime; 2],
    host: &mut RecordingHost,
    start: u64,
    seconds: u64,
    per_second: usize,
    canary_status: u32,
    stable_status: u32,
    canary_millis: u64,
) -> [Option<u64>; 2] {
    let canary = users(e, "canary", per_second);
    let stable = users(e, "stable", per_second);
    let key = shared(b"policy-1");
    let mut tripped_at = [None, None];
    for s in 0..seconds {
        let now = start + s * SECOND;
        for i in 0..per_second {
            // The two workers share the traffic.
            let vm = &vms[i % 2];
            serve(e, vm, host, now, &canary[i], canary_status, canary_millis);
            serve(e, vm, host, now, &stable[i], stable_status, 5);
        }
        for (v, vm) in vms.iter_mut().enumerate() {
            vm.on_tick(e, host, now + SECOND - 1, &key);
            if vm.tripped() != 0 && tripped_at[v].is_none() {
                tripped_at[v] = Some(s);
            }
        }
    }
    tripped_at
}

#[test]
fn a_failing_canary_trips_on_every_worker_and_is_counted_once() {
    let e = guarded();
    let mut host = RecordingHost::default();
    let mut vms = [Runtime::new(&e), Runtime::new(&e)];
    // Ten healthy seconds, then the canary fails.
    assert_eq!(
        run(&e, &mut vms, &mut host, T0, 10, 40, 200, 200, 5),
        [None, None]
    );
    let tripped = run(
        &e,
        &mut vms,
        &mut host,
        T0 + 10 * SECOND,
        3,
        40,
        500,
        200,
        5,
    );
    // The first failing second is enough: 40 errors among 440 responses in the window.
    assert_eq!(tripped, [Some(0), Some(0)]);
    assert_eq!(host.shared["dial.test.guard.checkout"].0, b"policy-1");
    let counted = host.counted(&e.catalog);
    assert!(counted.contains(&(guard_metric("dial_guard_trips_total").as_str(), 1)));
    assert!(host
        .gauged(&e.catalog)
        .contains(&(guard_metric("dial_guard_tripped").as_str(), 1)));

    // Tripped: canary users go to stable, by the guardrail; the canary sees no more traffic.
    let canary_user = &users(&e, "canary", 1)[0];
    for vm in &vms {
        assert_eq!(
            serve(&e, vm, &mut host, T0 + 20 * SECOND, canary_user, 200, 5),
            ("stable".into(), Reason::Guardrail)
        );
    }
    // The weight gauges say so too: all of the traffic on stable.
    let weight = |subset: &str| {
        host.gauges[&metric(
            &e,
            &tagged(
                &[("release", "checkout"), ("subset", subset)],
                "dial_subset_weight",
            ),
        )]
    };
    assert_eq!((weight("stable"), weight("canary")), (10_000, 0));
}

#[test]
fn a_trip_judged_by_one_worker_reaches_the_other_within_one_tick() {
    let e = guarded();
    let mut host = RecordingHost::default();
    let key = shared(b"policy-1");
    let (mut a, mut b) = (Runtime::new(&e), Runtime::new(&e));
    // Both workers take their first sample (in Envoy: when the policy is configured), then
    // only worker `a` ticks while the canary fails.
    a.on_tick(&e, &mut host, T0, &key);
    b.on_tick(&e, &mut host, T0, &key);
    for (i, u) in users(&e, "canary", 30).iter().enumerate() {
        serve(&e, &a, &mut host, T0 + i as u64, u, 503, 5);
    }
    a.on_tick(&e, &mut host, T0 + SECOND, &key);
    assert_eq!(a.tripped(), 1);
    // b's next tick finds the shared mark (and would have judged the same counters alike).
    b.on_tick(&e, &mut host, T0 + SECOND + 1, &key);
    assert_eq!(b.tripped(), 1);
    assert_eq!(
        host.counted(&e.catalog)
            .iter()
            .find(|(n, _)| *n == guard_metric("dial_guard_trips_total")),
        Some(&(guard_metric("dial_guard_trips_total").as_str(), 1))
    );
    // A new policy (another fingerprint) starts untripped.
    let mut c = Runtime::new(&e);
    c.on_tick(&e, &mut host, T0 + 2 * SECOND, &shared(b"policy-2"));
    assert_eq!(c.tripped(), 0);
}

#[test]
fn no_false_trips() {
    // A healthy canary.
    let e = guarded();
    let mut host = RecordingHost::default();
    let mut vms = [Runtime::new(&e), Runtime::new(&e)];
    assert_eq!(
        run(&e, &mut vms, &mut host, T0, 15, 40, 200, 200, 5),
        [None, None]
    );

    // An incident that fails stable just as much.
    let mut host = RecordingHost::default();
    let mut vms = [Runtime::new(&e), Runtime::new(&e)];
    assert_eq!(
        run(&e, &mut vms, &mut host, T0, 15, 40, 500, 500, 5),
        [None, None]
    );

    // A canary below minRequests: 19 failing responses in every window.
    let mut host = RecordingHost::default();
    let mut vms = [Runtime::new(&e), Runtime::new(&e)];
    let canary = users(&e, "canary", 19);
    for s in 0..15 {
        let now = T0 + s * 10 * SECOND;
        for u in &canary[..if s == 0 { 19 } else { 1 }] {
            serve(&e, &vms[0], &mut host, now, u, 500, 5);
        }
        for vm in &mut vms {
            vm.on_tick(&e, &mut host, now + 1, &shared(b"policy-1"));
            assert_eq!(vm.tripped(), 0, "at {s}");
        }
    }
    // The key is there from the first tick (so a trip is one compare-and-swap), never tripped.
    assert_eq!(host.shared["dial.test.guard.checkout"].0, b"");
}

#[test]
fn a_slow_canary_trips_on_the_slow_rate() {
    let e = guarded();
    let mut host = RecordingHost::default();
    let mut vms = [Runtime::new(&e), Runtime::new(&e)];
    assert_eq!(
        run(&e, &mut vms, &mut host, T0, 5, 20, 200, 200, 100),
        [None, None]
    );
    let tripped = run(
        &e,
        &mut vms,
        &mut host,
        T0 + 5 * SECOND,
        2,
        20,
        200,
        200,
        1000,
    );
    assert_eq!(tripped, [Some(0), Some(0)]);
    let slow = tagged(
        &[
            ("release", "checkout"),
            ("subset", "canary"),
            ("version", "v2"),
        ],
        "dial_guard_slow_responses_total",
    );
    assert!(host.counted(&e.catalog).contains(&(slow.as_str(), 20)));
}

#[test]
fn the_weight_gauges_follow_the_ramp() {
    let e = engine(json!({
        "ramp": { "subset": "canary", "start": "2026-12-01T09:00:00Z",
                  "steps": [ { "weight": 10, "hold": "30s" }, { "weight": 25, "hold": "30s" },
                             { "weight": 50.5, "hold": "1m" }, { "weight": 100 } ] }
    }));
    let mut host = RecordingHost::default();
    let mut vm = Runtime::new(&e);
    let gauge = |host: &RecordingHost, subset: &str| {
        host.gauges[&metric(
            &e,
            &tagged(
                &[("release", "checkout"), ("subset", subset)],
                "dial_subset_weight",
            ),
        )]
    };
    for (t, stable, canary) in [
        (T0 - SECOND, 9_000, 1_000),
        (T0, 9_000, 1_000),
        (T0 + 30 * SECOND, 7_500, 2_500),
        (T0 + 60 * SECOND, 4_950, 5_050),
        (T0 + 120 * SECOND, 0, 10_000),
    ] {
        vm.on_tick(&e, &mut host, t, &shared(b"p"));
        assert_eq!(
            (gauge(&host, "stable"), gauge(&host, "canary")),
            (stable, canary),
            "{t}"
        );
    }
    // Set only when they change.
    let sets = host.calls.len();
    vm.on_tick(&e, &mut host, T0 + 121 * SECOND, &shared(b"p"));
    assert_eq!(host.calls.len(), sets);
}

// --- The fleet's verdict ------------------------------------------------------------------------

/// The guard above, with a fleet verdict asked every 5 s.
fn fleet_guarded() -> Engine {
    engine(json!({
        "guard": { "subset": "canary", "fallback": "stable", "window": "10s", "minRequests": 20,
                   "maxErrorRate": 0.05,
                   "fleet": { "cluster": "prometheus", "authority": "prometheus.test",
                              "every": "5s", "window": "1m", "timeout": "1s" } }
    }))
}

/// The query API's answer: the fleet's excess error rate and guarded responses, as samples of
/// the query's `dial` figures (the release, and each sample's value, given as text).
fn answer(release: &str, errors: &str, responses: &str) -> Vec<u8> {
    let sample = |figure: &str, value: &str| json!({ "metric": { "release": release, "dial": figure }, "value": [1.0, value] });
    json!({ "status": "success", "data": { "resultType": "vector",
            "result": [sample("errors", errors), sample("responses", responses)] } })
    .to_string()
    .into_bytes()
}

fn fleet_metric(name: &str) -> String {
    guard_metric(name)
}

fn failure_metric(reason: &str) -> String {
    tagged(
        &[
            ("release", "checkout"),
            ("subset", "canary"),
            ("reason", reason),
        ],
        "dial_fleet_query_failures_total",
    )
}

fn counter(e: &Engine, host: &RecordingHost, name: &str) -> u64 {
    host.counters.get(&metric(e, name)).copied().unwrap_or(0)
}

/// What the binding does at each tick: the tick, then the fleet queries this VM won, sent.
fn tick(e: &Engine, vm: &mut Runtime, host: &mut RecordingHost, now: u64) -> Vec<FleetQuery> {
    let key = shared(b"policy-1");
    vm.on_tick(e, host, now, &key);
    let due = vm.fleet_due(e, host, now, &key);
    for q in &due {
        vm.fleet_sent(e, host, q.release, true, now);
    }
    due
}

fn reply(e: &Engine, vm: &mut Runtime, host: &mut RecordingHost, answer: Answer, now: u64) {
    vm.on_fleet_answer(e, host, 0, answer, now, Some(&shared(b"policy-1")));
}

#[test]
fn one_worker_per_proxy_asks_once_per_every() {
    let e = fleet_guarded();
    let mut host = RecordingHost::default();
    let mut vms = [Runtime::new(&e), Runtime::new(&e)];
    let healthy = answer("checkout", "0", "100");
    // A minute of 500 ms ticks on both workers, each answer arriving before the next tick:
    // due at once, then every 5 s, whichever worker ticks first.
    let mut asked = Vec::new();
    for t in 0..120 {
        let now = T0 + t * SECOND / 2;
        // The workers' ticks interleave either way.
        let order = if t % 3 == 0 { [1, 0] } else { [0, 1] };
        for v in order {
            for q in tick(&e, &mut vms[v], &mut host, now) {
                assert_eq!(q.cluster, "prometheus");
                assert_eq!(q.authority, "prometheus.test");
                assert_eq!(q.timeout_millis, 1000);
                assert!(q.path.starts_with("/api/v1/query?query="), "{}", q.path);
                asked.push((t, v));
            }
        }
        for vm in &mut vms {
            reply(&e, vm, &mut host, Answer::Ok(&healthy), now + 1);
        }
    }
    let seconds: Vec<u64> = asked.iter().map(|(t, _)| t / 2).collect();
    assert_eq!(seconds, (0..12).map(|i| i * 5).collect::<Vec<u64>>());
    // Both workers won turns: the election is the shared due time, not a fixed worker.
    assert!(asked.iter().any(|(_, v)| *v == 0) && asked.iter().any(|(_, v)| *v == 1));
    assert_eq!(
        counter(&e, &host, &fleet_metric("dial_fleet_queries_total")),
        12
    );
    assert_eq!(vms[0].tripped() | vms[1].tripped(), 0);
}

#[test]
fn a_worker_has_at_most_one_query_in_flight() {
    let e = fleet_guarded();
    let mut host = RecordingHost::default();
    let mut a = Runtime::new(&e);
    assert_eq!(tick(&e, &mut a, &mut host, T0).len(), 1);
    // Unanswered: a asks no more, however long it waits (Envoy answers every callout by its
    // `timeout`, at most `every`, so another worker can take the next turn meanwhile).
    for s in 1..30 {
        assert!(
            tick(&e, &mut a, &mut host, T0 + s * SECOND).is_empty(),
            "at {s}"
        );
    }
    let mut b = Runtime::new(&e);
    assert_eq!(tick(&e, &mut b, &mut host, T0 + 30 * SECOND).len(), 1);
    // The host's timeout answers a's query: a may ask again at the next turn.
    reply(
        &e,
        &mut a,
        &mut host,
        Answer::Failed(Failure::Timeout),
        T0 + 30 * SECOND,
    );
    assert!(tick(&e, &mut a, &mut host, T0 + 31 * SECOND).is_empty());
    assert_eq!(tick(&e, &mut a, &mut host, T0 + 35 * SECOND).len(), 1);
    assert_eq!(
        counter(&e, &host, &fleet_metric("dial_fleet_queries_total")),
        3
    );
    assert_eq!(counter(&e, &host, &failure_metric("timeout")), 1);
}

#[test]
fn a_fleet_answer_trips_like_a_local_trip_and_never_untrips() {
    let e = fleet_guarded();
    let mut host = RecordingHost::default();
    let (mut a, mut b) = (Runtime::new(&e), Runtime::new(&e));
    assert_eq!(tick(&e, &mut a, &mut host, T0).len(), 1);
    assert!(tick(&e, &mut b, &mut host, T0).is_empty());
    // b takes the next turn while a's answer is still out.
    assert_eq!(tick(&e, &mut b, &mut host, T0 + 5 * SECOND).len(), 1);

    // Under the threshold: no trip. Over it: a trip, shared and counted once.
    reply(
        &e,
        &mut a,
        &mut host,
        Answer::Ok(&answer("checkout", "0.05", "400")),
        T0 + 6 * SECOND,
    );
    assert_eq!(a.tripped(), 0);
    assert_eq!(tick(&e, &mut a, &mut host, T0 + 10 * SECOND).len(), 1);
    reply(
        &e,
        &mut a,
        &mut host,
        Answer::Ok(&answer("checkout", "0.25", "400")),
        T0 + 10 * SECOND,
    );
    assert_eq!(a.tripped(), 1);
    assert_eq!(host.shared["dial.test.guard.checkout"].0, b"policy-1");
    assert_eq!(
        counter(&e, &host, &guard_metric("dial_guard_trips_total")),
        1
    );
    assert_eq!(
        counter(&e, &host, &fleet_metric("dial_guard_fleet_trips_total")),
        1
    );

    // Canary users go to stable by the guardrail, on a now and on b from its next tick.
    let canary_user = &users(&e, "canary", 1)[0];
    assert_eq!(
        serve(&e, &a, &mut host, T0 + 11 * SECOND, canary_user, 200, 5),
        ("stable".into(), Reason::Guardrail)
    );
    b.on_tick(&e, &mut host, T0 + 11 * SECOND, &shared(b"policy-1"));
    assert_eq!(b.tripped(), 1);
    assert!(host
        .gauged(&e.catalog)
        .contains(&(guard_metric("dial_guard_tripped").as_str(), 1)));

    // b's answer comes back healthy, then another trip's: neither changes anything.
    reply(
        &e,
        &mut b,
        &mut host,
        Answer::Ok(&answer("checkout", "0", "400")),
        T0 + 12 * SECOND,
    );
    reply(
        &e,
        &mut b,
        &mut host,
        Answer::Ok(&answer("checkout", "0.5", "400")),
        T0 + 12 * SECOND,
    );
    for (vm, name) in [(&mut a, "a"), (&mut b, "b")] {
        // A tripped guard asks no more: a verdict can only trip.
        assert!(
            tick(&e, vm, &mut host, T0 + 60 * SECOND).is_empty(),
            "{name}"
        );
        assert_eq!(vm.tripped(), 1, "{name}");
    }
    assert_eq!(host.shared["dial.test.guard.checkout"].0, b"policy-1");
    assert_eq!(
        counter(&e, &host, &guard_metric("dial_guard_trips_total")),
        1
    );
    assert_eq!(
        counter(&e, &host, &fleet_metric("dial_guard_fleet_trips_total")),
        1
    );
    assert_eq!(
        counter(&e, &host, &fleet_metric("dial_fleet_queries_total")),
        3
    );
}

#[test]
fn every_failure_is_counted_by_reason_and_is_no_verdict() {
    let e = fleet_guarded();
    let mut host = RecordingHost::default();
    let mut vm = Runtime::new(&e);
    let other = answer("search", "0.5", "400");
    let nan = answer("checkout", "NaN", "400");
    let huge = vec![b' '; 16 * 1024 + 1];
    let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    let answers: Vec<(&str, Answer)> = vec![
        ("refused", Answer::Failed(Failure::Refused)),
        ("unreachable", Answer::Failed(Failure::Unreachable)),
        ("timeout", Answer::Failed(Failure::Timeout)),
        ("status", Answer::Failed(Failure::Status)),
        ("too_large", Answer::Ok(&huge)),
        ("malformed", Answer::Ok(b"<html>not the query API</html>")),
        ("empty", Answer::Ok(empty)),
        ("nan", Answer::Ok(&nan)),
        ("wrong_series", Answer::Ok(&other)),
    ];
    // Every reason the metrics know is forced here.
    assert_eq!(answers.len(), Failure::ALL.len());
    for (i, (reason, failed)) in answers.into_iter().enumerate() {
        let now = T0 + i as u64 * 5 * SECOND;
        if reason == "refused" {
            // The host refused the callout: counted as such, no query counted as sent.
            vm.on_tick(&e, &mut host, now, &shared(b"policy-1"));
            let due = vm.fleet_due(&e, &mut host, now, &shared(b"policy-1"));
            assert_eq!(due.len(), 1);
            vm.fleet_sent(&e, &mut host, 0, false, now);
        } else {
            assert_eq!(tick(&e, &mut vm, &mut host, now).len(), 1, "{reason}");
            reply(&e, &mut vm, &mut host, failed, now + 1);
        }
        assert_eq!(counter(&e, &host, &failure_metric(reason)), 1, "{reason}");
        assert_eq!(vm.tripped(), 0, "{reason}");
    }
    for f in Failure::ALL {
        assert_eq!(counter(&e, &host, &failure_metric(f.as_str())), 1, "{f:?}");
    }
    assert_eq!(
        counter(&e, &host, &fleet_metric("dial_fleet_queries_total")),
        8
    );
    assert_eq!(
        counter(&e, &host, &guard_metric("dial_guard_trips_total")),
        0
    );
    assert_eq!(host.shared["dial.test.guard.checkout"].0, b"");
}

#[test]
fn the_local_guard_trips_while_every_fleet_query_fails() {
    let e = fleet_guarded();
    let mut host = RecordingHost::default();
    let mut vms = [Runtime::new(&e), Runtime::new(&e)];
    let canary = users(&e, "canary", 40);
    let stable = users(&e, "stable", 40);
    let mut tripped_at = None;
    for s in 0..20u64 {
        let now = T0 + s * SECOND;
        // Healthy for 10 s, then the canary fails.
        let canary_status = if s < 10 { 200 } else { 500 };
        for i in 0..40 {
            let vm = &vms[i % 2];
            serve(&e, vm, &mut host, now, &canary[i], canary_status, 5);
            serve(&e, vm, &mut host, now, &stable[i], 200, 5);
        }
        for vm in &mut vms {
            for _ in tick(&e, vm, &mut host, now + SECOND - 1) {
                // Prometheus is down: every query fails.
                reply(
                    &e,
                    vm,
                    &mut host,
                    Answer::Failed(Failure::Unreachable),
                    now + SECOND - 1,
                );
            }
        }
        if vms.iter().all(|vm| vm.tripped() == 1) && tripped_at.is_none() {
            tripped_at = Some(s);
        }
        if s < 10 {
            assert_eq!(vms[0].tripped() | vms[1].tripped(), 0, "at {s}");
        }
    }
    // The first failing second trips, as without a fleet verdict.
    assert_eq!(tripped_at, Some(10));
    assert_eq!(
        counter(&e, &host, &guard_metric("dial_guard_trips_total")),
        1
    );
    assert_eq!(
        counter(&e, &host, &fleet_metric("dial_guard_fleet_trips_total")),
        0
    );
    // Asked every 5 s (at 0 and 5 s; at 10 s the local trip came first), each failing.
    assert_eq!(counter(&e, &host, &failure_metric("unreachable")), 2);
}
