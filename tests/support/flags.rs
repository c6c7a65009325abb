//! The official flag SDKs (tests/flags/): run with JSON in and out, one process per SDK
//! environment for a whole batch of cases, and Dial's core for the same keys. `make flag-sdks`
//! installs them (Python's into .venv, openfeature-flagd-core 2 into .venv/flagd-v3, Node's with
//! npm ci, flagd-testbed with cargo); a missing one is a loud failure naming that target, never a
//! skip.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use dial::core::decide::{decide, Context, Decision};
use dial::core::policy::Policy;
use dial::core::request::HeaderList;
use serde_json::{json, Value};

use super::repo_root;

/// The crate whose package carries flagd-testbed (the version `make flag-sdks` fetches).
pub const FLAGD_TESTBED_CRATE: &str = "open-feature-flagd-0.3.0";

pub fn flags_dir() -> PathBuf {
    repo_root().join("tests/flags")
}

/// `user-0` to `user-<n-1>`.
pub fn ascii_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i}")).collect()
}

/// Keys outside ASCII: Latin-1 letters (one UTF-16 unit below 0x100, two UTF-8 bytes), other
/// scripts (three UTF-8 bytes) and emoji (a UTF-16 surrogate pair, four UTF-8 bytes).
pub fn non_ascii_keys() -> Vec<String> {
    let words = [
        "é",
        "José",
        "Zoë",
        "naïve",
        "straße",
        "Ärger",
        "ça-va",
        "ñandú",
        "Øresund",
        "þorn",
        "用户",
        "ユーザー",
        "사용자",
        "Ωμέγα",
        "пользователь",
        "उपयोगकर्ता",
        "😀",
        "🚀-42",
        "user-🦀",
        "ß",
    ];
    words
        .iter()
        .flat_map(|w| [w.to_string(), format!("{w}-1"), format!("{w}-2")])
        .collect()
}

/// Whether every UTF-16 unit of `key` is below 0x100 (Latin-1).
pub fn is_latin1(key: &str) -> bool {
    key.chars().all(|c| (c as u32) < 0x100)
}

/// The bytes the Node SDKs hash for `key` where that is well defined: murmurhash3js (Node's
/// unleash-client) takes each UTF-16 unit's low byte; imurmurhash (JS flagd-core) takes Latin-1
/// units as one byte each (and mixes wider units in a way no byte string reproduces).
pub fn low_bytes(key: &str) -> Vec<u8> {
    key.encode_utf16().map(|u| (u & 0xff) as u8).collect()
}

/// What an SDK process answered: the installed versions, and per case id one answer per key.
#[derive(Debug)]
pub struct SdkAnswers {
    pub versions: BTreeMap<String, String>,
    pub answers: BTreeMap<String, Vec<Value>>,
}

fn run(label: &str, mut command: Command, request: &Value) -> SdkAnswers {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{label}: cannot start ({e}): run `make flag-sdks`"));
    let input = serde_json::to_vec(request).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{label} failed ({}): run `make flag-sdks` if an SDK is missing\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{label}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let versions = v["versions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let answers = v["answers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_array().unwrap().clone()))
        .collect();
    SdkAnswers { versions, answers }
}

/// A Python environment of the flag SDKs, and the requirements file it was installed from.
#[derive(Clone, Copy)]
pub enum PythonSdks {
    /// The project's venv (tests/flags/requirements.txt): Unleash, flagd versions 1 and 2.
    Main,
    /// .venv/flagd-v3 (tests/flags/requirements-flagd-v3.txt): openfeature-flagd-core 2, flagd
    /// version 3, which conflicts with the main venv's openfeature-flagd-core 1.
    FlagdV3,
}

impl PythonSdks {
    fn venv(self) -> PathBuf {
        match self {
            PythonSdks::Main => repo_root().join(".venv"),
            PythonSdks::FlagdV3 => repo_root().join(".venv/flagd-v3"),
        }
    }

    fn requirements(self) -> &'static str {
        match self {
            PythonSdks::Main => "requirements.txt",
            PythonSdks::FlagdV3 => "requirements-flagd-v3.txt",
        }
    }
}

/// The Python SDKs (tests/flags/sdk.py) in the project's venv.
pub fn python(keys: &[String], cases: &[Value]) -> SdkAnswers {
    python_in(PythonSdks::Main, keys, cases)
}

/// The same in the environment `sdks`.
pub fn python_in(sdks: PythonSdks, keys: &[String], cases: &[Value]) -> SdkAnswers {
    let python = sdks.venv().join("bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make flag-sdks`",
        python.display()
    );
    assert!(
        sdks.venv().join(".flag-sdks").exists(),
        "the Python flag SDKs of {} are not installed: run `make flag-sdks`",
        sdks.requirements()
    );
    let mut c = Command::new(python);
    c.arg(flags_dir().join("sdk.py"));
    let a = run(
        "the Python flag SDKs",
        c,
        &json!({ "keys": keys, "cases": cases }),
    );
    assert_pinned(&a.versions, &python_pins(sdks));
    a
}

/// The Node SDKs (tests/flags/sdk.mjs), from tests/flags/node_modules.
pub fn node(keys: &[String], cases: &[Value]) -> SdkAnswers {
    assert!(
        flags_dir().join("node_modules/.installed").exists(),
        "the Node flag SDKs are not installed: run `make flag-sdks`"
    );
    let mut c = Command::new("node");
    c.arg(flags_dir().join("sdk.mjs"));
    let a = run(
        "the Node flag SDKs",
        c,
        &json!({ "keys": keys, "cases": cases }),
    );
    assert_pinned(&a.versions, &node_pins());
    a
}

/// `name==version` lines of the requirements file of `sdks`.
pub fn python_pins(sdks: PythonSdks) -> BTreeMap<String, String> {
    std::fs::read_to_string(flags_dir().join(sdks.requirements()))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once("=="))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The dependencies of tests/flags/package.json (`npm:<name>@<version>` aliases included).
pub fn node_pins() -> BTreeMap<String, String> {
    let p: Value =
        serde_json::from_str(&std::fs::read_to_string(flags_dir().join("package.json")).unwrap())
            .unwrap();
    p["dependencies"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, v)| {
            let v = v.as_str().unwrap();
            let v = v.rsplit_once('@').map_or(v, |(_, version)| version);
            (n.clone(), v.to_string())
        })
        .collect()
}

/// Every package the SDK process reports that is pinned must be at its pinned version.
fn assert_pinned(installed: &BTreeMap<String, String>, pins: &BTreeMap<String, String>) {
    for (name, version) in installed {
        if let Some(pin) = pins.get(name) {
            assert_eq!(
                version, pin,
                "{name} {version} is installed, {pin} is pinned: run `make flag-sdks`"
            );
        }
    }
}

/// flagd-testbed as the crate `FLAGD_TESTBED_CRATE` ships it, in cargo's registry cache.
pub fn flagd_testbed() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    std::fs::read_dir(cargo_home.join("registry/src"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|registry| registry.path().join(FLAGD_TESTBED_CRATE).join("flagd-testbed"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!("flagd-testbed ({FLAGD_TESTBED_CRATE}) is not in cargo's cache: run `make flag-sdks`")
        })
}

/// A one-release policy: `subsets` (name, weight) in order, key from `x-user-id`, bucketed by
/// `bucketing`.
pub fn policy(bucketing: Value, subsets: &[(&str, u32)]) -> String {
    let subsets: Vec<Value> = subsets
        .iter()
        .enumerate()
        .map(|(i, (name, weight))| json!({ "name": name, "version": format!("v{i}"), "weight": weight }))
        .collect();
    json!({ "releases": [ {
        "name": "flags",
        "subsets": subsets,
        "key": [ { "header": "x-user-id" } ],
        "bucketing": bucketing,
    } ] })
    .to_string()
}

/// Dial's core for one policy, for keys given as bytes (the header's value as sent).
pub struct DialCore {
    pub policy: Policy,
}

impl DialCore {
    pub fn new(policy: &str) -> DialCore {
        DialCore {
            policy: Policy::parse(policy.as_bytes())
                .unwrap_or_else(|e| panic!("policy rejected: {e:?}\n{policy}")),
        }
    }

    /// The subset name for a request with `key` in `x-user-id` (or no key at all).
    pub fn subset(&self, key: Option<&[u8]>) -> String {
        let mut pairs = vec![
            (":method".to_string(), b"GET".to_vec()),
            (":path".to_string(), b"/".to_vec()),
        ];
        if let Some(k) = key {
            pairs.push(("x-user-id".to_string(), k.to_vec()));
        }
        match decide(&self.policy, &Context::default(), &HeaderList::new(pairs)) {
            Decision::Assign(a) => self.policy.releases[a.release].subsets[a.subset]
                .name
                .clone(),
            Decision::Pass => panic!("no release applies"),
        }
    }

    /// The subset name for `key` (`x-user-id`), the request built as the core's tests build it.
    pub fn subset_of(&self, key: &str) -> String {
        let request =
            HeaderList::from_strs(&[(":method", "GET"), (":path", "/"), ("x-user-id", key)]);
        match decide(&self.policy, &Context::default(), &request) {
            Decision::Assign(a) => self.policy.releases[a.release].subsets[a.subset]
                .name
                .clone(),
            Decision::Pass => panic!("no release applies"),
        }
    }
}
