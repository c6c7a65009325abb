//! Who names `facade::Item` depends on `a`.

pub use crate::core::a::Item;
