//! Consistent bucketing: murmur3 x86_32 of a salted key, mapped onto weighted subsets.
//!
//! Dial's own scheme hashes `"<salt>:<key>"` (the salt is the release name), so two releases
//! bucket the same user independently. (Unleash hashes `"<groupId>:<userId>"` too, but maps the
//! hash with `% 100 + 1`; flagd hashes `flagKey ++ key` with no separator. `scheme` implements
//! those, for releases that must agree with an app-side flag.)
//! The 32-bit hash is read as a position `h / 2^32` in `[0, 1)`; subset `i` owns the half-open
//! interval `[C(i-1)/T, C(i)/T)` of cumulative weights `C` over the total `T`. In integers that is
//! `bucket = (h * T) >> 32` (no modulo bias) and the first subset with `bucket < C(i)`.
//! Raising the last subset's weight only shrinks the earlier intervals towards 0, so users only
//! ever move into the last subset: a ramp never moves a canary user back.

/// murmur3 x86_32 (seed 0) of `salt ++ ":" ++ key`, without building the joined string.
pub fn position(salt: &[u8], key: &[u8]) -> u32 {
    Salted::new(salt).position(key)
}

/// The hash state after `salt ++ ":"`, computed once per policy; each request hashes only its key.
#[derive(Debug, Clone, Copy)]
pub struct Salted(Murmur3);

impl Salted {
    /// Hashes `salt ++ ":" ++ key` (seed 0).
    pub fn new(salt: &[u8]) -> Salted {
        Salted::prefixed(0, &[salt, b":"])
    }

    /// Hashes the concatenation of `prefix` and the key, from a murmur3 `seed`.
    pub fn prefixed(seed: u32, prefix: &[&[u8]]) -> Salted {
        let mut h = Murmur3::seeded(seed);
        for part in prefix {
            h.write(part);
        }
        Salted(h)
    }

    pub fn position(&self, key: &[u8]) -> u32 {
        let mut h = self.0;
        h.write(key);
        h.finish()
    }

    /// The hash of the prefix followed by each part in turn.
    pub fn position_of(&self, parts: &[&[u8]]) -> u32 {
        let mut h = self.0;
        for part in parts {
            h.write(part);
        }
        h.finish()
    }
}

/// murmur3 x86_32 with seed 0, fed in pieces: the same value as hashing the pieces joined.
/// (The `murmur3` crate hashes through `std::io::Read`, a byte-copying loop that cost a third
/// of a whole decision; it stays in the tests as the reference this one must equal.)
#[derive(Debug, Clone, Copy, Default)]
pub struct Murmur3 {
    state: u32,
    /// Bytes of an unfinished 4-byte block, little-endian, and how many there are.
    tail: u32,
    tail_len: u32,
    len: u32,
}

impl Murmur3 {
    pub fn seeded(seed: u32) -> Murmur3 {
        Murmur3 {
            state: seed,
            ..Murmur3::default()
        }
    }

    pub fn write(&mut self, mut bytes: &[u8]) {
        // The length is mixed in modulo 2^32, as in the reference implementation.
        self.len = self.len.wrapping_add(bytes.len() as u32);
        while self.tail_len != 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            self.tail |= u32::from(b) << (8 * self.tail_len);
            self.tail_len += 1;
            bytes = rest;
            if self.tail_len == 4 {
                self.block(self.tail);
                (self.tail, self.tail_len) = (0, 0);
            }
        }
        let mut blocks = bytes.chunks_exact(4);
        for block in &mut blocks {
            let mut word = [0u8; 4];
            word.copy_from_slice(block);
            self.block(u32::from_le_bytes(word));
        }
        for (i, &b) in blocks.remainder().iter().enumerate() {
            self.tail |= u32::from(b) << (8 * i);
        }
        self.tail_len = blocks.remainder().len() as u32;
    }

    pub fn finish(&self) -> u32 {
        let mut h = self.state;
        if self.tail_len != 0 {
            h ^= scramble(self.tail);
        }
        h ^= self.len;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }

    fn block(&mut self, k: u32) {
        self.state ^= scramble(k);
        self.state = self
            .state
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
}

fn scramble(k: u32) -> u32 {
    k.wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593)
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
        let plain = |s: &[u8]| {
            let mut h = Murmur3::default();
            h.write(s);
            assert_eq!(h.finish(), murmur3::murmur3_32(&mut &s[..], 0).unwrap());
            h.finish()
        };
        assert_eq!(plain(b""), 0);
        assert_eq!(plain(b"hello"), 0x248b_fa47);
        assert_eq!(plain(b"hello, world"), 0x149b_bb7f);
        assert_eq!(
            plain(b"The quick brown fox jumps over the lazy dog"),
            0x2e4f_f723
        );
    }

    /// Every split of every length-0..40 input, against the crate (the reference).
    #[test]
    fn streaming_equals_the_reference_for_any_split() {
        let input: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        for len in 0..=input.len() {
            let data = &input[..len];
            let want = murmur3::murmur3_32(&mut &data[..], 0).unwrap();
            for a in 0..=len {
                for b in a..=len {
                    let mut h = Murmur3::default();
                    h.write(&data[..a]);
                    h.write(&data[a..b]);
                    h.write(&data[b..]);
                    assert_eq!(h.finish(), want, "len {len}, split at {a} and {b}");
                }
            }
        }
    }

    #[test]
    fn seeded_hashes_match_the_reference() {
        for seed in [0, 1, 86_028_157, u32::MAX] {
            for text in [&b""[..], b"a", b"checkout:alice", b"The quick brown fox"] {
                let mut h = Murmur3::seeded(seed);
                h.write(text);
                assert_eq!(
                    h.finish(),
                    murmur3::murmur3_32(&mut &text[..], seed).unwrap()
                );
            }
        }
        let flagd = Salted::prefixed(0, &[b"checkout"]);
        assert_eq!(
            flagd.position(b"alice"),
            murmur3::murmur3_32(&mut &b"checkoutalice"[..], 0).unwrap()
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
