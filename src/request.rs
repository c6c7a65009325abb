//! What `decide` may ask of a request. The glue implements it over Envoy's header map; tests
//! and tools implement it over plain data. Only what a policy needs is asked for, lazily.

use std::net::IpAddr;

use crate::cookie;

pub trait RequestView {
    /// The first value of a request header (names are lower-case, as Envoy stores them).
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The first cookie of that name across all `Cookie` headers.
    fn cookie(&self, name: &str) -> Option<&[u8]>;
    /// The downstream peer's address, when the host knows it.
    fn source_ip(&self) -> Option<IpAddr>;
    /// 64 fresh random bits, to mint a sticky key for an anonymous user.
    fn entropy(&self) -> u64;

    /// `:authority` (the Host).
    fn host(&self) -> Option<&[u8]> {
        self.header(":authority")
    }
    /// `:path`, query included.
    fn path(&self) -> Option<&[u8]> {
        self.header(":path")
    }
}

/// Request headers as a list of (lower-case name, raw value) pairs, repeated names kept in order:
/// the shape of the host's header map.
#[derive(Debug, Default, Clone)]
pub struct HeaderList {
    pub pairs: Vec<(String, Vec<u8>)>,
    pub source_ip: Option<IpAddr>,
    pub entropy: u64,
}

impl HeaderList {
    pub fn new(pairs: Vec<(String, Vec<u8>)>) -> Self {
        HeaderList {
            pairs,
            ..Default::default()
        }
    }

    /// Test and tool helper: builds from string pairs.
    pub fn from_strs(pairs: &[(&str, &str)]) -> Self {
        Self::new(
            pairs
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }
}

impl RequestView for HeaderList {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn cookie(&self, name: &str) -> Option<&[u8]> {
        let headers = self
            .pairs
            .iter()
            .filter(|(n, _)| n == "cookie")
            .map(|(_, v)| v.as_slice());
        cookie::find(headers, name)
    }

    fn source_ip(&self) -> Option<IpAddr> {
        self.source_ip
    }

    fn entropy(&self) -> u64 {
        self.entropy
    }
}

/// A header map as the proxy-wasm ABI serializes it, read in place without copying: a u32
/// count, a (name length, value length) u32 pair per header, then each name and each value
/// followed by a NUL byte. All integers little-endian.
#[derive(Debug, Clone, Copy)]
pub struct SerializedHeaders<'a> {
    buf: &'a [u8],
    count: usize,
}

fn u32_at(buf: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(bytes)).ok()
}

impl<'a> SerializedHeaders<'a> {
    /// Checks the whole layout once; `None` if the buffer is malformed.
    pub fn new(buf: &'a [u8]) -> Option<Self> {
        let count = if buf.is_empty() { 0 } else { u32_at(buf, 0)? };
        let data = count.checked_mul(8)?.checked_add(4)?;
        let mut end = data;
        for i in 0..count {
            let name = u32_at(buf, 4 + 8 * i)?;
            let value = u32_at(buf, 8 + 8 * i)?;
            end = end.checked_add(name)?.checked_add(value)?.checked_add(2)?;
        }
        (buf.is_empty() || end <= buf.len()).then_some(SerializedHeaders { buf, count })
    }

    /// (name, value) pairs in order, repeated names kept.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let buf = self.buf;
        let mut at = 4 + 8 * self.count;
        (0..self.count).map_while(move |i| {
            let name_len = u32_at(buf, 4 + 8 * i)?;
            let value_len = u32_at(buf, 8 + 8 * i)?;
            let name = buf.get(at..at + name_len)?;
            let value_at = at + name_len + 1;
            let value = buf.get(value_at..value_at + value_len)?;
            at = value_at + value_len + 1;
            Some((name, value))
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n == name.as_bytes())
    }

    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    pub fn cookie(&self, name: &str) -> Option<&'a [u8]> {
        let headers = self.iter().filter(|(n, _)| *n == b"cookie").map(|(_, v)| v);
        cookie::find(headers, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serializes like the host does.
    fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (n, v) in pairs {
            out.extend_from_slice(&(n.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (n, v) in pairs {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn serialized_headers_read_in_place() {
        let buf = serialize(&[
            (":path", b"/checkout"),
            ("cookie", b"a=1"),
            ("x-user-id", b"\xff\x00bin"),
            ("cookie", b"uid=bob"),
            ("empty", b""),
        ]);
        let h = SerializedHeaders::new(&buf).unwrap();
        assert_eq!(h.iter().count(), 5);
        assert_eq!(h.header(":path"), Some(&b"/checkout"[..]));
        assert_eq!(h.header("x-user-id"), Some(&b"\xff\x00bin"[..]));
        assert_eq!(h.header("empty"), Some(&b""[..]));
        assert_eq!(h.header("missing"), None);
        assert_eq!(h.cookie("uid"), Some(&b"bob"[..]));
        assert!(h.contains("cookie") && !h.contains("x-dial-subset"));
    }

    #[test]
    fn malformed_buffers_are_refused_not_trusted() {
        let buf = serialize(&[("a", b"1"), ("b", b"2")]);
        assert!(SerializedHeaders::new(&buf).is_some());
        for cut in [1, 3, 5, 12, buf.len() - 1] {
            assert!(
                SerializedHeaders::new(&buf[..cut]).is_none(),
                "cut at {cut}"
            );
        }
        let mut huge = buf.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SerializedHeaders::new(&huge).is_none());
        assert_eq!(SerializedHeaders::new(&[]).unwrap().iter().count(), 0);
    }
}
