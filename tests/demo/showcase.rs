//! The demo's "Rules and safety" lines: one request per rule of the example's checkout release
//! and per safety property, built from the policy itself, and the check that they prove what
//! they claim. A spoofed request (a client-sent `x-dial-subset`, an override without its token)
//! must land exactly where the same user's honest request lands, and that must not be the
//! subset the spoof asks for; otherwise the lines would show nothing (as on a date where the
//! ramp had put everyone on the canary). `make demo` fails then, and so does
//! tests/demo_safety.rs, which runs the same lines in `make test`.

use serde_json::Value;

/// What a line's request must show.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// The honest request of a user the split puts on the release's first subset.
    Honest,
    /// A rule's subset.
    Rule(String),
    /// Where the honest request went: a client's attempt to steer changes nothing.
    AsHonest,
    /// The override's subset, with reason `override`.
    Override(String),
}

#[derive(Debug, Clone)]
pub struct Case {
    pub what: String,
    pub headers: Vec<(String, String)>,
    pub expect: Expect,
}

/// What Envoy answered: the subset and reason from `x-dial-assignment`, and who answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub subset: String,
    pub reason: String,
    pub backend: String,
}

/// The lines for the example's `checkout` release (`release`), for `user` (one the split puts on
/// the first subset, `first`), spoofing towards the last subset; `token` is the override's.
pub fn cases(
    release: &Value,
    user: &str,
    first: &str,
    last: &str,
    token: Option<&str>,
) -> Vec<Case> {
    let key = release["key"][0]["header"].as_str().unwrap_or("x-user-id");
    let own = |extra: &[(&str, &str)]| {
        let mut h = vec![(key.to_string(), user.to_string())];
        h.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        h
    };
    let mut cases = vec![Case {
        what: format!("a {first} user"),
        headers: own(&[]),
        expect: Expect::Honest,
    }];
    for rule in release["rules"].as_array().into_iter().flatten() {
        let subset = rule["subset"].as_str().unwrap_or_default().to_string();
        let matched = |m: &Value| {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            let value = m["equals"]
                .as_str()
                .or_else(|| m["prefix"].as_str())
                .or_else(|| m["oneOf"][0].as_str())
                .unwrap_or("1")
                .to_string();
            (name, value)
        };
        let (what, headers) = if rule["header"].is_object() {
            let (name, value) = matched(&rule["header"]);
            (format!("{name}: {value}"), own(&[(&name, &value)]))
        } else if rule["cookie"].is_object() {
            let (name, value) = matched(&rule["cookie"]);
            let cookie = format!("{name}={value}");
            (format!("cookie {cookie}"), own(&[("cookie", &cookie)]))
        } else if let Some(allowed) = rule["users"][0].as_str() {
            (
                format!("{key}: {allowed} (allowlist)"),
                vec![(key.to_string(), allowed.to_string())],
            )
        } else {
            continue;
        };
        cases.push(Case {
            what,
            headers,
            expect: Expect::Rule(subset),
        });
    }
    cases.push(Case {
        what: format!("client sends x-dial-subset: {last}"),
        headers: own(&[("x-dial-subset", last)]),
        expect: Expect::AsHonest,
    });
    if let (Some(header), Some(token)) = (release["override"]["header"].as_str(), token) {
        cases.push(Case {
            what: format!("{header}: {last} (no token)"),
            headers: own(&[(header, last)]),
            expect: Expect::AsHonest,
        });
        cases.push(Case {
            what: format!("{header}: {last}; token=<wrong>"),
            headers: own(&[(header, &format!("{last}; token=not-{token}"))]),
            expect: Expect::AsHonest,
        });
        cases.push(Case {
            what: format!("{header}: {last}; token=..."),
            headers: own(&[(header, &format!("{last}; token={token}"))]),
            expect: Expect::Override(last.to_string()),
        });
    }
    cases
}

/// Whether the outcomes prove what the lines claim; the first line is the honest request, and
/// `spoofed` the subset the spoofs ask for.
pub fn check(cases: &[Case], outcomes: &[Outcome], spoofed: &str) -> Result<(), String> {
    let honest = match (cases.first(), outcomes.first()) {
        (Some(c), Some(o)) if c.expect == Expect::Honest => o,
        _ => return Err("the first line must be the honest request".into()),
    };
    if honest.subset == spoofed {
        return Err(format!(
            "the honest user is already on {spoofed} (reason={}): the spoofed requests cannot be told apart from honest ones",
            honest.reason
        ));
    }
    let mut spoofs = 0;
    for (case, got) in cases.iter().zip(outcomes) {
        let fail = |want: &str| Err(format!("{}: {want}, got {got:?}", case.what));
        match &case.expect {
            Expect::Honest => {}
            Expect::Rule(subset) if &got.subset != subset => {
                return fail(&format!("want {subset}"))
            }
            Expect::Rule(_) => {}
            Expect::AsHonest => {
                spoofs += 1;
                if got != honest {
                    return fail(&format!("want what the honest request got, {honest:?}"));
                }
            }
            Expect::Override(subset) if &got.subset != subset || got.reason != "override" => {
                return fail(&format!("want {subset} with reason=override"))
            }
            Expect::Override(_) => {}
        }
    }
    if spoofs == 0 || cases.len() != outcomes.len() {
        return Err(format!(
            "{} lines, {} answers, {spoofs} spoofed: nothing shown",
            cases.len(),
            outcomes.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(subset: &str, reason: &str, backend: &str) -> Outcome {
        Outcome {
            subset: subset.into(),
            reason: reason.into(),
            backend: backend.into(),
        }
    }

    fn example() -> Vec<Case> {
        let release = json!({ "key": [{ "header": "x-user-id" }],
            "rules": [{ "header": { "name": "x-beta", "equals": "true" }, "subset": "canary" }],
            "override": { "header": "x-dial-override" } });
        cases(
            &release,
            "user-0",
            "stable",
            "canary",
            Some("t0ken-0123456789abc"),
        )
    }

    #[test]
    fn lines_that_tell_spoofs_apart_pass() {
        let cases = example();
        let stable = outcome("stable", "hash", "checkout-v1");
        let outcomes = vec![
            stable.clone(),
            outcome("canary", "header_rule", "checkout-v2"),
            stable.clone(),
            stable.clone(),
            stable,
            outcome("canary", "override", "checkout-v2"),
        ];
        assert_eq!(check(&cases, &outcomes, "canary"), Ok(()));
    }

    /// What `make demo` printed after the example's ramp reached 100%: every line on the
    /// canary by hash, the spoofs indistinguishable from honest requests.
    #[test]
    fn lines_where_everyone_is_already_on_the_target_fail() {
        let cases = example();
        let canary = outcome("canary", "hash", "checkout-v2");
        let outcomes = vec![
            canary.clone(),
            outcome("canary", "header_rule", "checkout-v2"),
            canary.clone(),
            canary.clone(),
            canary,
            outcome("canary", "override", "checkout-v2"),
        ];
        let err = check(&cases, &outcomes, "canary").unwrap_err();
        assert!(err.contains("cannot be told apart"), "{err}");
    }

    #[test]
    fn a_spoof_that_steers_fails() {
        let cases = example();
        let stable = outcome("stable", "hash", "checkout-v1");
        let outcomes = vec![
            stable.clone(),
            outcome("canary", "header_rule", "checkout-v2"),
            outcome("canary", "hash", "checkout-v2"),
            stable.clone(),
            stable,
            outcome("canary", "override", "checkout-v2"),
        ];
        let err = check(&cases, &outcomes, "canary").unwrap_err();
        assert!(
            err.starts_with("client sends x-dial-subset: canary"),
            "{err}"
        );
    }

    #[test]
    fn an_override_that_is_refused_fails() {
        let cases = example();
        let stable = outcome("stable", "hash", "checkout-v1");
        let mut outcomes = vec![
            stable.clone(),
            outcome("canary", "header_rule", "checkout-v2"),
            stable.clone(),
            stable.clone(),
            stable.clone(),
        ];
        outcomes.push(stable);
        assert!(check(&cases, &outcomes, "canary").is_err());
    }
}
