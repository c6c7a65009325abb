//! The example configuration as the demo runs it, the same on any date: the example's ramp
//! starts an hour after the demo does (so the tables show the written weights, and the timeline
//! shows the ramp in demo time), and the secrets its policy reads from Envoy's environment are
//! fresh random values, never written anywhere.

use std::io::Read;

use dial::core::time::{format_instant, parse_instant};

/// How long after the demo starts the example's ramp begins: well past the demo's own length,
/// so every table shows the written weights.
pub const RAMP_DELAY_SECONDS: u64 = 3600;

/// The example configuration's text with every ramp `"start": "<instant>"` of its policy moved
/// to `RAMP_DELAY_SECONDS` after `now_seconds`. Panics if the example has no ramp start (the
/// demo would then show nothing of a ramp).
pub fn with_ramp_from_now(config: &str, now_seconds: u64) -> String {
    let start = format_instant((now_seconds + RAMP_DELAY_SECONDS) * 1_000_000_000);
    let key = "\"start\": \"";
    let mut out = String::with_capacity(config.len());
    let mut rest = config;
    let mut moved = 0;
    while let Some(at) = rest.find(key) {
        let (head, tail) = rest.split_at(at + key.len());
        out.push_str(head);
        let end = tail.find('"').expect("a closed start instant");
        let written = &tail[..end];
        assert!(
            parse_instant(written).is_some(),
            "the example's ramp start {written:?} is not an RFC 3339 instant"
        );
        out.push_str(&start);
        rest = &tail[end..];
        moved += 1;
    }
    out.push_str(rest);
    assert!(moved > 0, "the example policy has no ramp start to move");
    out
}

/// The example's secrets, random for this run: (variable, value), as the example names them.
pub fn fresh_secrets() -> Vec<(String, String)> {
    [
        "DIAL_CHECKOUT_OVERRIDE_TOKEN",
        "DIAL_CHECKOUT_COOKIE_SECRET",
        "DIAL_CHECKOUT_COOKIE_SECRET_PREVIOUS",
    ]
    .iter()
    .map(|name| (name.to_string(), random_hex(16)))
    .collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_starts_an_hour_after_now_on_any_date() {
        let config = r#"{ "ramp": { "subset": "canary", "start": "2026-12-01T09:00:00Z" } }"#;
        for now in [
            "2020-01-01T00:00:00Z",
            "2026-12-01T09:00:00Z",
            "2026-12-06T22:00:00Z",
            "2040-06-30T12:34:56Z",
        ] {
            let now = parse_instant(now).unwrap() / 1_000_000_000;
            let moved = with_ramp_from_now(config, now);
            let want = format_instant((now + 3600) * 1_000_000_000);
            assert_eq!(
                moved,
                format!(r#"{{ "ramp": {{ "subset": "canary", "start": "{want}" }} }}"#)
            );
        }
    }
}
