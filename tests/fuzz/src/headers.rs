//! The serialized header map the host hands over (untrusted: its sizes come from the host, its
//! bytes from the client), read in place by `SerializedHeaders`.
//!
//! Checked against a reference reader written from the format's description (a u32 count, a
//! (name length, value length) pair per header, then each name and value followed by one
//! byte): it accepts exactly the buffers the reference accepts and yields the same pairs.
//! Lookups agree with a plain search of those pairs, and with `HeaderList` over the same pairs
//! (headers, cookies, through `RequestView`); `serialize` writes the map back.

use dial::core::cookie;
use dial::core::request::{
    serialize, HeaderList, RequestView, SerializedHeaders, SerializedRequest,
};

/// The format, read the obvious way in u64 arithmetic.
fn reference(buf: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if buf.is_empty() {
        return Some(Vec::new());
    }
    let len = buf.len() as u64;
    let u32_at = |at: u64| -> Option<u64> {
        let at = usize::try_from(at).ok()?;
        let b = buf.get(at..at.checked_add(4)?)?;
        Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let count = u32_at(0)?;
    let mut at = 4 + 8 * count;
    if at > len {
        return None;
    }
    let mut pairs = Vec::new();
    for i in 0..count {
        let n = u32_at(4 + 8 * i)?;
        let v = u32_at(8 + 8 * i)?;
        let name_end = at + n;
        let value_at = name_end + 1;
        let value_end = value_at + v;
        // The value's terminator must be in the buffer too.
        if value_end + 1 > len {
            return None;
        }
        pairs.push((
            &buf[at as usize..name_end as usize],
            &buf[value_at as usize..value_end as usize],
        ));
        at = value_end + 1;
    }
    Some(pairs)
}

/// Names to look up besides the ones present.
const PROBES: [&str; 6] = [
    "cookie",
    ":path",
    ":authority",
    "x-user-id",
    "x-dial-subset",
    "",
];

pub fn check(data: &[u8]) {
    let want = reference(data);
    let got = SerializedHeaders::new(data);
    assert_eq!(
        got.is_some(),
        want.is_some(),
        "accepted a buffer the format does not allow, or refused one it does"
    );
    let (Some(headers), Some(pairs)) = (got, want) else {
        return;
    };
    let read: Vec<(&[u8], &[u8])> = headers.iter().collect();
    assert_eq!(read, pairs);

    // Lookups: the first value of a name, present or not.
    let names: Vec<&[u8]> = pairs
        .iter()
        .map(|(n, _)| *n)
        .chain(PROBES.iter().map(|p| p.as_bytes()))
        .collect();
    for name in &names {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let first = pairs
            .iter()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| *v);
        assert_eq!(headers.header(name), first, "header {name:?}");
        assert_eq!(headers.contains(name), first.is_some());
    }
    let cookies: Vec<&[u8]> = pairs
        .iter()
        .filter(|(n, _)| *n == b"cookie")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(headers.cookie_headers().collect::<Vec<_>>(), cookies);
    for name in ["uid", "beta", "dial-checkout", "a"] {
        assert_eq!(
            headers.cookie(name),
            cookie::find(cookies.iter().copied(), name)
        );
    }

    // The same pairs as a HeaderList (names the host gives are text): the same answers.
    if pairs.iter().all(|(n, _)| std::str::from_utf8(n).is_ok()) {
        let list = HeaderList::new(
            pairs
                .iter()
                .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.to_vec()))
                .collect(),
        );
        let request = SerializedRequest {
            headers,
            source_ip: || None,
        };
        for name in &names {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            assert_eq!(request.header(name), list.header(name));
        }
        assert_eq!(request.host(), list.host());
        assert_eq!(request.path(), list.path());
        assert!(request.cookie_headers().eq(list.cookie_headers()));
        for name in ["uid", "beta", "dial-checkout"] {
            assert_eq!(request.cookie(name), list.cookie(name));
        }
    }

    // Written back: the same bytes up to the end of the last value (terminators aside).
    let again = serialize(pairs.iter().copied());
    let reread: Vec<(&[u8], &[u8])> = SerializedHeaders::new(&again)
        .expect("serialize writes a valid map")
        .iter()
        .collect();
    assert_eq!(reread, pairs);
    if !data.is_empty() {
        assert!(again.len() <= data.len());
        let table = 4 + 8 * pairs.len();
        assert_eq!(again[..table], data[..table]);
    }
}
