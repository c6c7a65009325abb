//! `Cookie` request headers (client input) and sticky cookie values.
//!
//! Input: a cookie name, then `Cookie` header values, separated by NUL bytes.
//!
//! `cookie::find` is checked against a reference parser written from RFC 6265 §4.2 (split on
//! `;`, trim spaces and tabs, the name up to optional whitespace and `=`, the value trimmed and
//! unquoted) for every name a policy may use (RFC 9110 token characters), and for any name:
//! several headers are searched in order, a value is a slice of one header without a `;`.
//! Sticky cookies: only a bare 16-hex key (no secret) or a key with the MAC of a secret in
//! force is read back, and what Dial writes for a key reads back as that key.

use dial::core::cookie;
use dial::core::secret::Secret;
use dial::core::sticky::{is_valid_key, mint_key, Signing, StickyCookie, KEY_LEN};

use super::input::Input;

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn reference<'a>(headers: &[&'a [u8]], name: &[u8]) -> Option<&'a [u8]> {
    for h in headers {
        for pair in h.split(|&b| b == b';') {
            let pair = trim(pair);
            let Some(after) = pair.strip_prefix(name) else {
                continue;
            };
            let Some(value) = trim(after).strip_prefix(b"=") else {
                continue;
            };
            let value = trim(value);
            return Some(match value {
                [b'"', inner @ .., b'"'] => inner,
                v => v,
            });
        }
    }
    None
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
            found,
            reference(&headers, name.as_bytes()),
            "cookie {name:?} in {headers:?}"
        );
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
