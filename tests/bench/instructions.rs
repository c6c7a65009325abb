//! What a request costs Envoy, in instructions: each configuration runs under callgrind (the
//! real Envoy executable, one worker), is warmed up uncounted, then serves a fixed number of
//! requests on one connection with counting on. Unlike throughput on a shared machine, which
//! moves ±15% from run to run, the count repeats to a fraction of a percent, so small
//! differences (one host call) can be seen and attributed. A smoke run counts four
//! configurations side by side (a count does not depend on the wall clock): Envoy alone, the
//! floor making Dial's host calls, Dial with a ramp and a guard (whose VM also ticks under
//! callgrind) and native Dial (no VM to compile); plain Dial runs the same module, and a third
//! module to compile under valgrind would make the smoke run longer.
//!
//! Some of a window's work goes by the wall clock, not by the requests: Envoy's own timers and,
//! with a ramp or a guard, each VM's tick every 500 ms. Under callgrind a request takes tens of
//! times longer than in real life, so a window holds far more of it per request than real
//! traffic would. The full run therefore also counts an idle Envoy with Dial's policy with and
//! without them, which prices one tick, and reports 3b against 3 as counted and without the
//! idle work of each window.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dial::core::runtime::TICK_MILLIS;

use crate::checks::Checks;
use crate::proxy_bench::{
    check_ramp_and_guard, configurations, floor_bootstrap, lane_configurations,
    native_floor_bootstrap, DIALS_HOST_CALLS, RAMP_GUARD_RPS,
};
use crate::support::prometheus::Sample;
use crate::support::{scratch_dir, Client, Envoy};

/// The floor's host calls, each measured alone: (calls configured, the one measured, what it is).
/// The second header is measured on top of the first, which alone also re-runs route matching.
const HOST_CALLS: [(&str, &str, &str); 7] = [
    (
        "read-headers",
        "read-headers",
        "read the request header map (one buffer)",
    ),
    (
        "set-header",
        "set-header",
        "set a request header (Envoy matches the route again)",
    ),
    (
        "set-header,set-second-header",
        "set-second-header",
        "set a second request header",
    ),
    (
        "read-status",
        "read-status",
        "read the response's `:status` (one buffer)",
    ),
    ("count", "count", "increment a counter"),
    ("record", "record", "record a histogram sample"),
    ("clock", "clock", "read the host's clock"),
];

/// One request of the benchmark's traffic (the wrk script's): user `i` of 100,000. Its status.
/// With `baggage`, it also carries that W3C baggage (an instrumented app's: a trace's members
/// and a lane).
fn request(client: &mut Client, i: usize, baggage: Option<&str>) -> u16 {
    let user = format!("user-{}", i % 100_000);
    let cookie = format!("session=3f2a9c; theme=dark; uid={user}; consent=yes");
    let mut headers = vec![
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0",
        ),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-US,en;q=0.5"),
        ("x-user-id", &user),
        ("cookie", &cookie),
    ];
    headers.extend(baggage.map(|b| ("baggage", b)));
    client
        .get("shop.example.com", "/checkout/cart?step=2", &headers)
        .status
}

/// The baggage a following configuration's requests carry: a tenant member, then a canary lane
/// member signed with the benchmark's lane secret (valid for the whole run).
fn lane_baggage() -> String {
    let lanes = dial::core::lane::Lanes::new(
        "dial-lane".into(),
        dial::core::secret::Secret::inline(crate::core_bench::LANE_SECRET),
        None,
        true,
        false,
        None,
        None,
        vec![],
        None,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "tenant=acme,dial-lane={}",
        lanes.issue_value("canary", now).unwrap_or_default()
    )
}

fn callgrind_control(args: &[&str], pid: u32) -> Result<(), String> {
    let out = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("cannot run callgrind_control (make bench installs valgrind): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_control {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The `totals:` line of a callgrind dump.
fn totals(dump: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(dump)
        .map_err(|e| format!("no callgrind dump at {}: {e}", dump.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|n| n.trim().parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("no totals in {}", dump.display()))
}

/// One configuration's count.
struct Counted {
    /// Instructions per counted request (or, idle, in the whole window).
    per_request: f64,
    /// How long the counted window lasted (the wall clock ticks go by).
    seconds: f64,
    /// Dial's metrics after the window, for configurations that ask for them.
    metrics: Vec<Sample>,
}

/// Instructions per request for one bootstrap: `warm` requests uncounted, then `counted`; an
/// error if a request was not answered 200, callgrind produced no count or the VM failed.
/// With `counted` 0, the Envoy idles for `idle` with counting on instead (a tick's price).
fn per_request(
    label: &str,
    bootstrap: &str,
    warm: usize,
    counted: usize,
    idle: Duration,
) -> Result<Counted, String> {
    let dir = scratch_dir(&format!("callgrind-{label}"));
    let out = dir.join("callgrind.out");
    let wrapper = [
        "valgrind".to_string(),
        "--tool=callgrind".to_string(),
        "--instr-atstart=no".to_string(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    let envoy = Envoy::start_yaml_under(label, bootstrap, &wrapper);
    let mut client = Client::new(envoy.port);
    let baggage = (label.contains("lane-follow") || label.ends_with("-baggage")).then(lane_baggage);
    let baggage = baggage.as_deref();
    let mut not_ok = (0..warm)
        .filter(|&i| request(&mut client, i, baggage) != 200)
        .count();
    callgrind_control(&["--instr=on"], envoy.pid())?;
    let began = Instant::now();
    not_ok += (warm..warm + counted)
        .filter(|&i| request(&mut client, i, baggage) != 200)
        .count();
    if counted == 0 {
        std::thread::sleep(idle);
    }
    callgrind_control(&["--dump"], envoy.pid())?;
    let seconds = began.elapsed().as_secs_f64();
    let metrics = if label.starts_with("dial-rg") {
        envoy.prometheus()
    } else {
        Vec::new()
    };
    let failures = envoy.vm_failures();
    drop(envoy);
    let total = totals(&dir.join("callgrind.out.1"))?;
    if let Some(keep) = keep_dump(label) {
        std::fs::copy(dir.join("callgrind.out.1"), &keep)
            .map_err(|e| format!("cannot keep the dump at {}: {e}", keep.display()))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if not_ok > 0 {
        return Err(format!(
            "{not_ok} of {} requests not answered 200",
            warm + counted
        ));
    }
    if let Some(f) = failures.first() {
        return Err(format!("the VM failed: {f}"));
    }
    Ok(Counted {
        per_request: total as f64 / counted.max(1) as f64,
        seconds,
        metrics,
    })
}

/// The configuration whose dump `--profile` keeps.
static PROFILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Where `--profile` keeps a configuration's dump.
fn keep_dump(label: &str) -> Option<std::path::PathBuf> {
    (PROFILED.get()? == label)
        .then(|| crate::support::repo_root().join(format!("target/callgrind-{label}.out")))
}

/// `cargo bench --bench dial -- --profile <key>`: counts one configuration (a key of
/// `proxy_bench::configurations`: none, calls, dial, dial-rg, dial-native, native-floor, …) and
/// keeps callgrind's dump, to read where its instructions go with `callgrind_annotate
/// --inclusive=yes`. Prints the count and the dump's path; writes nothing else.
pub fn profile(key: &str) -> Result<String, String> {
    let (_, name, yaml) = configurations(0)
        .into_iter()
        .chain(lane_configurations())
        .find(|(k, _, _)| *k == key)
        .ok_or_else(|| format!("no configuration {key}"))?;
    let _ = PROFILED.set(key.to_string());
    let counted = per_request(key, &yaml, 300, 1000, Duration::ZERO)?;
    let dump = keep_dump(key).ok_or("no dump kept")?;
    Ok(format!(
        "{name}: {:.0} instructions per request; callgrind_annotate --inclusive=yes {}",
        counted.per_request,
        dump.display()
    ))
}

/// `per_request` for each (label, bootstrap); side by side when `parallel` (instruction counts
/// do not depend on the wall clock, so only the run's length changes). A start that panics is
/// an error like any other.
fn measure_all(
    jobs: Vec<(String, String)>,
    warm: usize,
    counted: usize,
    parallel: bool,
) -> Vec<Result<Counted, String>> {
    measure_all_idle(jobs, warm, counted, Duration::ZERO, parallel)
}

/// The same, idling for `idle` with counting on when `counted` is 0.
fn measure_all_idle(
    jobs: Vec<(String, String)>,
    warm: usize,
    counted: usize,
    idle: Duration,
    parallel: bool,
) -> Vec<Result<Counted, String>> {
    let one = |(label, yaml): &(String, String)| {
        std::panic::catch_unwind(|| per_request(label, yaml, warm, counted, idle)).unwrap_or_else(
            |p| {
                Err(p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into()))
            },
        )
    };
    if !parallel {
        return jobs.iter().map(one).collect();
    }
    let one = &one;
    std::thread::scope(|s| {
        let threads: Vec<_> = jobs.iter().map(|job| s.spawn(move || one(job))).collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    })
}

/// Each host call of `HOST_CALLS` measured alone with a floor (`bootstrap` making the calls
/// listed), over that floor making none (`empty`); the second header over the first alone.
fn host_call_costs(
    bootstrap: fn(&str) -> String,
    empty: f64,
    label: &str,
    warm: usize,
    counted: usize,
    checks: &mut Checks,
) -> Vec<(&'static str, f64)> {
    let jobs = HOST_CALLS
        .iter()
        .map(|(calls, one, _)| (format!("{label}-{one}"), bootstrap(calls)))
        .collect();
    let mut costs: Vec<(&'static str, f64)> = Vec::new();
    for ((calls, one, _), result) in HOST_CALLS
        .iter()
        .zip(measure_all(jobs, warm, counted, false))
    {
        checks.check(
            result.is_ok(),
            format!(
                "{label} {one}: callgrind counted it{}",
                result
                    .as_ref()
                    .err()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        );
        let n = result.map_or(f64::NAN, |c| c.per_request);
        // The second header is measured on top of the first (measured before it, alone).
        let base = if calls.contains(',') {
            costs
                .iter()
                .find(|(c, _)| *c == "set-header")
                .map_or(f64::NAN, |(_, n)| n + empty)
        } else {
            empty
        };
        costs.push((one, n - base));
    }
    costs
}

pub fn run(smoke: bool, checks: &mut Checks) -> String {
    // The JIT settles within a few hundred requests: more warm-up changes the count by <0.1%.
    let (warm, counted) = if smoke { (20, 20) } else { (300, 1000) };
    // The native configuration proxies to a second Envoy: its count would include proxying.
    // So no sink is needed here (the port it would have is never used).
    let chosen: Vec<(&str, &str, String)> = configurations(0)
        .into_iter()
        .chain(lane_configurations())
        .filter(|(key, _, _)| *key != "native")
        .filter(|(key, _, _)| {
            !smoke || ["none", "calls", "dial-rg", "dial-native", "native-calls"].contains(key)
        })
        .collect();
    let jobs = chosen
        .iter()
        .map(|(key, _, yaml)| (key.to_string(), yaml.clone()))
        .collect();
    // A smoke run's starts under callgrind dominate its time: side by side they take half.
    let results = measure_all(jobs, warm, counted, smoke);
    let mut measured: Vec<(&str, &str, f64)> = Vec::new();
    // How long 3's and 3b's counted windows lasted (wall clock): the idle work they held.
    let (mut dial_seconds, mut rg_seconds) = (f64::NAN, f64::NAN);
    for ((key, name, _), result) in chosen.iter().zip(results) {
        checks.check(
            result.is_ok(),
            format!(
                "{name}: callgrind counted {} instructions per request, over {counted} requests answered 200, no VM failure{}",
                result.as_ref().map_or("no".to_string(), |n| format!("{:.0}", n.per_request)),
                result.as_ref().err().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        );
        match (&result, *key) {
            (Ok(c), "dial") => dial_seconds = c.seconds,
            (Ok(c), "dial-rg") => {
                rg_seconds = c.seconds;
                check_ramp_and_guard(&format!("{name}, under callgrind"), &c.metrics, checks);
            }
            _ => {}
        }
        measured.push((key, name, result.map_or(f64::NAN, |c| c.per_request)));
    }
    let count = |key: &str| {
        measured
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(f64::NAN, |(_, _, n)| *n)
    };
    // Dial's count, the tables' reference (a smoke run counts only 3b).
    let dial = [count("dial"), count("dial-rg")]
        .into_iter()
        .find(|n| n.is_finite())
        .unwrap_or(f64::NAN);
    // The counts measure the requests: each filter costs Envoy more than none (by tens of
    // thousands of instructions, where a smoke run's counts move by ~1%).
    let none = count("none");
    let not_costlier: Vec<&str> = measured
        .iter()
        .filter(|(key, _, _)| *key != "none")
        .filter(|(_, _, n)| n.partial_cmp(&none) != Some(std::cmp::Ordering::Greater))
        .map(|(key, _, _)| *key)
        .collect();
    checks.check(
        not_costlier.is_empty() && none > 0.0,
        format!(
            "every configuration with a filter costs more instructions per request than Envoy without one{}",
            if not_costlier.is_empty() {
                String::new()
            } else {
                format!(" (not: {})", not_costlier.join(", "))
            }
        ),
    );

    let mut out = format!(
        "## What a request costs Envoy, in instructions\n\n\
         Each configuration under callgrind (instructions executed by Envoy's process, user space, \
         all threads), {warm} requests to warm up, then {counted} counted on one connection: the \
         same browser-like requests as above. Deterministic to a fraction of a percent, where \
         throughput on this machine is not. Excludes the kernel's share of a request (sockets), \
         which is the same for every configuration, so these ratios are harsher than the \
         throughput ratios.\n\n\
         | Configuration | instructions / request | Dial's throughput ÷ this, as the counts imply |\n|---|---:|---:|\n"
    );
    for (_, name, n) in &measured {
        out.push_str(&format!("| {name} | {n:.0} | {:.2} |\n", n / dial));
    }
    out.push_str(
        "| 4. native routes + weighted_clusters | not counted: it proxies to a second Envoy | |\n",
    );

    if !smoke {
        let empty = count("empty");
        out.push_str(
            "\nWhat each host call Dial makes costs, over the empty filter (the floor filter \
             making that call alone, instructions per request), in the Wasm build (floor 2) and \
             natively (floor 6a):\n\n\
             | Host call | Wasm | native |\n|---|---:|---:|\n",
        );
        let costs = host_call_costs(floor_bootstrap, empty, "call", warm, counted, checks);
        let native_costs = host_call_costs(
            native_floor_bootstrap,
            count("native-empty"),
            "native-call",
            warm,
            counted,
            checks,
        );
        for (((_, _, what), (_, n)), (_, native)) in
            HOST_CALLS.iter().zip(&costs).zip(&native_costs)
        {
            out.push_str(&format!("| {what} | {n:.0} | {native:.0} |\n"));
        }
        let sum_of = |costs: &[(&str, f64)]| -> f64 {
            DIALS_HOST_CALLS
                .split(',')
                .filter_map(|c| costs.iter().find(|(one, _)| *one == c).map(|(_, n)| n))
                .sum()
        };
        let (sum, native_sum) = (sum_of(&costs), sum_of(&native_costs));
        out.push_str(&format!(
            "\nDial's host calls per request ({DIALS_HOST_CALLS}): {sum:.0} by the table, \
             {:.0} measured together (2d − 2); Dial's own logic (3 − 2d): {:.0}. Natively: \
             {native_sum:.0} by the table, {:.0} measured together (6b − 6a); Dial's own logic \
             (6 − 6b): {:.0}.\n",
            count("calls") - empty,
            dial - count("calls"),
            count("native-calls") - count("native-empty"),
            count("dial-native") - count("native-calls"),
        ));
        let mark = |ok: bool| if ok { "met" } else { "**missed**" };
        let (vs_floor, vs_lua, bound) = (
            count("set1") / dial,
            count("lua") / dial,
            count("set1") / count("calls"),
        );
        // The native build (6) against Envoy alone (1), and against the native floor making
        // Dial's host calls (6b): what is left over that floor is Dial's own logic.
        let native = count("dial-native");
        let native_vs_none = none / native;
        let native_bound = none / count("native-calls");
        let native_own = native - count("native-calls");
        let native_share = native_own / native;
        out.push_str(&format!(
            "\nThe throughput targets, by instruction count:\n\n\
             | Target | As the counts imply | |\n|---|---:|---|\n\
             | Dial ≥ 0.90× the steering floor (2b) | {vs_floor:.2}× | {} |\n\
             | (the floor making Dial's host calls, 2d, ÷ 2b: the most any filter making them can reach) | {bound:.2}× | |\n\
             | Dial at least as fast as the Lua filter | {vs_lua:.2}× | {} |\n\
             | native Dial (6) ≥ 0.90× the throughput of Envoy with no filter (1) | {native_vs_none:.2}× | {} |\n\
             | (the native floor making Dial's host calls, 6b, ÷ 1: the most any dynamic module making them can reach) | {native_bound:.2}× | |\n\
             | Dial's own share of a native request < 5% (its logic, 6 − 6b = {native_own:.0} instructions, ÷ 6) | {:.1}% | {} |\n\
             | (for context: native Dial's instructions ÷ Dial in Wasm's, 6 ÷ 3) | {:.2}× | |\n",
            mark(vs_floor >= 0.90),
            mark(vs_lua >= 1.0),
            mark(native_vs_none >= 0.90),
            native_share * 100.0,
            mark(native_share < 0.05),
            native / dial,
        ));
    }
    // Lanes (issue 20): following a lane costs at most 3% over the realistic policy, in each
    // build; issuing is shown beside it.
    if !smoke {
        let over = |key: &str, base: &str| (count(key) / count(base) - 1.0) * 100.0;
        let (follow, native_follow) = (
            over("dial-lane-follow", "dial"),
            over("native-lane-follow", "dial-native"),
        );
        let (follow_own, native_follow_own) = (
            over("dial-lane-follow", "dial-baggage"),
            over("native-lane-follow", "native-baggage"),
        );
        // Over the same requests: the baggage header costs Envoy (and the Wasm VM's copy of the
        // header map) whether or not Dial follows lanes; an instrumented app sends it anyway.
        checks.check(
            follow_own <= 3.0 && native_follow_own <= 3.0,
            format!(
                "following a lane costs at most 3% instructions per request over the realistic policy given the same requests: Wasm {follow_own:+.1}%, native {native_follow_own:+.1}% (over requests without baggage: {follow:+.1}%, {native_follow:+.1}%)"
            ),
        );
        out.push_str(&format!(
            "\nLanes, over the realistic policy in the same build (3 for Wasm, 6 native; target: \
             following ≤ 3%):\n\n\
             | | Wasm | native |\n|---|---:|---:|\n\
             | issuing (3c, 6c: an HMAC and the baggage header written) | {:+.1}% | {:+.1}% |\n\
             | following (3d, 6d: the member read and verified) | {follow:+.1}% | {native_follow:+.1}% |\n\
             | following, over the same requests without lanes (3d ÷ 3', 6d ÷ 6': Dial's own share) | {follow_own:+.1}% | {native_follow_own:+.1}% |\n\
             | the baggage header alone, Envoy's share (3' ÷ 3, 6' ÷ 6) | {:+.1}% | {:+.1}% |\n",
            over("dial-lane-issue", "dial"),
            over("native-lane-issue", "dial-native"),
            over("dial-baggage", "dial"),
            over("native-baggage", "dial-native"),
        ));
    }
    // A smoke run counts 3b alone: there is nothing to compare it with.
    if !smoke {
        out.push_str(&ramp_and_guard(
            checks,
            Window {
                per_request: count("dial"),
                seconds: dial_seconds,
            },
            Window {
                per_request: count("dial-rg"),
                seconds: rg_seconds,
            },
            counted,
        ));
    }
    out
}

/// A counted window: instructions per request, and how long it lasted.
struct Window {
    per_request: f64,
    seconds: f64,
}

/// Dial with a ramp and a guard (3b) against Dial (3), per request. The target is judged on the
/// counts as they are. But a window also holds work that goes by the wall clock, not by the
/// requests: Envoy's own timers (its stats flush...) and, with a ramp or a guard, the VM's tick
/// every 500 ms; under callgrind a request takes milliseconds, so that work weighs on each
/// request tens of times more than in real life, and with the window's length (the machine's
/// load) it moves a count by a few hundred instructions per request. So the full run also counts
/// an idle Envoy with each policy for the same while: the difference prices a tick, and each
/// window's idle work, at its own policy's idle rate, can be taken out.
fn ramp_and_guard(checks: &mut Checks, dial: Window, rg: Window, counted: usize) -> String {
    let mark = |ok: bool| if ok { "met" } else { "**missed**" };
    let ratio = rg.per_request / dial.per_request;
    let per_ms = |w: &Window| w.seconds * 1000.0 / counted as f64;
    let mut out = format!(
        "\nDial with a ramp and a guard (3b) against Dial without them (3): {:+.0} instructions \
         per request as counted, 3b ÷ 3 = {ratio:.4}. The counted requests took {:.1} ms each \
         under callgrind with 3b, {:.1} ms with 3 (in real life a fraction of a millisecond), and \
         3b's VM ticks every {TICK_MILLIS} ms whatever the traffic: its window held about {:.0} \
         ticks.\n",
        rg.per_request - dial.per_request,
        per_ms(&rg),
        per_ms(&dial),
        rg.seconds * 1000.0 / f64::from(TICK_MILLIS),
    );
    // Both idle for the same while after the same warm-up; 3 never ticks (no ramp, no guard).
    let idle = Duration::from_secs(20);
    let configs = configurations(0);
    let jobs: Vec<(String, String)> = ["dial", "dial-rg"]
        .iter()
        .map(|key| {
            let (_, _, yaml) = configs.iter().find(|(k, _, _)| k == key).unwrap();
            (format!("{key}-idle"), yaml.clone())
        })
        .collect();
    let results = measure_all_idle(jobs, 300, 0, idle, true);
    // Instructions per second of wall clock, idle: 3's, then 3b's.
    let rate: Vec<f64> = results
        .iter()
        .map(|r| r.as_ref().map_or(f64::NAN, |c| c.per_request / c.seconds))
        .collect();
    let tick = (rate[1] - rate[0]) * f64::from(TICK_MILLIS) / 1000.0;
    checks.check(
        results.iter().all(Result::is_ok) && tick > 0.0,
        format!(
            "an idle Envoy with 3's and 3b's policies counted for {} s each: a tick costs {tick:.0} instructions{}",
            idle.as_secs(),
            results
                .iter()
                .find_map(|r| r.as_ref().err())
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
    );
    // Each window without the idle work its length held, at its own policy's idle rate.
    let busy = |w: &Window, rate: f64| w.per_request - rate * w.seconds / counted as f64;
    let (dial_busy, rg_busy) = (busy(&dial, rate[0]), busy(&rg, rate[1]));
    let work = rg_busy - dial_busy;
    let rps = RAMP_GUARD_RPS.get().copied().unwrap_or(f64::NAN);
    let every = rps * f64::from(TICK_MILLIS) / 1000.0;
    let real = work + tick / every;
    out.push_str(&format!(
        "\nIdle for {} s after the same warm-up, Envoy executed {:.0} instructions a second with \
         3's policy (its own timers) and {:.0} with 3b's: one tick (the guard reads its shared \
         data and ten counters, the ramp's weights are worked out, gauges are set only when they \
         change; Envoy's timer and the call into the VM included) costs {tick:.0} instructions. \
         With each window's idle work taken out, a request costs {dial_busy:.0} instructions \
         with 3 and {rg_busy:.0} with 3b: the ramp and the guard add {work:+.0} per request \
         ({:+.2}%). At 3b's throughput above ({rps:.0} requests/s on one worker) a tick comes \
         every {every:.0} requests: {:.1} instructions per request.\n\
         \n| Target | Measured | |\n|---|---:|---|\n\
         | Ramp and guard add ≤ 3% instructions per request (3b ÷ 3 as counted: the ticks and Envoy's idle work at callgrind's pace included) | {:+.2}% | {} |\n\
         | (each window's idle work taken out: the per-request work alone) | {:+.2}% | {} |\n\
         | (that, plus ticks as often as at 3b's measured throughput) | {:+.2}% | {} |\n",
        idle.as_secs(),
        rate[0],
        rate[1],
        work / dial_busy * 100.0,
        tick / every,
        (ratio - 1.0) * 100.0,
        mark(ratio <= 1.03),
        work / dial_busy * 100.0,
        mark(work / dial_busy <= 0.03),
        real / dial_busy * 100.0,
        mark(real / dial_busy <= 0.03),
    ));
    out
}
