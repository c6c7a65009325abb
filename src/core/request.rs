//! What `decide` may ask of a request. The glue implements it over Envoy's header map; tests
//! and tools implement it over plain data. Only what a policy needs is asked for, lazily.

use std::net::IpAddr;

use crate::core::cookie;

pub trait RequestView {
    /// The first value of a request header (names are lower-case, as Envoy stores them).
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// Every `Cookie` header's value, in order.
    fn cookie_headers(&self) -> impl Iterator<Item = &[u8]>;
    /// Every value of a header, in order (by default the first only: views of a real header map
    /// give them all).
    fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + Clone {
        self.header(name).into_iter()
    }
    /// The first cookie of that name across all `Cookie` headers.
    fn cookie(&self, name: &str) -> Option<&[u8]> {
        cookie::find(self.cookie_headers(), name)
    }
    /// The downstream connection's own peer, when the host shows it: never an address a request
    /// header names (`core::trust::connection_peer` says what a binding may report).
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

/// 64 unpredictable bits for a binding's `RequestView::entropy`: SipHash under keys std seeds
/// once per thread from the host's randomness (WASI `random_get` in a Wasm VM), over a counter.
/// Unpredictable across users and VMs, with no host call per request.
pub fn fresh_entropy() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static COUNTER: Cell<u64> = const { Cell::new(0) };
    }
    let n = COUNTER.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(n);
    hasher.finish()
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
            .find(|(n, _)| same(n.as_bytes(), name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    fn cookie_headers(&self) -> impl Iterator<Item = &[u8]> {
        self.header_values("cookie")
    }

    fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + Clone {
        self.pairs
            .iter()
            .filter(move |(n, _)| same(n.as_bytes(), name.as_bytes()))
            .map(|(_, v)| v.as_slice())
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

/// One header's place in the buffer: its name at `at`, its value after the name's NUL.
#[derive(Debug, Clone, Copy)]
struct Span {
    at: usize,
    name_len: usize,
    value_len: usize,
}

impl Span {
    fn read(self, buf: &[u8]) -> Option<(&[u8], &[u8])> {
        let value_at = self.at + self.name_len + 1;
        Some((
            buf.get(self.at..self.at + self.name_len)?,
            buf.get(value_at..value_at + self.value_len)?,
        ))
    }
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
        self.spans().map_while(move |span| span.read(buf))
    }

    /// Where each header's name and value sit, from the size table alone.
    fn spans(&self) -> impl Iterator<Item = Span> + Clone + 'a {
        let sizes = self.buf.get(4..4 + 8 * self.count).unwrap_or_default();
        let mut at = 4 + 8 * self.count;
        sizes.chunks_exact(8).map(move |pair| {
            // Always 8 bytes (chunks_exact), which lets the compiler drop the checks.
            let [n0, n1, n2, n3, v0, v1, v2, v3] = <[u8; 8]>::try_from(pair).unwrap_or([0; 8]);
            let name_len = u32::from_le_bytes([n0, n1, n2, n3]) as usize;
            let value_len = u32::from_le_bytes([v0, v1, v2, v3]) as usize;
            let span = Span {
                at,
                name_len,
                value_len,
            };
            at += name_len + value_len + 2;
            span
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.values(name.as_bytes()).next()
    }

    /// The values of every header called `name`, in order.
    pub fn values<'n>(
        &self,
        want: &'n [u8],
    ) -> impl Iterator<Item = &'a [u8]> + Clone + use<'a, 'n> {
        let buf = self.buf;
        self.spans()
            .filter(move |span| span.name_len == want.len())
            .filter_map(move |span| span.read(buf))
            .filter(move |(name, _)| same(name, want))
            .map(|(_, value)| value)
    }

    pub fn cookie_headers(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.values(b"cookie")
    }

    pub fn cookie(&self, name: &str) -> Option<&'a [u8]> {
        cookie::find(self.cookie_headers(), name)
    }
}

/// A request as a host hands it over: the serialized header map read in place, and the
/// downstream address from the binding, asked for only when a policy needs it (in Envoy a
/// property, which costs the host an expression context).
pub struct SerializedRequest<'a, S: Fn() -> Option<IpAddr>> {
    pub headers: SerializedHeaders<'a>,
    pub source_ip: S,
}

impl<S: Fn() -> Option<IpAddr>> RequestView for SerializedRequest<'_, S> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.header(name)
    }

    fn cookie_headers(&self) -> impl Iterator<Item = &[u8]> {
        self.headers.cookie_headers()
    }

    fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + Clone {
        self.headers.values(name.as_bytes())
    }

    fn source_ip(&self) -> Option<IpAddr> {
        (self.source_ip)()
    }

    fn entropy(&self) -> u64 {
        fresh_entropy()
    }
}

/// Serializes header pairs the way the host does (for tests, benchmarks and tools).
pub fn serialize<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let count = pairs.clone().into_iter().count();
    let mut out = (count as u32).to_le_bytes().to_vec();
    for (n, v) in pairs.clone() {
        out.extend_from_slice(&(n.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (n, v) in pairs {
        out.extend_from_slice(n);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Byte strings compared inline. Header and cookie names are short, and a call to `memcmp`
/// costs more than comparing them; the first byte rules most candidates out.
#[inline]
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.first() == b.first() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        super::serialize(pairs.iter().map(|(n, v)| (n.as_bytes(), *v)))
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
