//! What each capability added to the module. A run of the benchmark cannot rebuild old commits,
//! so their sizes are a fixed table, measured once (below, with how); only this run's module is
//! measured live. To measure a revision again:
//!
//! ```text
//! git worktree add --detach /tmp/wt-REV REV
//! (cd /tmp/wt-REV && CARGO_TARGET_DIR=/tmp/wt-target-REV cargo build --release --target wasm32-wasip1 -p dial)
//! wasm-opt $WASM_OPT_FLAGS /tmp/wt-target-REV/wasm32-wasip1/release/dial.wasm -o dial-REV.wasm   # the Makefile's flags
//! git worktree remove --force /tmp/wt-REV
//! ```

/// When and with what the fixed rows were measured.
const MEASURED: &str = "measured on 2026-11-22 by building each commit in its own git worktree \
     and target directory (rustc 1.95.0, `cargo build --release --target wasm32-wasip1`, then \
     wasm-opt version 108 with the Makefile's `WASM_OPT_FLAGS`)";

/// (commit, what it added, bytes from cargo, bytes after wasm-opt), oldest first.
const HISTORY: [(&str, &str, u64, u64); 7] = [
    (
        "675810e",
        "the routing core, before this work: policy, decision (rules, allowlist, monotone split, sticky cookie, override, mirror), metrics",
        252_419,
        199_763,
    ),
    (
        "77c91a1",
        "the exchange's lifecycle in the core, behind a `Host` trait; `decide` takes a context and explains itself",
        253_996,
        200_993,
    ),
    (
        "3e87f1a",
        "structured policy problems (JSON path, kind, offending value) and the consuming object reader",
        275_818,
        219_585,
    ),
    (
        "3a16625",
        "ramp schedules and the guardrail, and the VM's tick (with 529017a, the reader in its own file: 3 bytes)",
        301_961,
        244_736,
    ),
    (
        "ee34180",
        "small follow-ups to the tick and the guard's log",
        302_030,
        244_799,
    ),
    (
        "5e8aacb",
        "signed sticky cookies (HMAC-SHA-256, the hmac and sha2 crates), absolute host names, a logger and panic hook that never panic",
        316_613,
        257_962,
    ),
    (
        "c8f9428",
        "bucketing schemes that agree with app-side flags (Unleash, flagd), keys from W3C baggage (HEAD when measured, f213ab7, builds the same size: it adds the CLI, the demo's timeline, docs)",
        328_695,
        268_269,
    ),
];

fn bytes(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn added(n: u64, before: u64) -> String {
    let d = n as i64 - before as i64;
    let sign = if d < 0 { "−" } else { "+" };
    format!(
        "{sign}{} ({sign}{:.1} KB)",
        bytes(d.unsigned_abs()),
        d.unsigned_abs() as f64 / 1024.0
    )
}

/// The section: the fixed history, then this run's module (after `make build`'s wasm-opt),
/// against the budget.
pub fn report() -> String {
    let live = std::fs::metadata(crate::support::module_path())
        .map(|m| m.len())
        .unwrap_or(0);
    let mut out = format!(
        "## Module size by capability\n\nWhat each capability added to the module Envoy loads, \
         after wasm-opt (budget: 300 KB, {} bytes). The commits' rows were {MEASURED}; the last row \
         is this run's module, measured live.\n\n\
         | Revision | What it added | cargo build, bytes | after wasm-opt, bytes | added after wasm-opt |\n\
         |---|---|---:|---:|---:|\n",
        bytes(300 * 1024)
    );
    let mut before = None;
    for (commit, what, raw, opt) in HISTORY {
        out.push_str(&format!(
            "| {commit} | {what} | {} | {} | {} |\n",
            bytes(raw),
            bytes(opt),
            before.map_or("".to_string(), |b| added(opt, b))
        ));
        before = Some(opt);
    }
    let last = HISTORY[HISTORY.len() - 1].3;
    let first = HISTORY[0].3;
    out.push_str(&format!(
        "| this run | the module `make build` built for this run | | {} | {} |\n\
         \nSince the routing core: {}, {:.0}% of the budget used.\n",
        bytes(live),
        added(live, last),
        added(live, first),
        live as f64 * 100.0 / (300.0 * 1024.0),
    ));
    out
}
