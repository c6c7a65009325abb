//! Consistent bucketing: murmur3 x86_32 of a salted key, mapped onto weighted subsets.
//!
//! The hash input is `"<salt>:<key>"` (the salt is the release name), the same shape Unleash
//! hashes (`groupId:userId`), so two releases bucket the same user independently.
//! The 32-bit hash is read as a position `h / 2^32` in `[0, 1)`; subset `i` owns the half-open
//! interval `[C(i-1)/T, C(i)/T)` of cumulative weights `C` over the total `T`. In integers that is
//! `bucket = (h * T) >> 32` (no modulo bias) and the first subset with `bucket < C(i)`.
//! Raising the last subset's weight only shrinks the earlier intervals towards 0, so users only
//! ever move into the last subset: a ramp never moves a canary user back.

use std::io::Read;

/// murmur3 x86_32 (seed 0) of `salt ++ ":" ++ key`, without building the joined string.
pub fn position(salt: &[u8], key: &[u8]) -> u32 {
    let mut input = salt.chain(&b":"[..]).chain(key);
    // Reading from slices cannot fail; 0 is a valid position should it ever happen.
    murmur3::murmur3_32(&mut input, 0).unwrap_or(0)
}

/// Maps a position to a bucket in `[0, total)`. `total` must be > 0.
pub fn bucket(position: u32, total: u32) -> u32 {
    ((u64::from(position) * u64::from(total)) >> 32) as u32
}

/// Picks the subset whose half-open interval holds `position`, given cumulative weights
/// (`cumulative[i]` is the sum of weights `0..=i`; the last entry is the total).
/// Subsets of weight 0 own an empty interval and are never picked.
pub fn pick(position: u32, cumulative: &[u32]) -> Option<usize> {
    let total = *cumulative.last()?;
    if total == 0 {
        return None;
    }
    let b = bucket(position, total);
    cumulative.iter().position(|&c| b < c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cumulative(weights: &[u32]) -> Vec<u32> {
        weights
            .iter()
            .scan(0u32, |sum, w| {
                *sum += w;
                Some(*sum)
            })
            .collect()
    }

    // Reference vectors of murmur3 x86_32, seed 0 (the same values the Java, Go and JS ports give).
    #[test]
    fn murmur3_matches_reference_vectors() {
        let plain = |s: &[u8]| murmur3::murmur3_32(&mut &s[..], 0).unwrap();
        assert_eq!(plain(b""), 0);
        assert_eq!(plain(b"hello"), 0x248b_fa47);
        assert_eq!(plain(b"hello, world"), 0x149b_bb7f);
        assert_eq!(
            plain(b"The quick brown fox jumps over the lazy dog"),
            0x2e4f_f723
        );
    }

    #[test]
    fn salted_position_is_murmur3_of_the_joined_string() {
        let joined = murmur3::murmur3_32(&mut &b"checkout:alice"[..], 0).unwrap();
        assert_eq!(position(b"checkout", b"alice"), joined);
        // Pinned value: the same on every platform, and on wasm32 (this suite runs there too).
        assert_eq!(position(b"checkout", b"alice"), 3_211_913_009);
        assert_ne!(
            position(b"checkout", b"alice"),
            position(b"search", b"alice")
        );
    }

    #[test]
    fn bucket_covers_the_whole_range_without_modulo_bias() {
        assert_eq!(bucket(0, 100), 0);
        assert_eq!(bucket(u32::MAX, 100), 99);
        assert_eq!(bucket(1 << 31, 100), 50);
        assert_eq!(bucket((1u32 << 31) - 1, 100), 49);
        assert_eq!(bucket(u32::MAX, 1), 0);
    }

    #[test]
    fn half_open_intervals_give_exactly_the_weight() {
        // A 50/50 split: exactly half of the position space goes to each side, never 51%.
        let c = cumulative(&[50, 50]);
        assert_eq!(pick((1u32 << 31) - 1, &c), Some(0));
        assert_eq!(pick(1u32 << 31, &c), Some(1));
        let c = cumulative(&[90, 10]);
        let first_canary = pick_boundary(&c);
        // 90% of 2^32 is 3865470566.4: positions from 3865470567 on are canary.
        assert_eq!(first_canary, 3_865_470_567);
    }

    fn pick_boundary(c: &[u32]) -> u32 {
        let (mut lo, mut hi) = (0u32, u32::MAX);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pick(mid, c) == Some(0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    #[test]
    fn zero_weight_subsets_are_never_picked() {
        let c = cumulative(&[0, 100, 0]);
        for p in [0, 1, 1 << 31, u32::MAX - 1, u32::MAX] {
            assert_eq!(pick(p, &c), Some(1));
        }
        assert_eq!(pick(5, &cumulative(&[0, 0])), None);
        assert_eq!(pick(5, &[]), None);
    }

    #[test]
    fn split_of_many_keys_is_close_to_the_weights() {
        let c = cumulative(&[50, 30, 20]);
        let mut counts = [0u32; 3];
        for i in 0..100_000u32 {
            let key = format!("user-{i}");
            counts[pick(position(b"checkout", key.as_bytes()), &c).unwrap()] += 1;
        }
        for (count, want) in counts.iter().zip([50_000, 30_000, 20_000]) {
            assert!((*count as i64 - want).abs() < 600, "{counts:?}");
        }
    }

    #[test]
    fn raising_the_last_weight_only_moves_users_into_it() {
        let ramps: [(&[u32], &[u32]); 4] = [
            (&[90, 10], &[75, 25]), // total unchanged
            (&[90, 10], &[90, 25]), // total grows
            (&[50, 30, 20], &[40, 20, 40]),
            (&[1, 0], &[1, 1]),
        ];
        for (before, after) in ramps {
            let (b, a) = (cumulative(before), cumulative(after));
            let last = before.len() - 1;
            for i in 0..20_000u32 {
                let p = position(b"checkout", format!("u{i}").as_bytes());
                if pick(p, &b) == Some(last) {
                    assert_eq!(
                        pick(p, &a),
                        Some(last),
                        "{before:?} -> {after:?} moved u{i} back"
                    );
                }
            }
        }
    }
}
