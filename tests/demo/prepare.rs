//! The example configuration as the demo runs it, the same on any date: the example's ramp
//! starts an hour after the demo does (so the tables show the written weights, and the timeline
//! shows the ramp in demo time), and the secrets its policy reads from Envoy's environment are
//! fresh random values, never written anywhere.

use std::io::Read;

use dial::core::decide::{decide, Context, Decision};
use dial::core::policy::Policy;
use dial::core::request::HeaderList;
use dial::core::secret::Environment;
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

/// The policy as the demo's Envoy reads it, with `secrets` as its environment.
pub fn parse(policy_text: &str, secrets: &[(String, String)]) -> Policy {
    let lookup = |name: &str| {
        secrets
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Policy::parse_in(policy_text.as_bytes(), Environment::proxy(&lookup))
        .unwrap_or_else(|e| panic!("the demo's policy is refused: {e}"))
}

/// The first of `user-0`, `user-1`, ... that Dial puts on `subset` of the release serving
/// `host` `path` at `now_nanos`, by the same core the filter runs.
pub fn first_user_on(
    policy: &Policy,
    host: &str,
    path: &str,
    subset: &str,
    now_nanos: u64,
) -> Option<String> {
    let context = Context::at(now_nanos);
    (0..100_000).map(|i| format!("user-{i}")).find(|u| {
        let request = HeaderList::from_strs(&[
            (":method", "GET"),
            (":authority", host),
            (":path", path),
            ("x-user-id", u),
        ]);
        matches!(decide(policy, &context, &request),
            Decision::Assign(a) if policy.releases[a.release].subsets[a.subset].name == subset)
    })
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
