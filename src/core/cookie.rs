//! `Cookie` request header parsing (RFC 6265 §4.2, lenient the way browsers and servers are).
//!
//! A header holds `name=value` pairs separated by `;` and optional whitespace. A value may be
//! wrapped in double quotes, which are not part of it. Pairs without `=` are skipped. Nothing is
//! allocated: the parser hands out slices of the header.

/// The value of the first cookie called `name` across several `Cookie` headers.
pub fn find<'a, I>(headers: I, name: &str) -> Option<&'a [u8]>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let name = name.as_bytes();
    if name.is_empty() {
        return None;
    }
    headers.into_iter().find_map(|h| find_in(h, name))
}

/// One pass over one header. A pair is only taken apart when it starts with `name`; the
/// others cost a search for the next `;`, eight bytes at a time.
fn find_in<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let first = *name.first()?;
    let mut rest = header;
    loop {
        rest = trim_start(rest);
        // Most pairs are ruled out by their first byte, before anything else is compared.
        if rest.first() == Some(&first) {
            if let Some(value) = rest
                .strip_prefix(name)
                // The name ends where optional whitespace and `=` follow; "betax=" is not "beta".
                .and_then(|after| trim_start(after).strip_prefix(b"="))
            {
                return Some(unquote(trim(value.get(..semicolon(value))?)));
            }
        }
        rest = rest.get(semicolon(rest) + 1..)?;
    }
}

/// The index of the first `;` in `s`, or `s.len()`. Word at a time: `x - 0x01..01 & !x &
/// 0x80..80` flags the zero bytes of `x` (the lowest flag is always exact), and a `;` byte is
/// a zero byte of `word ^ ";;;;;;;;"`.
fn semicolon(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const SEMIS: u64 = ONES * b';' as u64;
    let mut blocks = s.chunks_exact(8);
    let mut base = 0;
    for block in &mut blocks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(block);
        let x = u64::from_le_bytes(bytes) ^ SEMIS;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return base + (found.trailing_zeros() / 8) as usize;
        }
        base += 8;
    }
    let tail = blocks.remainder();
    base + tail.iter().position(|&b| b == b';').unwrap_or(tail.len())
}

fn is_ws(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

fn trim_start(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !is_ws(b)).unwrap_or(s.len());
    s.get(start..).unwrap_or_default()
}

fn trim(s: &[u8]) -> &[u8] {
    let s = trim_start(s);
    let end = s.iter().rposition(|b| !is_ws(b)).map_or(0, |i| i + 1);
    s.get(..end).unwrap_or_default()
}

fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str, name: &str) -> Option<String> {
        find([header.as_bytes()], name).map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    #[test]
    fn finds_a_cookie_among_several() {
        let h = "session=abc; beta=1; uid=u-42";
        assert_eq!(one(h, "beta").as_deref(), Some("1"));
        assert_eq!(one(h, "uid").as_deref(), Some("u-42"));
        assert_eq!(one(h, "session").as_deref(), Some("abc"));
        assert_eq!(one(h, "missing"), None);
    }

    #[test]
    fn names_are_exact_not_substrings() {
        assert_eq!(one("xbeta=1; betax=2", "beta"), None);
        assert_eq!(one("Beta=1", "beta"), None);
    }

    #[test]
    fn tolerates_spacing_tabs_and_empty_parts() {
        assert_eq!(one("  a=1 ;\tbeta = 1 ;; ", "beta").as_deref(), Some("1"));
        assert_eq!(one("beta=", "beta").as_deref(), Some(""));
        assert_eq!(one(";;;", "beta"), None);
        assert_eq!(one("", "beta"), None);
    }

    #[test]
    fn strips_quotes_and_keeps_equals_inside_values() {
        assert_eq!(one("beta=\"1\"", "beta").as_deref(), Some("1"));
        assert_eq!(one("tok=a=b==", "tok").as_deref(), Some("a=b=="));
        assert_eq!(one("q=\"", "q").as_deref(), Some("\""));
    }

    #[test]
    fn skips_pairs_without_equals() {
        assert_eq!(one("beta; uid=7", "uid").as_deref(), Some("7"));
        assert_eq!(one("beta; uid=7", "beta"), None);
    }

    #[test]
    fn semicolons_are_found_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                let mut s = vec![b'a'; len];
                // Bytes either side of ';' (0x3b) that a sloppy word trick could confuse.
                for (i, b) in s.iter_mut().enumerate() {
                    *b = [b':', b'<', b'a', 0xbb, 0x3a][i % 5];
                }
                if at < len {
                    s[at] = b';';
                    if at + 1 < len {
                        s[at + 1] = b';';
                    }
                }
                assert_eq!(semicolon(&s), at, "len {len}, ';' at {at}");
            }
        }
    }

    #[test]
    fn first_match_wins_across_several_headers() {
        let headers: [&[u8]; 3] = [b"a=1", b"beta=first", b"beta=second; c=3"];
        assert_eq!(find(headers, "beta"), Some(&b"first"[..]));
        assert_eq!(find(headers, "c"), Some(&b"3"[..]));
    }

    #[test]
    fn non_utf8_and_huge_headers_do_not_break_parsing() {
        let mut h = vec![0xff, 0xfe, b'=', 0x80, b';', b' '];
        h.extend(std::iter::repeat_n(b'x', 100_000));
        h.extend_from_slice(b"; beta=1");
        assert_eq!(find([&h[..]], "beta"), Some(&b"1"[..]));
        assert_eq!(find([&h[..]], "\u{fffd}"), None);
    }
}
