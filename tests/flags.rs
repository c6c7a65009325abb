//! Proof against the real SDKs, not against our reading of them (issue 13). The official flag
//! SDKs, installed at pinned versions by `make flag-sdks`, evaluate flags offline for 10,000 keys
//! and then some non-ASCII ones; Dial's core must put every key exactly where each SDK does. The
//! published conformance cases of each project (Unleash's client-specification, flagd-testbed)
//! run through Dial's core where they map onto a Dial policy, their expectations read from the
//! installed packages. A sample also goes through the module in a real Envoy.
//!
//! SDKs: Unleash's Python SDK (UnleashClient, which evaluates with yggdrasil-engine, Unleash's
//! own Rust engine) and Node SDK (unleash-client, its own evaluator); flagd's in-process
//! evaluators: @openfeature/flagd-core 4 (Node) and openfeature-flagd-core 1 (Python) for the
//! integer `fractional` (Dial's version 2), openfeature-provider-flagd 0.3 (Python) and
//! @openfeature/flagd-core 1.3 (Node) for the older float one (version 1), and
//! openfeature-flagd-core 2 (Python, in a venv of its own) for the newer one over the bucketing
//! value's CBOR encoding (version 3; no JS flagd-core release has it).
//!
//! Non-ASCII keys: the Python SDKs and yggdrasil hash a key's UTF-8 bytes, as Dial hashes the
//! header's bytes. Node's unleash-client (murmurhash3js) hashes each UTF-16 unit's low byte, and
//! JS flagd-core (imurmurhash) each UTF-16 unit, so those two place non-ASCII keys elsewhere than
//! every UTF-8 SDK does. For them the test proves exactly that: Dial, given the bytes those
//! libraries hash, agrees with them too (where such bytes exist), and the rest is counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};
use support::flags::{
    ascii_keys, flagd_testbed, flags_dir, is_latin1, low_bytes, node, non_ascii_keys, policy,
    python, python_in, DialCore, PythonSdks, SdkAnswers,
};
use support::{Backend, Client, Envoy, EnvoyConfig};

const KEYS: usize = 10_000;
/// The rollout's groupId: not the feature's name, so the test shows it is what is hashed.
const GROUP: &str = "checkout-rollout";
const ROLLOUTS: [u32; 7] = [0, 1, 10, 25, 50, 99, 100];
const VARIANTS: [&str; 3] = ["red", "green", "blue"];
const VARIANT_WEIGHTS: [[u32; 3]; 3] = [[500, 300, 200], [333, 333, 334], [100, 0, 900]];
const FLAGD_WEIGHTS: [&[u32]; 4] = [&[50, 50], &[90, 10], &[50, 30, 20], &[1, 1, 98]];

/// One flag, as the SDK gets it and as a Dial policy, and how an SDK answer names a subset.
struct Case {
    id: String,
    /// What the SDK script gets (its `sdk` is set per run).
    sdk_case: Value,
    /// The Dial policy, and Dial's core with it.
    policy: String,
    dial: DialCore,
    /// The Dial subset an SDK answer stands for.
    subset_of_answer: fn(&Value) -> String,
}

fn enabled_subset(answer: &Value) -> String {
    match answer.as_bool() {
        Some(true) => "canary".into(),
        Some(false) => "stable".into(),
        None => format!("<not a bool: {answer}>"),
    }
}

fn named_subset(answer: &Value) -> String {
    answer
        .as_str()
        .map_or_else(|| format!("<not a string: {answer}>"), str::to_string)
}

fn flexible_rollout(rollout: u32, stickiness: &str, variants: Value) -> Value {
    json!({ "name": "flexibleRollout",
            "parameters": { "rollout": rollout.to_string(), "stickiness": stickiness, "groupId": GROUP },
            "constraints": [], "variants": variants })
}

fn unleash_variants(weights: &[u32; 3]) -> Value {
    VARIANTS
        .iter()
        .zip(weights)
        .map(|(name, w)| {
            json!({ "name": name, "weight": w, "weightType": "variable", "stickiness": "userId" })
        })
        .collect()
}

/// Rollouts (both stickinesses), feature variants (grouped by the feature's name) and strategy
/// variants (grouped by the strategy's groupId).
fn unleash_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // Stickiness "default" hashes the userId when there is one, as "userId" does: two of them show it.
    let rollouts = ROLLOUTS.iter().map(|r| (*r, "userId"));
    for (rollout, stickiness) in rollouts.chain([(10, "default"), (50, "default")]) {
        {
            let id = format!("rollout-{rollout}-{stickiness}");
            let feature = json!({ "name": id, "enabled": true,
                "strategies": [ flexible_rollout(rollout, stickiness, json!([])) ] });
            cases.push(Case::new(
                id.clone(),
                json!({ "id": id, "toggle": id, "kind": "enabled", "features": [feature] }),
                policy(
                    json!({ "scheme": "unleash", "groupId": GROUP }),
                    &[("stable", 100 - rollout), ("canary", rollout)],
                ),
                enabled_subset,
            ));
        }
    }
    for weights in VARIANT_WEIGHTS {
        let w = weights.map(|w| w.to_string()).join("-");
        let subsets: Vec<(&str, u32)> = VARIANTS.iter().copied().zip(weights).collect();
        // Feature variants: Unleash groups them by the feature's name.
        let id = format!("feature-variants-{w}");
        let feature = json!({ "name": id, "enabled": true,
            "strategies": [ flexible_rollout(100, "default", json!([])) ],
            "variants": unleash_variants(&weights) });
        cases.push(Case::new(
            id.clone(),
            json!({ "id": id, "toggle": id, "kind": "variant", "features": [feature] }),
            policy(json!({ "scheme": "unleash", "groupId": id }), &subsets),
            named_subset,
        ));
        // Strategy variants: by the strategy's groupId.
        let id = format!("strategy-variants-{w}");
        let feature = json!({ "name": id, "enabled": true,
            "strategies": [ flexible_rollout(100, "userId", unleash_variants(&weights)) ] });
        cases.push(Case::new(
            id.clone(),
            json!({ "id": id, "toggle": id, "kind": "variant", "features": [feature] }),
            policy(json!({ "scheme": "unleash", "groupId": GROUP }), &subsets),
            named_subset,
        ));
    }
    cases
}

const FLAGD_SUBSETS: [&str; 3] = ["s0", "s1", "s2"];
/// The most subsets a Dial release may have (the policy validator's limit).
const MAX_SUBSETS: usize = 16;
/// murmur3 of this key is 2^30 (found by search): version 1's bucket is exactly 50.
const V1_BOUNDARY_KEY: &str = "user-cENuME";

/// `fractional` over `weights`, bucketing by the default (flag key, then targeting key) or by the
/// targeting key alone (`{"var": "targetingKey"}`, Dial's `flagKey: ""`), for Dial's `version`.
fn flagd_cases(version: u32) -> Vec<Case> {
    let mut cases = Vec::new();
    for weights in FLAGD_WEIGHTS {
        for key_alone in [false, true] {
            let w = weights
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("-");
            let flag = format!("checkout-{w}{}", if key_alone { "-key" } else { "" });
            let subsets: Vec<(&str, u32)> = FLAGD_SUBSETS
                .iter()
                .copied()
                .zip(weights.iter().copied())
                .collect();
            let mut fractional: Vec<Value> = subsets.iter().map(|(n, w)| json!([n, w])).collect();
            if key_alone {
                fractional.insert(0, json!({ "var": "targetingKey" }));
            }
            let variants: serde_json::Map<String, Value> = subsets
                .iter()
                .map(|(n, _)| (n.to_string(), json!(n)))
                .collect();
            let config = json!({ flag.clone(): { "state": "ENABLED", "variants": variants,
                "defaultVariant": "s0", "targeting": { "fractional": fractional } } });
            let flag_key = if key_alone {
                String::new()
            } else {
                flag.clone()
            };
            cases.push(Case::new(
                flag.clone(),
                json!({ "id": flag, "flag": flag, "flags": config }),
                policy(
                    json!({ "scheme": "flagd", "flagKey": flag_key, "version": version }),
                    &subsets,
                ),
                named_subset,
            ));
        }
    }
    cases
}

/// `cases` for `sdk`, their ids prefixed with it (one process runs several SDKs).
impl Case {
    fn new(
        id: String,
        sdk_case: Value,
        policy: String,
        subset_of_answer: fn(&Value) -> String,
    ) -> Case {
        Case {
            dial: DialCore::new(&policy),
            id,
            sdk_case,
            policy,
            subset_of_answer,
        }
    }
}

fn for_sdk(sdk: &str, cases: &[Case]) -> Vec<Value> {
    cases
        .iter()
        .map(|c| {
            let mut v = c.sdk_case.clone();
            v["sdk"] = json!(sdk);
            v["id"] = json!(format!("{sdk}/{}", c.id));
            v
        })
        .collect()
}

/// How a Node SDK hashes a key, where some byte string reproduces it: the bytes to give Dial.
#[derive(Clone, Copy)]
enum Hashes {
    /// UTF-8, as Dial (and the Python SDKs, and yggdrasil).
    Utf8,
    /// murmurhash3js: each UTF-16 unit's low byte.
    LowByte,
    /// imurmurhash: Latin-1 units as one byte each; wider units have no byte equivalent.
    Latin1Only,
}

#[derive(Default)]
struct Tally {
    keys: usize,
    /// (key, the SDK's subset, Dial's subset)
    disagreements: Vec<(String, String, String)>,
    /// Non-ASCII keys the SDK puts elsewhere than Dial (and every UTF-8 SDK) does.
    elsewhere_than_utf8: usize,
    /// Non-ASCII keys that no byte string reproduces for this SDK: counted, not compared.
    not_comparable: usize,
}

fn compare(sdk: &str, hashes: Hashes, cases: &[Case], keys: &[String], got: &SdkAnswers) -> Tally {
    let mut tally = Tally::default();
    for case in cases {
        let answers = got
            .answers
            .get(&format!("{sdk}/{}", case.id))
            .unwrap_or_else(|| panic!("{sdk} gave no answers for {}", case.id));
        assert_eq!(answers.len(), keys.len(), "{sdk}/{}", case.id);
        for (key, answer) in keys.iter().zip(answers) {
            let theirs = (case.subset_of_answer)(answer);
            let utf8 = case.dial.subset_of(key);
            let ours = match hashes {
                _ if key.is_ascii() => utf8.clone(),
                Hashes::Utf8 => utf8.clone(),
                Hashes::LowByte => case.dial.subset(Some(&low_bytes(key))),
                Hashes::Latin1Only if is_latin1(key) => case.dial.subset(Some(&low_bytes(key))),
                Hashes::Latin1Only => {
                    tally.not_comparable += 1;
                    tally.elsewhere_than_utf8 += usize::from(theirs != utf8);
                    continue;
                }
            };
            tally.keys += 1;
            if !key.is_ascii() && theirs != utf8 {
                tally.elsewhere_than_utf8 += 1;
            }
            if theirs != ours {
                tally
                    .disagreements
                    .push((format!("{}: {key:?}", case.id), theirs, ours));
            }
        }
    }
    tally
}

fn report(label: &str, cases: usize, keys: &[String], t: &Tally) {
    let non_ascii = keys.iter().filter(|k| !k.is_ascii()).count();
    println!(
        "{label}: {cases} flags x {} keys ({non_ascii} non-ASCII): {} evaluations compared, {} disagreements; \
         non-ASCII placed elsewhere than UTF-8: {}, not comparable: {}",
        keys.len(),
        t.keys,
        t.disagreements.len(),
        t.elsewhere_than_utf8,
        t.not_comparable
    );
    assert!(
        t.disagreements.is_empty(),
        "{label}: {} disagreements (flag: key, SDK, Dial), first ones: {:?}",
        t.disagreements.len(),
        &t.disagreements[..t.disagreements.len().min(10)]
    );
}

fn all_keys() -> Vec<String> {
    let mut keys = ascii_keys(KEYS);
    keys.extend(non_ascii_keys());
    keys
}

#[test]
fn unleash_sdks_put_every_key_where_dial_does() {
    let started = Instant::now();
    let keys = all_keys();
    let cases = unleash_cases();
    let (py, js) = std::thread::scope(|s| {
        let py = s.spawn(|| python(&keys, &for_sdk("unleash", &cases)));
        let js = s.spawn(|| node(&keys, &for_sdk("unleash", &cases)));
        (py.join().unwrap(), js.join().unwrap())
    });
    let sdks = started.elapsed();
    let t = compare("unleash", Hashes::Utf8, &cases, &keys, &py);
    report(
        &format!(
            "UnleashClient {} (yggdrasil-engine {})",
            py.versions["UnleashClient"], py.versions["yggdrasil-engine"]
        ),
        cases.len(),
        &keys,
        &t,
    );
    assert_eq!(t.elsewhere_than_utf8, 0);
    let t = compare("unleash", Hashes::LowByte, &cases, &keys, &js);
    report(
        &format!("unleash-client {} (Node)", js.versions["unleash-client"]),
        cases.len(),
        &keys,
        &t,
    );
    // The Node SDK does place non-ASCII keys differently: the difference is real, and explained.
    assert!(t.elsewhere_than_utf8 > 0);
    println!("SDKs {:?}, all {:?}", sdks, started.elapsed());
}

#[test]
fn flagd_sdks_put_every_key_where_dial_does() {
    let started = Instant::now();
    let mut keys = all_keys();
    keys.push(V1_BOUNDARY_KEY.to_string());
    let (v3, v2, v1) = (flagd_cases(3), flagd_cases(2), flagd_cases(1));
    let (py, py3, js) = std::thread::scope(|s| {
        let py = s.spawn(|| {
            let mut cases = for_sdk("flagd-v2", &v2);
            cases.extend(for_sdk("flagd-v1", &v1));
            python(&keys, &cases)
        });
        let py3 = s.spawn(|| python_in(PythonSdks::FlagdV3, &keys, &for_sdk("flagd-v3", &v3)));
        let js = s.spawn(|| {
            let mut cases = for_sdk("flagd-v2", &v2);
            cases.extend(for_sdk("flagd-js-v1", &v1));
            node(&keys, &cases)
        });
        (py.join().unwrap(), py3.join().unwrap(), js.join().unwrap())
    });
    let sdks = started.elapsed();

    for (sdk, cases, answers, version) in [("flagd-v3", &v3, &py3, 3), ("flagd-v2", &v2, &py, 2)] {
        let t = compare(sdk, Hashes::Utf8, cases, &keys, answers);
        report(
            &format!(
                "openfeature-flagd-core {} (Python), version {version}",
                answers.versions["openfeature-flagd-core"]
            ),
            cases.len(),
            &keys,
            &t,
        );
        assert_eq!(t.elsewhere_than_utf8, 0);
    }
    // Version 3 is another function of the key than version 2, by the SDKs' own answers.
    let differ: usize = v3
        .iter()
        .map(|c| {
            let v3 = &py3.answers[&format!("flagd-v3/{}", c.id)];
            let v2 = &py.answers[&format!("flagd-v2/{}", c.id)];
            v3.iter().zip(v2).filter(|(a, b)| a != b).count()
        })
        .sum();
    println!("versions 3 and 2 of the same flags, by the Python SDKs: {differ} answers differ");
    assert!(differ > keys.len(), "{differ}");
    let t = compare("flagd-v1", Hashes::Utf8, &v1, &keys, &py);
    report(
        &format!(
            "openfeature-provider-flagd {} (Python), version 1",
            py.versions["openfeature-provider-flagd"]
        ),
        v1.len(),
        &keys,
        &t,
    );
    assert_eq!(t.elsewhere_than_utf8, 0);
    let t = compare("flagd-v2", Hashes::Latin1Only, &v2, &keys, &js);
    report(
        &format!(
            "@openfeature/flagd-core {} (Node), version 2",
            js.versions["@openfeature/flagd-core"]
        ),
        v2.len(),
        &keys,
        &t,
    );
    assert!(t.elsewhere_than_utf8 > 0);
    // flagd-core 1.3 divides by 2^31 where flagd's version 1 (Go, Java, Python, and Dial) divides
    // by 2^31 - 1, and takes a bucket equal to a range's end into that range. They differ only
    // at exact boundaries: `V1_BOUNDARY_KEY` hashes to 2^30, bucket 50 exactly, where flagd-core
    // 1.3 answers s0 and the Python provider (above, no disagreement) and Dial answer s1, for
    // the two flags bucketing the key alone with a range ending at 50.
    let mut t = compare("flagd-js-v1", Hashes::Latin1Only, &v1, &keys, &js);
    let boundary: Vec<_> = t
        .disagreements
        .iter()
        .map(|(case, sdk, dial)| (case.as_str(), sdk.as_str(), dial.as_str()))
        .collect();
    let want = [
        ("checkout-50-50-key: \"user-cENuME\"", "s0", "s1"),
        ("checkout-50-30-20-key: \"user-cENuME\"", "s0", "s1"),
    ];
    assert_eq!(boundary, want, "flagd-core 1.3 against Dial's version 1");
    println!("@openfeature/flagd-core 1.3 at the version-1 boundary (flag: key, SDK, Dial): {boundary:?}");
    t.disagreements.clear();
    report(
        &format!(
            "@openfeature/flagd-core {} (Node), version 1, but for that boundary",
            js.versions["flagd-core-v1"]
        ),
        v1.len(),
        &keys,
        &t,
    );
    println!("SDKs {:?}, all {:?}", sdks, started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Unleash client-specification, from the installed @unleash/client-specification.

/// Why a case does not map onto a Dial policy (counted and printed, per reason).
type Skips = BTreeMap<String, usize>;

fn skip(skips: &mut Skips, why: &str) {
    *skips.entry(why.to_string()).or_default() += 1;
}

/// A feature's single rollout strategy as (groupId, percentage, stickiness), if that is all it is.
fn single_rollout(feature: &Value) -> Result<(String, u32, String), &'static str> {
    let strategies = feature["strategies"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let [s] = strategies else {
        return Err("not exactly one strategy");
    };
    if s["constraints"].as_array().is_some_and(|c| !c.is_empty())
        || s["segments"].as_array().is_some_and(|c| !c.is_empty())
    {
        return Err("constraints or segments");
    }
    let p = &s["parameters"];
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .or_else(|| v.as_u64().map(|n| n.to_string()))
    };
    let (group, percent, stickiness) = match s["name"].as_str() {
        Some("flexibleRollout") => (
            text(&p["groupId"]).unwrap_or_else(|| feature["name"].as_str().unwrap().to_string()),
            text(&p["rollout"]),
            text(&p["stickiness"]).unwrap_or_else(|| "default".into()),
        ),
        Some("gradualRolloutUserId") => (
            text(&p["groupId"]).unwrap_or_default(),
            text(&p["percentage"]),
            "userId".into(),
        ),
        _ => return Err("a strategy other than a user-id rollout"),
    };
    let percent: u32 = percent
        .and_then(|p| p.parse().ok())
        .ok_or("rollout is not a whole percentage")?;
    if !["userId", "default"].contains(&stickiness.as_str()) {
        return Err("stickiness on another field than userId");
    }
    Ok((group, percent, stickiness))
}

fn user_id(context: &Value) -> Option<&str> {
    context["userId"].as_str().filter(|u| !u.is_empty())
}

/// A `tests` case (is the feature enabled) as a Dial policy and key, or why it does not map.
fn map_enabled(feature: &Value, context: &Value) -> Result<(String, Option<String>), &'static str> {
    if feature["enabled"] != json!(true) {
        return Err("feature disabled");
    }
    let (group, percent, stickiness) = single_rollout(feature)?;
    let user = user_id(context).map(str::to_string);
    // Without a userId, "default" stickiness falls back to sessionId or random: no Dial key.
    if user.is_none() && stickiness == "default" {
        return Err("no userId with default stickiness");
    }
    if group.is_empty() {
        return Err("no groupId");
    }
    let subsets = [
        ("stable", 100 - percent.min(100)),
        ("canary", percent.min(100)),
    ];
    let mut doc: Value = serde_json::from_str(&policy(
        json!({ "scheme": "unleash", "groupId": group }),
        &subsets,
    ))
    .unwrap();
    // A user-id rollout without a userId is off.
    doc["releases"][0]["whenNoKey"] = json!({ "subset": "stable" });
    Ok((doc.to_string(), user))
}

/// A `variantTests` case as a Dial policy and key, or why it does not map.
fn map_variant(feature: &Value, context: &Value) -> Result<(String, String), &'static str> {
    if feature["enabled"] != json!(true) {
        return Err("feature disabled");
    }
    let strategies = feature["strategies"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    // Enabled for every key: no strategy, one default strategy, or a 100% rollout.
    let (group, variants) = match strategies {
        [] => (
            feature["name"].as_str().unwrap().to_string(),
            &feature["variants"],
        ),
        [s] if s["name"] == "default" && s["constraints"].as_array().is_none_or(Vec::is_empty) => (
            feature["name"].as_str().unwrap().to_string(),
            &feature["variants"],
        ),
        [s] if s["name"] == "flexibleRollout" => {
            let (group, percent, _) = single_rollout(feature)?;
            if percent != 100 {
                return Err("variants behind a partial rollout");
            }
            match s["variants"].as_array() {
                Some(v) if !v.is_empty() => (group, &s["variants"]),
                _ => (
                    feature["name"].as_str().unwrap().to_string(),
                    &feature["variants"],
                ),
            }
        }
        _ => return Err("not enabled for every key by one strategy"),
    };
    let variants = variants.as_array().map_or(&[][..], Vec::as_slice);
    if variants.is_empty() {
        return Err("no variants");
    }
    // Two subsets make Dial's unleash release a rollout (seed 0, `% 100`), not two variants.
    if variants.len() == 2 {
        return Err("two variants (two Dial subsets are a rollout)");
    }
    if variants.iter().any(|v| {
        v.get("overrides")
            .is_some_and(|o| o.as_array().is_some_and(|o| !o.is_empty()))
    }) {
        return Err("variant overrides");
    }
    if variants
        .iter()
        .any(|v| !matches!(v["stickiness"].as_str(), None | Some("default" | "userId")))
    {
        return Err("stickiness on another field than userId");
    }
    let subsets: Vec<(&str, u32)> = variants
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap(),
                v["weight"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    let total: u32 = subsets.iter().map(|(_, w)| w).sum();
    // Dial's unleash variants require weights out of 1000, as the Unleash server serves them
    // (the SDKs divide by the total, which the server makes 1000).
    if total != 1000 {
        return Err("variant weights not out of 1000");
    }
    let user = user_id(context).ok_or("no userId")?;
    let policy = policy(json!({ "scheme": "unleash", "groupId": group }), &subsets);
    Ok((policy, user.to_string()))
}

#[test]
fn unleash_client_specification_cases_that_map_to_dial() {
    let dir = flags_dir().join("node_modules/@unleash/client-specification/specifications");
    assert!(
        flags_dir().join("node_modules/.installed").exists() && dir.is_dir(),
        "@unleash/client-specification is not installed: run `make flag-sdks`"
    );
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let index = read(&dir.join("index.json"));
    let (mut ran, mut skips, mut total) = (Vec::new(), Skips::new(), 0);
    for file in index.as_array().unwrap() {
        let file = file.as_str().unwrap();
        let spec = read(&dir.join(file));
        let features = spec["state"]["features"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        let feature = |name: &str| features.iter().find(|f| f["name"] == name);
        for t in spec["tests"].as_array().map_or(&[][..], Vec::as_slice) {
            total += 1;
            let Some(f) = feature(t["toggleName"].as_str().unwrap()) else {
                skip(&mut skips, "unknown feature");
                continue;
            };
            match map_enabled(f, &t["context"]) {
                Ok((policy, user)) => {
                    let got = DialCore::new(&policy).subset(user.as_deref().map(str::as_bytes));
                    let want = enabled_subset(&t["expectedResult"]);
                    assert_eq!(got, want, "{file}: {}", t["description"]);
                    ran.push(format!("{file}: {}", t["description"].as_str().unwrap()));
                }
                Err(why) => skip(&mut skips, why),
            }
        }
        for t in spec["variantTests"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
        {
            total += 1;
            let Some(f) = feature(t["toggleName"].as_str().unwrap()) else {
                skip(&mut skips, "unknown feature");
                continue;
            };
            match map_variant(f, &t["context"]) {
                Ok((policy, user)) => {
                    let got = DialCore::new(&policy).subset_of(&user);
                    let want = t["expectedResult"]["name"].as_str().unwrap();
                    assert_eq!(got, want, "{file}: {}", t["description"]);
                    ran.push(format!("{file}: {}", t["description"].as_str().unwrap()));
                }
                Err(why) => skip(&mut skips, why),
            }
        }
    }
    println!(
        "Unleash client-specification: {} of {total} cases map to Dial, all agree:",
        ran.len()
    );
    for r in &ran {
        println!("  {r}");
    }
    println!("not mapped: {skips:?}");
    // The rollout cases of 03 and 10 are the heart of it: they must be there.
    for must in [
        "03-gradual-rollout-user-id-strategy.json",
        "10-flexible-rollout-strategy.json",
    ] {
        assert!(
            ran.iter().filter(|r| r.starts_with(must)).count() >= 3,
            "{must}: {ran:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// flagd-testbed, from the open-feature-flagd crate's package (cargo's cache).

/// An Examples table: its tags, header and rows.
type Examples = (Vec<String>, Vec<String>, Vec<Vec<String>>);

struct Scenario {
    tags: Vec<String>,
    name: String,
    steps: Vec<String>,
    /// (tags, header, rows) of each Examples table.
    examples: Vec<Examples>,
}

/// The scenarios of a Gherkin feature file, enough of Gherkin for flagd-testbed's.
fn gherkin(text: &str) -> Vec<Scenario> {
    let (mut feature_tags, mut pending, mut out) =
        (Vec::new(), Vec::<String>::new(), Vec::<Scenario>::new());
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut in_examples = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('@') {
            pending.extend(
                line.split_whitespace()
                    .map(|t| t.trim_start_matches('@').to_string()),
            );
        } else if line.starts_with("Feature:") {
            feature_tags = std::mem::take(&mut pending);
        } else if let Some(name) = line
            .strip_prefix("Scenario Outline:")
            .or_else(|| line.strip_prefix("Scenario:"))
        {
            let mut tags = feature_tags.clone();
            tags.append(&mut pending);
            in_examples = false;
            out.push(Scenario {
                tags,
                name: name.trim().into(),
                steps: vec![],
                examples: vec![],
            });
        } else if line.starts_with("Examples:") {
            in_examples = true;
            let s = out.last_mut().unwrap();
            s.examples
                .push((std::mem::take(&mut pending), vec![], vec![]));
        } else if line.starts_with('|') {
            // A data table of a step (not of Examples) is not needed here.
            let Some((_, header, rows)) = out
                .last_mut()
                .filter(|s| in_examples && !s.examples.is_empty())
                .and_then(|s| s.examples.last_mut())
            else {
                continue;
            };
            if header.is_empty() {
                *header = cells(line);
            } else {
                rows.push(cells(line));
            }
        } else if let Some(s) = out.last_mut() {
            in_examples = false;
            if line.starts_with("Background:") {
                continue;
            }
            s.steps.push(line.to_string());
        }
    }
    out
}

/// The text between the `n`th pair of double quotes.
fn quoted(step: &str, n: usize) -> Option<&str> {
    step.split('"').nth(2 * n + 1)
}

/// The flags of every JSON file in `dir` (their `flags` objects merged).
fn flags_in(dir: &Path) -> serde_json::Map<String, Value> {
    let mut flags = serde_json::Map::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
    {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        for (k, flag) in v["flags"].as_object().into_iter().flatten() {
            flags.entry(k.clone()).or_insert_with(|| flag.clone());
        }
    }
    flags
}

/// (the bytes hashed before the key, whether a `cat` joins them to the key, the context variable
/// that is the key, (variant, weight)s).
type Fractional = (String, bool, String, Vec<(String, i64)>);

/// A flag whose targeting is one `fractional` as (the bytes before the key, whether `cat` joins
/// them to the key into one string (version 3 then hashes that string, where its default
/// bucketing hashes the array `[flagKey, key]`), the context variable that is the key,
/// (variant, weight) in order), or why it is not.
fn fractional_of(flag_key: &str, flag: &Value) -> Result<Fractional, &'static str> {
    let args = flag["targeting"]["fractional"]
        .as_array()
        .ok_or("targeting is not one fractional")?;
    if flag["targeting"].as_object().map_or(0, |o| o.len()) != 1 {
        return Err("targeting is not one fractional");
    }
    let (prefix, cat, var, buckets) = match args.first() {
        Some(Value::Array(_)) => (
            flag_key.to_string(),
            false,
            "targetingKey".to_string(),
            &args[..],
        ),
        Some(expr) => {
            let part = |p: &Value| -> Option<String> {
                match p {
                    Value::String(s) => Some(s.clone()),
                    _ if p["var"] == "$flagd.flagKey" => Some(flag_key.to_string()),
                    _ => None,
                }
            };
            let (prefix, cat, var) = if let Some(v) = expr["var"].as_str() {
                (String::new(), false, v.to_string())
            } else if let Some([init @ .., last]) = expr["cat"].as_array().map(Vec::as_slice) {
                let prefix: Option<String> = init.iter().map(part).collect();
                (
                    prefix.ok_or("bucketing by an expression")?,
                    true,
                    last["var"]
                        .as_str()
                        .ok_or("bucketing by an expression")?
                        .to_string(),
                )
            } else {
                return Err("bucketing by an expression");
            };
            (prefix, cat, var, &args[1..])
        }
        None => return Err("no buckets"),
    };
    let buckets = buckets
        .iter()
        .map(|b| match b.as_array().map(Vec::as_slice) {
            Some([Value::String(n)]) => Ok((n.clone(), 1)),
            Some([Value::String(n), w]) => w
                .as_i64()
                .map(|w| (n.clone(), w))
                .ok_or("a computed weight"),
            _ => Err("a computed variant"),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((prefix, cat, var, buckets))
}

#[test]
fn flagd_testbed_fractional_cases_that_map_to_dial() {
    let testbed = flagd_testbed();
    let version = std::fs::read_to_string(testbed.join("version.txt")).unwrap();
    let (mut ran, mut refused, mut skips, mut total) = (Vec::new(), Vec::new(), Skips::new(), 0);
    for (features, flags) in [
        ("gherkin", "flags"),
        ("evaluator/gherkin", "evaluator/flags"),
    ] {
        let flags = flags_in(&testbed.join(flags));
        let mut files: Vec<_> = std::fs::read_dir(testbed.join(features))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "feature"))
        {
            let name = file.strip_prefix(&testbed).unwrap().display().to_string();
            for s in gherkin(&std::fs::read_to_string(file).unwrap()) {
                if !s.tags.iter().any(|t| t == "fractional") {
                    continue;
                }
                // A scenario without Examples is one example with no placeholders.
                let examples = if s.examples.is_empty() {
                    vec![(vec![], vec![], vec![vec![]])]
                } else {
                    s.examples.clone()
                };
                for (tags, header, rows) in examples {
                    let tags: Vec<&String> = s.tags.iter().chain(&tags).collect();
                    for row in rows {
                        total += 1;
                        let steps: Vec<String> = s
                            .steps
                            .iter()
                            .map(|step| {
                                header.iter().zip(&row).fold(step.clone(), |st, (h, v)| {
                                    st.replace(&format!("<{h}>"), v)
                                })
                            })
                            .collect();
                        let case = format!("{name}: {} {row:?}", s.name);
                        let mut flag_key = None;
                        let mut context = BTreeMap::new();
                        // The declared type of each context key that has one ("String", ...).
                        let mut types = BTreeMap::new();
                        let mut want = None;
                        for step in &steps {
                            if step.contains("-flag with key") {
                                flag_key = quoted(step, 0).map(str::to_string);
                            } else if step
                                .contains("a context containing a targeting key with value")
                            {
                                context.insert(
                                    "targetingKey".to_string(),
                                    quoted(step, 0).unwrap().to_string(),
                                );
                            } else if step.contains("a context containing a nested property") {
                                let path = format!(
                                    "{}.{}",
                                    quoted(step, 0).unwrap(),
                                    quoted(step, 1).unwrap()
                                );
                                context.insert(path, quoted(step, 2).unwrap().to_string());
                            } else if step.contains("a context containing a key") {
                                let key = quoted(step, 0).unwrap().to_string();
                                types.insert(key.clone(), quoted(step, 1).unwrap().to_string());
                                context.insert(key, quoted(step, 2).unwrap().to_string());
                            } else if step.contains("the resolved details value should be") {
                                want = quoted(step, 0).map(str::to_string);
                            }
                        }
                        let (Some(flag_key), Some(want)) = (flag_key, want) else {
                            skip(&mut skips, "no flag or no expected value");
                            continue;
                        };
                        let flag = &flags[&flag_key];
                        if tags.iter().any(|t| *t == "fractional-nested") {
                            skip(&mut skips, "@fractional-nested (JSON Logic in buckets)");
                            continue;
                        }
                        let dial_version = if tags.iter().any(|t| *t == "fractional-v1") {
                            1
                        } else if tags.iter().any(|t| *t == "fractional-v3") {
                            3
                        } else {
                            2
                        };
                        let (prefix, cat, var, buckets) = match fractional_of(&flag_key, flag) {
                            Ok(f) => f,
                            Err(why) => {
                                skip(&mut skips, why);
                                continue;
                            }
                        };
                        if dial_version == 3 && cat && !prefix.is_empty() {
                            skip(&mut skips, "version 3 over a `cat` string (Dial's version 3 hashes [flagKey, key] or the key alone)");
                            continue;
                        }
                        let value_of =
                            |variant: &str| flag["variants"][variant].as_str().map(str::to_string);
                        let subsets: Vec<(&str, u32)> = buckets
                            .iter()
                            .map(|(n, w)| (n.as_str(), (*w).clamp(-1, u32::MAX as i64) as u32))
                            .collect();
                        let doc = policy(
                            json!({ "scheme": "flagd", "flagKey": prefix, "version": dial_version }),
                            &subsets,
                        );
                        // Weights flagd clamps or falls back on (negative, all zero): Dial refuses
                        // the policy, where flagd serves the default variant.
                        if buckets.iter().any(|(_, w)| *w < 0)
                            || buckets.iter().all(|(_, w)| *w == 0)
                        {
                            assert!(
                                dial::core::policy::Policy::parse(doc.as_bytes()).is_err(),
                                "{case}"
                            );
                            refused.push(case);
                            continue;
                        }
                        let Some(key) = context.get(&var) else {
                            skip(&mut skips, "no bucketing value in the context");
                            continue;
                        };
                        // flagd hashes a number, boolean or object as CBOR of that type; Dial's
                        // key is a header's text.
                        if types.get(&var).is_some_and(|t| t != "String") {
                            skip(&mut skips, "a bucketing value that is not a string");
                            continue;
                        }
                        // An empty header is no key to Dial (flagd hashes "").
                        if key.is_empty() {
                            skip(&mut skips, "an empty key (no key for Dial)");
                            continue;
                        }
                        // More buckets than a release may have subsets (fractional-basic-flag
                        // has 25): the buckets before the expected one and those after it
                        // merged into one each. The running sums at the expected bucket's edges
                        // stay, so Dial puts the key there exactly when flagd does.
                        let (doc, merged) = if buckets.len() > MAX_SUBSETS {
                            let Some(i) = buckets
                                .iter()
                                .position(|(n, _)| value_of(n).as_deref() == Some(want.as_str()))
                            else {
                                skip(&mut skips, "more buckets than subsets, none the expected");
                                continue;
                            };
                            let sum = |b: &[(String, i64)]| b.iter().map(|(_, w)| *w).sum::<i64>();
                            let merged: Vec<(&str, u32)> = [
                                ("merged-before", sum(&buckets[..i])),
                                (buckets[i].0.as_str(), buckets[i].1),
                                ("merged-after", sum(&buckets[i + 1..])),
                            ]
                            .into_iter()
                            .filter(|(_, w)| *w > 0)
                            .map(|(n, w)| (n, w as u32))
                            .collect();
                            let doc = policy(
                                json!({ "scheme": "flagd", "flagKey": prefix, "version": dial_version }),
                                &merged,
                            );
                            (doc, ", buckets around the expected one merged")
                        } else {
                            (doc, "")
                        };
                        let got = DialCore::new(&doc).subset_of(key);
                        assert_eq!(
                            value_of(&got).as_deref(),
                            Some(want.as_str()),
                            "{case}: version {dial_version}{merged}"
                        );
                        ran.push(format!("{case} (version {dial_version}{merged})"));
                    }
                }
            }
        }
    }
    println!(
        "flagd-testbed {}: {} of {total} fractional cases map to Dial, all agree:",
        version.trim(),
        ran.len()
    );
    for r in &ran {
        println!("  {r}");
    }
    println!("Dial refuses the policy (flagd serves the default): {refused:?}");
    println!("not mapped: {skips:?}");
    for v in ["version 1", "version 2", "version 3"] {
        assert!(
            ran.iter().filter(|r| r.contains(v)).count() >= 10,
            "{v}: {ran:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The module in Envoy, for a sample.

#[test]
fn envoy_routes_a_sample_where_the_sdks_put_it() {
    let mut keys = ascii_keys(300);
    keys.extend(non_ascii_keys().into_iter().step_by(3));
    let unleash = unleash_cases()
        .into_iter()
        .find(|c| c.id == "rollout-25-userId")
        .unwrap();
    let flagd = |version| {
        flagd_cases(version)
            .into_iter()
            .find(|c| c.id == "checkout-50-30-20")
            .unwrap()
    };
    let (flagd2, flagd3) = (flagd(2), flagd(3));
    let mut cases = for_sdk("unleash", std::slice::from_ref(&unleash));
    cases.extend(for_sdk("flagd-v2", std::slice::from_ref(&flagd2)));
    let sdk = python(&keys, &cases);
    let sdk3 = python_in(
        PythonSdks::FlagdV3,
        &keys,
        &for_sdk("flagd-v3", std::slice::from_ref(&flagd3)),
    );
    for (case, sdk_name, sdk, subsets) in [
        (&unleash, "unleash", &sdk, &["stable", "canary"][..]),
        (&flagd2, "flagd-v2", &sdk, &FLAGD_SUBSETS[..]),
        (&flagd3, "flagd-v3", &sdk3, &FLAGD_SUBSETS[..]),
    ] {
        let doc = &case.policy;
        let backends: Vec<Backend> = subsets.iter().map(|n| Backend::start(n)).collect();
        let routes: Vec<(&str, u16)> = backends.iter().map(|b| (b.name.as_str(), b.port)).collect();
        let envoy = Envoy::start(&EnvoyConfig::new(doc, &routes));
        let mut client = Client::new(envoy.port);
        let answers = &sdk.answers[&format!("{sdk_name}/{}", case.id)];
        let mut wrong = Vec::new();
        for (key, answer) in keys.iter().zip(answers) {
            let r = client.send(
                "GET",
                "flags.example",
                "/",
                [("x-user-id", key.as_bytes())],
                b"",
            );
            assert_eq!(r.status, 200, "{key:?}: {}", r.text());
            let want = (case.subset_of_answer)(answer);
            if r.backend() != want {
                wrong.push(format!("{key:?}: Envoy {}, SDK {want}", r.backend()));
            }
        }
        println!(
            "Envoy, {sdk_name}/{}: {} keys, {} not where the SDK puts them",
            case.id,
            keys.len(),
            wrong.len(),
        );
        assert!(wrong.is_empty(), "{}: {wrong:?}", case.id);
    }
}

// ---------------------------------------------------------------------------------------------
// The docs' page (docs/flags.md), held to what it says.

/// Every plain JSON example of docs/flags.md (a release, or a `"key"` fragment) is part of a
/// policy Dial accepts. (Whole policies, fenced `json policy`, are checked by tests/docs.rs.)
#[test]
fn the_docs_examples_are_policies_dial_accepts() {
    let page = std::fs::read_to_string(support::repo_root().join("docs/flags.md")).unwrap();
    let mut blocks = 0;
    for block in page.split("```json\n").skip(1) {
        let json = block.split("```").next().unwrap().trim();
        let release: Value = if json.starts_with("\"key\"") {
            let key: Value = serde_json::from_str(&format!("{{{json}}}")).unwrap();
            serde_json::from_str(&policy(json!({ "scheme": "dial" }), &[("stable", 1)]))
                .map(|mut p: Value| {
                    p["releases"][0]["key"] = key["key"].clone();
                    p["releases"][0].clone()
                })
                .unwrap()
        } else {
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
        };
        let doc = json!({ "releases": [release] }).to_string();
        DialCore::new(&doc);
        blocks += 1;
    }
    assert!(blocks >= 3, "{blocks} JSON examples");
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An HS256 token for `sub`, signed with `key`.
fn token(key: &[u8], sub: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let head = base64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = base64url(
        json!({ "iss": "https://login.example.com", "sub": sub })
            .to_string()
            .as_bytes(),
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", base64url(&mac.finalize().into_bytes()))
}

/// The docs' edge advice (docs/flags.md, "Keys from baggage"), in a real Envoy: the key comes from a verified token's claim,
/// copied to a header by Envoy's JWT filter configured as Istio's `RequestAuthentication` with
/// `outputClaimToHeaders` configures it (a missing token allowed). A client-sent copy of that
/// header is replaced when a token verifies and removed when there is none, so no client can
/// pick its key, hence its subset.
#[test]
fn a_key_from_a_verified_token_cannot_be_forged() {
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let plain = policy(
        json!({ "scheme": "unleash", "groupId": GROUP }),
        &[("stable", 50), ("canary", 50)],
    );
    // Where a key lands (the same scheme and weights, keyed by x-user-id for DialCore).
    let core = DialCore::new(&plain);
    let mut doc: Value = serde_json::from_str(&plain).unwrap();
    doc["headers"] = json!({ "response": "x-dial-assignment" });
    doc["releases"][0]["key"] = json!([ { "header": "x-verified-user" } ]);
    doc["releases"][0]["whenNoKey"] = json!({ "subset": "stable" });
    let doc = doc.to_string();
    let user = |subset: &str| {
        (0..1000)
            .map(|i| format!("user-{i}"))
            .find(|u| core.subset_of(u) == subset)
            .unwrap()
    };
    let (stable_user, canary_user) = (user("stable"), user("canary"));

    let backends = [Backend::start("stable"), Backend::start("canary")];
    let routes: Vec<(&str, u16)> = backends.iter().map(|b| (b.name.as_str(), b.port)).collect();
    let mut config = EnvoyConfig::new(&doc, &routes);
    let jwks = json!({ "keys": [ { "kty": "oct", "alg": "HS256", "k": base64url(SECRET) } ] });
    config.filters_before_dial.push(json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": { "login": {
                "issuer": "https://login.example.com",
                "local_jwks": { "inline_string": jwks.to_string() },
                "claim_to_headers": [ { "header_name": "x-verified-user", "claim_name": "sub" } ],
            } },
            "rules": [ {
                "match": { "prefix": "/" },
                "requires": { "requires_any": { "requirements": [
                    { "provider_name": "login" },
                    { "allow_missing": {} },
                ] } },
            } ],
        },
    }));
    let envoy = Envoy::start(&config);
    let mut client = Client::new(envoy.port);
    let mut get = |headers: &[(&str, &str)]| {
        let r = client.get("shop.example.com", "/", headers);
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
        (
            r.backend().to_string(),
            r.header("x-dial-assignment").unwrap_or("").to_string(),
        )
    };
    let bearer = format!("Bearer {}", token(SECRET, &stable_user));

    // The verified claim is the key.
    let (backend, how) = get(&[("authorization", &bearer)]);
    assert_eq!(backend, "stable", "{how}");
    assert!(how.contains("reason=hash"), "{how}");
    // A forged header beside a verified token: replaced by the claim.
    let (backend, how) = get(&[
        ("authorization", &bearer),
        ("x-verified-user", &canary_user),
    ]);
    assert_eq!(backend, "stable", "{how}");
    assert!(how.contains("reason=hash"), "{how}");
    // A forged header without a token: removed, so no key at all.
    let (backend, how) = get(&[("x-verified-user", &canary_user)]);
    assert_eq!(backend, "stable", "{how}");
    assert!(how.contains("reason=fallback"), "{how}");
    // The same forged header straight to Dial would have steered (the control).
    assert_eq!(core.subset_of(&canary_user), "canary");
}
