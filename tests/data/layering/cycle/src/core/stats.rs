//! A leaf. Its test code names `a` and `b` (which would put it in the cycle), and so does a
//! string: neither is an import.

pub const NAMES: &str = "crate::core::a::Item";

#[cfg(test)]
use crate::core::b::Thing;

#[cfg(all(test, unix))]
pub fn probe() -> crate::core::a::Item {
    crate::core::a::Item
}

#[cfg(test)]
mod tests {
    use crate::core::a::Item;
}
