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
