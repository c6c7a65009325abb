//! Where a policy runs, and what is wrong for that place. A policy is only as safe as its
//! deployment: the same sticky cookie that keeps a browser on its subset at the edge is sent to
//! a calling service from a sidecar, and `sourceCidrs` that names the callers of a server names
//! the very app a client sidecar runs beside. The holder of a policy says where it runs (a
//! WasmPlugin's `match[].mode`, `targetRefs` or selector; an Envoy listener's
//! `traffic_direction`), or `--mode` does; these checks read the policy's JSON as written, so
//! they hold for a policy the core rejects too.

use dial::core::policy::JsonPath;
use dial::core::ramp::percent;
use serde_json::Value;

use crate::find::Found;
use crate::placement::{Mode, Placement};
use crate::report;
use crate::yaml::Position;

/// Something wrong for where the policy runs (or wherever it runs).
#[derive(Debug, Clone)]
pub struct Warning {
    pub kind: &'static str,
    /// A JSON path in the policy (`$.releases[0].override`), or a field of its holder
    /// (`spec.failStrategy`).
    pub path: String,
    pub at: Position,
    pub message: String,
}

/// The warnings for a policy placed at `placement` (its holder's, or `--mode`'s), at `now`.
pub fn check(found: &Found, placement: &Placement, now: u64) -> Vec<Warning> {
    let mut out = Vec::new();
    let modes = &placement.modes;
    let client = modes.contains(&Mode::Client);
    let server = modes.contains(&Mode::Server);
    let edge = modes.iter().any(|m| m.edge());
    let here = placement.title();
    let site = &found.site;

    if let Some(s) = site.fail_open.as_ref().filter(|_| edge) {
        out.push(Warning {
            kind: "fail_open_at_edge",
            path: s.path.clone(),
            at: s.at,
            message: format!(
                "{} at an edge ({here}): when the module cannot be fetched or loaded, or its VM fails, requests go on without Dial, so nobody removes a client-sent x-dial-subset and the routes honour it; fail closed (FAIL_CLOSE, or failure_policy FAIL_CLOSED) so requests are refused rather than steered by the client",
                s.value
            ),
        });
    }
    if let Some(s) = &site.sha256 {
        if let Some(why) = placeholder_digest(&s.value) {
            out.push(Warning {
                kind: "placeholder_sha256",
                path: s.path.clone(),
                at: s.at,
                message: format!(
                    "{why}, not the module's digest: the fetch checks it, so the module never loads (under FAIL_OPEN the proxy then runs without Dial); put the digest `make oci` prints for your build"
                ),
            });
        }
    }
    if let Some(s) = &site.url {
        if let Some(host) = placeholder_host(&s.value) {
            out.push(Warning {
                kind: "placeholder_url",
                path: s.path.clone(),
                at: s.at,
                message: format!(
                    "the module is fetched from {host}, a name reserved for examples (RFC 2606) that serves no module: push the image to your own registry and point the URL there"
                ),
            });
        }
    }

    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&found.text) else {
        return out;
    };
    let Some(Value::Array(releases)) = doc.get("releases") else {
        return out;
    };
    let policy = found.outcome.as_ref().ok();
    for (i, release) in releases.iter().enumerate() {
        let name = release
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("release");
        let path = JsonPath::root().key("releases").index(i);
        let mut warn = |kind: &'static str, path: JsonPath, message: String| {
            out.push(Warning {
                kind,
                at: found.position_at(path.segments()),
                path: path.to_string(),
                message,
            });
        };
        let sticky_path = path.key("whenNoKey").key("stickyCookie");
        if let Some(sticky) = release
            .get("whenNoKey")
            .and_then(|w| w.get("stickyCookie"))
            .filter(|s| s.is_object())
        {
            if client || server {
                let who = if client && !server {
                    "the response goes to the calling app in the same pod, not to a browser"
                } else if server && !client {
                    "the caller already chose this workload's version, and the response goes to the calling service, not to a browser"
                } else {
                    "the response goes to the calling app or service, not to a browser"
                };
                warn(
                    "sticky_cookie_to_service",
                    sticky_path.clone(),
                    format!(
                        "a sticky cookie in {here}: {who}, so its Set-Cookie never comes back and every anonymous call gets a fresh key (and may change subsets); key on something the caller sends (a header it sets, or baggage) and use whenNoKey.subset"
                    ),
                );
            }
            if edge && sticky.get("secret").is_none_or(Value::is_null) {
                warn(
                    "unsigned_sticky_cookie",
                    sticky_path.clone(),
                    format!(
                        "a sticky cookie without a secret at an edge ({here}): its key is a bare hex value and the hash is public, so an anonymous client can write a key that lands on the subset it wants; set stickyCookie.secret, from the environment: {{\"fromEnv\": \"{}\"}}",
                        env_name(name, "COOKIE_SECRET")
                    ),
                );
            }
            for (field, what) in [
                ("secret", "COOKIE_SECRET"),
                ("previousSecret", "COOKIE_PREVIOUS_SECRET"),
            ] {
                if sticky.get(field).is_some_and(Value::is_string) {
                    warn(
                        "inline_secret",
                        sticky_path.key(field),
                        inline_message(&format!("stickyCookie.{field}"), name, what),
                    );
                }
            }
        }
        if let Some(over) = release.get("override").filter(|o| o.is_object()) {
            let over_path = path.key("override");
            let header = over
                .get("header")
                .and_then(Value::as_str)
                .unwrap_or("the override header");
            if client
                && over
                    .get("sourceCidrs")
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty())
            {
                warn(
                    "source_cidrs_local_peer",
                    over_path.key("sourceCidrs"),
                    format!(
                        "sourceCidrs in sidecar CLIENT: the downstream peer is the calling app in the same pod, so every request it sends is trusted, an internet user's own {header} header too if the app forwards headers; trust a token (from the environment) here, or judge sources where the peer is the real caller (sidecar SERVER, the gateway)"
                    ),
                );
            }
            if over.get("allowAnyone") == Some(&Value::Bool(true)) {
                warn(
                    "allow_anyone",
                    over_path.key("allowAnyone"),
                    format!(
                        "allowAnyone: every client may force any subset with {header}: only for test environments; trust a token (from the environment) or sourceCidrs instead"
                    ),
                );
            }
            if over.get("token").is_some_and(Value::is_string) {
                warn(
                    "inline_secret",
                    over_path.key("token"),
                    inline_message("override.token", name, "TOKEN"),
                );
            }
        }
        if let Some(lanes) = release.get("lanes").filter(|l| l.is_object()) {
            if edge && lanes.get("follow") == Some(&Value::Bool(true)) {
                warn(
                    "lanes_follow_at_edge",
                    path.key("lanes").key("follow"),
                    format!(
                        "a release that follows lanes at an edge ({here}): a client that copies a valid lane member from another user's call (it stays valid for maxAge) puts itself on that lane; at the edge issue lanes only (\"issue\": true, no \"follow\"), and follow them in the mesh"
                    ),
                );
            }
            for (field, what) in [
                ("secret", "LANE_SECRET"),
                ("previousSecret", "LANE_PREVIOUS_SECRET"),
            ] {
                if lanes.get(field).is_some_and(Value::is_string) {
                    warn(
                        "inline_secret",
                        path.key("lanes").key(field),
                        inline_message(&format!("lanes.{field}"), name, what),
                    );
                }
            }
        }
        let ramp = policy
            .and_then(|p| p.releases.iter().find(|r| r.name == name))
            .and_then(|r| r.ramp.as_ref().map(|ramp| (r, ramp)));
        if let Some((r, ramp)) = ramp.filter(|(_, ramp)| ramp.start < now) {
            let subset = r
                .subsets
                .get(ramp.subset)
                .map_or("the ramped subset", |s| s.name.as_str());
            let in_force = match ramp.step_at(Some(now)) {
                Some((k, step)) => {
                    let since = ramp.step_start(k);
                    format!(
                        "in force at {} is step {} of {} ({subset} {}% since {}{})",
                        report::instant(now),
                        k + 1,
                        ramp.steps.len(),
                        percent(u64::from(step.share_ppm)),
                        report::instant(since),
                        if step.until.is_none() {
                            ", the last: it holds forever"
                        } else {
                            ""
                        }
                    )
                }
                None => format!("at {} no step is in force", report::instant(now)),
            };
            warn(
                "ramp_in_past",
                path.key("ramp").key("start"),
                format!(
                    "the ramp of {subset} started {}, before now: applied now, release {name} does not start at step 1: {in_force}; move start to when the rollout should begin",
                    report::instant(ramp.start)
                ),
            );
        }
    }
    out.sort_by_key(|w| (w.at.line, w.at.column));
    out
}

fn inline_message(field: &str, release: &str, what: &str) -> String {
    format!(
        "{field} is written inline: anyone who can read this file (or the WasmPlugin, or Envoy's /config_dump) reads the secret; name an environment variable of the proxy instead: {{\"fromEnv\": \"{}\"}}",
        env_name(release, what)
    )
}

/// `DIAL_CHECKOUT_TOKEN` for release `checkout`.
fn env_name(release: &str, what: &str) -> String {
    let release: String = release
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("DIAL_{release}_{what}")
}

/// Why a digest is a placeholder: all zeros, one digit repeated, or not 64 hex digits.
pub fn placeholder_digest(value: &str) -> Option<String> {
    let hex = value.strip_prefix("sha256:").unwrap_or(value);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some("not a SHA-256 digest (64 hex digits)".into());
    }
    let first = hex.bytes().next()?;
    if hex.bytes().all(|b| b == first) {
        return Some(if first == b'0' {
            "all zeros".into()
        } else {
            format!("one digit ({}) repeated", first as char)
        });
    }
    None
}

/// The host of a URL when it is reserved for examples: `example.com`, `.org`, `.net` and their
/// subdomains, and the `.example`, `.invalid` and `.test` top-level domains.
pub fn placeholder_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .split(':')
        .next()
        .unwrap_or(authority)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let reserved = ["example.com", "example.org", "example.net"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || [".example", ".invalid", ".test"]
            .iter()
            .any(|t| host.ends_with(t))
        || ["example", "invalid", "test"].contains(&host.as_str());
    reserved.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised() {
        assert_eq!(
            placeholder_digest(&"0".repeat(64)).as_deref(),
            Some("all zeros")
        );
        assert!(placeholder_digest(&"f".repeat(64))
            .unwrap()
            .contains("repeated"));
        assert!(placeholder_digest("REPLACE_ME").is_some());
        let real = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(placeholder_digest(real), None);
        assert_eq!(
            placeholder_host("oci://registry.example.com/platform/dial:0.1.0").as_deref(),
            Some("registry.example.com")
        );
        assert!(placeholder_host("https://user@wasm.example.org:8443/dial.wasm").is_some());
        assert!(placeholder_host("oci://registry.shop.invalid/dial").is_some());
        assert_eq!(
            placeholder_host("oci://registry.shop.internal/dial:0.1.0"),
            None
        );
        assert_eq!(placeholder_host("oci://notexample.com/dial"), None);
        assert_eq!(env_name("check-out", "TOKEN"), "DIAL_CHECK_OUT_TOKEN");
    }
}
