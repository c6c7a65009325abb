//! What the benchmark proves while it measures, counted: each part records the checks it made
//! (the Lua filter assigned like Dial, user by user; every configuration answered as expected;
//! callgrind produced counts; the decision path allocated nothing...), and the run's closing
//! line adds them up. A failed check fails the run; so does a part that stops on a panic.

use std::fmt::Display;
use std::time::{Duration, Instant};

pub struct Checks {
    part: &'static str,
    passed: usize,
    failed: Vec<String>,
    started: Instant,
    took: Duration,
}

impl Checks {
    pub fn new(part: &'static str) -> Checks {
        Checks {
            part,
            passed: 0,
            failed: Vec::new(),
            started: Instant::now(),
            took: Duration::ZERO,
        }
    }

    /// Records one check, printed as it is made. Returns `ok`, so a caller can skip what
    /// depends on it.
    pub fn check(&mut self, ok: bool, what: impl Display) -> bool {
        if ok {
            self.passed += 1;
            println!("check [{}] ok: {what}", self.part);
        } else {
            self.failed.push(what.to_string());
            println!("check [{}] FAILED: {what}", self.part);
        }
        ok
    }

    /// Runs one part of the benchmark with these checks; a panic in it is one failed check
    /// (its message is on stderr) and the part's section says it did not finish.
    pub fn run_part(part: &'static str, f: impl FnOnce(&mut Checks) -> String) -> (String, Checks) {
        let mut checks = Checks::new(part);
        let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut checks)));
        let report = match report {
            Ok(report) => report,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                let first = message.lines().next().unwrap_or_default();
                checks.check(
                    false,
                    format!("the part ran to its end (it stopped: {first})"),
                );
                format!("## {part}\n\nDid not finish: {first}\n")
            }
        };
        checks.took = checks.started.elapsed();
        (report, checks)
    }

    pub fn passed(&self) -> usize {
        self.passed
    }

    pub fn failed(&self) -> &[String] {
        &self.failed
    }

    /// `core bench: 17 passed, 0 failed (0.9 s)`.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} passed, {} failed ({:.1} s)",
            self.part,
            self.passed,
            self.failed.len(),
            self.took.as_secs_f64()
        )
    }
}
