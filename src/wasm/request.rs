//! The request as Envoy holds it: the header map read in place; the source address fetched
//! only if a policy asks for it (a property costs the host an expression context).

use std::net::{IpAddr, SocketAddr};

use crate::core::request::{fresh_entropy, RequestView, SerializedHeaders};

use super::host;

pub struct HostRequest<'a> {
    pub headers: SerializedHeaders<'a>,
}

impl RequestView for HostRequest<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.header(name)
    }

    fn cookie_headers(&self) -> impl Iterator<Item = &[u8]> {
        self.headers.cookie_headers()
    }

    fn source_ip(&self) -> Option<IpAddr> {
        let raw = host::property(b"source\0address").ok()??;
        let text = std::str::from_utf8(&raw).ok()?;
        text.parse::<SocketAddr>()
            .map(|s| s.ip())
            .or_else(|_| text.parse::<IpAddr>())
            .ok()
    }

    fn entropy(&self) -> u64 {
        fresh_entropy()
    }
}
