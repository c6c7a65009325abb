//! Policy parsing: good policies build the expected structure; bad ones are rejected with the
//! JSON path and the offending value in the message.

use super::*;
use crate::rules::{Condition, Matcher};
use crate::scope::HostPattern;
use serde_json::json;

const EXAMPLE: &str = r#"{
  "releases": [{
    "name": "checkout",
    "match": { "hosts": ["shop.example.com"], "pathPrefixes": ["/checkout"] },
    "subsets": [ { "name": "stable", "version": "v1", "weight": 90 },
                 { "name": "canary", "version": "v2", "weight": 10 } ],
    "key": [ { "header": "x-user-id" }, { "cookie": "uid" } ],
    "rules": [ { "header": { "name": "x-beta", "equals": "true" }, "subset": "canary" },
               { "cookie": { "name": "beta", "equals": "1" }, "subset": "canary" },
               { "users": ["alice", "bob"], "subset": "canary" } ],
    "whenNoKey": { "stickyCookie": { "name": "dial-checkout", "maxAgeSeconds": 2592000 } },
    "override": { "header": "x-dial-override", "token": "0123456789abcdef" }
  }]
}"#;

#[test]
fn the_example_policy_builds() {
    let p = Policy::parse(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(p.headers.subset, "x-dial-subset");
    assert_eq!(p.headers.version, "x-dial-version");
    assert_eq!(p.headers.response, None);
    assert_eq!(
        p.owned_request_headers,
        ["x-dial-subset", "x-dial-version", "x-dial-override"]
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

fn base() -> serde_json::Value {
    json!({ "releases": [{
        "name": "checkout",
        "subsets": [ { "name": "stable", "version": "v1", "weight": 90 },
                     { "name": "canary", "version": "v2", "weight": 10 } ],
        "key": [ { "header": "x-user-id" } ]
    }]})
}

fn with(path: &str, value: serde_json::Value) -> String {
    let mut doc = base();
    let (parent, last) = path.rsplit_once('/').unwrap();
    match doc.pointer_mut(parent).unwrap() {
        serde_json::Value::Array(items) => items[last.parse::<usize>().unwrap()] = value,
        parent => {
            parent[last] = value;
        }
    }
    doc.to_string()
}

fn error_of(policy: &str) -> String {
    match Policy::parse(policy.as_bytes()) {
        Ok(_) => panic!("accepted a bad policy: {policy}"),
        Err(e) => e.to_string(),
    }
}

/// Each bad policy, and text its rejection must contain (path first, then the reason).
#[test]
fn bad_policies_are_rejected_with_path_and_value() {
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty configuration", String::new(),
         "$: the configuration is empty"),
        ("whitespace only", " \n\t".into(),
         "$: the configuration is empty"),
        ("invalid JSON", "{\"releases\": [".into(),
         "$: invalid JSON: EOF while parsing a list at line 1 column 14"),
        ("trailing garbage", format!("{} x", base()),
         "$: invalid JSON: trailing characters"),
        ("not an object", "[1,2]".into(),
         "$: the policy must be a JSON object"),
        ("unknown top-level field", r#"{"relases": []}"#.into(),
         "$.relases: unknown field `relases`, expected `headers` or `releases`"),
        ("missing releases", "{}".into(),
         "$: missing field `releases`"),
        ("no releases", r#"{"releases": []}"#.into(),
         "$.releases: at least one release is required"),
        ("typo in a subset field", with("/releases/0/subsets/1", json!({"name": "canary", "version": "v2", "weigth": 10})),
         "$.releases[0].subsets[1].weigth: unknown field `weigth`, expected one of `name`, `version`, `weight`"),
        ("weight as a string", with("/releases/0/subsets/1/weight", json!("10")),
         "$.releases[0].subsets[1].weight: invalid type: string \"10\", expected i64"),
        ("fractional weight", with("/releases/0/subsets/1/weight", json!(2.5)),
         "$.releases[0].subsets[1].weight: invalid type: floating point `2.5`, expected i64"),
        ("negative weight", with("/releases/0/subsets/1/weight", json!(-5)),
         "$.releases[0].subsets[1].weight: weight must be 0 or more, got -5"),
        ("huge weight", with("/releases/0/subsets/0/weight", json!(2_000_000)),
         "$.releases[0].subsets[0].weight: weight must be at most 1000000, got 2000000"),
        ("weights all zero", with("/releases/0/subsets", json!([{"name": "stable", "version": "v1", "weight": 0}, {"name": "canary", "version": "v2", "weight": 0}])),
         "$.releases[0].subsets: the weights add up to 0"),
        ("weights over the total cap", with("/releases/0/subsets", json!([{"name": "a", "version": "v1", "weight": 600_000}, {"name": "b", "version": "v2", "weight": 600_000}])),
         "$.releases[0].subsets: the weights add up to 1200000; at most 1000000 is allowed"),
        ("no subsets", with("/releases/0/subsets", json!([])),
         "$.releases[0].subsets: at least one subset is required"),
        ("duplicate subset", with("/releases/0/subsets/1/name", json!("stable")),
         "$.releases[0].subsets[1].name: \"stable\" names two subsets"),
        ("bad subset name", with("/releases/0/subsets/1/name", json!("can ary")),
         "$.releases[0].subsets[1].name: \"can ary\" is not a valid subset name"),
        ("bad version", with("/releases/0/subsets/1/version", json!("v2;x")),
         "$.releases[0].subsets[1].version: \"v2;x\" is not a valid version"),
        ("bad release name", with("/releases/0/name", json!("Check Out")),
         "$.releases[0].name: \"Check Out\" is not a valid release name"),
        ("duplicate release", {
            let mut d = base();
            let r = d["releases"][0].clone();
            d["releases"].as_array_mut().unwrap().push(r);
            d.to_string()
         },
         "$.releases[1].name: \"checkout\" names two releases"),
        ("rule to an unknown subset", with("/releases/0/rules", json!([{"header": {"name": "x-beta", "equals": "1"}, "subset": "canry"}])),
         "$.releases[0].rules[0].subset: \"canry\" is not a subset of release \"checkout\" (its subsets: stable, canary)"),
        ("rule with two conditions", with("/releases/0/rules", json!([{"header": {"name": "x-beta", "equals": "1"}, "cookie": {"name": "b", "equals": "1"}, "subset": "canary"}])),
         "$.releases[0].rules[0]: a rule needs exactly one of \"header\", \"cookie\" or \"users\""),
        ("matcher with no condition", with("/releases/0/rules", json!([{"header": {"name": "x-beta"}, "subset": "canary"}])),
         "$.releases[0].rules[0].header: \"x-beta\" needs exactly one of \"equals\", \"prefix\", \"present\" or \"oneOf\""),
        ("matcher with two conditions", with("/releases/0/rules", json!([{"cookie": {"name": "beta", "equals": "1", "prefix": "1"}, "subset": "canary"}])),
         "$.releases[0].rules[0].cookie: \"beta\" needs exactly one of"),
        ("present: false", with("/releases/0/rules", json!([{"header": {"name": "x-beta", "present": false}, "subset": "canary"}])),
         "$.releases[0].rules[0].header.present: \"present\": false matches nothing"),
        ("empty oneOf", with("/releases/0/rules", json!([{"header": {"name": "x-beta", "oneOf": []}, "subset": "canary"}])),
         "$.releases[0].rules[0].header.oneOf: \"oneOf\" needs at least one value"),
        ("bad header name in a rule", with("/releases/0/rules", json!([{"header": {"name": "x beta", "equals": "1"}, "subset": "canary"}])),
         "$.releases[0].rules[0].header.name: \"x beta\" is not a valid HTTP header name"),
        ("empty allowlist", with("/releases/0/rules", json!([{"users": [], "subset": "canary"}])),
         "$.releases[0].rules[0].users: the allowlist is empty"),
        ("empty user id", with("/releases/0/rules", json!([{"users": ["alice", ""], "subset": "canary"}])),
         "$.releases[0].rules[0].users[1]: \"\" is not a usable user key"),
        ("empty key list and no fallback", with("/releases/0/key", json!([])),
         "$.releases[0].key: no key sources and no \"whenNoKey\""),
        ("key source with header and cookie", with("/releases/0/key", json!([{"header": "x-user-id", "cookie": "uid"}])),
         "$.releases[0].key[0]: a key source needs exactly one of \"header\" or \"cookie\""),
        ("bad cookie name in key", with("/releases/0/key", json!([{"cookie": "u;id"}])),
         "$.releases[0].key[0].cookie: \"u;id\" is not a valid cookie name"),
        ("whenNoKey to an unknown subset", with("/releases/0/whenNoKey", json!({"subset": "beta"})),
         "$.releases[0].whenNoKey.subset: \"beta\" is not a subset of release \"checkout\""),
        ("whenNoKey with both", with("/releases/0/whenNoKey", json!({"subset": "stable", "stickyCookie": {"name": "d"}})),
         "$.releases[0].whenNoKey: \"whenNoKey\" needs exactly one of \"subset\" or \"stickyCookie\""),
        ("sticky cookie max age", with("/releases/0/whenNoKey", json!({"stickyCookie": {"name": "d", "maxAgeSeconds": -1}})),
         "$.releases[0].whenNoKey.stickyCookie.maxAgeSeconds: must be between 1 and 34560000 (400 days), got -1"),
        ("sticky cookie path", with("/releases/0/whenNoKey", json!({"stickyCookie": {"name": "d", "path": "shop"}})),
         "$.releases[0].whenNoKey.stickyCookie.path: \"shop\" is not a cookie path"),
        ("override without trust", with("/releases/0/override", json!({"header": "x-dial-override"})),
         "$.releases[0].override: an override must say who may use it"),
        ("override with a short token", with("/releases/0/override", json!({"header": "x-dial-override", "token": "abc"})),
         "$.releases[0].override.token: the token must be at least 16 printable characters"),
        ("override with a bad range", with("/releases/0/override", json!({"header": "x-dial-override", "sourceCidrs": ["10.0.0.0/33"]})),
         "$.releases[0].override.sourceCidrs[0]: \"10.0.0.0/33\" is not an address range"),
        ("override on a reserved header", with("/releases/0/override", json!({"header": "Cookie", "allowAnyone": true})),
         "$.releases[0].override.header: \"Cookie\" is reserved for HTTP itself"),
        ("bad host pattern", with("/releases/0/match", json!({"hosts": ["shop.example.com:8080"]})),
         "$.releases[0].match.hosts[0]: \"shop.example.com:8080\" is not a valid host pattern"),
        ("path prefix without slash", with("/releases/0/match", json!({"pathPrefixes": ["checkout"]})),
         "$.releases[0].match.pathPrefixes[0]: \"checkout\" is not a path prefix"),
        ("unknown match field", with("/releases/0/match", json!({"paths": ["/"]})),
         "$.releases[0].match.paths: unknown field `paths`, expected `hosts` or `pathPrefixes`"),
        ("same subset and version header", {
            let mut d = base();
            d["headers"] = json!({"subset": "x-route", "version": "X-Route"});
            d.to_string()
         },
         "$.headers.version: \"x-route\" is already the subset header"),
        ("routing header is a pseudo header", {
            let mut d = base();
            d["headers"] = json!({"subset": ":path"});
            d.to_string()
         },
         "$.headers.subset: \":path\" is not a valid HTTP header name"),
    ];
    assert!(cases.len() >= 40);
    let mut mismatches = Vec::new();
    for (what, policy, want) in cases {
        let got = error_of(&policy);
        if !got.contains(want) {
            mismatches.push(format!("{what}:\n  want …{want}…\n  got  {got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
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
