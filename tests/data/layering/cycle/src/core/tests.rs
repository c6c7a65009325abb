use crate::core::{a::Item, b::Thing, stats};
