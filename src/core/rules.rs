//! Rules tried before the weighted split: header, cookie and user allowlist. First match wins.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::core::bucket::Murmur3;
use crate::core::request::RequestView;

/// An allowlist: a hash set of user keys, so 10,000 ids cost one lookup.
pub type Allowlist = HashSet<Vec<u8>, BuildHasherDefault<KeyHasher>>;

/// murmur3 for allowlist lookups instead of std's SipHash, several times cheaper on short ids.
/// SipHash's keys guard a table against inserts an attacker chooses; here the policy fills the
/// set and requests only look up, so there is nothing to flood.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(Murmur3);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    /// Spread over 64 bits: the table takes its control bits from the top of the hash.
    fn finish(&self) -> u64 {
        u64::from(self.0.finish()).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

#[derive(Debug)]
pub struct Rule {
    pub condition: Condition,
    /// Index of the subset this rule assigns.
    pub subset: usize,
}

#[derive(Debug)]
pub enum Condition {
    Header {
        name: String,
        matcher: Matcher,
    },
    Cookie {
        name: String,
        matcher: Matcher,
    },
    /// User keys (as read from the release's key sources).
    Users(Allowlist),
}

/// How a header or cookie value is compared. Byte-exact, case-sensitive.
#[derive(Debug, PartialEq, Eq)]
pub enum Matcher {
    Equals(Vec<u8>),
    Prefix(Vec<u8>),
    Present,
    OneOf(Vec<Vec<u8>>),
}

/// Which kind of rule assigned a request (a stats and debugging label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Header,
    Cookie,
    Allowlist,
}

impl Matcher {
    pub fn matches(&self, value: Option<&[u8]>) -> bool {
        let Some(value) = value else { return false };
        match self {
            Matcher::Equals(want) => value == want.as_slice(),
            Matcher::Prefix(prefix) => value.starts_with(prefix),
            Matcher::Present => true,
            Matcher::OneOf(options) => options.iter().any(|o| o.as_slice() == value),
        }
    }
}

impl Rule {
    /// `key` is the request's user key, if it has one (read once by the caller).
    pub fn matches(&self, request: &impl RequestView, key: Option<&[u8]>) -> bool {
        match &self.condition {
            Condition::Header { name, matcher } => matcher.matches(request.header(name)),
            Condition::Cookie { name, matcher } => matcher.matches(request.cookie(name)),
            Condition::Users(users) => key.is_some_and(|k| users.contains(k)),
        }
    }

    pub fn kind(&self) -> RuleKind {
        match self.condition {
            Condition::Header { .. } => RuleKind::Header,
            Condition::Cookie { .. } => RuleKind::Cookie,
            Condition::Users(_) => RuleKind::Allowlist,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_compare_bytes_exactly() {
        let eq = Matcher::Equals(b"true".to_vec());
        assert!(eq.matches(Some(b"true")));
        assert!(!eq.matches(Some(b"TRUE")));
        assert!(!eq.matches(Some(b"true ")));
        assert!(!eq.matches(None));

        let prefix = Matcher::Prefix(b"beta-".to_vec());
        assert!(prefix.matches(Some(b"beta-7")));
        assert!(prefix.matches(Some(b"beta-")));
        assert!(!prefix.matches(Some(b"beta")));

        assert!(Matcher::Present.matches(Some(b"")));
        assert!(!Matcher::Present.matches(None));

        let one_of = Matcher::OneOf(vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(one_of.matches(Some(b"b")));
        assert!(!one_of.matches(Some(b"c")));
        assert!(!one_of.matches(Some(b"ab")));
    }
}
