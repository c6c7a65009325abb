//! A release's scope: host patterns and path prefixes.

use super::checker::Checker;
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::raw::RawMatch;
use crate::core::scope::{HostPattern, Scope};

pub fn scope(c: &mut Checker, path: &JsonPath, m: RawMatch) -> Option<Scope> {
    let mark = c.mark();
    let mut hosts = Vec::with_capacity(m.hosts.len());
    for (i, h) in m.hosts.iter().enumerate() {
        let at = path.key("hosts").index(i);
        let lower = h.to_ascii_lowercase();
        let valid_label = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        };
        if lower == "*" {
            hosts.push(HostPattern::Any);
        } else if let Some(rest) = lower.strip_prefix("*.") {
            if valid_label(rest) {
                hosts.push(HostPattern::Suffix(format!(".{rest}")));
            } else {
                c.fail(
                    at,
                    ProblemKind::InvalidValue,
                    h,
                    format!("{} is not a valid host pattern", quote(h)),
                );
            }
        } else if valid_label(&lower) {
            hosts.push(HostPattern::Exact(lower));
        } else {
            c.fail(
                at,
                ProblemKind::InvalidValue,
                h,
                format!(
                    "{} is not a valid host pattern: use a host name without port, \"*.domain\" or \"*\"",
                    quote(h)
                ),
            );
        }
    }
    for (i, prefix) in m.path_prefixes.iter().enumerate() {
        if !prefix.starts_with('/') || prefix.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            c.fail(
                path.key("pathPrefixes").index(i),
                ProblemKind::InvalidValue,
                prefix,
                format!(
                    "{} is not a path prefix: it must start with '/' and hold no spaces",
                    quote(prefix)
                ),
            );
        }
    }
    c.clean_since(mark).then_some(Scope {
        hosts,
        path_prefixes: m.path_prefixes,
    })
}
