//! W3C baggage (`baggage: user.id=alice,tenant=acme;prop=1`): one member's value, for a key
//! source. OpenTelemetry propagates baggage across services, so every hop of a call chain can
//! bucket the same user alike. Values are percent-decoded; properties after `;` are ignored.
//! Baggage over the W3C limits (8,192 bytes, 64 members), or malformed, yields no key.

use std::borrow::Cow;

/// W3C Baggage's limits for a whole baggage (all `baggage` headers together).
pub const MAX_BYTES: usize = 8192;
pub const MAX_MEMBERS: usize = 64;

/// The value of the first member called `name` across the request's `baggage` headers.
pub fn member<'a>(
    headers: impl Iterator<Item = &'a [u8]> + Clone,
    name: &str,
) -> Option<Cow<'a, [u8]>> {
    let mut bytes = 0usize;
    let mut members = 0usize;
    for header in headers.clone() {
        bytes += header.len();
        members += header.split(|b| *b == b',').count();
    }
    if bytes > MAX_BYTES || members > MAX_MEMBERS {
        return None;
    }
    let mut found = None;
    for header in headers {
        for item in header.split(|b| *b == b',') {
            // `key OWS "=" OWS value *(OWS ";" property)`; an empty item (",,") is tolerated.
            let item = trim(item);
            if item.is_empty() {
                continue;
            }
            let value_and_properties = item.iter().position(|b| *b == b'=')?;
            let (key, rest) = item.split_at(value_and_properties);
            let key = trim(key);
            if key.is_empty() || !key.iter().all(|b| is_token(*b)) {
                return None;
            }
            let rest = rest.get(1..).unwrap_or_default();
            let value = trim(rest.split(|b| *b == b';').next().unwrap_or_default());
            if !value.iter().all(|b| is_baggage_octet(*b)) {
                return None;
            }
            if found.is_none() && key == name.as_bytes() {
                found = Some(decode(value)?);
            }
        }
    }
    found
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// W3C baggage-octet: printable US-ASCII but for space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Percent-decoding; borrowed when there is nothing to decode. A bad escape is malformed.
fn decode(value: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !value.contains(&b'%') {
        return Some(Cow::Borrowed(value));
    }
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        if b == b'%' {
            let hi = hex(*value.get(i + 1)?)?;
            let lo = hex(*value.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(headers: &'a [&'a str], name: &str) -> Option<Vec<u8>> {
        member(headers.iter().map(|h| h.as_bytes()), name).map(|v| v.into_owned())
    }

    #[test]
    fn members_are_found_decoded_and_stripped_of_properties() {
        let h = ["tenant=acme, user.id = alice%20b%C3%A9 ;prop=1;flag, other=x"];
        assert_eq!(get(&h, "user.id").as_deref(), Some("alice bé".as_bytes()));
        assert_eq!(get(&h, "tenant").as_deref(), Some(&b"acme"[..]));
        assert_eq!(get(&h, "missing"), None);
        // Across several headers, the first member of that name.
        let two = ["a=1", "user.id=bob,user.id=carol"];
        assert_eq!(get(&two, "user.id").as_deref(), Some(&b"bob"[..]));
        // Borrowed when nothing is encoded: no allocation on the common path.
        let plain = [&b"user.id=alice"[..]];
        assert!(matches!(
            member(plain.iter().copied(), "user.id"),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn malformed_or_oversized_baggage_gives_no_key() {
        for bad in [
            "user.id",
            "user.id=al ice",
            "user.id=%zz",
            "user.id=%4",
            "=alice",
            "us er=alice",
            "user.id=\"alice\"",
        ] {
            assert_eq!(get(&[bad], "user.id"), None, "{bad}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
        let many = many.join(",") + ",user.id=alice";
        assert_eq!(get(&[many.as_str()], "user.id"), None);
        let big = format!("user.id=alice,pad={}", "x".repeat(MAX_BYTES));
        assert_eq!(get(&[big.as_str()], "user.id"), None);
        assert_eq!(
            get(&["user.id=alice,,"], "user.id").as_deref(),
            Some(&b"alice"[..])
        );
    }
}
