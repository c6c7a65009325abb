//! A planted cycle: a -> b -> c -> a.

use crate::core::{b::Thing, stats};

pub struct Item;

pub fn thing() -> (Thing, &'static str) {
    (Thing, stats::NAMES)
}
