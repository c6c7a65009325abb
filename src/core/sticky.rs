//! The sticky cookie that pins an anonymous user: Dial mints a random key, keeps it in a cookie,
//! and hashes it like a user key. The cookie holds no subset name, and ramps stay monotone for
//! anonymous users too.
//!
//! With a secret, the cookie also carries a MAC of the key (HMAC-SHA-256, truncated to 64
//! bits), checked in constant time: a client cannot choose a key that lands where it wants, as
//! it could with a bare key (the hash is public). A secret can be rotated: a cookie signed with
//! the previous secret is still honoured, and signed again with the current one.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::core::secret::Secret;

/// Sticky keys are 16 lower-case hex digits (64 random bits).
pub const KEY_LEN: usize = 16;
/// The MAC's share of a signed value: 16 hex digits (64 bits), after a dot.
pub const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyCookie {
    pub name: String,
    /// `None`: a session cookie.
    pub max_age_seconds: Option<u32>,
    pub path: String,
    pub secure: bool,
    /// Secrets that sign the key; `None`: bare keys, which a client can choose.
    pub signing: Option<Signing>,
}

/// The secret that signs new cookies, and the one before it, still honoured.
#[derive(Clone, PartialEq, Eq)]
pub struct Signing {
    pub secret: Secret,
    pub previous: Option<Secret>,
}

impl fmt::Debug for Signing {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.previous.is_some() {
            "Signing { secret, previous }"
        } else {
            "Signing { secret }"
        })
    }
}

/// What a cookie value from a request turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'v> {
    pub key: &'v [u8],
    /// Signed with the previous secret: the response should carry it signed with the current one.
    pub resign: bool,
}

/// Formats a fresh key from 64 random bits.
pub fn mint_key(entropy: u64) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    hex(&entropy.to_be_bytes(), &mut out);
    out
}

/// Whether a value is a bare key Dial could have minted.
pub fn is_valid_key(value: &[u8]) -> bool {
    value.len() == KEY_LEN && is_lower_hex(value)
}

fn is_lower_hex(value: &[u8]) -> bool {
    value.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        if let [hi, lo] = pair {
            *hi = DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = DIGITS.get(usize::from(b & 0xf)).copied().unwrap_or(b'0');
        }
    }
}

pub(crate) fn unhex(text: &[u8], out: &mut [u8]) -> Option<()> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if text.len() != out.len() * 2 {
        return None;
    }
    for (pair, slot) in text.chunks_exact(2).zip(out.iter_mut()) {
        if let [hi, lo] = pair {
            *slot = digit(*hi)? << 4 | digit(*lo)?;
        }
    }
    Some(())
}

impl StickyCookie {
    /// The key a cookie value carries, if Dial could have minted it (and, with a secret, signed
    /// it with a secret in force); anything else is ignored and replaced.
    pub fn read<'v>(&self, value: &'v [u8]) -> Option<Presented<'v>> {
        let Some(signing) = &self.signing else {
            return is_valid_key(value).then_some(Presented {
                key: value,
                resign: false,
            });
        };
        if value.len() != KEY_LEN + 1 + TAG_LEN || value.get(KEY_LEN) != Some(&b'.') {
            return None;
        }
        let (key, tag) = (value.get(..KEY_LEN)?, value.get(KEY_LEN + 1..)?);
        if !is_valid_key(key) {
            return None;
        }
        let mut tag_bytes = [0u8; TAG_LEN / 2];
        unhex(tag, &mut tag_bytes)?;
        if let Some(secret) = signing.secret.value() {
            if self.verify(secret, key, &tag_bytes) {
                return Some(Presented { key, resign: false });
            }
        }
        let previous = signing.previous.as_ref().and_then(Secret::value)?;
        self.verify(previous, key, &tag_bytes)
            .then_some(Presented { key, resign: true })
    }

    /// The cookie's value for a key: the key, and with a secret its MAC.
    pub fn value(&self, key: &[u8; KEY_LEN]) -> String {
        let key_text = std::str::from_utf8(key).unwrap_or_default();
        let Some(mac) = self
            .signing
            .as_ref()
            .and_then(|s| self.mac(s.secret.value()?, key))
        else {
            return key_text.to_string();
        };
        let mut tag = [0u8; TAG_LEN];
        hex(mac.get(..TAG_LEN / 2).unwrap_or_default(), &mut tag);
        format!(
            "{key_text}.{}",
            std::str::from_utf8(&tag).unwrap_or_default()
        )
    }

    /// The `Set-Cookie` value that stores `key`.
    pub fn set_cookie(&self, key: &[u8; KEY_LEN]) -> String {
        let mut out = format!("{}={}; Path={}", self.name, self.value(key), self.path);
        if let Some(age) = self.max_age_seconds {
            out.push_str(&format!("; Max-Age={age}"));
        }
        out.push_str("; HttpOnly; SameSite=Lax");
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }

    /// HMAC-SHA-256 over the cookie's name and the key, so a tag is good for this cookie only.
    fn keyed(&self, secret: &str, key: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
        mac.update(b"dial sticky key\0");
        mac.update(self.name.as_bytes());
        mac.update(b"\0");
        mac.update(key);
        Some(mac)
    }

    fn mac(&self, secret: &str, key: &[u8]) -> Option<Vec<u8>> {
        Some(self.keyed(secret, key)?.finalize().into_bytes().to_vec())
    }

    /// Constant time in the tag (the MAC library compares it).
    fn verify(&self, secret: &str, key: &[u8], tag: &[u8]) -> bool {
        self.keyed(secret, key)
            .is_some_and(|mac| mac.verify_truncated_left(tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(signing: Option<Signing>) -> StickyCookie {
        StickyCookie {
            name: "dial-checkout".into(),
            max_age_seconds: Some(2_592_000),
            path: "/".into(),
            secure: true,
            signing,
        }
    }

    fn signed(secret: &str, previous: Option<&str>) -> StickyCookie {
        cookie(Some(Signing {
            secret: Secret::inline(secret),
            previous: previous.map(Secret::inline),
        }))
    }

    #[test]
    fn minted_keys_are_valid_hex_of_the_entropy() {
        assert_eq!(&mint_key(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        assert_eq!(&mint_key(0), b"0000000000000000");
        assert_eq!(&mint_key(u64::MAX), b"ffffffffffffffff");
        assert!(is_valid_key(&mint_key(0xdead_beef)));
    }

    #[test]
    fn foreign_values_are_not_keys() {
        let bare = cookie(None);
        for value in [
            &b""[..],
            b"canary",
            b"0123456789ABCDEF",
            b"0123456789abcdef0",
            &[0xff; 16],
        ] {
            assert!(!is_valid_key(value));
            assert_eq!(bare.read(value), None);
        }
        assert_eq!(
            bare.read(b"0123456789abcdef"),
            Some(Presented {
                key: b"0123456789abcdef",
                resign: false
            })
        );
    }

    #[test]
    fn a_signed_value_round_trips_and_a_forged_one_does_not() {
        let c = signed("a-long-random-secret-1", None);
        let key = mint_key(0x0123_4567_89ab_cdef);
        let value = c.value(&key);
        assert_eq!(value.len(), KEY_LEN + 1 + TAG_LEN);
        assert!(value.starts_with("0123456789abcdef."), "{value}");
        assert_eq!(
            c.read(value.as_bytes()),
            Some(Presented {
                key: b"0123456789abcdef",
                resign: false
            })
        );
        // A bare key, another key with this tag, a flipped tag digit, another secret's tag.
        let other = format!("0000000000000001{}", &value[KEY_LEN..]);
        let mut flipped = value.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let foreign = signed("another-secret-value", None).value(&key);
        for bad in [
            b"0123456789abcdef".to_vec(),
            other.into_bytes(),
            flipped,
            foreign.into_bytes(),
            format!("{value}0").into_bytes(),
            value.to_uppercase().into_bytes(),
        ] {
            assert_eq!(c.read(&bad), None, "{}", String::from_utf8_lossy(&bad));
        }
        // The tag is bound to the cookie's name.
        let renamed = StickyCookie {
            name: "dial-search".into(),
            ..c.clone()
        };
        assert_eq!(renamed.read(value.as_bytes()), None);
    }

    #[test]
    fn a_rotated_secret_still_honours_the_previous_one_and_resigns() {
        let old = signed("the-first-secret-00", None);
        let rotated = signed("the-second-secret-0", Some("the-first-secret-00"));
        let key = mint_key(42);
        let before = old.value(&key);
        assert_eq!(
            rotated.read(before.as_bytes()),
            Some(Presented {
                key: &before.as_bytes()[..KEY_LEN],
                resign: true
            })
        );
        let after = rotated.value(&key);
        assert_ne!(after, before);
        assert_eq!(
            rotated.read(after.as_bytes()).map(|p| p.resign),
            Some(false)
        );
        // Once the previous secret is dropped, its cookies are replaced.
        let dropped = signed("the-second-secret-0", None);
        assert_eq!(dropped.read(before.as_bytes()), None);
    }

    #[test]
    fn set_cookie_carries_the_attributes() {
        let c = cookie(None);
        assert_eq!(
            c.set_cookie(b"00000000000000ff"),
            "dial-checkout=00000000000000ff; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax; Secure"
        );
        let session = StickyCookie {
            max_age_seconds: None,
            secure: false,
            ..c
        };
        assert_eq!(
            session.set_cookie(b"00000000000000ff"),
            "dial-checkout=00000000000000ff; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let c = signed("do-not-print-this-secret", Some("nor-this-one-either"));
        let text = format!("{c:?}");
        assert!(
            !text.contains("do-not-print") && !text.contains("nor-this"),
            "{text}"
        );
    }
}
