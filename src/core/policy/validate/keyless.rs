//! `whenNoKey`: a fixed subset, or a sticky cookie Dial mints for anonymous users.

use super::checker::Checker;
use super::limits::MAX_COOKIE_AGE;
use super::subsets::SubsetRefs;
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::raw::{RawStickyCookie, RawWhenNoKey};
use crate::core::policy::WhenNoKey;
use crate::core::sticky::{Signing, StickyCookie};

pub fn when_no_key(
    c: &mut Checker,
    path: &JsonPath,
    w: RawWhenNoKey,
    refs: &SubsetRefs,
) -> Option<WhenNoKey> {
    match (w.subset, w.sticky_cookie) {
        (Some(s), None) => refs
            .resolve(c, path.key("subset"), &s)
            .map(WhenNoKey::Subset),
        (None, Some(s)) => sticky_cookie(c, &path.key("stickyCookie"), s).map(WhenNoKey::Sticky),
        _ => {
            c.fail_here(
                path.clone(),
                ProblemKind::Conflict,
                "\"whenNoKey\" needs exactly one of \"subset\" or \"stickyCookie\"",
            );
            None
        }
    }
}

fn sticky_cookie(c: &mut Checker, path: &JsonPath, s: RawStickyCookie) -> Option<StickyCookie> {
    let mark = c.mark();
    let name = c.cookie_name(path.key("name"), &s.name);
    let max_age = match s.max_age_seconds {
        None => None,
        Some(age) if (1..=MAX_COOKIE_AGE).contains(&age) => u32::try_from(age).ok(),
        Some(age) => {
            c.fail_number(
                path.key("maxAgeSeconds"),
                ProblemKind::OutOfRange,
                age,
                format!("must be between 1 and {MAX_COOKIE_AGE} (400 days), got {age}"),
            );
            None
        }
    };
    let cookie_path = s.path.unwrap_or_else(|| "/".to_string());
    if !cookie_path.starts_with('/')
        || cookie_path
            .bytes()
            .any(|b| b == b';' || b == b' ' || b.is_ascii_control())
    {
        c.fail(
            path.key("path"),
            ProblemKind::InvalidValue,
            &cookie_path,
            format!(
                "{} is not a cookie path: it must start with '/' and hold no ';' or spaces",
                quote(&cookie_path)
            ),
        );
    }
    let wrote_secret = s.secret.is_some();
    let (secret, previous) = c.rotating_secrets(path, s.secret, s.previous_secret);
    if !wrote_secret && previous.is_some() {
        c.fail_here(
            path.key("previousSecret"),
            ProblemKind::Conflict,
            "a previous secret needs a current \"secret\" to sign new cookies with",
        );
    }
    let signing = secret.map(|secret| Signing { secret, previous });
    let name = name?;
    c.clean_since(mark).then_some(StickyCookie {
        name,
        max_age_seconds: max_age,
        path: cookie_path,
        secure: s.secure,
        signing,
    })
}
