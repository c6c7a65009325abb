//! The fuzz targets' corpora, replayed on stable: every file of tests/fuzz/corpus/<target>/
//! goes through the same check function the fuzz target runs under libFuzzer (tests/fuzz/src/,
//! included here as a module). A finding, once its input is added to the corpus, is re-checked
//! by plain `cargo test` from then on, with no nightly toolchain and no cargo-fuzz.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
#[path = "fuzz/src/lib.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Runs `check` over every file of the target's corpus; fails naming each file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{target}: only {} seeds", files.len());
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap();
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} corpus files fail: {failed:?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn policy_corpus() {
    replay("policy", checks::policy::check);
}

#[test]
fn headers_corpus() {
    replay("headers", checks::headers::check);
}

#[test]
fn cookie_corpus() {
    replay("cookie", checks::cookie::check);
}

#[test]
fn instant_corpus() {
    replay("instant", checks::instant::check);
}

#[test]
fn override_header_corpus() {
    replay("override_header", checks::override_header::check);
}

#[test]
fn decide_corpus() {
    replay("decide", checks::decide::check);
}
