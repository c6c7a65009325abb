//! What a request costs Envoy, in instructions: each configuration runs under callgrind (the
//! real Envoy executable, one worker), is warmed up uncounted, then serves a fixed number of
//! requests on one connection with counting on. Unlike throughput on a shared machine, which
//! moves ±15% from run to run, the count repeats to a fraction of a percent, so small
//! differences (one host call) can be seen and attributed. A smoke run counts three
//! configurations, side by side (a count does not depend on the wall clock).

use std::path::Path;
use std::process::Command;

use crate::checks::Checks;
use crate::proxy_bench::{configurations, floor_bootstrap, DIALS_HOST_CALLS};
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
fn request(client: &mut Client, i: usize) -> u16 {
    let user = format!("user-{}", i % 100_000);
    let cookie = format!("session=3f2a9c; theme=dark; uid={user}; consent=yes");
    client
        .get(
            "shop.example.com",
            "/checkout/cart?step=2",
            &[
                (
                    "user-agent",
                    "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0",
                ),
                ("accept", "text/html,application/xhtml+xml"),
                ("accept-language", "en-US,en;q=0.5"),
                ("x-user-id", &user),
                ("cookie", &cookie),
            ],
        )
        .status
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

/// Instructions per request for one bootstrap: `warm` requests uncounted, then `counted`; an
/// error if a request was not answered 200, callgrind produced no count or the VM failed.
fn per_request(label: &str, bootstrap: &str, warm: usize, counted: usize) -> Result<f64, String> {
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
    let mut not_ok = (0..warm)
        .filter(|&i| request(&mut client, i) != 200)
        .count();
    callgrind_control(&["--instr=on"], envoy.pid())?;
    not_ok += (warm..warm + counted)
        .filter(|&i| request(&mut client, i) != 200)
        .count();
    callgrind_control(&["--dump"], envoy.pid())?;
    let failures = envoy.vm_failures();
    drop(envoy);
    let total = totals(&dir.join("callgrind.out.1"))?;
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
    Ok(total as f64 / counted as f64)
}

/// `per_request` for each (label, bootstrap); side by side when `parallel` (instruction counts
/// do not depend on the wall clock, so only the run's length changes). A start that panics is
/// an error like any other.
fn measure_all(
    jobs: Vec<(String, String)>,
    warm: usize,
    counted: usize,
    parallel: bool,
) -> Vec<Result<f64, String>> {
    let one = |(label, yaml): &(String, String)| {
        std::panic::catch_unwind(|| per_request(label, yaml, warm, counted)).unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()))
        })
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

pub fn run(smoke: bool, checks: &mut Checks) -> String {
    // The JIT settles within a few hundred requests: more warm-up changes the count by <0.1%.
    let (warm, counted) = if smoke { (20, 20) } else { (300, 1000) };
    // The native configuration proxies to a second Envoy: its count would include proxying.
    // So no sink is needed here (the port it would have is never used).
    let chosen: Vec<(&str, &str, String)> = configurations(0)
        .into_iter()
        .filter(|(key, _, _)| *key != "native")
        .filter(|(key, _, _)| !smoke || ["none", "calls", "dial"].contains(key))
        .collect();
    let jobs = chosen
        .iter()
        .map(|(key, _, yaml)| (key.to_string(), yaml.clone()))
        .collect();
    // A smoke run's starts under callgrind dominate its time: side by side they take half.
    let results = measure_all(jobs, warm, counted, smoke);
    let mut measured: Vec<(&str, &str, f64)> = Vec::new();
    for ((key, name, _), result) in chosen.iter().zip(results) {
        checks.check(
            result.is_ok(),
            format!(
                "{name}: callgrind counted {} instructions per request, over {counted} requests answered 200, no VM failure{}",
                result.as_ref().map_or("no".to_string(), |n| format!("{n:.0}")),
                result.as_ref().err().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        );
        measured.push((key, name, result.unwrap_or(f64::NAN)));
    }
    let count = |key: &str| {
        measured
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(f64::NAN, |(_, _, n)| *n)
    };
    let dial = count("dial");
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
             making that call alone, instructions per request):\n\n\
             | Host call | instructions |\n|---|---:|\n",
        );
        let mut costs = Vec::new();
        let jobs = HOST_CALLS
            .iter()
            .map(|(calls, one, _)| (format!("call-{one}"), floor_bootstrap(calls)))
            .collect();
        for ((calls, one, what), result) in HOST_CALLS
            .iter()
            .zip(measure_all(jobs, warm, counted, false))
        {
            let base = if calls.contains(',') {
                count("set1")
            } else {
                empty
            };
            checks.check(
                result.is_ok(),
                format!(
                    "host call {one}: callgrind counted it{}",
                    result
                        .as_ref()
                        .err()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            );
            let n = result.unwrap_or(f64::NAN);
            costs.push((*one, n - base));
            out.push_str(&format!("| {what} | {:.0} |\n", n - base));
        }
        let sum: f64 = DIALS_HOST_CALLS
            .split(',')
            .filter_map(|c| costs.iter().find(|(one, _)| *one == c).map(|(_, n)| n))
            .sum();
        out.push_str(&format!(
            "\nDial's host calls per request ({DIALS_HOST_CALLS}): {sum:.0} by the table, \
             {:.0} measured together (2d − 2); Dial's own logic (3 − 2d): {:.0}.\n",
            count("calls") - empty,
            dial - count("calls"),
        ));
        let mark = |ok: bool| if ok { "met" } else { "**missed**" };
        let (vs_floor, vs_lua, bound) = (
            count("set1") / dial,
            count("lua") / dial,
            count("set1") / count("calls"),
        );
        out.push_str(&format!(
            "\nThe throughput targets, by instruction count:\n\n\
             | Target | As the counts imply | |\n|---|---:|---|\n\
             | Dial ≥ 0.90× the steering floor (2b) | {vs_floor:.2}× | {} |\n\
             | (the floor making Dial's host calls, 2d, ÷ 2b: the most any filter making them can reach) | {bound:.2}× | |\n\
             | Dial at least as fast as the Lua filter | {vs_lua:.2}× | {} |\n",
            mark(vs_floor >= 0.90),
            mark(vs_lua >= 1.0),
        ));
    }
    out
}
