//! `Cookie` request header parsing (RFC 6265 §4.2, lenient the way browsers and servers are).
//!
//! A header holds `name=value` pairs separated by `;` and optional whitespace. A value may be
//! wrapped in double quotes, which are not part of it. Pairs without `=` are skipped. Nothing is
//! allocated: the parser hands out slices of the header.

/// The pairs of one `Cookie` header, in order.
pub fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|part| {
        let eq = part.iter().position(|&b| b == b'=')?;
        let name = trim(part.get(..eq)?);
        let value = unquote(trim(part.get(eq + 1..)?));
        if name.is_empty() {
            None
        } else {
            Some((name, value))
        }
    })
}

/// The value of the first cookie called `name` across several `Cookie` headers.
pub fn find<'a, I>(headers: I, name: &str) -> Option<&'a [u8]>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    headers
        .into_iter()
        .flat_map(pairs)
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| v)
}

fn trim(s: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ws(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
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
