//! The sticky cookie that pins an anonymous user: Dial mints a random key, keeps it in a cookie,
//! and hashes it like a user key. The cookie holds no subset name, so a client cannot pick the
//! canary by editing it, and ramps stay monotone for anonymous users too.

/// Sticky keys are 16 lower-case hex digits (64 random bits).
pub const KEY_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyCookie {
    pub name: String,
    /// `None`: a session cookie.
    pub max_age_seconds: Option<u32>,
    pub path: String,
    pub secure: bool,
}

/// Formats a fresh key from 64 random bits.
pub fn mint_key(entropy: u64) -> [u8; KEY_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; KEY_LEN];
    for (i, slot) in out.iter_mut().enumerate() {
        let nibble = (entropy >> (60 - 4 * i)) & 0xf;
        *slot = HEX.get(nibble as usize).copied().unwrap_or(b'0');
    }
    out
}

/// Whether a cookie value is a key Dial could have minted; anything else is ignored and replaced.
pub fn is_valid_key(value: &[u8]) -> bool {
    value.len() == KEY_LEN && value.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl StickyCookie {
    /// The `Set-Cookie` value that stores `key`.
    pub fn set_cookie(&self, key: &[u8; KEY_LEN]) -> String {
        let key = std::str::from_utf8(key).unwrap_or_default();
        let mut out = format!("{}={key}; Path={}", self.name, self.path);
        if let Some(age) = self.max_age_seconds {
            out.push_str(&format!("; Max-Age={age}"));
        }
        out.push_str("; HttpOnly; SameSite=Lax");
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_valid_hex_of_the_entropy() {
        assert_eq!(&mint_key(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        assert_eq!(&mint_key(0), b"0000000000000000");
        assert_eq!(&mint_key(u64::MAX), b"ffffffffffffffff");
        assert!(is_valid_key(&mint_key(0xdead_beef)));
    }

    #[test]
    fn foreign_values_are_not_keys() {
        assert!(!is_valid_key(b""));
        assert!(!is_valid_key(b"canary"));
        assert!(!is_valid_key(b"0123456789ABCDEF"));
        assert!(!is_valid_key(b"0123456789abcdef0"));
        assert!(!is_valid_key(&[0xff; 16]));
    }

    #[test]
    fn set_cookie_carries_the_attributes() {
        let c = StickyCookie {
            name: "dial-checkout".into(),
            max_age_seconds: Some(2_592_000),
            path: "/".into(),
            secure: true,
        };
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
}
