//! Dial: assigns each request to a release subset and steers it there.
//!
//! The core (`policy`, `decide`, `bucket`, `cookie`, `rules`, `request`, `sticky`, `trust`) is
//! pure: it never touches the proxy host, so it is tested natively and on wasm32 alike.
//! `filter` is the one glue room that talks to Envoy, and it only exists on wasm32.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod bucket;
pub mod cookie;
pub mod decide;
pub mod policy;
pub mod request;
pub mod rules;
pub mod scope;
pub mod stats;
pub mod sticky;
pub mod trust;

// Not in test builds: the core's tests run on wasm32 without a proxy host to link against.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod filter;
