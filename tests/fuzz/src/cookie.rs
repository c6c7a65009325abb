//! `Cookie` request headers (client input) and sticky cookie values.
//!
//! Input: a cookie name, then `Cookie` header values, separated by NUL bytes.
//!
//! `cookie::find` is checked against the `cookie` crate (`Cookie::split_parse`, the first cookie
//! of that name, its `value_trimmed`), header by header in order, for every name a policy may
//! use (RFC 9110 token characters; `Checker::cookie_name` refuses others). A header is octets:
//! the crate, which reads `str`, gets each byte as one character (U+0000 to U+00FF), so it sees
//! the bytes Dial sees. Where Dial differs from the crate on purpose, the rule is checked, not
//! skipped:
//!
//! - Whitespace: Dial trims only SP and HTAB around pairs, names and values (RFC 6265 §4.2.1's
//!   `OWS`); the crate trims every Unicode White_Space character, which among single bytes adds
//!   LF, VT, FF, CR, NEL (0x85) and NBSP (0xA0). Dial must equal the crate reading the same
//!   header with those six bytes as ordinary (non-space) characters; and where Dial and the
//!   crate's own reading differ, the header holds one of those bytes.
//!
//! For any name: several headers are searched in order, a value is a slice of one header without
//! a `;`. Sticky cookies: only a bare 16-hex key (no secret) or a key with the MAC of a secret
//! in force is read back, and what Dial writes for a key reads back as that key.

use ::cookie::Cookie;
use dial::core::cookie;
use dial::core::secret::Secret;
use dial::core::sticky::{is_valid_key, mint_key, Signing, StickyCookie, KEY_LEN};

use super::input::Input;

/// The bytes the crate trims (Unicode White_Space among U+0000..=U+00FF) and Dial does not.
const NOT_OWS: [u8; 6] = [b'\n', 0x0b, 0x0c, b'\r', 0x85, 0xa0];

/// Where a byte of `NOT_OWS` goes when the crate is to read it as an ordinary character: the
/// Private Use Area, which is not White_Space.
const PRIVATE: u32 = 0xE000;

/// The crate's answer for `name` over `headers`: the first header holding the cookie, the
/// value with a pair of surrounding quotes removed. `as_ows`: whether the bytes of `NOT_OWS`
/// are whitespace to the crate (its own reading) or ordinary characters (Dial's rule).
fn crate_find(headers: &[&[u8]], name: &str, as_ows: bool) -> Option<Vec<u8>> {
    let to_char = |b: u8| match b {
        b if !as_ows && NOT_OWS.contains(&b) => {
            char::from_u32(PRIVATE + u32::from(b)).expect("a private-use character")
        }
        b => char::from(b),
    };
    let from_char = |c: char| {
        let n = u32::from(c);
        u8::try_from(if n >= PRIVATE { n - PRIVATE } else { n }).expect("one byte's character")
    };
    headers.iter().find_map(|h| {
        let text: String = h.iter().map(|&b| to_char(b)).collect();
        Cookie::split_parse(text.as_str())
            // A pair without `=`, or with an empty name, is an error the crate yields and goes
            // on from; Dial skips such a pair too.
            .flatten()
            .find(|c| c.name() == name)
            .map(|c| c.value_trimmed().chars().map(from_char).collect())
    })
}

/// A name `Checker::cookie_name` accepts.
fn is_policy_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
}

fn within(part: &[u8], whole: &[u8]) -> bool {
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

fn sticky(signing: Option<(&str, Option<&str>)>) -> StickyCookie {
    StickyCookie {
        name: "dial-checkout".to_string(),
        max_age_seconds: Some(3600),
        path: "/".to_string(),
        secure: true,
        signing: signing.map(|(secret, previous)| Signing {
            secret: Secret::inline(secret),
            previous: previous.map(Secret::inline),
        }),
    }
}

const SECRET: &str = "current-secret-0123456789";
const PREVIOUS: &str = "previous-secret-0123456789";

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let name_bytes = input.until(0);
    let mut headers = Vec::new();
    while !input.is_empty() {
        headers.push(input.until(0));
    }
    let name = String::from_utf8_lossy(name_bytes);
    let found = cookie::find(headers.iter().copied(), &name);

    // Several headers: the first that has the cookie.
    let first = headers.iter().find_map(|h| cookie::find([*h], &name));
    assert_eq!(found, first);
    if name.is_empty() {
        assert_eq!(found, None);
    }
    if let Some(v) = found {
        assert!(
            headers.iter().any(|h| within(v, h)),
            "not a slice of a header"
        );
        assert!(!v.contains(&b';'));
    }
    if is_policy_name(name.as_bytes()) {
        assert_eq!(
            found.map(<[u8]>::to_vec),
            crate_find(&headers, &name, false),
            "cookie {name:?} in {headers:?}: Dial against the crate, whitespace as RFC 6265's OWS"
        );
        let own = crate_find(&headers, &name, true);
        if found.map(<[u8]>::to_vec) != own {
            assert!(
                headers
                    .iter()
                    .any(|h| h.iter().any(|b| NOT_OWS.contains(b))),
                "cookie {name:?} in {headers:?}: Dial {found:?}, the crate {own:?}"
            );
        }
    }

    // Sticky cookie values: each header's found value, and each header as a value.
    let bare = sticky(None);
    let signed = sticky(Some((SECRET, None)));
    let rotated = sticky(Some((SECRET, Some(PREVIOUS))));
    let before = sticky(Some((PREVIOUS, None)));
    for value in found.into_iter().chain(headers.iter().copied()) {
        if let Some(p) = bare.read(value) {
            assert_eq!(p.key, value);
            assert!(is_valid_key(p.key) && !p.resign);
        }
        if let Some(p) = signed.read(value) {
            let key: [u8; KEY_LEN] = p.key.try_into().expect("a 16-byte key");
            assert!(!p.resign);
            assert_eq!(
                signed.value(&key).as_bytes(),
                value,
                "a forged tag was accepted"
            );
        }
        if let Some(p) = rotated.read(value) {
            let key: [u8; KEY_LEN] = p.key.try_into().expect("a 16-byte key");
            let signer = if p.resign { &before } else { &signed };
            assert_eq!(
                signer.value(&key).as_bytes(),
                value,
                "a forged tag was accepted"
            );
        }
    }

    // What Dial writes reads back, through the `Cookie` header a browser would send.
    let key = mint_key(Input::new(data).u64());
    for (c, resign) in [(&bare, false), (&signed, false), (&rotated, false)] {
        let value = c.value(&key);
        let read = c.read(value.as_bytes()).expect("Dial's own value");
        assert_eq!((read.key, read.resign), (&key[..], resign));
        let set = c.set_cookie(&key);
        let sent = set.split(';').next().unwrap_or_default();
        assert_eq!(
            cookie::find([sent.as_bytes()], &c.name),
            Some(value.as_bytes())
        );
    }
    let old = before.value(&key);
    let read = rotated
        .read(old.as_bytes())
        .expect("the previous secret's value");
    assert!(read.resign && read.key == key);
    assert!(signed.read(old.as_bytes()).is_none());
}
