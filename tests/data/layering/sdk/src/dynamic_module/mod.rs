use crate::{core::time, wasm::Root};

mod abi;
