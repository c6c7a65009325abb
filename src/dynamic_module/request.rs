//! The core's `RequestView` over Envoy's request header map, read in place: names and values
//! are Envoy's own bytes (no copy, no allocation), listed once per request by
//! `EnvoyFilter::with_headers`, and the downstream address asked for only if a policy needs it.

use std::net::IpAddr;

use super::abi::{EnvoyFilter, Headers};
use crate::core::cookie;
use crate::core::request::{fresh_entropy, same, RequestView};

pub struct NativeRequest<'h, 'a> {
    pub headers: &'h Headers<'a>,
    pub envoy: EnvoyFilter,
}

impl<'a> NativeRequest<'_, 'a> {
    fn values<'n>(&self, want: &'n [u8]) -> impl Iterator<Item = &'a [u8]> + Clone + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(name, _)| same(name, want))
            .map(|(_, value)| value)
    }
}

impl RequestView for NativeRequest<'_, '_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.values(name.as_bytes()).next()
    }

    fn cookie_headers(&self) -> impl Iterator<Item = &[u8]> {
        self.values(b"cookie")
    }

    fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + Clone {
        self.values(name.as_bytes())
    }

    fn cookie(&self, name: &str) -> Option<&[u8]> {
        cookie::find(self.values(b"cookie"), name)
    }

    fn source_ip(&self) -> Option<IpAddr> {
        self.envoy.source_ip()
    }

    fn entropy(&self) -> u64 {
        fresh_entropy()
    }
}
