pub mod core;

#[cfg(target_arch = "wasm32")]
mod wasm;

mod dynamic_module;
