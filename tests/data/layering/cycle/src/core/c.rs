//! c -> a, through the re-export in `facade`.

use super::facade::Item;

pub const LIMIT: u32 = 3;

pub fn item() -> Item {
    Item
}
