//! W3C baggage (`baggage: user.id=alice,tenant=acme;prop=1`): one member's value, for a key
//! source. OpenTelemetry propagates baggage across services, so every hop of a call chain can
//! bucket the same user alike. The rules are those of OpenTelemetry's W3C baggage propagators
//! (Python's and JS's, proven against both by tests/baggage_otel.rs; where they differ, the one
//! Dial follows and why is in docs/flags.md, "Keys from baggage"):
//! - the `baggage` headers are one list, read in order; a malformed member costs only itself;
//! - key and value are percent-decoded, and a decoded value that is not UTF-8 is read with
//!   U+FFFD replacement (W3C Baggage), so the key is the string an application's SDK holds;
//! - properties after `;` are ignored; of several members of one name, the last wins;
//! - members past the 180th kept one, or past 8,192 bytes of kept members, are dropped, and so
//!   is a member over 4,096 bytes, alone.

use std::borrow::Cow;

/// The propagators' limits: kept members, bytes of kept members (with a comma between each two,
/// as one header would hold them), bytes of one member (between its commas).
pub const MAX_MEMBERS: usize = 180;
pub const MAX_BYTES: usize = 8192;
pub const MAX_MEMBER_BYTES: usize = 4096;

/// The value of the last member called `name` among those kept from the request's `baggage`
/// headers; borrowed from the header unless it holds a percent-escape. `name` is a token (the
/// policy checks it), hence ASCII.
pub fn member<'a>(
    headers: impl Iterator<Item = &'a [u8]> + Clone,
    name: &str,
) -> Option<Cow<'a, [u8]>> {
    named(headers, name).last().map(decode)
}

/// The raw (still percent-encoded) values of every kept member called `name`, in order.
pub fn named<'a, 'n, H: Iterator<Item = &'a [u8]> + Clone>(
    headers: H,
    name: &'n str,
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n, H> {
    kept(headers)
        .filter(move |(key, _)| decoded_eq(key, name.as_bytes()))
        .map(|(_, value)| value)
}

/// The raw key and value of every member a reader keeps, in order: the 180 first well-formed
/// members (a malformed one, or one over 4,096 bytes, is skipped and not counted) while they
/// and the commas between them fit in 8,192 bytes.
fn kept<'a>(
    headers: impl Iterator<Item = &'a [u8]> + Clone,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    let mut kept = 0usize;
    let mut bytes = 0usize;
    headers
        .flat_map(|header| header.split(|b| *b == b','))
        .map_while(move |item| {
            if kept == MAX_MEMBERS {
                return None;
            }
            if item.len() > MAX_MEMBER_BYTES {
                return Some(None);
            }
            let Some((key, value)) = parse(item) else {
                return Some(None);
            };
            bytes += usize::from(kept > 0) + item.len();
            if bytes > MAX_BYTES {
                return None;
            }
            kept += 1;
            Some(Some((key, value)))
        })
        .flatten()
}

/// The request's baggage with every member called `name` removed and the others kept byte for
/// byte (several headers become one list, joined by commas, as W3C reads them; an item holding
/// a byte past ASCII, which no member can, is dropped).
pub struct Rest {
    pub text: Vec<u8>,
    /// Whether a member called `name` was removed.
    pub removed: bool,
    /// Well-formed members left (those a reader counts).
    pub members: usize,
}

pub fn without<'a>(headers: impl Iterator<Item = &'a [u8]>, name: &str) -> Rest {
    let mut out = Vec::new();
    let mut removed = false;
    let mut members = 0usize;
    let mut first = true;
    for item in headers.flat_map(|header| header.split(|b| *b == b',')) {
        // Bytes past ASCII are in no well-formed member (keys are tokens, values and
        // properties baggage-octets): such an item is dropped, so the list stays text.
        if !item.is_ascii() {
            continue;
        }
        let parsed = parse(item);
        if parsed.is_some_and(|(key, _)| decoded_eq(key, name.as_bytes())) {
            removed = true;
            continue;
        }
        members += usize::from(parsed.is_some() && item.len() <= MAX_MEMBER_BYTES);
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(item);
    }
    Rest {
        text: out,
        removed,
        members,
    }
}

/// Whether a list of `members` well-formed members in `bytes` bytes is within W3C's limits.
pub fn fits(members: usize, bytes: usize) -> bool {
    members <= MAX_MEMBERS && bytes <= MAX_BYTES
}

/// A raw value percent-decoded, as `member` gives it.
pub fn decoded(value: &[u8]) -> Cow<'_, [u8]> {
    decode(value)
}

/// `OWS key OWS "=" OWS value OWS *(";" property)`: the raw key and value of a well-formed
/// member, or nothing (an empty or malformed one). Properties are not checked: they carry no
/// part of the value.
fn parse(item: &[u8]) -> Option<(&[u8], &[u8])> {
    let equals = item.iter().position(|b| *b == b'=')?;
    let (key, rest) = item.split_at(equals);
    let key = trim(key);
    if key.is_empty() || !key.iter().all(|b| is_token(*b)) {
        return None;
    }
    let rest = rest.get(1..).unwrap_or_default();
    let value = trim(rest.split(|b| *b == b';').next().unwrap_or_default());
    value
        .iter()
        .all(|b| is_baggage_octet(*b))
        .then_some((key, value))
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
    CLASS.get(usize::from(b)).is_some_and(|c| c & TOKEN != 0)
}

/// W3C baggage-octet: printable US-ASCII but for space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(b: u8) -> bool {
    CLASS.get(usize::from(b)).is_some_and(|c| c & OCTET != 0)
}

/// Each byte's classes, looked up once per byte: a member is read on every request that
/// carries baggage, so its bytes are classified by a table, not by comparisons.
const TOKEN: u8 = 1;
const OCTET: u8 = 2;
#[allow(clippy::indexing_slicing)]
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let token = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        let octet = matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E);
        table[i] = ((token as u8) * TOKEN) | ((octet as u8) * OCTET);
        i += 1;
    }
    table
};

/// The bytes of percent-decoding `s` as the WHATWG URL standard's percent-decode does (and
/// Python's `unquote`, which OpenTelemetry Python uses): `%` and two hex digits give that byte;
/// any other `%` is itself. `+` is itself (not a space: this is not form encoding).
fn percent_decoded(s: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *s.get(i)?;
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (hex(s.get(i + 1)), hex(s.get(i + 2))) {
                i += 3;
                return u8::try_from(hi << 4 | lo).ok();
            }
        }
        i += 1;
        Some(b)
    })
}

/// Whether `key`, decoded as a value is, is `name`. Without allocating: `name` is ASCII, so a
/// decoded key equal to it byte for byte is UTF-8 (no U+FFFD to put in), and one that is not
/// cannot become equal to it by replacement (U+FFFD is not ASCII).
fn decoded_eq(key: &[u8], name: &[u8]) -> bool {
    if !key.contains(&b'%') {
        return key == name;
    }
    percent_decoded(key).eq(name.iter().copied())
}

/// A value percent-decoded, then read as UTF-8 with U+FFFD replacing what is not (W3C Baggage);
/// borrowed when there is nothing to decode, the common case.
fn decode(value: &[u8]) -> Cow<'_, [u8]> {
    if !value.contains(&b'%') {
        return Cow::Borrowed(value);
    }
    let mut bytes = Vec::with_capacity(value.len());
    bytes.extend(percent_decoded(value));
    match String::from_utf8(bytes) {
        Ok(text) => Cow::Owned(text.into_bytes()),
        Err(e) => Cow::Owned(
            String::from_utf8_lossy(e.as_bytes())
                .into_owned()
                .into_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(headers: &'a [&'a str], name: &str) -> Option<Vec<u8>> {
        member(headers.iter().map(|h| h.as_bytes()), name).map(|v| v.into_owned())
    }

    fn text(headers: &[&str], name: &str) -> Option<String> {
        get(headers, name).map(|v| String::from_utf8(v).unwrap())
    }

    /// A member whose value is written `escaped` reads as `read`.
    fn assert_reads(escaped: &str, read: &str) {
        let h = format!("user.id={escaped}");
        assert_eq!(
            text(&[h.as_str()], "user.id").as_deref(),
            Some(read),
            "{escaped}"
        );
    }

    #[test]
    fn members_are_found_decoded_and_stripped_of_properties() {
        let h = ["tenant=acme, user.id = alice%20b%C3%A9 ;prop=1;flag, other=x"];
        assert_eq!(text(&h, "user.id").as_deref(), Some("alice bé"));
        assert_eq!(text(&h, "tenant").as_deref(), Some("acme"));
        assert_eq!(get(&h, "missing"), None);
        // Properties are not checked: they are no part of the value.
        assert_eq!(
            text(&["user.id=a;p p;;=", "x=1"], "user.id").as_deref(),
            Some("a")
        );
        // OWS around the key, the value and `;` is not part of them; an encoded space is.
        let ows = [" \t user.id \t = \t %20alice%20 \t ; p"];
        assert_eq!(text(&ows, "user.id").as_deref(), Some(" alice "));
        // `+` is itself, as is every baggage-octet that is not `%`; `=` may be in a value.
        assert_eq!(
            text(&["user.id=a+b=c"], "user.id").as_deref(),
            Some("a+b=c")
        );
        // A key is percent-decoded too, as both propagators do.
        assert_eq!(
            text(&["user%2Eid=alice"], "user.id").as_deref(),
            Some("alice")
        );
        assert_eq!(
            text(&["user%2eid=alice"], "user.id").as_deref(),
            Some("alice")
        );
        assert_eq!(get(&["user%2Fid=alice"], "user.id"), None);
        // Borrowed when nothing is encoded: no allocation on the common path.
        let plain = [&b"tenant=acme,user.id=alice;p=1"[..]];
        assert!(matches!(
            member(plain.iter().copied(), "user.id"),
            Some(Cow::Borrowed(b"alice"))
        ));
    }

    #[test]
    fn the_last_member_of_a_name_wins_across_headers() {
        assert_eq!(
            text(&["user.id=a,user.id=b"], "user.id").as_deref(),
            Some("b")
        );
        assert_eq!(
            text(&["user.id=a", "user.id=b"], "user.id").as_deref(),
            Some("b")
        );
        assert_eq!(
            text(&["tenant=a", "user.id=b"], "user.id").as_deref(),
            Some("b")
        );
        // An empty value is a value: it replaces an earlier one (and is no key for `decide`).
        assert_eq!(get(&["user.id=a,user.id="], "user.id"), Some(vec![]));
        // A malformed one does not.
        assert_eq!(
            text(&["user.id=a,user.id=b c"], "user.id").as_deref(),
            Some("a")
        );
        // Names are case-sensitive.
        assert_eq!(get(&["User.Id=a"], "user.id"), None);
    }

    #[test]
    fn a_malformed_member_costs_only_itself() {
        for bad in [
            "user.id",
            "user.id=al ice",
            "user.id=\"alice\"",
            "user.id=a\\b",
            "user.id=a\x0b",
            "user.id=caf\u{e9}",
            "=alice",
            " = alice",
            "us er=alice",
            "user.id;p=alice",
            "user(id)=alice",
        ] {
            let h = format!("a=1,{bad},b=2");
            assert_eq!(get(&[h.as_str()], "user.id"), None, "{bad}");
            assert_eq!(text(&[h.as_str()], "a").as_deref(), Some("1"), "{bad}");
            assert_eq!(text(&[h.as_str()], "b").as_deref(), Some("2"), "{bad}");
        }
        assert_eq!(
            text(&[",, ,user.id=alice,,"], "user.id").as_deref(),
            Some("alice")
        );
        assert_eq!(get(&[""], "user.id"), None);
        assert_eq!(get(&[], "user.id"), None);
    }

    #[test]
    fn a_value_that_is_not_utf8_is_read_with_replacement() {
        // U+FFFD for each maximal subpart of an ill-formed sequence (Unicode, chapter 3), as
        // Python's decoder does.
        for (escaped, read) in [
            ("a%FFb%FE", "a\u{FFFD}b\u{FFFD}"),
            ("%E2%82x", "\u{FFFD}x"),
            ("%F0%9F%98", "\u{FFFD}"),
            ("%ED%A0%80", "\u{FFFD}\u{FFFD}\u{FFFD}"),
            ("%C0%AF", "\u{FFFD}\u{FFFD}"),
            ("%F4%90%80%80", "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
            ("%F0%9F%98%80", "\u{1F600}"),
        ] {
            assert_reads(escaped, read);
        }
    }

    #[test]
    fn a_percent_that_starts_no_escape_is_itself() {
        for (escaped, read) in [
            ("%zz", "%zz"),
            ("a%", "a%"),
            ("%4", "%4"),
            ("%4g", "%4g"),
            ("%%41", "%A"),
            ("%2541", "%41"),
        ] {
            assert_reads(escaped, read);
        }
    }

    #[test]
    fn members_past_the_limits_are_dropped_and_those_before_kept() {
        let list = |n: usize| (0..n).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        // The 180th member is kept, the 181st dropped; malformed members do not count.
        let at = |n: usize| {
            [list(n - 1), vec!["user.id=alice".into()]]
                .concat()
                .join(",")
        };
        assert_eq!(
            get(&[at(MAX_MEMBERS).as_str()], "user.id"),
            Some(b"alice".to_vec())
        );
        assert_eq!(get(&[at(MAX_MEMBERS + 1).as_str()], "user.id"), None);
        let with_bad = format!("bad,{}", at(MAX_MEMBERS));
        assert_eq!(
            get(&[with_bad.as_str()], "user.id"),
            Some(b"alice".to_vec())
        );
        let first = format!("user.id=alice,{}", list(300).join(","));
        assert_eq!(get(&[first.as_str()], "user.id"), Some(b"alice".to_vec()));
        // Across headers, counted as one list.
        let split = [list(MAX_MEMBERS).join(","), "user.id=alice".into()];
        let split: Vec<&str> = split.iter().map(String::as_str).collect();
        assert_eq!(get(&split, "user.id"), None);

        // 8,192 bytes of kept members and the commas between them: the member that would pass
        // them is dropped, and every one after it.
        let pad = |n: usize| format!("p={}", "x".repeat(n - 2));
        let upto = |n: usize| {
            format!(
                "{},{},{},user.id=alice",
                pad(4000),
                pad(4000),
                pad(n - 8016)
            )
        };
        let fits = upto(MAX_BYTES);
        assert_eq!(fits.len(), MAX_BYTES);
        assert_eq!(get(&[fits.as_str()], "user.id"), Some(b"alice".to_vec()));
        let over = upto(MAX_BYTES + 1);
        assert_eq!(get(&[over.as_str()], "user.id"), None);
        let after = format!("{},{},{},user.id=a", pad(3000), pad(3000), pad(3000));
        assert_eq!(get(&[after.as_str()], "user.id"), None);
        let before = format!("user.id=alice,{},{},{}", pad(3000), pad(3000), pad(3000));
        assert_eq!(get(&[before.as_str()], "user.id"), Some(b"alice".to_vec()));

        // A member over 4,096 bytes is dropped alone, and counts for nothing.
        let big = format!("{},user.id=alice", pad(MAX_MEMBER_BYTES + 1));
        assert_eq!(get(&[big.as_str()], "user.id"), Some(b"alice".to_vec()));
        let huge = format!("{},user.id=alice", pad(20_000));
        assert_eq!(get(&[huge.as_str()], "user.id"), Some(b"alice".to_vec()));
        let longest = format!("user.id={}", "x".repeat(MAX_MEMBER_BYTES - 8));
        assert_eq!(
            get(&[longest.as_str()], "user.id").map(|v| v.len()),
            Some(4088)
        );
        let too_long = format!("user.id={}", "x".repeat(MAX_MEMBER_BYTES - 7));
        assert_eq!(get(&[too_long.as_str()], "user.id"), None);
    }
}
