//! Dial: assigns each request to a release subset and steers it there.
//!
//! `core` is the pure core: policy, decision, bucketing and the exchange's lifecycle, generic
//! over a small host interface. Each host binding is its own room beside it: `wasm` is the
//! proxy-wasm binding Envoy and Istio load, and it only exists on wasm32.

pub mod core;

// Not in test builds: the core's tests run on wasm32 without a proxy host to link against.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod wasm;
// The Envoy dynamic-module binding (`make build-native`): native targets, feature `dynamic-module`.
#[cfg(all(feature = "dynamic-module", not(target_arch = "wasm32"), not(test)))]
mod dynamic_module;
