//! When an override header may be believed. Off unless the operator says who is trusted:
//! a shared token, trusted source ranges, or (explicitly) anyone.
//!
//! The override header's value is `<subset>` or `<subset>; token=<secret>`.
//!
//! Trusted ranges judge the downstream connection's own peer, never an address a request header
//! can name: `connection_peer` is how a binding turns the address its host reports into that
//! peer, or into nothing when the host's address may have come from a header.

use std::net::{IpAddr, SocketAddr};

use crate::core::secret::Secret;

#[derive(Debug, Default)]
pub struct Trust {
    pub token: Option<Secret>,
    pub source_cidrs: Vec<Cidr>,
    pub anyone: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// An override header value split into the subset it asks for and the token it offers.
#[derive(Debug, PartialEq, Eq)]
pub struct OverrideRequest<'a> {
    pub subset: &'a [u8],
    pub token: Option<&'a [u8]>,
}

pub fn parse_override(value: &[u8]) -> OverrideRequest<'_> {
    let mut parts = value.splitn(2, |&b| b == b';');
    let subset = trim(parts.next().unwrap_or_default());
    let token = parts.next().and_then(|rest| {
        let rest = trim(rest);
        rest.strip_prefix(b"token=")
    });
    OverrideRequest { subset, token }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Whether an override is believed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `allowAnyone`.
    Anyone,
    /// The token offered is the release's.
    Token,
    /// The connection's peer is in a trusted range.
    Source(IpAddr),
    /// Not trusted, by either way the release allows.
    Refused {
        token: TokenCheck,
        source: SourceCheck,
    },
}

impl Verdict {
    pub fn trusted(&self) -> bool {
        !matches!(self, Verdict::Refused { .. })
    }
}

/// How the token judged an untrusted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// The release trusts no token.
    Unused,
    /// None offered.
    Missing,
    /// One offered, not the release's (or the release's cannot be read here).
    Wrong,
}

/// How the trusted ranges judged an untrusted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceCheck {
    /// The release trusts no range.
    Unused,
    /// The connection's peer is unknown.
    Unknown,
    /// The peer is outside every range.
    Outside(IpAddr),
}

impl Trust {
    /// Whether a request offering `token` from `source` may override. `source` is the
    /// connection's peer (`None`: unknown, so no range matches); it is asked only when ranges
    /// are configured (it may cost a host call).
    pub fn allows(&self, token: Option<&[u8]>, source: impl FnOnce() -> Option<IpAddr>) -> bool {
        self.judge(token, source).trusted()
    }

    /// `allows`, with its reason: the first way that trusts the request, or how each way
    /// refused it.
    // Inlined, so a caller that only asks `trusted()` compiles to the plain checks of before.
    #[inline(always)]
    pub fn judge(&self, token: Option<&[u8]>, source: impl FnOnce() -> Option<IpAddr>) -> Verdict {
        if self.anyone {
            return Verdict::Anyone;
        }
        let token = match (&self.token, token) {
            (None, _) => TokenCheck::Unused,
            (Some(_), None) => TokenCheck::Missing,
            (Some(want), Some(got)) => {
                if want
                    .value()
                    .is_some_and(|want| constant_time_eq(want.as_bytes(), got))
                {
                    return Verdict::Token;
                }
                TokenCheck::Wrong
            }
        };
        let source = if self.source_cidrs.is_empty() {
            SourceCheck::Unused
        } else {
            match source() {
                Some(ip) if self.source_cidrs.iter().any(|c| c.contains(ip)) => {
                    return Verdict::Source(ip)
                }
                Some(ip) => SourceCheck::Outside(ip),
                None => SourceCheck::Unknown,
            }
        };
        Verdict::Refused { token, source }
    }
}

/// The downstream connection's own peer, from an address as Envoy writes one (`ip:port`,
/// `[v6]:port`), or `None` when the address cannot be shown to be that peer.
///
/// Port 0 is the mark of an address Envoy derived from a request header: with the connection
/// manager's `use_remote_address` unset (Envoy's default, and an Istio sidecar's), Envoy (1.39
/// and 1.40) replaces the stream's remote address with the last `X-Forwarded-For` entry, parsed
/// as a bare IP, port 0; a TCP peer never has port 0. An address with no port at all shows
/// nothing either.
pub fn connection_peer(address: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(address).ok()?;
    let peer: SocketAddr = text.parse().ok()?;
    (peer.port() != 0).then_some(peer.ip())
}

/// Compares without an early exit, so response timing does not leak how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client may reach a dual-stack listener as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_values_split_into_subset_and_token() {
        assert_eq!(
            parse_override(b"canary"),
            OverrideRequest {
                subset: b"canary",
                token: None
            }
        );
        assert_eq!(
            parse_override(b" canary ; token=s3cret "),
            OverrideRequest {
                subset: b"canary",
                token: Some(b"s3cret")
            }
        );
        assert_eq!(parse_override(b"canary; tok=x").token, None);
        assert_eq!(parse_override(b"").subset, b"");
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        let t = Trust::default();
        assert!(!t.allows(Some(b"anything"), || Some("127.0.0.1".parse().unwrap())));
    }

    #[test]
    fn the_token_must_match_exactly() {
        let t = Trust {
            token: Some(Secret::inline("s3cret-token")),
            ..Default::default()
        };
        assert!(t.allows(Some(b"s3cret-token"), || None));
        assert!(!t.allows(Some(b"s3cret-tokem"), || None));
        assert!(!t.allows(Some(b"s3cret"), || None));
        assert!(!t.allows(None, || None));
    }

    #[test]
    fn source_ranges_admit_only_their_addresses() {
        let t = Trust {
            source_cidrs: vec![
                Cidr::parse("10.0.0.0/8").unwrap(),
                Cidr::parse("fd00::/8").unwrap(),
            ],
            ..Default::default()
        };
        assert!(t.allows(None, || Some("10.2.3.4".parse().unwrap())));
        assert!(t.allows(None, || Some("::ffff:10.2.3.4".parse().unwrap())));
        assert!(t.allows(None, || Some("fd12::1".parse().unwrap())));
        assert!(!t.allows(None, || Some("11.0.0.1".parse().unwrap())));
        assert!(!t.allows(None, || None));
    }

    #[test]
    fn only_an_address_with_a_port_is_a_connection_peer() {
        let peer = |s: &str| connection_peer(s.as_bytes());
        assert_eq!(peer("127.0.0.1:54321"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(peer("[fd00::1]:443"), Some("fd00::1".parse().unwrap()));
        assert_eq!(
            peer("[::ffff:10.1.2.3]:8080"),
            Some("::ffff:10.1.2.3".parse().unwrap())
        );
        // What Envoy makes of `x-forwarded-for: 10.1.2.3` (and of `fd00::1`, `::ffff:10.1.2.3`).
        assert_eq!(peer("10.1.2.3:0"), None);
        assert_eq!(peer("[fd00::1]:0"), None);
        assert_eq!(peer("[::ffff:10.1.2.3]:0"), None);
        // No port, not an address, not text.
        assert_eq!(peer("10.1.2.3"), None);
        assert_eq!(peer("envoy://internal/listener"), None);
        assert_eq!(peer(""), None);
        assert_eq!(connection_peer(&[0xff, 0x3a, 0x31]), None);
    }

    #[test]
    fn a_header_derived_address_never_satisfies_a_range() {
        let t = Trust {
            source_cidrs: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            ..Default::default()
        };
        assert!(!t.allows(None, || connection_peer(b"10.1.2.3:0")));
        assert!(t.allows(None, || connection_peer(b"10.1.2.3:40000")));
    }

    #[test]
    fn cidrs_parse_strictly() {
        assert_eq!(Cidr::parse("127.0.0.1").unwrap().prefix, 32);
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().prefix, 0);
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
        assert!(Cidr::parse("10.0.0.0/+8").is_none());
        assert!(Cidr::parse("10.0.0/8").is_none());
        assert!(Cidr::parse("::/129").is_none());
    }
}
