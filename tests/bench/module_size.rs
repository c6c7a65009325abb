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

use std::path::Path;

use crate::checks::Checks;

/// When and with what the fixed rows were measured.
const MEASURED: &str = "measured on 2026-11-22 (up to c8f9428) and 2026-12-06 (from 88be9ac) by \
     building each commit in its own git worktree and target directory (rustc 1.95.0, `cargo build --release --target wasm32-wasip1`, then \
     wasm-opt version 108 with the Makefile's `WASM_OPT_FLAGS`)";

/// (commit, what it added, bytes from cargo, bytes after wasm-opt), oldest first.
const HISTORY: [(&str, &str, u64, u64); 15] = [
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
    (
        "88be9ac",
        "the rest of two sessions: flagd version 3 and Unleash's two-variant flags, fuzzing's fixes (no secret of any type logged, a release may not read Dial's own headers), the exchange split into plan and steer",
        337_551,
        275_840,
    ),
    (
        "e016c76",
        "W3C baggage read as OpenTelemetry's propagators read it (a bad member costs only itself, U+FFFD for non-UTF-8, the last duplicate wins)",
        338_007,
        276_227,
    ),
    (
        "794b9f7",
        "`sourceCidrs` judges the connection's own peer, never an address Envoy took from X-Forwarded-For",
        338_032,
        276_214,
    ),
    (
        "e470899",
        "secrets from the proxy's environment (`{\"fromEnv\": ...}`: WASI's environment through std::env)",
        341_853,
        280_376,
    ),
    (
        "1a6a70a",
        "the fleet verdict: the PromQL, the query API's answer read by the policy's own JSON reader, the root context's callout",
        360_321,
        296_752,
    ),
    (
        "944e3da",
        "release lanes: a signed W3C baggage member issued, verified and followed (over the budget as merged: it landed with the next row)",
        383_483,
        315_623,
    ),
    (
        "3d6b46f",
        "the policy reader's field reads through a few non-generic functions, no removal from serde_json's map, one join",
        350_440,
        288_707,
    ),
    (
        "096b302",
        "one source of truth: the decision observed through a no-op observer in both bindings, first_to_apply and the ticks in the core, no import circle",
        349_840,
        287_955,
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

/// The module Envoy loads may weigh at most this, after `make build`'s wasm-opt: 300 KB.
pub const BUDGET: u64 = 300 * 1024;

/// The size of the file at `path`. A missing or unreadable module is an error, never 0 bytes
/// (which would pass any budget).
pub fn size_of(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map_err(|e| format!("no module at {}: {e}", path.display()))
        .and_then(|m| {
            m.is_file()
                .then_some(m.len())
                .ok_or_else(|| format!("{} is not a file", path.display()))
        })
}

/// The budget check: the module's size if it is within `budget`, else an error that names the
/// module, its size, the budget and the excess.
pub fn within_budget(path: &Path, budget: u64) -> Result<u64, String> {
    let size = size_of(path)?;
    if size > budget {
        return Err(format!(
            "{} is {} bytes, over its budget of {} bytes ({:.0} KB) by {} byte{}",
            path.display(),
            bytes(size),
            bytes(budget),
            budget as f64 / 1024.0,
            bytes(size - budget),
            if size - budget == 1 { "" } else { "s" }
        ));
    }
    Ok(size)
}

/// The check proven on files of known sizes first (so a check that could never fail does not
/// pass for the module), then the real one: this run's module against `BUDGET`. A failure
/// fails the run (`make test` runs it in `make bench-smoke`). The module's size, or `None`.
pub fn check(checks: &mut Checks) -> Option<u64> {
    let dir = crate::support::scratch_dir("module-budget");
    let file = |name: &str, len: u64| {
        let path = dir.join(name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(len).unwrap();
        path
    };
    let (at, over) = (file("at.wasm", 1000), file("over.wasm", 1001));
    let missing = dir.join("missing.wasm");
    checks.check(
        within_budget(&at, 1000) == Ok(1000),
        "the budget check passes a module exactly at its budget (1,000 bytes of 1,000)",
    );
    let refused = within_budget(&over, 1000);
    checks.check(
        refused.as_ref().is_err_and(|e| {
            e.contains("is 1,001 bytes, over its budget of 1,000 bytes") && e.ends_with("by 1 byte")
        }),
        format!(
            "the budget check refuses a module 1 byte over, naming size and budget ({refused:?})"
        ),
    );
    let absent = within_budget(&missing, 1000);
    checks.check(
        absent
            .as_ref()
            .is_err_and(|e| e.starts_with("no module at ")),
        format!("the budget check refuses a missing module, not as 0 bytes ({absent:?})"),
    );
    checks.check(
        within_budget(&dir, 1000).is_err(),
        "the budget check refuses a directory in place of the module",
    );
    let _ = std::fs::remove_dir_all(&dir);
    let module = crate::support::module_path();
    match within_budget(&module, BUDGET) {
        Ok(size) => {
            checks.check(
                true,
                format!(
                    "the module is within its budget: {} of {} bytes ({:.0}%)",
                    bytes(size),
                    bytes(BUDGET),
                    size as f64 * 100.0 / BUDGET as f64
                ),
            );
            Some(size)
        }
        Err(e) => {
            checks.check(false, format!("MODULE OVER BUDGET: {e}"));
            size_of(&module).ok()
        }
    }
}

/// The section: the fixed history, then this run's module (after `make build`'s wasm-opt),
/// against the budget, as `check` measured it.
pub fn report(checks: &mut Checks) -> String {
    let Some(live) = check(checks) else {
        return "## Module size by capability\n\nNo module to measure.\n".to_string();
    };
    let mut out = format!(
        "## Module size by capability\n\nWhat each capability added to the module Envoy loads, \
         after wasm-opt (budget: 300 KB, {} bytes). The commits' rows were {MEASURED}; the last row \
         is this run's module, measured live.\n\n\
         | Revision | What it added | cargo build, bytes | after wasm-opt, bytes | added after wasm-opt |\n\
         |---|---|---:|---:|---:|\n",
        bytes(BUDGET)
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
        live as f64 * 100.0 / BUDGET as f64,
    ));
    out
}
