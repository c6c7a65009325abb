//! `whenNoKey`: a fixed subset, or a sticky cookie Dial mints for anonymous users.

use super::checker::Checker;
use super::release::SubsetRefs;
use super::{MAX_COOKIE_AGE, MIN_TOKEN_LEN};
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
    for (field, secret) in [
        ("secret", &s.secret),
        ("previousSecret", &s.previous_secret),
    ] {
        if let Some(secret) = secret {
            check_secret(c, path.key(field), secret);
        }
    }
    let signing = match (s.secret, s.previous_secret) {
        (Some(secret), previous) => {
            if previous.as_ref() == Some(&secret) {
                c.fail_here(
                    path.key("previousSecret"),
                    ProblemKind::Conflict,
                    "the previous secret is the current one: drop \"previousSecret\" or rotate \"secret\"",
                );
            }
            Some(Signing { secret, previous })
        }
        (None, Some(_)) => {
            c.fail_here(
                path.key("previousSecret"),
                ProblemKind::Conflict,
                "a previous secret needs a current \"secret\" to sign new cookies with",
            );
            None
        }
        (None, None) => None,
    };
    let name = name?;
    c.clean_since(mark).then_some(StickyCookie {
        name,
        max_age_seconds: max_age,
        path: cookie_path,
        secure: s.secure,
        signing,
    })
}

/// The rules of the override token: long enough, printable, and safe in a header value. The
/// value itself is never repeated in a problem.
pub fn check_secret(c: &mut Checker, path: JsonPath, secret: &str) {
    if secret.len() < MIN_TOKEN_LEN || secret.bytes().any(|b| !b.is_ascii_graphic() || b == b';') {
        c.fail_here(
            path,
            ProblemKind::InvalidValue,
            format!("a secret must be at least {MIN_TOKEN_LEN} printable characters without ';' or spaces"),
        );
    }
}
