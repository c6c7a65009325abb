//! b -> c, only in a macro's arguments.

pub struct Thing;

pub fn warn() {
    // crate::core::a::Item in a comment is no path.
    log::warn!("{}", crate::core::c::LIMIT);
}
