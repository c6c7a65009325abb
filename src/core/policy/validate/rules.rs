//! Rules: header and cookie matchers, user allowlists, and the subset each assigns.

use super::checker::Checker;
use super::subsets::SubsetRefs;
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::raw::{RawMatcher, RawRule};
use crate::core::policy::MAX_KEY_LEN;
use crate::core::rules::{Allowlist, Condition, Matcher, Rule};

pub fn rules(
    c: &mut Checker,
    path: &JsonPath,
    raw: Vec<RawRule>,
    refs: &SubsetRefs,
    no_key_sources: bool,
) -> Vec<Rule> {
    let mut rules = Vec::with_capacity(raw.len());
    for (j, rule) in raw.into_iter().enumerate() {
        let at = path.index(j);
        let subset = refs.resolve(c, at.key("subset"), &rule.subset);
        let condition = match (rule.header, rule.cookie, rule.users) {
            (Some(m), None, None) => {
                let name = c.header_name(at.key("header").key("name"), &m.name, false);
                let matcher = matcher(c, &at.key("header"), m);
                name.zip(matcher)
                    .map(|(name, matcher)| Condition::Header { name, matcher })
            }
            (None, Some(m), None) => {
                let name = c.cookie_name(at.key("cookie").key("name"), &m.name);
                let matcher = matcher(c, &at.key("cookie"), m);
                name.zip(matcher)
                    .map(|(name, matcher)| Condition::Cookie { name, matcher })
            }
            (None, None, Some(users)) => {
                users_condition(c, &at.key("users"), users, no_key_sources)
            }
            _ => {
                c.fail_here(
                    at,
                    ProblemKind::Conflict,
                    "a rule needs exactly one of \"header\", \"cookie\" or \"users\"",
                );
                None
            }
        };
        if let (Some(condition), Some(subset)) = (condition, subset) {
            rules.push(Rule { condition, subset });
        }
    }
    rules
}

fn matcher(c: &mut Checker, path: &JsonPath, m: RawMatcher) -> Option<Matcher> {
    match (m.equals, m.prefix, m.present, m.one_of) {
        (Some(v), None, None, None) => Some(Matcher::Equals(v.into_bytes())),
        (None, Some(v), None, None) => Some(Matcher::Prefix(v.into_bytes())),
        (None, None, Some(true), None) => Some(Matcher::Present),
        (None, None, Some(false), None) => {
            c.fail_here(
                path.key("present"),
                ProblemKind::InvalidValue,
                "\"present\": false matches nothing; use \"present\": true or another condition",
            );
            None
        }
        (None, None, None, Some(options)) if options.is_empty() => {
            c.fail_here(
                path.key("oneOf"),
                ProblemKind::OutOfRange,
                "\"oneOf\" needs at least one value",
            );
            None
        }
        (None, None, None, Some(options)) => Some(Matcher::OneOf(
            options.into_iter().map(String::into_bytes).collect(),
        )),
        _ => {
            c.fail_here(
                path.clone(),
                ProblemKind::Conflict,
                format!(
                    "{} needs exactly one of \"equals\", \"prefix\", \"present\" or \"oneOf\"",
                    quote(&m.name)
                ),
            );
            None
        }
    }
}

fn users_condition(
    c: &mut Checker,
    path: &JsonPath,
    users: Vec<String>,
    no_key_sources: bool,
) -> Option<Condition> {
    if no_key_sources {
        c.fail_here(
            path.clone(),
            ProblemKind::Conflict,
            "an allowlist matches user keys, but this release has no \"key\" sources",
        );
        return None;
    }
    if users.is_empty() {
        c.fail_here(
            path.clone(),
            ProblemKind::OutOfRange,
            "the allowlist is empty",
        );
        return None;
    }
    let mark = c.mark();
    let mut set = Allowlist::with_capacity_and_hasher(users.len(), Default::default());
    for (i, u) in users.into_iter().enumerate() {
        if u.is_empty() || u.len() > MAX_KEY_LEN {
            c.fail(
                path.index(i),
                ProblemKind::InvalidValue,
                &u,
                format!(
                    "{} is not a usable user key: it must have 1 to {MAX_KEY_LEN} bytes",
                    quote(&u)
                ),
            );
        } else {
            set.insert(u.into_bytes());
        }
    }
    c.clean_since(mark).then_some(Condition::Users(set))
}
