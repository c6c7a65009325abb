//! `decide` and the exchange on arbitrary requests (client input), against the fixture policies.
//!
//! Input: a byte choosing the fixture policy, a flags byte (bits 2-3: the clock: unknown, any, after or before the ramps' start;
//! bit 4: tripped guards follow), 8 bytes of entropy, the clock, the tripped bits, the
//! downstream address (`Input::address`), then headers: a byte choosing a name (`NAMES`, or
//! 255 and a length-prefixed name of its own) and a length-prefixed value, to the end.
//!
//! The decision is well-formed (`invariants::check_decision`) and the same
//! twice; it is the same without the client's copies of Dial's routing headers and with
//! other values of them (a decision never depends on a client-sent Dial header); the same with
//! the host in upper case, with a port, with its root dot; the same over the serialized header
//! map the host hands over (up to what the entropy decides). The exchange leaves the upstream
//! exactly Dial's values (`invariants::check_exchange`), and a sticky cookie Dial sets, sent back,
//! keeps the user on the same subset without a new cookie.

use dial::core::decide::{decide, Context, Decision, KeyOrigin};
use dial::core::exchange::Engine;
use dial::core::policy::WhenNoKey;
use dial::core::request::{
    serialize, HeaderList, RequestView, SerializedHeaders, SerializedRequest,
};

use super::fixtures::engines;
use super::input::Input;
use super::invariants::{check_decision, check_exchange, routing_header_reads, routing_headers};

/// Header names the fixture policies read or own, and a few they do not.
pub const NAMES: [&str; 25] = [
    ":authority",
    ":path",
    ":method",
    "x-user-id",
    "cookie",
    "x-beta",
    "x-group",
    "x-dial-subset",
    "x-dial-version",
    "x-dial-mirror",
    "x-dial-override",
    "x-route-subset",
    "x-route-version",
    "x-shadow",
    "x-assign",
    "x-tenant",
    "x-debug",
    "x-qa",
    "x-force",
    "x-dial-assignment",
    "host",
    "user-agent",
    ":scheme",
    "x-request-id",
    "baggage",
];

/// 2026-12-01T09:00:00Z, when progressive.json's ramp starts.
pub const RAMP_START: u64 = 1_796_115_600_000_000_000;

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let engines = engines();
    let engine = &engines[usize::from(input.byte()) % engines.len()];
    let flags = input.byte();
    let entropy = input.u64();
    let now_nanos = match flags >> 2 & 3 {
        0 => None,
        1 => Some(input.u64()),
        2 => Some(RAMP_START + u64::from(input.u32()) * 1_000_000_000),
        _ => Some(RAMP_START.saturating_sub(u64::from(input.u32()) * 1_000_000_000)),
    };
    let tripped = if flags & 0x10 != 0 {
        u64::from(input.byte())
    } else {
        0
    };
    let context = Context { now_nanos, tripped };
    let source_ip = input.address();
    let mut pairs = Vec::new();
    while !input.is_empty() {
        let choice = input.byte();
        let name = match NAMES.get(usize::from(choice)) {
            Some(n) => n.to_string(),
            None if choice == 255 => String::from_utf8_lossy(input.value()).to_ascii_lowercase(),
            None => NAMES[usize::from(choice) % NAMES.len()].to_string(),
        };
        pairs.push((name, input.value().to_vec()));
    }
    let request = HeaderList {
        pairs,
        source_ip,
        entropy,
    };
    check_one(engine, &context, &request);
}

fn with_pairs(request: &HeaderList, pairs: Vec<(String, Vec<u8>)>) -> HeaderList {
    HeaderList {
        pairs,
        ..request.clone()
    }
}

fn check_one(engine: &Engine, context: &Context, request: &HeaderList) {
    let policy = &engine.policy;
    let d = decide(policy, context, request);
    check_decision(policy, context, request, &d);
    assert_eq!(decide(policy, context, request), d, "not deterministic");

    // Client-sent copies of Dial's routing headers change nothing: without them, or with others.
    let reads = routing_header_reads(policy);
    let routing: Vec<&str> = routing_headers(policy)
        .into_iter()
        .filter(|h| !reads.iter().any(|r| r == h))
        .collect();
    let stripped: Vec<(String, Vec<u8>)> = request
        .pairs
        .iter()
        .filter(|(n, _)| !routing.contains(&n.as_str()))
        .cloned()
        .collect();
    let stripped = with_pairs(request, stripped);
    assert_eq!(
        decide(policy, context, &stripped),
        d,
        "a client-sent Dial header changed the decision"
    );
    let mut spoofed = stripped.pairs.clone();
    let any_value = request
        .pairs
        .first()
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for (i, name) in routing.iter().enumerate() {
        for r in &policy.releases {
            if let Some(s) = r.subsets.get(i % r.subsets.len()) {
                spoofed.insert(0, (name.to_string(), s.name.clone().into_bytes()));
                spoofed.push((name.to_string(), s.version.clone().into_bytes()));
            }
        }
        spoofed.push((name.to_string(), any_value.clone()));
    }
    let spoofed = with_pairs(request, spoofed);
    assert_eq!(
        decide(policy, context, &spoofed),
        d,
        "a client-sent Dial header changed the decision"
    );

    // The host's case, port and root dot change nothing.
    if let Some(at) = request.pairs.iter().position(|(n, _)| n == ":authority") {
        let host = &request.pairs[at].1;
        let plain = !host.is_empty() && !host.contains(&b':') && !host.starts_with(b"[");
        let mut variants = vec![host.to_ascii_uppercase()];
        if plain {
            variants.push([&host[..], b":8443"].concat());
            if !host.ends_with(b".") {
                variants.push([&host[..], b"."].concat());
            }
        }
        for v in variants {
            let mut pairs = request.pairs.clone();
            pairs[at].1 = v.clone();
            assert_eq!(
                decide(policy, context, &with_pairs(request, pairs)),
                d,
                "host {:?} decided unlike {:?}",
                String::from_utf8_lossy(&v),
                String::from_utf8_lossy(host)
            );
        }
    }

    // The serialized map, as the host hands it over. Its entropy is fresh: a minted key (and a
    // keyless mirror sample) may differ, nothing else.
    let buf = serialize(
        request
            .pairs
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_slice())),
    );
    let headers = SerializedHeaders::new(&buf).expect("a valid map");
    let serialized = SerializedRequest {
        headers,
        source_ip: || request.source_ip,
    };
    assert_eq!(serialized.host(), request.host());
    let s = decide(policy, context, &serialized);
    check_decision(policy, context, &serialized, &s);
    match (&d, &s) {
        (Decision::Pass, Decision::Pass) => {}
        (Decision::Assign(a), Decision::Assign(b)) => {
            assert_eq!(
                (a.release, a.reason == b.reason, a.key),
                (b.release, true, b.key)
            );
            if a.key != Some(KeyOrigin::Minted) {
                assert_eq!(
                    (a.subset, a.rule, a.position),
                    (b.subset, b.rule, b.position)
                );
                assert_eq!(a.new_sticky_key, b.new_sticky_key);
                if a.key.is_some() {
                    assert_eq!(a.mirror, b.mirror);
                }
            }
        }
        _ => panic!("{d:?} over a list, {s:?} over the serialized map"),
    }

    check_exchange(engine, context, request, &d);

    // A sticky cookie Dial sets, sent back, keeps the user where they are, with no new cookie.
    if let Decision::Assign(a) = d {
        let r = &policy.releases[a.release];
        if let (Some(key), WhenNoKey::Sticky(c)) = (a.new_sticky_key, &r.when_no_key) {
            let mut pairs = request.pairs.clone();
            let sent = format!("{}={}", c.name, c.value(&key));
            pairs.insert(0, ("cookie".to_string(), sent.into_bytes()));
            let back = decide(policy, context, &with_pairs(request, pairs));
            let Decision::Assign(b) = back else {
                panic!("the cookie took the request out of scope");
            };
            assert_eq!(
                (b.release, b.subset, b.reason, b.key, b.new_sticky_key),
                (
                    a.release,
                    a.subset,
                    a.reason,
                    Some(KeyOrigin::StickyCookie),
                    None
                ),
                "a returning anonymous user moved"
            );
        }
    }
}
