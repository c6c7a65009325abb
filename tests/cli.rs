//! The `dial` command-line tool, run as the real binary: exit codes, the exact problem lines
//! (the filter's own messages, placed at their file, line and column), JSON that parses, the
//! decisions it explains and simulates against the core's, the moves `diff` counts; and, end
//! to end, `dial explain` against the subset a real Envoy routed each of 1,000 users to.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::path::Path;
use std::process::Command;

use dial::core::policy::{Policy, Segment};
use serde_json::{json, Value};
use support::policies::{checkout, checkout_with, lane_member, Core, CHECKOUT, HOST, PATH};
use support::{bad_policies, repo_root, scratch_dir, Backend, Client, Envoy, EnvoyConfig};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr: {}", self.stdout, self.stderr))
    }

    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Runs `dial` from the repository root.
fn dial(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_dial"))
        .current_dir(repo_root())
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// One run of `dial` and what it must print: a row of the tables the tests below check with
/// `check_runs`.
struct Expect<'a> {
    args: Vec<&'a str>,
    /// `Some`: run by `dial_env` with these variables (the policy's own removed).
    env: Option<&'a [(&'a str, &'a str)]>,
    code: i32,
    /// Text its stdout, and its stderr, must contain.
    stdout: &'a [&'a str],
    stderr: &'a [&'a str],
    /// Text in neither.
    nowhere: &'a [&'a str],
}

/// `dial ARGS`, which must exit 0 and print anything (`Expect { code: 1, ..command(ARGS) }`
/// for more).
fn command<'a>(args: &[&'a str]) -> Expect<'a> {
    Expect {
        args: args.to_vec(),
        env: None,
        code: 0,
        stdout: &[],
        stderr: &[],
        nowhere: &[],
    }
}

/// Runs each case and checks its exit code and output; returns the runs, in order.
fn check_runs(cases: &[Expect]) -> Vec<Run> {
    let mut runs = Vec::new();
    for case in cases {
        let out = match case.env {
            Some(vars) => dial_env(&case.args, vars),
            None => dial(&case.args),
        };
        let what = format!("dial {}", case.args.join(" "));
        assert_eq!(
            out.code, case.code,
            "{what}: exit code\n{}{}",
            out.stdout, out.stderr
        );
        for (stream, text, wanted) in [
            ("stdout", &out.stdout, case.stdout),
            ("stderr", &out.stderr, case.stderr),
        ] {
            for want in wanted {
                assert!(
                    text.contains(want),
                    "{what}: no {want:?} in {stream}:\n{text}"
                );
            }
        }
        for unwanted in case.nowhere {
            assert!(
                !out.stdout.contains(unwanted) && !out.stderr.contains(unwanted),
                "{what}: {unwanted:?} printed:\n{}{}",
                out.stdout,
                out.stderr
            );
        }
        runs.push(out);
    }
    runs
}

/// The (1-based) line and column of the first occurrence of `needle` in `text`.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not found"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[test]
fn help_shows_examples_and_usage_errors_exit_2() {
    let mut runs = vec![Expect {
        stdout: &[
            "validate",
            "explain",
            "simulate",
            "diff",
            "Examples:",
            "Exit codes",
        ],
        ..command(&["--help"])
    }];
    for subcommand in ["validate", "explain", "simulate", "diff"] {
        runs.push(Expect {
            stdout: &["Examples:"],
            ..command(&[subcommand, "--help"])
        });
    }
    runs.extend([
        Expect {
            code: 2,
            ..command(&["frobnicate"])
        },
        Expect {
            code: 2,
            ..command(&["validate"])
        },
        Expect {
            code: 2,
            stderr: &["write a header as 'name: value'"],
            ..command(&["explain", "tests/data/checkout.json", "-H", "no colon"])
        },
        Expect {
            code: 2,
            stderr: &["RFC 3339"],
            ..command(&["simulate", "tests/data/checkout.json", "--at", "tomorrow"])
        },
    ]);
    check_runs(&runs);
}

#[test]
fn every_shipped_policy_is_valid() {
    let run = dial(&[
        "validate",
        "envoy-config",
        "istio",
        "tests/data/checkout.json",
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let valid: Vec<&str> = run
        .lines()
        .into_iter()
        .filter(|l| l.contains(": valid ("))
        .collect();
    for prefix in [
        "envoy-config/envoy.yaml: Envoy wasm filter dial",
        "istio/sidecar/wasmplugin.yaml: WasmPlugin shop/dial",
        "istio/gateway/wasmplugin.yaml: WasmPlugin",
        "tests/data/checkout.json: valid",
    ] {
        assert!(
            valid.iter().any(|l| l.starts_with(prefix)),
            "{prefix}: {valid:?}"
        );
    }
    let report = dial(&["validate", "-o", "json", "envoy-config", "istio"]).json();
    assert_eq!(report["valid"], true);
    assert!(
        report["policies"].as_array().unwrap().len() >= 4,
        "{report}"
    );
    assert_eq!(report["problems"], json!([]));
}

/// Every case of tests/data/bad-policies.json, in files: each problem line is the file, the
/// line and column of the offending value, and exactly the filter's own line.
#[test]
fn bad_policies_get_the_filters_problem_lines() {
    let dir = scratch_dir("cli-bad");
    let cases = bad_policies::cases();
    let kinds = bad_policies::kinds();
    let files: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, policy, _))| write(&dir, &format!("case-{i:02}.json"), policy))
        .collect();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let text = dial(&args);
    assert_eq!(text.code, 1, "{}", text.stderr);
    args.extend(["--output", "json"]);
    let report = dial(&args);
    assert_eq!(report.code, 1);
    let report = report.json();
    assert_eq!(report["valid"], false);
    let problems = report["problems"].as_array().unwrap();

    for (((name, policy, error), kind), file) in cases.iter().zip(&kinds).zip(&files) {
        let want = Policy::parse(policy.as_bytes()).unwrap_err().problems;
        // Text: one line per problem, in the filter's order, each `file:line:column: <problem>`
        // (warnings for where the policy runs, such as an inline token, are lines of their own).
        let lines: Vec<&str> = text
            .lines()
            .into_iter()
            .filter(|l| l.starts_with(&format!("{file}:")) && !l.contains(": warning: "))
            .collect();
        assert_eq!(lines.len(), want.len(), "{name}: {lines:?}");
        for (line, problem) in lines.iter().zip(&want) {
            let rest = &line[file.len() + 1..];
            let mut parts = rest.splitn(3, ':');
            let (l, c) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok(),
                "{name}: {line}"
            );
            assert_eq!(parts.next().unwrap(), format!(" {problem}"), "{name}");
        }
        assert!(
            lines.iter().any(|l| l.contains(error.as_str())),
            "{name}: {lines:?} lacks {error:?}"
        );

        // JSON: the same problems, with kind, path, value, and the position of the value.
        let mine: Vec<&Value> = problems
            .iter()
            .filter(|p| p["file"] == file.as_str())
            .collect();
        assert_eq!(mine.len(), want.len(), "{name}");
        assert!(
            mine.iter().any(|p| p["kind"] == kind.as_str()
                && p["text"].as_str().unwrap().contains(error.as_str())),
            "{name}: {mine:?}"
        );
        for (got, problem) in mine.iter().zip(&want) {
            assert_eq!(got["text"], problem.to_string(), "{name}");
            assert_eq!(got["path"], problem.path.to_string(), "{name}");
            assert_eq!(got["kind"], problem.kind.as_str(), "{name}");
            assert_eq!(
                got["value"],
                problem.value.clone().unwrap_or(Value::Null),
                "{name}"
            );
            // The position is that of the value at the problem's path.
            let doc: Option<Value> = serde_json::from_str(policy).ok();
            let pointer: String = problem
                .path
                .segments()
                .iter()
                .map(|s| match s {
                    Segment::Key(k) => format!("/{k}"),
                    Segment::Index(i) => format!("/{i}"),
                })
                .collect();
            if let Some(value) = doc.as_ref().and_then(|d| d.pointer(&pointer)) {
                let (l, c) = (
                    got["line"].as_u64().unwrap() as usize,
                    got["column"].as_u64().unwrap() as usize,
                );
                let line = policy.lines().nth(l - 1).unwrap();
                let at: String = line.chars().skip(c - 1).collect();
                let parsed = serde_json::Deserializer::from_str(&at)
                    .into_iter::<Value>()
                    .next();
                assert_eq!(
                    parsed.and_then(Result::ok).as_ref(),
                    Some(value),
                    "{name}: {l}:{c} is {at:?}"
                );
            }
        }
    }
}

#[test]
fn a_bad_wasmplugin_and_a_bad_envoy_config_are_pointed_at_their_lines() {
    let dir = scratch_dir("cli-yaml");
    // Kubernetes YAML with a ConfigMap, a WasmPlugin of another plugin, and Dial's, broken.
    let plugins = "\
apiVersion: v1
kind: ConfigMap
metadata: { name: unrelated, namespace: shop }
data: { a: b }
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: { name: ratelimit, namespace: shop }
spec:
  url: oci://registry.example.com/ratelimit:1
  pluginConfig: { releases: nonsense }
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: dial
  namespace: shop
spec:
  url: oci://registry.example.com/platform/dial:0.1.0
  pluginName: dial
  pluginConfig:
    releases:
    - name: checkout
      subsets:
      - { name: stable, version: v1, weight: 90 }
      - { name: canary, version: v2, weight: -10 }
      key:
      - header: x-user-id
      mirror: { version: v3, percent: 150 }
";
    let file = write(&dir, "plugins.yaml", plugins);
    let run = dial(&["validate", &file]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let (wl, wc) = position_of(plugins, "-10 }");
    let (ml, mc) = position_of(plugins, "150 }");
    assert_eq!(
        run.lines()[..2],
        [
            format!("{file}:{wl}:{wc}: WasmPlugin shop/dial (document 3): $.releases[0].subsets[1].weight: weight must be 0 or more, got -10").as_str(),
            format!("{file}:{ml}:{mc}: WasmPlugin shop/dial (document 3): $.releases[0].mirror.percent: must be between 0 and 100, got 150").as_str(),
        ],
        "{}",
        run.stdout
    );
    let report = dial(&["validate", "-o", "json", &file]).json();
    assert_eq!(report["problems"][0]["document"], 3);
    assert_eq!(report["problems"][0]["source"], "WasmPlugin shop/dial");
    assert_eq!(report["problems"][0]["value"], -10);
    assert_eq!(report["problems"][1]["value"], 150);
    assert!(
        report["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains("ratelimit"),
        "{report}"
    );

    // The shipped Envoy configuration with one bad weight in its embedded policy.
    let example = std::fs::read_to_string(repo_root().join("envoy-config/envoy.yaml")).unwrap();
    let broken = example.replacen(r#""weight": 90 }"#, r#""weight": -90 }"#, 1);
    assert_ne!(broken, example);
    let file = write(&dir, "envoy.yaml", &broken);
    let run = dial(&["validate", &file]);
    assert_eq!(run.code, 1);
    let (l, c) = position_of(&broken, "-90 }");
    assert_eq!(
        run.lines()[0],
        format!("{file}:{l}:{c}: Envoy wasm filter dial (listener main): $.releases[0].subsets[0].weight: weight must be 0 or more, got -90")
    );
}

#[test]
fn unreadable_input_is_exit_2_and_no_policy_is_a_problem() {
    let dir = scratch_dir("cli-none");
    let file = write(
        &dir,
        "dr.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: { name: x }\n",
    );
    let yaml = write(&dir, "broken.yaml", "a: [1, 2\nb: 3\n");
    let empty = scratch_dir("cli-empty");
    let mut bad = checkout();
    bad["releases"][0]["subsets"][1]["weight"] = json!(-5);
    let bad = write(&dir, "bad.json", &bad.to_string());
    check_runs(&[
        Expect {
            code: 2,
            stdout: &["cannot read no/such/file.json"],
            ..command(&["validate", "no/such/file.json"])
        },
        Expect {
            code: 1,
            stdout: &["no Dial policy found"],
            ..command(&["validate", &file])
        },
        Expect {
            code: 1,
            ..command(&["validate", &yaml])
        },
        // A directory without policies: nothing to check is a problem too.
        Expect {
            code: 1,
            ..command(&["validate", empty.to_str().unwrap()])
        },
        // explain on a rejected policy: its problems, then what to do.
        Expect {
            code: 1,
            stderr: &[
                "$.releases[0].subsets[1].weight: weight must be 0 or more, got -5",
                "dial validate",
            ],
            ..command(&["explain", &bad, "--host", HOST])
        },
    ]);
}

fn explain_json(args: &[&str]) -> Value {
    let mut all = vec![
        "explain",
        "tests/data/checkout.json",
        "--host",
        HOST,
        "--path",
        PATH,
        "-o",
        "json",
    ];
    all.extend(args);
    let run = dial(&all);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

/// A following release: explain tells the lane decision for a request's baggage (valid,
/// expired, wrong tag, unknown lane, fallback) as the core makes it.
#[test]
fn explain_tells_the_lane_decision_for_a_baggage_header() {
    let secret = "lane-secret-current-0123";
    let policy = json!({ "releases": [{
        "name": "pricing", "whenNoKey": { "subset": "stable" },
        "subsets": [{ "name": "stable", "version": "v1", "weight": 90 },
                    { "name": "canary", "version": "v2", "weight": 10 }],
        "lanes": { "secret": secret, "follow": true, "base": "stable", "maxAge": "1h",
                   "names": ["stable", "canary", "qa"] }
    }]});
    let dir = scratch_dir("cli-lanes");
    let file = write(&dir, "follow.json", &policy.to_string());
    let at = 1_796_596_815u64;
    let issue = |secret: &str, lane: &str, when: u64| {
        format!("baggage: a=1,{}", lane_member(secret, lane, when))
    };
    let bad_lane = issue(secret, "beta", at);
    for (baggage, read, subset, reason) in [
        (issue(secret, "canary", at), "valid", "canary", "lane"),
        (issue(secret, "qa", at), "valid", "stable", "lane_fallback"),
        (
            issue(secret, "canary", at - 7200),
            "expired",
            "stable",
            "fallback",
        ),
        (
            issue("another-lane-secret-00", "canary", at),
            "bad_tag",
            "stable",
            "fallback",
        ),
        (bad_lane, "unknown_lane", "stable", "fallback"),
        ("baggage: a=1".to_string(), "absent", "stable", "fallback"),
    ] {
        let run = dial(&[
            "explain",
            &file,
            "--path",
            "/",
            "-H",
            &baggage,
            "--at",
            "2026-12-06T22:40:15Z",
            "-o",
            "json",
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let got = run.json();
        assert_eq!(got["lane"]["read"], read, "{baggage}: {got}");
        assert_eq!(got["subset"], subset, "{baggage}: {got}");
        assert_eq!(got["reason"], reason, "{baggage}: {got}");
    }
}

/// `dial simulate` shows the lane an issuing release writes for each subset, and which subset
/// each lane reaches at a following one.
#[test]
fn simulate_shows_which_subset_each_lane_reaches() {
    let dir = scratch_dir("cli-lanes-simulate");
    let follow = json!({ "releases": [{
        "name": "inventory", "whenNoKey": { "subset": "stable" },
        "subsets": [{ "name": "stable", "version": "v1", "weight": 1 },
                    { "name": "beta", "version": "v3", "weight": 0, "lane": "qa" }],
        "lanes": { "secret": "lane-secret-current-0123", "follow": true, "base": "stable" }
    }]});
    let file = write(&dir, "follow.json", &follow.to_string());
    let run = dial(&["simulate", &file, "--users", "100", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = run.json();
    let reach = &got["releases"][0]["lanes"]["reach"];
    assert_eq!(
        reach,
        &json!([
            { "lane": "stable", "subset": "stable", "reason": "lane" },
            { "lane": "qa", "subset": "beta", "reason": "lane" },
            { "lane": null, "subset": "stable", "reason": "lane_fallback" }
        ]),
        "{got}"
    );
    let issue = CHECKOUT.replace(
        r#""override":"#,
        r#""lanes": { "secret": "lane-secret-current-0123", "issue": true }, "override":"#,
    );
    assert_ne!(issue, CHECKOUT);
    let file = write(&dir, "issue.json", &issue);
    let run = dial(&["simulate", &file, "--users", "1000", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = run.json();
    let issued = got["releases"][0]["lanes"]["issued"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(issued.len(), 2, "{got}");
    let users: u64 = issued.iter().map(|i| i["users"].as_u64().unwrap()).sum();
    assert_eq!(users, 1000);
    assert_eq!(issued[1]["lane"], "canary");
}

/// A release keyed by a W3C baggage member: explain reads the key as decide does
/// (percent-decoded) and places it where the core places that user.
#[test]
fn explain_reads_a_baggage_key_as_the_core_does() {
    let policy = CHECKOUT.replace(
        r#""key": [ { "header": "x-user-id" }, { "cookie": "uid" } ]"#,
        r#""key": [ { "baggage": "user.id" } ]"#,
    );
    assert_ne!(policy, CHECKOUT, "checkout.json's key sources moved");
    let dir = scratch_dir("cli-baggage");
    let file = write(&dir, "baggage.json", &policy);
    let core = Core::new(CHECKOUT);
    for user in ["user-1", "user-2", "user 17"] {
        let member = user.replace(' ', "%20");
        let baggage = format!("baggage: tenant=acme, user.id={member};ttl=60");
        let run = dial(&[
            "explain", &file, "--host", HOST, "--path", PATH, "-H", &baggage, "-o", "json",
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let got = run.json();
        assert_eq!(got["key"]["value"], user, "{got}");
        let want = core.user(HOST, PATH, user);
        assert_eq!(got["subset"], core.subset_name(&want), "{user}");
        assert_eq!(got["split"]["position"], want.position.unwrap(), "{user}");
    }
}

#[test]
fn explain_tells_the_decision_and_what_dial_does_to_the_headers() {
    // An allowlisted user: rule [2], with where the split alone would have put them.
    let alice = explain_json(&["-H", "x-user-id: alice", "-H", "x-dial-subset: stable"]);
    for (pointer, want) in [
        ("/release/name", json!("checkout")),
        ("/subset", json!("canary")),
        ("/reason", json!("allowlist")),
        ("/rule", json!(2)),
        ("/rules/2/matched", json!(true)),
        ("/key/value", json!("alice")),
        ("/split/decided", json!(false)),
        (
            "/headers/set",
            json!([["x-dial-subset", "canary"], ["x-dial-version", "v2"]]),
        ),
        (
            "/headers/response",
            json!([[
                "x-dial-assignment",
                "release=checkout; subset=canary; version=v2; reason=allowlist"
            ]]),
        ),
    ] {
        assert_eq!(alice.pointer(pointer), Some(&want), "{pointer}: {alice}");
    }

    // A hashed user: the core's subset and position, and the bucket of that position.
    let core = Core::new(CHECKOUT);
    for user in ["user-1", "user-2", "user-3", "user-17"] {
        let got = explain_json(&["-H", &format!("x-user-id: {user}")]);
        let want = core.user(HOST, PATH, user);
        assert_eq!(got["subset"], core.subset_name(&want), "{user}");
        assert_eq!(got["split"]["position"], want.position.unwrap(), "{user}");
        let bucket = (u64::from(want.position.unwrap()) * 100) >> 32;
        assert_eq!(got["split"]["bucket"], bucket, "{user}");
    }

    // The override with its token: honoured, and the header removed before the upstream.
    let over = explain_json(&[
        "-H",
        "x-user-id: user-1",
        "-H",
        "x-dial-override: canary; token=qa-token-0123456789",
    ]);
    assert_eq!(over["reason"], "override");
    assert_eq!(over["headers"]["removed"], json!(["x-dial-override"]));
    let wrong = explain_json(&["-H", "x-dial-override: canary; token=guess"]);
    assert_ne!(wrong["reason"], "override");
    assert!(
        wrong["override"]["verdict"]
            .as_str()
            .unwrap()
            .contains("the token does not match"),
        "{wrong}"
    );

    // Anonymous: a sticky key is minted and the cookie set.
    let anonymous = explain_json(&[]);
    assert_eq!(anonymous["reason"], "sticky_cookie");
    assert!(
        anonymous["headers"]["response"][0][1]
            .as_str()
            .unwrap()
            .starts_with("dial-checkout="),
        "{anonymous}"
    );

    // Outside every release: passes, and client-sent steering headers are removed.
    let run = dial(&[
        "explain",
        "tests/data/checkout.json",
        "--host",
        "other.example.com",
        "-H",
        "x-dial-subset: canary",
        "-o",
        "json",
    ]);
    let pass = run.json();
    assert_eq!(pass["subset"], Value::Null);
    assert_eq!(pass["headers"]["removed"], json!(["x-dial-subset"]));

    // A user the split puts on canary, with canary's guard tripped: the split as the core
    // placed the key (its bucket and the intervals), then the guard's move to stable.
    let guard = json!({ "subset": "canary", "fallback": "stable", "window": "10s",
                        "minRequests": 20, "maxErrorRate": 0.05 });
    let guarded = write(
        &scratch_dir("cli-tripped"),
        "guarded.json",
        &checkout_with(&[("guard", guard)]),
    );
    let canary = core.users_on(HOST, PATH, "canary", 1).remove(0);
    let position = core.user(HOST, PATH, &canary).position.unwrap();
    let placed = format!(
        "position {position} of 2^32 ({:.6}), bucket {} of 100",
        f64::from(position) / 4_294_967_296.0,
        (u64::from(position) * 100) >> 32
    );
    let canary = format!("x-user-id: {canary}");

    // The text form reads as a description.
    check_runs(&[
        Expect {
            stdout: &[
                "Release:",
                "Key:",
                "Rules:",
                "Split:",
                "Result:",
                "Mirror:",
                "Headers:",
                "Response:",
                "subset canary, version v2, reason allowlist",
            ],
            ..command(&[
                "explain",
                "tests/data/checkout.json",
                "--host",
                HOST,
                "--path",
                PATH,
                "-H",
                "x-user-id: alice",
            ])
        },
        Expect {
            stdout: &[
                &placed,
                "  stable [0, 90)\n",
                "  canary [90, 100) <- the key\n",
                "the split gives subset canary\n",
                "Result:   release checkout, subset stable, version v1, reason guardrail (the guard of canary is tripped: its users go to stable)\n",
                "sets x-dial-subset: stable",
            ],
            nowhere: &["the split would give", "Split:    not used"],
            ..command(&[
                "explain",
                &guarded,
                "--host",
                HOST,
                "--path",
                PATH,
                "-H",
                &canary,
                "--tripped",
                "checkout",
            ])
        },
    ]);
}

#[test]
fn explain_for_many_users_is_the_cores_decision() {
    let run = dial(&[
        "explain",
        "tests/data/checkout.json",
        "--host",
        HOST,
        "--path",
        PATH,
        "--users",
        "2000",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let core = Core::new(CHECKOUT);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2000);
    for (i, line) in lines.iter().enumerate() {
        let user = format!("user-{i}");
        assert_eq!(line["key"], user.as_str());
        assert_eq!(line["subset"], core.subset_of(HOST, PATH, &user), "{user}");
    }
    let dir = scratch_dir("cli-keys");
    let keys = write(&dir, "keys.txt", "alice\r\nuser-1\n\nbob\n");
    let run = dial(&[
        "explain",
        "tests/data/checkout.json",
        "--host",
        HOST,
        "--path",
        PATH,
        "--keys",
        &keys,
    ]);
    assert_eq!(run.code, 0);
    let rows: Vec<Vec<&str>> = run
        .lines()
        .iter()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{}", run.stdout);
    assert_eq!(
        rows[0][..5],
        ["alice", "checkout", "canary", "v2", "allowlist"]
    );
    assert_eq!(
        rows[2][..5],
        ["bob", "checkout", "canary", "v2", "allowlist"]
    );
}

#[test]
fn simulate_spreads_users_as_the_weights_and_a_ramp_say() {
    let run = dial(&[
        "simulate",
        "tests/data/checkout.json",
        "--users",
        "20000",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let subsets = report["releases"][0]["subsets"].as_array().unwrap();
    let users: u64 = subsets.iter().map(|s| s["users"].as_u64().unwrap()).sum();
    assert_eq!(users, 20_000);
    for s in subsets {
        let (share, expected) = (
            s["share"].as_f64().unwrap(),
            s["expected_share"].as_f64().unwrap(),
        );
        assert!((share - expected).abs() < 0.01, "{s}");
    }
    // The same counts as the core, user by user.
    let core = Core::new(CHECKOUT);
    let canary = (0..20_000)
        .filter(|i| core.subset_of(HOST, PATH, &format!("user-{i}")) == "canary")
        .count();
    assert_eq!(subsets[1]["users"], canary as u64);

    // The example's ramp, at 10:00 on its first day: step 2 (25%); each step only moves users in.
    let run = dial(&[
        "simulate",
        "envoy-config/envoy.yaml",
        "--users",
        "20000",
        "--at",
        "2026-12-01T10:00:00Z",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let release = &run.json()["releases"][0];
    let steps = release["ramp"]["steps"].as_array().unwrap();
    assert!(steps.len() >= 3, "{release}");
    assert!(steps.iter().all(|s| s["moved_elsewhere"] == 0), "{release}");
    assert!(steps.iter().any(|s| s["current"] == true));
    let last = steps.last().unwrap();
    assert_eq!(
        last["shares"][1]["users"], 20_000,
        "the last step holds everyone: {last}"
    );

    check_runs(&[Expect {
        stdout: &["ramp of canary from 2026-12-01T09:00:00Z"],
        ..command(&[
            "simulate",
            "envoy-config/envoy.yaml",
            "--users",
            "2000",
            "--at",
            "2026-12-01T10:00:00Z",
        ])
    }]);
}

/// The example policy with the canary at `canary` and stable at 100 - `canary`.
fn checkout_at(canary: u64) -> String {
    let mut doc = checkout();
    doc["releases"][0]["subsets"][0]["weight"] = json!(100 - canary);
    doc["releases"][0]["subsets"][1]["weight"] = json!(canary);
    doc.to_string()
}

#[test]
fn diff_of_a_ramp_moves_users_forward_only() {
    let dir = scratch_dir("cli-diff");
    let (old, new) = (
        write(&dir, "10.json", &checkout_at(10)),
        write(&dir, "25.json", &checkout_at(25)),
    );
    let run = dial(&[
        "diff",
        &old,
        &new,
        "--users",
        "50000",
        "--fail-on-move-back",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["moved_back"], 0);
    let release = &report["releases"][0];
    assert_eq!(release["back"], 0);
    let forward = release["forward"].as_f64().unwrap() / 50_000.0;
    assert!((forward - 0.15).abs() < 0.005, "{release}");
    assert_eq!(
        release["moves"],
        json!([{ "from": "stable", "to": "canary", "users": release["forward"], "share": release["moves"][0]["share"], "kind": "forward" }])
    );
    // Exactly the users the core moves.
    let (a, b) = (Core::new(&checkout_at(10)), Core::new(&checkout_at(25)));
    let moved = (0..50_000)
        .map(|i| format!("user-{i}"))
        .filter(|u| a.subset_of(HOST, PATH, u) != b.subset_of(HOST, PATH, u))
        .count();
    assert_eq!(release["forward"], moved as u64);

    check_runs(&[Expect {
        stdout: &["moved back: 0", "stable -> canary"],
        ..command(&["diff", &old, &new, "--users", "5000"])
    }]);
}

#[test]
fn diff_of_a_reordered_subset_list_moves_users_back_and_fails_when_asked() {
    let dir = scratch_dir("cli-reorder");
    let mut reordered = checkout();
    let subsets = reordered["releases"][0]["subsets"].as_array_mut().unwrap();
    subsets.reverse();
    let new = write(&dir, "reordered.json", &reordered.to_string());
    let old = "tests/data/checkout.json";
    let report = dial(&["diff", old, &new, "--users", "20000", "-o", "json"]);
    assert_eq!(
        report.code, 0,
        "without --fail-on-move-back a move back is reported, not failed"
    );
    let report = report.json();
    let back = report["moved_back"].as_u64().unwrap();
    // The old canary's 10% go to stable and as many stable users to the canary.
    assert!((back as f64 / 20_000.0 - 0.2).abs() < 0.01, "{report}");
    let moves = report["releases"][0]["moves"].as_array().unwrap();
    assert!(
        moves
            .iter()
            .any(|m| m["from"] == "canary" && m["to"] == "stable" && m["kind"] == "back"),
        "{moves:?}"
    );

    check_runs(&[Expect {
        code: 1,
        stdout: &["canary -> stable"],
        stderr: &["moved back: refusing the change (--fail-on-move-back)"],
        ..command(&["diff", old, &new, "--users", "20000", "--fail-on-move-back"])
    }]);
}

/// End to end: for 1,000 users, the subset `dial explain` gives each is the backend a real
/// Envoy with the module routed that user to. The policy is read from the very bootstrap Envoy
/// runs (the policy embedded in its wasm filter's StringValue).
#[test]
fn explain_agrees_with_envoy_for_a_thousand_users() {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let config = EnvoyConfig::new(
        CHECKOUT,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    let envoy = Envoy::start(&config);
    let dir = scratch_dir("cli-agree");
    let bootstrap = write(&dir, "envoy.yaml", &config.bootstrap_static());

    let routed = Client::new(envoy.port).backends_of_users(HOST, PATH, 1000);
    let run = dial(&[
        "explain", &bootstrap, "--host", HOST, "--path", PATH, "--users", "1000", "-o", "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let explained: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["subset"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(explained.len(), 1000);
    let wrong: Vec<String> = routed
        .iter()
        .zip(&explained)
        .enumerate()
        .filter(|(_, (r, e))| r != e)
        .map(|(i, (r, e))| format!("user-{i}: Envoy {r}, dial explain {e}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of 1000 differ: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert!(explained.iter().any(|s| s == "canary") && explained.iter().any(|s| s == "stable"));
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
}

// --- `dial validate` knows where a policy runs -------------------------------------------

const MODES_DIR: &str = "tests/data/validate-modes";

fn modes_file(name: &str) -> String {
    format!("{MODES_DIR}/{name}")
}

/// `dial validate -o json FILE ARGS...`, its report.
fn validate_json(file: &str, args: &[&str]) -> Value {
    let mut all = vec!["validate", "-o", "json", file];
    all.extend_from_slice(args);
    dial(&all).json()
}

fn warning_kinds(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap().to_string())
        .collect()
}

/// A fixture with no warnings and no problems.
fn assert_clean(report: &Value, what: &str) {
    assert_eq!(report["warnings"], json!([]), "{what}: {report}");
    assert_eq!(report["problems"], json!([]), "{what}: {report}");
}

/// The Istio manifests as shipped are safe as applied but for the image they name: each
/// WasmPlugin's only warnings are its example url and all-zero sha256, which
/// `make istio-manifests` replaces (`make validate-policies` checks the rendered ones with
/// `--strict`).
#[test]
fn the_shipped_istio_manifests_warn_only_about_the_image_to_fill_in() {
    let report = validate_json("istio", &[]);
    assert_eq!(report["problems"], json!([]), "{report}");
    let policies = report["policies"].as_array().unwrap().len();
    assert_eq!(policies, 4, "{report}");
    let mut kinds = warning_kinds(&report);
    kinds.sort();
    let mut want = vec!["placeholder_sha256"; policies];
    want.extend(vec!["placeholder_url"; policies]);
    assert_eq!(kinds, want, "{report}");
    assert_eq!(report["allowed"], json!([]), "{report}");
}

/// Every warning kind: a fixture that raises it, at the line that holds what is wrong, and one
/// that does not.
#[test]
fn every_warning_kind_has_a_failing_and_a_passing_fixture() {
    // (kind, failing fixture, its args, text on the warning's line, passing fixture, its args)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        &'a str,
        &'a str,
        &'a [&'a str],
    );
    let table: &[Case] = &[
        (
            "sticky_cookie_to_service",
            "sidecar-client-sticky.yaml",
            &[],
            "stickyCookie: { name: dial-checkout",
            "sidecar-client.yaml",
            &[],
        ),
        (
            "source_cidrs_local_peer",
            "sidecar-client-cidrs.yaml",
            &[],
            "sourceCidrs: [\"10.0.0.0/8\"]",
            "sidecar-server-cidrs.yaml",
            &[],
        ),
        (
            "fail_open_at_edge",
            "gateway-fail-open.yaml",
            &[],
            "failStrategy: FAIL_OPEN",
            "gateway.yaml",
            &[],
        ),
        (
            "fail_open_at_edge",
            "envoy-fail-open.yaml",
            &[],
            "failure_policy: FAIL_OPEN",
            "envoy-directions.yaml",
            &[],
        ),
        (
            "placeholder_sha256",
            "placeholder-sha256.yaml",
            &[],
            "sha256: \"0000000000",
            "sidecar-client.yaml",
            &[],
        ),
        (
            "placeholder_url",
            "placeholder-url.yaml",
            &[],
            "url: oci://registry.example.com/",
            "sidecar-client.yaml",
            &[],
        ),
        (
            "unsigned_sticky_cookie",
            "ingress-sticky-unsigned.yaml",
            &[],
            "stickyCookie: { name: dial-checkout",
            "ingress-sticky-signed.yaml",
            &[],
        ),
        (
            "allow_anyone",
            "allow-anyone.json",
            &["--mode", "standalone"],
            "\"allowAnyone\": true",
            "source-cidrs.json",
            &["--mode", "gateway"],
        ),
        (
            "inline_secret",
            "inline-secret.json",
            &[],
            "\"token\": \"",
            "token-env.json",
            &[],
        ),
        (
            "ramp_in_past",
            "ramp.json",
            &["--at", "2025-06-01T10:00:00Z"],
            "\"start\": \"2025-06-01T09:00:00Z\"",
            "ramp.json",
            &["--at", "2025-06-01T08:59:59Z"],
        ),
    ];
    for (kind, failing, args, line_text, passing, passing_args) in table {
        let file = modes_file(failing);
        let text = std::fs::read_to_string(repo_root().join(&file)).unwrap();
        let report = validate_json(&file, args);
        let warnings: Vec<&Value> = report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["kind"] == *kind)
            .collect();
        assert!(
            !warnings.is_empty(),
            "{kind}: {failing} raised none: {report}"
        );
        assert!(
            warning_kinds(&report).iter().all(|k| k == kind),
            "{kind}: {failing} raised others too: {report}"
        );
        assert!(
            warnings.iter().any(|w| {
                let line = w["line"].as_u64().unwrap() as usize;
                let column = w["column"].as_u64().unwrap() as usize;
                let on_line = text.lines().nth(line - 1).unwrap_or_default();
                w["file"] == file.as_str()
                    && on_line.contains(line_text)
                    && column >= 1
                    && column <= on_line.len()
                    && w["path"].is_string()
                    && w["severity"] == "warning"
                    && !w["message"].as_str().unwrap().is_empty()
            }),
            "{kind}: no warning on the line with {line_text:?}: {report}"
        );
        // Warnings alone keep exit code 0; --strict makes them errors.
        let mut plain = vec!["validate", file.as_str()];
        plain.extend_from_slice(args);
        let run = dial(&plain);
        assert_eq!(run.code, 0, "{kind}: {}{}", run.stdout, run.stderr);
        let (l, _) = position_of(&text, line_text);
        assert!(
            run.stdout
                .lines()
                .any(|o| o.starts_with(&format!("{file}:{l}:"))
                    && o.contains(&format!(": warning: {kind}: "))),
            "{kind}: no text line at {file}:{l}:\n{}",
            run.stdout
        );
        plain.push("--strict");
        let strict = dial(&plain);
        assert_eq!(strict.code, 1, "{kind}: {}", strict.stdout);
        assert!(
            strict.stdout.contains(&format!(": error: {kind}: ")),
            "{}",
            strict.stdout
        );

        let passing_report = validate_json(&modes_file(passing), passing_args);
        assert_clean(&passing_report, &format!("{kind}: {passing}"));
    }
}

/// An inline secret's value never appears in what `dial validate` prints.
#[test]
fn an_inline_secret_is_named_never_printed() {
    let file = modes_file("inline-secret.json");
    let run = dial(&["validate", &file]);
    for secret in ["qa-token-0123456789", "cookie-secret-0123456789"] {
        assert!(!run.stdout.contains(secret), "{}", run.stdout);
    }
    let report = validate_json(&file, &[]);
    let paths: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "$.releases[0].whenNoKey.stickyCookie.secret",
            "$.releases[0].whenNoKey.stickyCookie.previousSecret",
            "$.releases[0].override.token"
        ]
    );
    assert!(
        run.stdout.contains(r#"{"fromEnv": "DIAL_CHECKOUT_TOKEN"}"#),
        "{}",
        run.stdout
    );
    // Secrets named by the environment raise nothing (see assert_clean for the core's side).
    assert_clean(
        &validate_json(&modes_file("token-env.json"), &["--mode", "client"]),
        "token-env",
    );
    assert_clean(
        &validate_json(&modes_file("sticky-signed.json"), &["--mode", "gateway"]),
        "sticky-signed",
    );
}

/// A ramp that has started is reported with the step in force at that moment.
#[test]
fn a_past_ramp_start_prints_the_step_in_force() {
    let file = modes_file("ramp.json");
    for (at, step) in [
        (
            "2025-06-01T09:10:00Z",
            "step 1 of 3 (canary 10% since 2025-06-01T09:00:00Z)",
        ),
        (
            "2025-06-01T09:45:00Z",
            "step 2 of 3 (canary 50% since 2025-06-01T09:30:00Z)",
        ),
        (
            "2025-07-01T00:00:00Z",
            "step 3 of 3 (canary 100% since 2025-06-01T10:30:00Z, the last",
        ),
    ] {
        let run = dial(&["validate", &file, "--at", at]);
        assert!(
            run.stdout.contains(&format!("in force at {at} is {step}")),
            "{at}: {}",
            run.stdout
        );
    }
    // Without --at, the clock: the fixture's start is in the past for every run from now on.
    let report = validate_json(&file, &[]);
    assert_eq!(warning_kinds(&report), ["ramp_in_past"]);
}

/// Where each kind of holder says the policy runs.
#[test]
fn the_mode_comes_from_what_holds_the_policy() {
    // (fixture, args, each policy's modes, what says so)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a [&'a str]], &'a str);
    let cases: &[Case] = &[
        (
            "sidecar-client.yaml",
            &[],
            &[&["client"]],
            "spec.match[0].mode CLIENT",
        ),
        (
            "sidecar-server-cidrs.yaml",
            &[],
            &[&["server"]],
            "spec.match[0].mode SERVER",
        ),
        (
            "sidecar-default.yaml",
            &[],
            &[&["client", "server"]],
            "CLIENT_AND_SERVER",
        ),
        (
            "gateway.yaml",
            &[],
            &[&["gateway"]],
            "spec.targetRefs[0]: Gateway shop-gateway",
        ),
        (
            "ingress-sticky-unsigned.yaml",
            &[],
            &[&["gateway"]],
            "spec.selector.matchLabels istio: ingressgateway",
        ),
        (
            "envoy-directions.yaml",
            &[],
            &[&["server"], &["client"], &["standalone"]],
            "listener",
        ),
        ("key-header.json", &[], &[&[]], "a bare policy"),
        (
            "key-header.json",
            &["--mode", "gateway"],
            &[&["gateway"]],
            "--mode gateway",
        ),
        (
            "sidecar-client.yaml",
            &["--mode", "server"],
            &[&["server"]],
            "--mode server",
        ),
    ];
    for (file, args, modes, because) in cases {
        let report = validate_json(&modes_file(file), args);
        let policies = report["policies"].as_array().unwrap();
        let got: Vec<Vec<&str>> = policies
            .iter()
            .map(|p| {
                p["mode"]["modes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap())
                    .collect()
            })
            .collect();
        let want: Vec<Vec<&str>> = modes.iter().map(|m| m.to_vec()).collect();
        assert_eq!(got, want, "{file} {args:?}: {report}");
        assert!(
            policies
                .iter()
                .all(|p| p["mode"]["because"].as_str().unwrap().contains(because)),
            "{file}: {report}"
        );
    }
    let directions = validate_json(&modes_file("envoy-directions.yaml"), &[]);
    let because: Vec<&str> = directions["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["mode"]["because"].as_str().unwrap())
        .collect();
    assert_eq!(
        because,
        [
            "listener inbound: traffic_direction INBOUND",
            "listener outbound: traffic_direction OUTBOUND",
            "listener edge: no traffic_direction"
        ]
    );
    // The same policy, mode by mode: a sticky cookie is wrong in a sidecar, fine signed at the
    // edge; sourceCidrs only on a sidecar's client side.
    let sticky = modes_file("sticky-unsigned.json");
    for (args, kinds) in [
        (&["--mode", "client"][..], &["sticky_cookie_to_service"][..]),
        (&["--mode", "server"], &["sticky_cookie_to_service"]),
        (&["--mode", "gateway"], &["unsigned_sticky_cookie"]),
        (&[], &[]),
    ] {
        assert_eq!(
            warning_kinds(&validate_json(&sticky, args)),
            kinds,
            "{args:?}"
        );
    }
    let (client, bare, default) = (
        modes_file("sidecar-client.yaml"),
        modes_file("key-header.json"),
        modes_file("sidecar-default.yaml"),
    );
    check_runs(&[
        // The text names the place on the policy's line.
        Expect {
            stdout: &[
                "valid (release checkout); runs in sidecar CLIENT (spec.match[0].mode CLIENT, line ",
            ],
            ..command(&["validate", &client])
        },
        Expect {
            stdout: &["runs in an unknown place (a bare policy; give --mode"],
            ..command(&["validate", &bare])
        },
        command(&["validate", "-o", "json", &default, "--mode", "client"]),
        Expect {
            code: 2,
            ..command(&["validate", &sticky, "--mode", "sideways"])
        },
    ]);
}

/// Allow markers: printed, scoped to their document or file, and a marker that excuses
/// nothing or cannot be read is itself a warning.
#[test]
fn allow_markers_are_visible_and_scoped() {
    let file = modes_file("allow.yaml");
    let report = validate_json(&file, &[]);
    let allowed: Vec<(String, String)> = report["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["source"].as_str().unwrap().to_string(),
                a["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let owned = |s: &[(&str, &str)]| -> Vec<(String, String)> {
        s.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        allowed,
        owned(&[
            ("WasmPlugin shop/dial-a", "placeholder_url"),
            ("WasmPlugin shop/dial-a", "placeholder_sha256"),
            ("WasmPlugin shop/dial-b", "placeholder_url"),
        ]),
        "{report}"
    );
    assert_eq!(
        report["allowed"][1]["reason"],
        "`make oci` prints the digest to put here"
    );
    assert_eq!(
        report["allowed"][1]["marker"],
        json!({"file": file, "line": 3})
    );
    assert_eq!(warning_kinds(&report), ["placeholder_sha256"]);
    assert_eq!(report["warnings"][0]["source"], "WasmPlugin shop/dial-b");
    let bad = modes_file("allow-bad.yaml");
    let runs = check_runs(&[
        Expect {
            stdout: &["1 warning, 3 allowed"],
            ..command(&["validate", &file])
        },
        // Allowed warnings do not fail --strict; the one left does.
        Expect {
            code: 1,
            ..command(&["validate", "--strict", &file])
        },
        // Markers that excuse nothing, or cannot be read, are warnings.
        Expect {
            code: 1,
            ..command(&["validate", "--strict", &bad])
        },
        command(&["validate", &bad]),
    ]);
    assert!(
        runs[0].stdout.lines().any(|l| l
            .contains(": allowed: placeholder_sha256: WasmPlugin shop/dial-a")
            && l.ends_with(&format!(
                "-- allowed at {file}:3: `make oci` prints the digest to put here"
            ))),
        "{}",
        runs[0].stdout
    );

    // A JSON file's markers, beside it.
    let json_file = modes_file("allow-policy.json");
    let report = validate_json(&json_file, &["--strict"]);
    assert_eq!(report["exit_code"], 0, "{report}");
    assert_eq!(report["allowed"][0]["kind"], "allow_anyone");
    assert_eq!(
        report["allowed"][0]["marker"]["file"],
        format!("{json_file}.dial-validate")
    );

    // Markers that excuse nothing, or cannot be read.
    let report = validate_json(&bad, &[]);
    let lines: Vec<(String, u64)> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["kind"].as_str().unwrap().to_string(),
                w["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("unused_allow".to_string(), 1),
            ("bad_allow_marker".to_string(), 2),
            ("bad_allow_marker".to_string(), 3)
        ]
    );
    assert!(report["warnings"][1]["message"]
        .as_str()
        .unwrap()
        .contains("unknown warning kind `no_such_kind`"));
    assert!(report["warnings"][2]["message"]
        .as_str()
        .unwrap()
        .contains("reason"));
}

/// The table of deployment modes (docs/where-dial-runs.md, "What is safe where"), against
/// `dial validate`: for each row, a policy with that thing, run with `--mode` of each column; a
/// cell that says `warns `kind`` must give exactly that kind, a cell that says `fine` no warning.
#[test]
fn the_docs_mode_table_is_what_validate_does() {
    let page = std::fs::read_to_string(repo_root().join("docs/where-dial-runs.md")).unwrap();
    let section = page
        .split("\n## What is safe where\n")
        .nth(1)
        .expect("docs/where-dial-runs.md has a section \"What is safe where\"");
    let section = section.split("\n## ").next().unwrap();
    let rows: Vec<Vec<String>> = section
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let header = &rows[0];
    let modes: Vec<String> = header[1..]
        .iter()
        .map(|h| {
            h.split("`--mode ")
                .nth(1)
                .and_then(|r| r.split('`').next())
                .unwrap_or_else(|| panic!("column {h:?} names no --mode"))
                .to_string()
        })
        .collect();
    assert_eq!(modes, ["client", "server", "gateway", "standalone"]);
    // The policy that has each row's thing (and nothing else to warn about).
    let fixtures: &[(&str, &str)] = &[
        ("Key from a header", "key-header.json"),
        ("Key from a cookie", "key-cookie.json"),
        ("Key from baggage", "key-baggage.json"),
        ("Sticky cookie, with a `secret`", "sticky-signed.json"),
        ("Sticky cookie, no `secret`", "sticky-unsigned.json"),
        ("`override.token`, from the environment", "token-env.json"),
        ("`override.sourceCidrs`", "source-cidrs.json"),
        ("`override.allowAnyone: true`", "allow-anyone.json"),
        ("A secret written inline", "inline-token.json"),
        ("`failStrategy: FAIL_OPEN`", "sidecar-client.yaml"),
        ("A placeholder `sha256`", "placeholder-sha256.yaml"),
        ("A module `url` on an example host", "placeholder-url.yaml"),
        ("A ramp whose `start` is past", "ramp.json"),
        ("`lanes.follow`", "lanes-follow.json"),
    ];
    let body = &rows[2..];
    assert_eq!(body.len(), fixtures.len(), "rows: {body:?}");
    let mut checked = 0;
    for row in body {
        let (_, fixture) = fixtures
            .iter()
            .find(|(label, _)| row[0].starts_with(label))
            .unwrap_or_else(|| panic!("docs row {:?} has no fixture in this test", row[0]));
        assert_eq!(row.len(), modes.len() + 1, "{row:?}");
        for (mode, cell) in modes.iter().zip(&row[1..]) {
            let report = validate_json(&modes_file(fixture), &["--mode", mode]);
            let kinds = warning_kinds(&report);
            if cell.starts_with("fine") {
                assert_clean(&report, &format!("{} in {mode} ({fixture})", row[0]));
            } else if let Some(rest) = cell.strip_prefix("warns `") {
                let kind = rest.split('`').next().unwrap();
                assert!(
                    !kinds.is_empty() && kinds.iter().all(|k| k == kind),
                    "{} in {mode} ({fixture}): the docs say {kind}, validate says {kinds:?}",
                    row[0]
                );
            } else {
                panic!("docs cell {cell:?} neither says `fine` nor `warns `kind``");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, fixtures.len() * 4);
}

/// `dial` with `vars` added to its environment and the policy's own variables removed (the
/// CLI does not run where the proxy does).
fn dial_env(args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dial"));
    for var in [
        "DIAL_CHECKOUT_TOKEN",
        "DIAL_CHECKOUT_COOKIE_SECRET",
        "DIAL_CHECKOUT_COOKIE_SECRET_PREVIOUS",
    ] {
        command.env_remove(var);
    }
    let out = command
        .current_dir(repo_root())
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Secrets from the proxy's environment: `validate` accepts them unset, checks one that is set
/// here (naming it, not showing it), and `explain` says when a token cannot be checked here.
#[test]
fn secrets_from_the_environment_are_checked_where_they_are_set() {
    const POLICY: &str = "tests/data/checkout-secrets-from-env.json";
    let explain = [
        "explain",
        POLICY,
        "--host",
        HOST,
        "--path",
        PATH,
        "-H",
        "x-user-id: user-1",
        "-H",
        "x-dial-override: canary; token=token-from-the-env-01",
    ];
    check_runs(&[
        Expect {
            env: Some(&[]),
            ..command(&["validate", POLICY])
        },
        Expect {
            env: Some(&[("DIAL_CHECKOUT_TOKEN", "short-value")]),
            code: 1,
            stdout: &["$.releases[0].override.token.fromEnv: the token in the environment variable \"DIAL_CHECKOUT_TOKEN\" must be at least 16"],
            nowhere: &["short-value"],
            ..command(&["validate", POLICY])
        },
        Expect {
            env: Some(&[]),
            stdout: &[
                "note: the token comes from the proxy's environment variable DIAL_CHECKOUT_TOKEN, which is not set here",
                "ignored, not trusted",
            ],
            ..command(&explain)
        },
        Expect {
            env: Some(&[("DIAL_CHECKOUT_TOKEN", "token-from-the-env-01")]),
            stdout: &["honoured, the token matches"],
            nowhere: &["note: the token"],
            ..command(&explain)
        },
    ]);
}
