//! The override header (client input) and who may use it (operator input).
//!
//! Input: the header's value, a NUL, an address range as a policy would write it, a NUL, then
//! a byte choosing the downstream address's family and its bytes.
//!
//! `parse_override` is checked against a reference split; `Cidr::parse` against a reference
//! parser and `Cidr::contains` against a bit-by-bit comparison (an IPv4-mapped IPv6 client is
//! its IPv4 address); `Trust::allows` admits exactly a matching token, a trusted address or
//! anyone when told, and asks for the address only when ranges are configured. End to end,
//! `decide` under the fixture policies gives `Reason::Override` exactly when the value names a
//! subset of the release and the request is trusted.

use std::cell::Cell;
use std::net::IpAddr;

use dial::core::decide::{decide, Context, Decision, Reason};
use dial::core::request::HeaderList;
use dial::core::secret::Secret;
use dial::core::trust::{parse_override, Cidr, OverrideRequest, Trust};

use super::fixtures::{engines, TOKEN};
use super::input::Input;

fn reference_split(value: &[u8]) -> OverrideRequest<'_> {
    let (subset, rest) = match value.iter().position(|&b| b == b';') {
        Some(i) => (&value[..i], Some(&value[i + 1..])),
        None => (value, None),
    };
    OverrideRequest {
        subset: subset.trim_ascii(),
        token: rest.and_then(|r| r.trim_ascii().strip_prefix(b"token=")),
    }
}

fn reference_cidr(s: &str) -> Option<(IpAddr, u32)> {
    let (addr, prefix) = match s.find('/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits = p.trim_start_matches('0');
            if digits.len() > 3 {
                return None;
            }
            digits.parse::<u32>().unwrap_or(0)
        }
    };
    (prefix <= max).then_some((addr, prefix))
}

fn bits(ip: IpAddr) -> Vec<bool> {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    octets
        .iter()
        .flat_map(|o| (0..8).rev().map(move |i| o >> i & 1 == 1))
        .collect()
}

/// The first `prefix` bits agree, families alike (a mapped client is IPv4).
fn reference_contains(net: IpAddr, prefix: u32, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if net.is_ipv4() != ip.is_ipv4() {
        return false;
    }
    let (a, b) = (bits(net), bits(ip));
    (0..prefix as usize).all(|i| a[i] == b[i])
}

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let value = input.until(0);
    let range = String::from_utf8_lossy(input.until(0)).into_owned();
    let ip = input.address();

    let asked = parse_override(value);
    assert_eq!(asked, reference_split(value));
    assert!(!asked.subset.contains(&b';'));
    assert_eq!(asked.subset, asked.subset.trim_ascii());

    // Address ranges.
    let cidr = Cidr::parse(&range);
    let want = reference_cidr(&range);
    assert_eq!(
        cidr.map(|c| (c.addr, u32::from(c.prefix))),
        want,
        "range {range:?}"
    );
    if let (Some(c), Some(ip)) = (cidr, ip) {
        assert_eq!(
            c.contains(ip),
            reference_contains(c.addr, u32::from(c.prefix), ip),
            "{range} contains {ip}?"
        );
        if let IpAddr::V4(v4) = ip {
            assert_eq!(c.contains(ip), c.contains(IpAddr::V6(v4.to_ipv6_mapped())));
        }
    }

    // Trust.
    let asked_for_source = Cell::new(false);
    let source = || {
        asked_for_source.set(true);
        ip
    };
    let by_token = Trust {
        token: Some(Secret::inline(TOKEN)),
        ..Trust::default()
    };
    assert_eq!(
        by_token.allows(asked.token, source),
        asked.token == Some(TOKEN.as_bytes())
    );
    assert!(
        !asked_for_source.get(),
        "asked for the address without ranges"
    );
    assert!(!Trust::default().allows(asked.token, || ip));
    let anyone = Trust {
        anyone: true,
        ..Trust::default()
    };
    assert!(anyone.allows(asked.token, || ip));
    if let Some(c) = cidr {
        let by_range = Trust {
            token: Some(Secret::inline(TOKEN)),
            source_cidrs: vec![c],
            anyone: false,
        };
        let want = asked.token == Some(TOKEN.as_bytes()) || ip.is_some_and(|ip| c.contains(ip));
        assert_eq!(by_range.allows(asked.token, || ip), want);
    }

    // End to end: the fixture policies' overrides.
    let ranges = [
        Cidr::parse("10.0.0.0/8").expect("a range"),
        Cidr::parse("fd00::/8").expect("a range"),
    ];
    let token_ok = asked.token == Some(TOKEN.as_bytes());
    let cases: [(usize, &str, &str, &str, bool); 3] = [
        // (fixture, host, path, header, trusted)
        (
            0,
            "shop.example.com",
            "/checkout",
            "x-dial-override",
            token_ok,
        ),
        (
            2,
            "other.example.net",
            "/",
            "x-qa",
            token_ok || ip.is_some_and(|ip| ranges.iter().any(|r| r.contains(ip))),
        ),
        (3, "any", "/", "x-force", true),
    ];
    for (fixture, host, path, header, trusted) in cases {
        let engine = &engines()[fixture];
        let mut request = HeaderList::from_strs(&[(":authority", host), (":path", path)]);
        request.pairs.push((header.to_string(), value.to_vec()));
        request.source_ip = ip;
        let d = decide(&engine.policy, &Context::default(), &request);
        let Decision::Assign(a) = d else {
            panic!("fixture {fixture}: the request is in scope");
        };
        let release = &engine.policy.releases[a.release];
        let named = release.subset_index(asked.subset);
        let honoured = named.is_some() && trusted;
        assert_eq!(
            a.reason == Reason::Override,
            honoured,
            "fixture {fixture}: {header}: {:?}",
            String::from_utf8_lossy(value)
        );
        if honoured {
            assert_eq!(Some(a.subset), named);
        }
        super::invariants::check_decision(&engine.policy, &Context::default(), &request, &d);
    }
}
