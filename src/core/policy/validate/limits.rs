//! The policy's bounds, in a module of their own: the parts of a release check them, and the
//! top level (which calls those parts) too, so none is imported back from it.

/// Bounds that keep the per-request work and the stats cardinality small.
pub const MAX_RELEASES: usize = 64;
pub const MAX_SUBSETS: usize = 16;
pub const MAX_WEIGHT_TOTAL: i64 = 1_000_000;
/// Browsers cap cookie lifetimes at 400 days.
pub const MAX_COOKIE_AGE: i64 = 400 * 24 * 3600;
pub const MIN_TOKEN_LEN: usize = 16;
