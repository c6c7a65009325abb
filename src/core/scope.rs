//! Which requests a release applies to: by host and by path prefix.

/// A host pattern: `shop.example.com` (exact), `*.example.com` (any subdomain), `*` (any host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    Exact(String),
    /// Stored with its leading dot: `.example.com`.
    Suffix(String),
}

/// How a scope judged a request: per half, `None` when the scope does not look at it (any host,
/// any path), else whether it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeFit {
    pub host: Option<bool>,
    pub path: Option<bool>,
}

impl ScopeFit {
    pub fn fits(&self) -> bool {
        self.host != Some(false) && self.path != Some(false)
    }
}

#[derive(Debug, Default)]
pub struct Scope {
    /// Empty: any host.
    pub hosts: Vec<HostPattern>,
    /// Empty: any path. Plain prefixes, as Envoy's route `prefix` matches.
    pub path_prefixes: Vec<String>,
}

impl Scope {
    pub fn matches(&self, host: Option<&[u8]>, path: Option<&[u8]>) -> bool {
        self.matches_host(host) && self.matches_path(path)
    }

    /// Both halves judged, for an observer of the decision (`matches` stops at the first miss).
    // `#[inline]` here and on the helpers: compiled only where used, so the filter's module, which
    // never calls `fit`, keeps `matches` as one function, as small as before `fit` existed.
    #[inline]
    pub fn fit(&self, host: Option<&[u8]>, path: Option<&[u8]>) -> ScopeFit {
        ScopeFit {
            host: (!self.hosts.is_empty()).then(|| self.matches_host(host)),
            path: (!self.path_prefixes.is_empty()).then(|| self.matches_path(path)),
        }
    }

    #[inline]
    fn matches_host(&self, host: Option<&[u8]>) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let Some(host) = host.map(strip_port).map(strip_root_dot) else {
            return false;
        };
        self.hosts.iter().any(|p| match p {
            HostPattern::Any => true,
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h.as_bytes()),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host
                        .get(host.len() - s.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(s.as_bytes()))
            }
        })
    }

    #[inline]
    fn matches_path(&self, path: Option<&[u8]>) -> bool {
        if self.path_prefixes.is_empty() {
            return true;
        }
        let Some(path) = path else { return false };
        self.path_prefixes
            .iter()
            .any(|p| path.starts_with(p.as_bytes()))
    }
}

/// `shop.example.com.` → `shop.example.com`: an absolute name (with the root's empty label) is
/// the same host, and must not fall outside the release.
#[inline]
fn strip_root_dot(host: &[u8]) -> &[u8] {
    match host.strip_suffix(b".") {
        Some(name) if !name.is_empty() && !name.ends_with(b".") => name,
        _ => host,
    }
}

/// `shop.example.com:8080` → `shop.example.com`; `[::1]:80` → `[::1]`.
#[inline]
fn strip_port(host: &[u8]) -> &[u8] {
    let colon = if host.starts_with(b"[") {
        host.iter()
            .position(|&b| b == b']')
            .and_then(|end| (host.get(end + 1) == Some(&b':')).then_some(end + 1))
    } else {
        host.iter().rposition(|&b| b == b':')
    };
    match colon {
        Some(i) => host.get(..i).unwrap_or(host),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(hosts: &[HostPattern], prefixes: &[&str]) -> Scope {
        Scope {
            hosts: hosts.to_vec(),
            path_prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn exact_host_ignores_case_and_port() {
        let s = scope(&[HostPattern::Exact("shop.example.com".into())], &[]);
        assert!(s.matches(Some(b"shop.example.com"), Some(b"/")));
        assert!(s.matches(Some(b"Shop.Example.COM:8080"), Some(b"/")));
        assert!(!s.matches(Some(b"shop.example.com.evil"), Some(b"/")));
        assert!(!s.matches(Some(b"www.shop.example.com"), Some(b"/")));
        assert!(!s.matches(None, Some(b"/")));
    }

    #[test]
    fn an_absolute_host_name_is_the_same_host() {
        let exact = scope(&[HostPattern::Exact("shop.example.com".into())], &[]);
        let wildcard = scope(&[HostPattern::Suffix(".example.com".into())], &[]);
        for host in [&b"shop.example.com."[..], b"SHOP.example.com.:8443"] {
            assert!(exact.matches(Some(host), None), "{host:?}");
            assert!(wildcard.matches(Some(host), None), "{host:?}");
        }
        // Only one root dot; an empty name is no host.
        for host in [&b"shop.example.com.."[..], b".", b"example.com."] {
            assert!(!exact.matches(Some(host), None), "{host:?}");
        }
        assert!(!wildcard.matches(Some(b"example.com."), None));
    }

    #[test]
    fn wildcard_host_needs_a_subdomain() {
        let s = scope(&[HostPattern::Suffix(".example.com".into())], &[]);
        assert!(s.matches(Some(b"a.example.com"), None));
        assert!(s.matches(Some(b"a.b.example.com:443"), None));
        assert!(!s.matches(Some(b"example.com"), None));
        assert!(!s.matches(Some(b"badexample.com"), None));
    }

    #[test]
    fn path_prefixes_match_like_envoy_prefix_routes() {
        let s = scope(&[], &["/checkout", "/cart/"]);
        assert!(s.matches(None, Some(b"/checkout")));
        assert!(s.matches(None, Some(b"/checkout/pay?x=1")));
        assert!(s.matches(None, Some(b"/checkoutx")));
        assert!(s.matches(None, Some(b"/cart/1")));
        assert!(!s.matches(None, Some(b"/cart")));
        assert!(!s.matches(None, Some(b"/")));
        assert!(!s.matches(None, None));
    }

    #[test]
    fn empty_scope_matches_everything() {
        assert!(scope(&[], &[]).matches(None, None));
        assert!(scope(&[HostPattern::Any], &[]).matches(Some(b"x"), None));
    }

    #[test]
    fn ports_are_stripped_from_ipv6_literals_too() {
        assert_eq!(strip_port(b"[::1]:8080"), b"[::1]");
        assert_eq!(strip_port(b"[::1]"), b"[::1]");
        assert_eq!(strip_port(b"h:1"), b"h");
        assert_eq!(strip_port(b""), b"");
    }
}
