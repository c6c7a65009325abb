//! Policy parsing: good policies build the expected structure; bad ones are rejected with the
//! JSON path and the offending value in the message.

use super::*;
use crate::core::rules::{Condition, Matcher};
use crate::core::scope::HostPattern;
use crate::core::secret::Environment;
use serde_json::json;

/// The example policy (tests/data/checkout.json, which the lifecycle and Envoy tests use too).
const EXAMPLE: &str = include_str!("../../../tests/data/checkout.json");

#[test]
fn the_example_policy_builds() {
    let p = Policy::parse(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(p.headers.subset, "x-dial-subset");
    assert_eq!(p.headers.version, "x-dial-version");
    assert_eq!(p.headers.response.as_deref(), Some("x-dial-assignment"));
    assert_eq!(
        p.owned_request_headers,
        [
            "x-dial-subset",
            "x-dial-version",
            "x-dial-mirror",
            "x-dial-override"
        ]
    );
    let r = &p.releases[0];
    assert_eq!(r.name, "checkout");
    assert_eq!(
        r.scope.hosts,
        [HostPattern::Exact("shop.example.com".into())]
    );
    assert_eq!(r.cumulative, [90, 100]);
    assert_eq!(
        r.key,
        [
            KeySource::Header("x-user-id".into()),
            KeySource::Cookie("uid".into())
        ]
    );
    assert_eq!(r.rules.len(), 3);
    assert!(matches!(&r.rules[0].condition,
        Condition::Header { name, matcher: Matcher::Equals(v) } if name == "x-beta" && v == b"true"));
    assert!(matches!(&r.rules[2].condition, Condition::Users(u) if u.len() == 2));
    assert!(r.rules.iter().all(|rule| rule.subset == 1));
    match &r.when_no_key {
        WhenNoKey::Sticky(c) => {
            assert_eq!(c.name, "dial-checkout");
            assert_eq!(c.max_age_seconds, Some(2_592_000));
            assert_eq!(c.path, "/");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(r.override_.as_ref().unwrap().header, "x-dial-override");
}

#[test]
fn header_names_are_lower_cased_and_defaults_apply() {
    let p = Policy::parse(
        json!({
            "headers": { "subset": "X-Route-Subset", "version": "X-Route-Version", "response": "X-Dial" },
            "releases": [{ "name": "r", "subsets": [{ "name": "a", "version": "1.2.3", "weight": 1 }],
                           "key": [{ "header": "X-User" }] }]
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(p.headers.subset, "x-route-subset");
    assert_eq!(p.headers.response.as_deref(), Some("x-dial"));
    let r = &p.releases[0];
    assert_eq!(r.key, [KeySource::Header("x-user".into())]);
    assert!(matches!(r.when_no_key, WhenNoKey::Subset(0)));
    assert!(r.scope.hosts.is_empty() && r.scope.path_prefixes.is_empty());
}

#[test]
fn an_allowlist_of_ten_thousand_ids_is_a_set() {
    let users: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    let p = Policy::parse(
        json!({ "releases": [{ "name": "r", "key": [{ "header": "x-user" }],
            "subsets": [{ "name": "a", "version": "1", "weight": 1 }, { "name": "b", "version": "2", "weight": 0 }],
            "rules": [{ "users": users, "subset": "b" }] }] })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert!(matches!(&p.releases[0].rules[0].condition, Condition::Users(u) if u.len() == 10_000));
}

#[path = "../../../tests/support/bad_policies.rs"]
mod bad_policies;

use bad_policies::base;

#[test]
fn bad_policies_are_rejected_with_path_kind_and_value() {
    let cases = bad_policies::cases();
    let kinds = bad_policies::kinds();
    assert!(cases.len() >= 40);
    assert_eq!(cases.len(), kinds.len());
    let mut mismatches = Vec::new();
    for ((name, policy, want), kind) in cases.into_iter().zip(kinds) {
        match Policy::parse(policy.as_bytes()) {
            Ok(_) => mismatches.push(format!("{name}: accepted")),
            // The problem with that text must be of that kind.
            Err(e)
                if !e
                    .problems
                    .iter()
                    .any(|p| p.kind.as_str() == kind && p.to_string().contains(&want)) =>
            {
                mismatches.push(format!("{name}:\n  want {kind} …{want}…\n  got  {e:?}"))
            }
            Err(_) => {}
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The cases rejected for the proxy's environment, parsed with that environment: the problem
/// names the variable and never shows its value.
#[test]
fn bad_secrets_from_the_proxy_environment_are_rejected_by_name() {
    let cases = bad_policies::proxy_cases();
    assert!(cases.len() >= 5);
    let mut mismatches = Vec::new();
    for case in cases {
        let lookup = |name: &str| {
            case.env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        match Policy::parse_in(case.policy.as_bytes(), Environment::proxy(&lookup)) {
            Ok(_) => mismatches.push(format!("{}: accepted", case.name)),
            Err(e) => {
                let shown = format!("{e} {e:?}");
                if !e
                    .problems
                    .iter()
                    .any(|p| p.kind.as_str() == case.kind && p.to_string().contains(&case.error))
                {
                    mismatches.push(format!(
                        "{}: want {} …{}…\n  got {e:?}",
                        case.name, case.kind, case.error
                    ));
                }
                for (_, value) in &case.env {
                    assert!(!shown.contains(value.as_str()), "{}: {shown}", case.name);
                }
            }
        }
        // Away from the proxy, the same policy is not rejected for its variables.
        let cli = Policy::parse_in(case.policy.as_bytes(), Environment::elsewhere(&|_| None));
        if let Err(e) = cli {
            assert!(
                !e.problems
                    .iter()
                    .any(|p| p.to_string().contains("environment variable")),
                "{}: {e}",
                case.name
            );
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

fn with_secrets(
    token: serde_json::Value,
    secret: serde_json::Value,
    previous: serde_json::Value,
) -> String {
    let mut d = base();
    d["releases"][0]["override"] = json!({ "header": "x-dial-override", "token": token });
    d["releases"][0]["whenNoKey"] = json!({ "stickyCookie": { "name": "dial-checkout", "secret": secret, "previousSecret": previous } });
    d.to_string()
}

#[test]
fn secrets_are_read_from_the_environment_given() {
    let policy = with_secrets(
        json!({ "fromEnv": "DIAL_TOKEN" }),
        json!({ "fromEnv": "DIAL_COOKIE_SECRET" }),
        json!("an-inline-old-secret-1"),
    );
    let lookup = |name: &str| match name {
        "DIAL_TOKEN" => Some("token-from-the-env-0123".to_string()),
        "DIAL_COOKIE_SECRET" => Some("cookie-secret-from-env-1".to_string()),
        _ => None,
    };
    let p = Policy::parse_in(policy.as_bytes(), Environment::proxy(&lookup)).unwrap();
    let r = &p.releases[0];
    let token = r.override_.as_ref().unwrap().trust.token.as_ref().unwrap();
    assert_eq!(token.value(), Some("token-from-the-env-0123"));
    assert_eq!(token.variable(), Some("DIAL_TOKEN"));
    let WhenNoKey::Sticky(c) = &r.when_no_key else {
        panic!("{:?}", r.when_no_key)
    };
    let signing = c.signing.as_ref().unwrap();
    assert_eq!(signing.secret.value(), Some("cookie-secret-from-env-1"));
    assert_eq!(
        signing.previous.as_ref().unwrap().value(),
        Some("an-inline-old-secret-1")
    );
    assert_eq!(signing.previous.as_ref().unwrap().variable(), None);
    // Nothing of the values in the policy's debug text.
    let shown = format!("{p:?}");
    assert!(
        !shown.contains("from-the-env")
            && !shown.contains("from-env")
            && !shown.contains("inline-old"),
        "{shown}"
    );

    // In a proxy without them: both variables named, in the order written.
    let err = Policy::parse(policy.as_bytes()).unwrap_err();
    let lines: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        lines,
        [
            "$.releases[0].whenNoKey.stickyCookie.secret.fromEnv: the environment variable \"DIAL_COOKIE_SECRET\" is not set where the proxy runs (the Wasm filter sees only the variables its vm_config.environment_variables passes)",
            "$.releases[0].override.token.fromEnv: the environment variable \"DIAL_TOKEN\" is not set where the proxy runs (the Wasm filter sees only the variables its vm_config.environment_variables passes)",
        ]
    );
    assert_eq!(err.problems[0].value, Some(json!("DIAL_COOKIE_SECRET")));
}

#[test]
fn away_from_the_proxy_an_unset_variable_leaves_the_secret_unresolved() {
    let policy = with_secrets(
        json!({ "fromEnv": "DIAL_TOKEN" }),
        json!({ "fromEnv": "DIAL_COOKIE_SECRET" }),
        json!({ "fromEnv": "DIAL_COOKIE_SECRET_OLD" }),
    );
    let here = |name: &str| (name == "DIAL_TOKEN").then(|| "token-set-in-the-cli-0".to_string());
    let p = Policy::parse_in(policy.as_bytes(), Environment::elsewhere(&here)).unwrap();
    let r = &p.releases[0];
    let token = r.override_.as_ref().unwrap().trust.token.as_ref().unwrap();
    assert_eq!(token.value(), Some("token-set-in-the-cli-0"));
    let WhenNoKey::Sticky(c) = &r.when_no_key else {
        panic!()
    };
    let signing = c.signing.as_ref().unwrap();
    assert_eq!(
        (signing.secret.value(), signing.secret.variable()),
        (None, Some("DIAL_COOKIE_SECRET"))
    );
    // An unresolved secret signs and verifies nothing: the cookie's value is a bare key, and no
    // signed value is taken.
    let key = *b"0123456789abcdef";
    assert_eq!(c.value(&key), "0123456789abcdef");
    assert_eq!(c.read(b"0123456789abcdef.0123456789abcdef"), None);
    // A variable set here is checked like the proxy would.
    let short = |_: &str| Some("short".to_string());
    let err = Policy::parse_in(policy.as_bytes(), Environment::elsewhere(&short)).unwrap_err();
    assert_eq!(err.problems.len(), 3, "{err}");
    assert!(!err.to_string().contains("short\""), "{err}");
}

#[test]
fn a_secret_object_never_quotes_what_it_holds() {
    // A secret pasted as the variable's name, then next to it (phase one stops there).
    for (token, secret, held) in [
        (
            json!({ "fromEnv": "qa token 0123456789" }),
            json!("cookie-secret-0123456"),
            "qa token",
        ),
        (
            json!("qa-token-0123456789"),
            json!({ "fromEnv": "DIAL_SECRET", "value": "pasted-secret-0123456" }),
            "pasted-secret",
        ),
    ] {
        let err = Policy::parse(with_secrets(token, secret, json!(null)).as_bytes()).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(held), "{shown}");
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].value, None, "{err}");
    }
}

#[test]
fn a_problem_carries_the_offending_value() {
    let mut d = base();
    d["releases"][0]["subsets"][1]["weight"] = json!(-5);
    d["releases"][0]["match"] = json!({ "hosts": ["bad host"] });
    let err = Policy::parse(d.to_string().as_bytes()).unwrap_err();
    let found: Vec<(String, ProblemKind, Option<serde_json::Value>)> = err
        .problems
        .iter()
        .map(|p| (p.path.to_string(), p.kind, p.value.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "$.releases[0].match.hosts[0]".into(),
                ProblemKind::InvalidValue,
                Some(json!("bad host"))
            ),
            (
                "$.releases[0].subsets[1].weight".into(),
                ProblemKind::OutOfRange,
                Some(json!(-5))
            ),
        ]
    );
    assert_eq!(
        err.problems[1].path.segments(),
        [
            Segment::Key("releases".into()),
            Segment::Index(0),
            Segment::Key("subsets".into()),
            Segment::Index(1),
            Segment::Key("weight".into())
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut d = base();
    d["releases"][0]["subsets"][0]["weight"] = json!(-1);
    d["releases"][0]["subsets"][1]["name"] = json!("stable");
    let err = Policy::parse(d.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    assert_eq!(
        err.to_string(),
        "policy rejected (2 problems): $.releases[0].subsets[0].weight: weight must be 0 or more, got -1; \
         $.releases[0].subsets[1].name: \"stable\" names two subsets; subset names must be unique in a release"
    );
}

#[test]
fn non_utf8_configuration_is_rejected_not_trapped() {
    let err = Policy::parse(b"{\"releases\": [\xff]}").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("policy rejected (1 problem): $: invalid JSON"),
        "{err}"
    );
}

/// serde_json stops at 128 levels; the module's 256 KiB stack (.cargo/config.toml) must hold
/// that much recursion (this suite also runs on wasm32, with that stack).
#[test]
fn deeply_nested_json_is_rejected_not_a_stack_overflow() {
    for depth in [100, 129, 10_000] {
        let doc = format!(
            "{{\"releases\": {}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let err = Policy::parse(doc.as_bytes()).unwrap_err();
        if depth < 128 {
            assert!(
                err.to_string()
                    .contains("$.releases[0]: invalid type: a list, expected an object"),
                "depth {depth}: {err}"
            );
        } else {
            // The parser gives up at its nesting limit, long before the end of the text.
            assert_eq!(err.problems[0].kind, ProblemKind::InvalidJson, "{err}");
            assert!(
                err.to_string()
                    .contains("$: invalid JSON at line 1 column 140: "),
                "depth {depth}: {err}"
            );
        }
    }
}

#[test]
fn a_mirror_tells_the_percent_its_threshold_samples() {
    for (written, shown) in [
        (12.5, "12.50"),
        (0.5, "0.50"),
        (0.0, "0.00"),
        (100.0, "100.00"),
    ] {
        let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        doc["releases"][0]["mirror"] = json!({ "version": "v9", "percent": written });
        let p = Policy::parse(doc.to_string().as_bytes()).unwrap();
        let percent = p.releases[0].mirror.as_ref().unwrap().percent();
        assert_eq!(format!("{percent:.2}"), shown, "{written}");
    }
}
