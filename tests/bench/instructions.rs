//! What a request costs Envoy, in instructions: each configuration runs under callgrind (the
//! real Envoy executable, one worker), is warmed up uncounted, then serves a fixed number of
//! requests on one connection with counting on. Unlike throughput on a shared machine, which
//! moves ±15% from run to run, the count repeats to a fraction of a percent, so small
//! differences (one host call) can be seen and attributed.

use std::path::Path;
use std::process::Command;

use crate::proxy_bench::{configurations, floor_bootstrap, sink, DIALS_HOST_CALLS};
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

/// One request of the benchmark's traffic (the wrk script's): user `i` of 100,000.
fn request(client: &mut Client, i: usize) {
    let user = format!("user-{}", i % 100_000);
    let cookie = format!("session=3f2a9c; theme=dark; uid={user}; consent=yes");
    let response = client.get(
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
    );
    assert_eq!(response.status, 200, "{}", response.text());
}

fn callgrind_control(args: &[&str], pid: u32) {
    let out = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .output()
        .expect("callgrind_control is installed (make bench installs valgrind)");
    assert!(
        out.status.success(),
        "callgrind_control {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `totals:` line of a callgrind dump.
fn totals(dump: &Path) -> u64 {
    let text = std::fs::read_to_string(dump)
        .unwrap_or_else(|e| panic!("no callgrind dump at {}: {e}", dump.display()));
    text.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no totals in {}", dump.display()))
}

/// Instructions per request for one bootstrap: `warm` requests uncounted, then `counted`.
fn per_request(label: &str, bootstrap: &str, warm: usize, counted: usize) -> f64 {
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
    for i in 0..warm {
        request(&mut client, i);
    }
    callgrind_control(&["--instr=on"], envoy.pid());
    for i in warm..warm + counted {
        request(&mut client, i);
    }
    callgrind_control(&["--dump"], envoy.pid());
    assert!(
        envoy.vm_failures().is_empty(),
        "{label}: {:?}",
        envoy.vm_failures()
    );
    drop(envoy);
    let total = totals(&dir.join("callgrind.out.1"));
    let _ = std::fs::remove_dir_all(&dir);
    total as f64 / counted as f64
}

pub fn run(smoke: bool) -> String {
    // The JIT settles within a few hundred requests: more warm-up changes the count by <0.1%.
    let (warm, counted) = if smoke { (20, 20) } else { (300, 1000) };
    let sink = sink();
    let measured: Vec<(&str, &str, f64)> = configurations(sink.port)
        .into_iter()
        // The native configuration proxies to a second Envoy: its count would include proxying.
        .filter(|(key, _, _)| *key != "native")
        .filter(|(key, _, _)| !smoke || ["none", "calls", "dial"].contains(key))
        .map(|(key, name, yaml)| (key, name, per_request(key, &yaml, warm, counted)))
        .collect();
    let count = |key: &str| {
        measured
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(f64::NAN, |(_, _, n)| *n)
    };
    let dial = count("dial");

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
        for (calls, one, what) in HOST_CALLS {
            let base = if calls.contains(',') {
                count("set1")
            } else {
                empty
            };
            let n = per_request(
                &format!("call-{one}"),
                &floor_bootstrap(calls),
                warm,
                counted,
            );
            costs.push((one, n - base));
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
