//! How a release turns a key into a subset. `dial` is Dial's own split (bucket.rs). `unleash`
//! and `flagd` bucket exactly as those flag systems do, so the proxy and an app-side flag agree
//! on who is in the canary:
//!
//! - `unleash`, two subsets: the gradual-rollout strategy. `murmur3("<groupId>:<key>", seed 0)
//!   % 100 + 1`; the second subset ("enabled") when that is at most its whole percentage.
//! - `unleash` variants (more subsets, or two with `"mode": "variants"`): `murmur3("<groupId>:<key>",
//!   seed 86028157) % total + 1` against the weights' running sums; the server serves weights that
//!   add up to 1000, so the policy's must too.
//! - `flagd`: the `fractional` operator over `murmur3(flagKey ++ key)` (no separator).
//!   Version 2 (flagd 0.15): `(h × totalWeight) >> 32` against the running sums, the same integer
//!   mapping as Dial's; version 1 (older flagd): the hash read as a signed 32-bit integer,
//!   `|h| / (2^31 - 1) × 100` against running sums of percentages, in floating point; version 3
//!   (newer providers): version 2's mapping over murmur3 of the canonical CBOR encoding of the
//!   bucketing value (`[flagKey, key]` by default, the key alone as a text string).
//!
//! Monotone ramps: Unleash's rollout only adds users as the percentage rises (the ramped subset
//! must be the second one); flagd's running sums only move users into the last subset as its
//! weight rises (the ramped subset must be last; with three or more subsets, users also move
//! between the others, as they would in flagd). Unleash variants cannot ramp monotonically.

use crate::core::bucket::{self, Salted};

/// Unleash's seed for variant assignment.
pub const UNLEASH_VARIANT_SEED: u32 = 86_028_157;
/// The Unleash server serves variant weights that add up to 1000.
pub const UNLEASH_VARIANT_TOTAL: u32 = 1000;

#[derive(Debug, Clone)]
pub enum Scheme {
    Dial,
    /// Two subsets: the rollout hash and the second subset's written whole percentage.
    UnleashRollout {
        hash: Salted,
        percent: u32,
    },
    /// More subsets: the variant hash and the weights' running sums in thousandths.
    UnleashVariants {
        hash: Salted,
        cumulative: Vec<u32>,
    },
    Flagd {
        hash: Salted,
        version: FlagdVersion,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagdVersion {
    /// Floating point over percentages (the oldest `fractional`).
    V1,
    /// Integer `(h × T) >> 32` over murmur3 of the bucketing string.
    V2,
    /// The same mapping over murmur3 of the bucketing value's canonical CBOR encoding (newer
    /// flagd providers): the default bucketing is the array `[flagKey, key]`, a custom one a
    /// text string.
    V3,
}

/// The CBOR header of a text string of `len` bytes (major type 3), as canonical CBOR writes it.
pub fn cbor_text_header(len: usize, out: &mut [u8; 9]) -> &[u8] {
    // (additional information, bytes of length that follow)
    let (info, n): (u8, usize) = match len {
        0..=23 => (len as u8, 0),
        24..=0xff => (24, 1),
        0x100..=0xffff => (25, 2),
        0x1_0000..=0xffff_ffff => (26, 4),
        _ => (27, 8),
    };
    let bytes = (len as u64).to_be_bytes();
    let mut parts = std::iter::once(0x60 | info).chain(bytes.into_iter().skip(8 - n));
    for slot in out.iter_mut().take(1 + n) {
        *slot = parts.next().unwrap_or(0);
    }
    out.get(..1 + n).unwrap_or_default()
}

impl Scheme {
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Dial => "dial",
            Scheme::UnleashRollout { .. } | Scheme::UnleashVariants { .. } => "unleash",
            Scheme::Flagd { .. } => "flagd",
        }
    }
}

/// Unleash's normalisation: `hash % normalizer + 1`, in `1..=normalizer`.
pub fn unleash_normalized(hash: u32, normalizer: u32) -> u32 {
    hash % normalizer.max(1) + 1
}

/// Unleash's rollout: the second subset (1) when the normalised value is within the percentage.
pub fn unleash_rollout(hash: u32, percent: u32) -> usize {
    usize::from(percent > 0 && unleash_normalized(hash, 100) <= percent)
}

/// Unleash's variant selection: the first variant whose running sum reaches the normalised
/// value (zero-weight variants never match).
pub fn unleash_variant(hash: u32, cumulative: &[u32]) -> Option<usize> {
    let total = *cumulative.last()?;
    let target = unleash_normalized(hash, total);
    cumulative.iter().position(|&c| c >= target)
}

/// flagd's `fractional`, version 1: floating point over percentages, as flagd computed it
/// (each variant's percentage `100 × weight / total`, summed in order).
pub fn flagd_v1(hash: u32, cumulative: &[u32]) -> Option<usize> {
    let total = f64::from(*cumulative.last()?);
    if total == 0.0 {
        return None;
    }
    let signed = hash as i32;
    let bucket = f64::from(signed).abs() / f64::from(i32::MAX) * 100.0;
    let mut range_end = 0.0f64;
    let mut previous = 0u32;
    for (i, c) in cumulative.iter().enumerate() {
        range_end += 100.0 * f64::from(c - previous) / total;
        previous = *c;
        if bucket < range_end {
            return Some(i);
        }
    }
    None
}

/// flagd's `fractional`, version 2: the same integer mapping as Dial's split.
pub fn flagd_v2(hash: u32, cumulative: &[u32]) -> Option<usize> {
    bucket::pick(hash, cumulative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unleash_normalises_from_one() {
        assert_eq!(unleash_normalized(0, 100), 1);
        assert_eq!(unleash_normalized(99, 100), 100);
        assert_eq!(unleash_normalized(100, 100), 1);
        assert_eq!(unleash_rollout(0, 0), 0);
        assert_eq!(unleash_rollout(0, 1), 1);
        assert_eq!(unleash_rollout(1, 1), 0);
        assert_eq!(unleash_rollout(99, 100), 1);
    }

    #[test]
    fn unleash_variants_take_the_first_running_sum_that_reaches_the_target() {
        // 500/300/200 thousandths: targets 1..=500, 501..=800, 801..=1000.
        let c = [500, 800, 1000];
        assert_eq!(unleash_variant(0, &c), Some(0));
        assert_eq!(unleash_variant(499, &c), Some(0));
        assert_eq!(unleash_variant(500, &c), Some(1));
        assert_eq!(unleash_variant(799, &c), Some(1));
        assert_eq!(unleash_variant(800, &c), Some(2));
        assert_eq!(unleash_variant(999, &c), Some(2));
        // A zero-weight variant is never chosen.
        assert_eq!(unleash_variant(0, &[0, 1000]), Some(1));
    }

    #[test]
    fn cbor_text_headers_are_canonical() {
        let mut buf = [0u8; 9];
        assert_eq!(cbor_text_header(0, &mut buf), [0x60]);
        assert_eq!(cbor_text_header(23, &mut buf), [0x77]);
        assert_eq!(cbor_text_header(24, &mut buf), [0x78, 24]);
        assert_eq!(cbor_text_header(255, &mut buf), [0x78, 0xff]);
        assert_eq!(cbor_text_header(256, &mut buf), [0x79, 0x01, 0x00]);
        assert_eq!(cbor_text_header(70_000, &mut buf), [0x7a, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn flagd_v1_reads_the_hash_as_signed() {
        let c = [50, 100];
        assert_eq!(flagd_v1(0, &c), Some(0));
        // i32::MAX and -i32::MAX are both at the very top: 100 is not below 100.
        assert_eq!(flagd_v1(i32::MAX as u32, &c), None);
        assert_eq!(flagd_v1((-(i32::MAX / 2 + 10)) as u32, &c), Some(1));
        assert_eq!(flagd_v1((-(i32::MAX / 2)) as u32, &c), Some(0));
        assert_eq!(flagd_v1((i32::MAX / 2 - 1) as u32, &c), Some(0));
        assert_eq!(flagd_v1(5, &[0, 0]), None);
    }
}
