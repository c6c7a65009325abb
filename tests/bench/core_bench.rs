//! The core decision path, natively: nanoseconds and heap allocations per request for the
//! realistic policy, a 10-id against a 10,000-id allowlist, the same with a ramp and a guard
//! active, and growth with rules and releases. Variants run interleaved, round after round.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Instant;

use dial::core::decide::{decide, Context, Decision, Reason};
use dial::core::policy::Policy;
use dial::core::request::{serialize, HeaderList, RequestView, SerializedHeaders};
use serde_json::{json, Value};

use crate::checks::Checks;
use crate::support::policies;
use crate::ALLOCATIONS;

/// The policy the proxy benchmark also runs (tests/data/bench.json: 2 releases, 5 rules,
/// hashed split, mirror), its allowlist made `allowlist` ids long, `extra_rules` header rules
/// that do not match put before its rules and `extra_releases` releases before it.
pub fn realistic_policy(allowlist: usize, extra_rules: usize, extra_releases: usize) -> String {
    let mut doc: Value = serde_json::from_str(policies::BENCH).unwrap();
    let releases = doc["releases"].as_array_mut().unwrap();
    let rules = releases[0]["rules"].as_array_mut().unwrap();
    let allowlist_rule = rules
        .iter_mut()
        .find(|r| r.get("users").is_some())
        .expect("an allowlist rule in tests/data/bench.json");
    allowlist_rule["users"] = (0..allowlist).map(|i| json!(format!("vip-{i}"))).collect();
    let flags = (0..extra_rules)
        .map(|i| json!({ "header": { "name": format!("x-flag-{i}"), "equals": "on" }, "subset": "canary" }));
    rules.splice(0..0, flags);
    let others = (0..extra_releases).map(|i| {
        json!({ "name": format!("other-{i}"), "match": { "pathPrefixes": [format!("/other-{i}/")] },
                "subsets": [{ "name": "a", "version": "v1", "weight": 1 }],
                "key": [{ "header": "x-user-id" }] })
    });
    releases.splice(0..0, others);
    doc.to_string()
}

/// When the benchmark's ramp starts: long past, so its last step (25%) is in force for the whole
/// run, and every run, with no step boundary near.
pub const RAMP_START: &str = "2026-01-01T00:00:00Z";

/// `policy` (the realistic one) with a ramp and a guard on the checkout release's canary: the
/// ramp starts at its written share (10%) for an hour, then holds at 25%; the guard watches its
/// error and slow rates against the stable subset's over 10 s. Neither trips nor ends during a
/// run (the benchmark checks both), so every request is decided at the ramp's 25% step.
pub fn with_ramp_and_guard(policy: &str) -> String {
    let mut doc: Value = serde_json::from_str(policy).unwrap();
    let checkout = &mut doc["releases"][0];
    assert_eq!(
        checkout["name"], "checkout",
        "tests/data/bench.json's first release"
    );
    checkout["ramp"] = json!({
        "subset": "canary", "start": RAMP_START,
        "steps": [ { "weight": 10, "hold": "1h" }, { "weight": 25 } ]
    });
    checkout["guard"] = json!({
        "subset": "canary", "fallback": "stable", "window": "10s", "minRequests": 20,
        "maxErrorRate": 0.05, "maxSlowRate": { "overMs": 800, "rate": 0.01 }
    });
    doc.to_string()
}

/// The lane secret of the benchmark's policies (inline: a benchmark, not a deployment).
pub const LANE_SECRET: &str = "bench-lane-secret-0123";

/// `policy` (the realistic one) with lanes on its checkout release: issued (`issue`), or
/// followed (no maximum age, so a member made once serves the whole run).
pub fn with_lanes(policy: &str, issue: bool) -> String {
    let mut doc: Value = serde_json::from_str(policy).unwrap();
    let checkout = &mut doc["releases"][0];
    assert_eq!(
        checkout["name"], "checkout",
        "tests/data/bench.json's first release"
    );
    checkout["lanes"] = if issue {
        json!({ "secret": LANE_SECRET, "issue": true, "maxAge": "1h" })
    } else {
        json!({ "secret": LANE_SECRET, "follow": true, "base": "stable" })
    };
    doc.to_string()
}

/// `policy` (the realistic one) with its checkout release bucketed by `bucketing` (a
/// `releases[].bucketing` object: Unleash's or flagd's scheme), everything else unchanged.
pub fn with_bucketing(policy: &str, bucketing: Value) -> String {
    let mut doc: Value = serde_json::from_str(policy).unwrap();
    let checkout = &mut doc["releases"][0];
    assert_eq!(
        checkout["name"], "checkout",
        "tests/data/bench.json's first release"
    );
    checkout["bucketing"] = bucketing;
    doc.to_string()
}

/// The bucketing schemes priced beside Dial's own (issue 13): (name in the table, bucketing).
fn schemes() -> Vec<(&'static str, Value)> {
    vec![
        (
            "unleash (groupId \"checkout\", rollout 90/10)",
            json!({ "scheme": "unleash", "groupId": "checkout" }),
        ),
        (
            "flagd (flagKey \"checkout\", version 2)",
            json!({ "scheme": "flagd", "flagKey": "checkout" }),
        ),
        (
            "flagd (flagKey \"checkout\", version 3: CBOR)",
            json!({ "scheme": "flagd", "flagKey": "checkout", "version": 3 }),
        ),
    ]
}

/// The time now, in nanoseconds since the epoch: what the filter reads from the host's clock.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A browser-like request of user `i`: a dozen headers, a few cookies.
pub fn request(i: usize) -> HeaderList {
    let user = format!("user-{i}");
    let cookie = format!("session=3f2a9c; theme=dark; uid={user}; consent=yes");
    HeaderList::from_strs(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "shop.example.com"),
        (":path", "/checkout/cart?step=2"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0",
        ),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "9b2f6c1e-6a1d-4c2e-9f0a-6d7b1c2e3f4a"),
        ("x-user-id", &user),
        ("cookie", &cookie),
    ])
}

/// A request as the filter reads it: the host's serialized header map, read in place.
struct Serialized(Vec<u8>);

impl Serialized {
    fn of(list: &HeaderList) -> Serialized {
        Serialized(serialize(
            list.pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())),
        ))
    }

    fn view(&self) -> View<'_> {
        View(SerializedHeaders::new(&self.0).unwrap())
    }
}

struct View<'a>(SerializedHeaders<'a>);

impl RequestView for View<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.header(name)
    }
    fn cookie_headers(&self) -> impl Iterator<Item = &[u8]> {
        self.0.cookie_headers()
    }
    fn source_ip(&self) -> Option<std::net::IpAddr> {
        None
    }
    fn entropy(&self) -> u64 {
        0
    }
}

/// What a variant's requests must be decided by, or its row measures something else.
#[derive(Clone, Copy)]
enum Expect {
    /// The weighted split, with users on both subsets.
    Hash,
    /// The allowlist rule, onto the canary.
    Allowlist,
}

struct Variant {
    name: String,
    policy: Policy,
    /// What the filter passes `decide` besides the request: the time matters to a ramp.
    context: Context,
    lists: Vec<HeaderList>,
    requests: Vec<Serialized>,
    expect: Expect,
    samples: Vec<f64>,
    allocations: u64,
}

impl Variant {
    fn new(name: &str, policy: &str, requests: Vec<HeaderList>, expect: Expect) -> Variant {
        Variant {
            name: name.to_string(),
            policy: Policy::parse(policy.as_bytes()).unwrap(),
            context: Context::default(),
            requests: requests.iter().map(Serialized::of).collect(),
            lists: requests,
            expect,
            samples: Vec::new(),
            allocations: 0,
        }
    }

    /// The same, decided at `now` (as the filter does, with the host's clock).
    fn at(self, now: u64) -> Variant {
        Variant {
            context: Context::at(now),
            ..self
        }
    }

    /// Every request is decided as the row says, and the same from the serialized header map
    /// (what is timed, as the filter reads it) as from the plain header list.
    fn check_decisions(&self, checks: &mut Checks) {
        let mut wrong = Vec::new();
        let mut subsets = std::collections::BTreeSet::new();
        for (list, serialized) in self.lists.iter().zip(&self.requests) {
            let from_map = decide(&self.policy, &self.context, &serialized.view());
            let from_list = decide(&self.policy, &self.context, list);
            let ok = match (from_map, self.expect) {
                _ if from_map != from_list => false,
                (Decision::Assign(a), Expect::Hash) => {
                    subsets.insert(a.subset);
                    a.reason == Reason::Hash
                }
                (Decision::Assign(a), Expect::Allowlist) => {
                    a.reason == Reason::Allowlist
                        && self.policy.releases[a.release].subsets[a.subset].name == "canary"
                }
                (Decision::Pass, _) => false,
            };
            if !ok {
                wrong.push(format!("{from_map:?} / {from_list:?}"));
            }
        }
        let (label, both) = match self.expect {
            Expect::Hash => ("the hash, users on both subsets", subsets.len() == 2),
            Expect::Allowlist => ("the allowlist, onto the canary", true),
        };
        checks.check(
            wrong.is_empty() && both,
            format!(
                "{}: {} of {} requests decided by {label}, alike from the serialized map and the header list{}",
                self.name,
                self.requests.len() - wrong.len(),
                self.requests.len(),
                wrong.first().map(|w| format!(" (first wrong: {w})")).unwrap_or_default()
            ),
        );
    }

    /// One timed round: every request once, `reps` times. Returns ns per decision.
    fn round(&mut self, reps: usize) {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut assigned = 0usize;
        for _ in 0..reps {
            for r in &self.requests {
                if let Decision::Assign(a) =
                    decide(&self.policy, black_box(&self.context), black_box(&r.view()))
                {
                    assigned += a.subset + 1;
                }
            }
        }
        let elapsed = start.elapsed().as_nanos() as f64;
        self.allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
        black_box(assigned);
        self.samples
            .push(elapsed / (reps * self.requests.len()) as f64);
    }

    fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        s[s.len() / 2]
    }

    /// The fastest round: other tenants of a shared machine only ever add time, so it is the
    /// estimate they disturb least (the median can move by half between two runs here).
    fn best(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn allocations_per_decision(&self) -> f64 {
        self.allocations as f64 / (self.samples.len() * self.requests.len()) as f64
    }
}

pub fn run(smoke: bool, checks: &mut Checks) -> String {
    let users = 1000;
    let hashed: Vec<HeaderList> = (0..users).map(request).collect();
    // Allowlisted users: the rule that matches is the allowlist (after 4 rules that do not).
    let vips: Vec<HeaderList> = (0..users)
        .map(|i| {
            let mut r = request(i);
            for (n, v) in r.pairs.iter_mut() {
                if n == "x-user-id" {
                    *v = format!("vip-{}", i % 10).into_bytes();
                }
            }
            r
        })
        .collect();

    let mut variants = vec![
        Variant::new(
            "realistic policy, hashed user (10,000-id allowlist)",
            &realistic_policy(10_000, 0, 0),
            hashed.clone(),
            Expect::Hash,
        ),
        Variant::new(
            "realistic policy, hashed user (10-id allowlist)",
            &realistic_policy(10, 0, 0),
            hashed.clone(),
            Expect::Hash,
        ),
        Variant::new(
            "realistic policy, allowlisted user (10,000-id allowlist)",
            &realistic_policy(10_000, 0, 0),
            vips.clone(),
            Expect::Allowlist,
        ),
        Variant::new(
            "realistic policy, allowlisted user (10-id allowlist)",
            &realistic_policy(10, 0, 0),
            vips,
            Expect::Allowlist,
        ),
        Variant::new(
            "realistic policy with a ramp (at its 25% step) and a guard, hashed user (10,000-id allowlist)",
            &with_ramp_and_guard(&realistic_policy(10_000, 0, 0)),
            hashed.clone(),
            Expect::Hash,
        )
        .at(now_nanos()),
        Variant::new(
            "+ 20 rules that do not match",
            &realistic_policy(10, 20, 0),
            hashed.clone(),
            Expect::Hash,
        ),
        Variant::new(
            "+ 100 rules that do not match",
            &realistic_policy(10, 100, 0),
            hashed.clone(),
            Expect::Hash,
        ),
        Variant::new(
            "+ 10 releases before it",
            &realistic_policy(10, 0, 10),
            hashed.clone(),
            Expect::Hash,
        ),
        Variant::new(
            "+ 50 releases before it",
            &realistic_policy(10, 0, 50),
            hashed.clone(),
            Expect::Hash,
        ),
    ];
    // The same policy and users as the first row, bucketed as Unleash or flagd would.
    let first_scheme = variants.len();
    for (name, bucketing) in schemes() {
        variants.push(Variant::new(
            &format!("realistic policy, bucketing {name}, hashed user (10,000-id allowlist)"),
            &with_bucketing(&realistic_policy(10_000, 0, 0), bucketing),
            hashed.clone(),
            Expect::Hash,
        ));
    }
    for v in &variants {
        v.check_decisions(checks);
    }
    let (rounds, reps) = if smoke { (3, 2) } else { (31, 50) };
    for v in variants.iter_mut() {
        v.round(1); // warm up
        v.samples.clear();
        v.allocations = 0;
    }
    for _ in 0..rounds {
        for v in variants.iter_mut() {
            v.round(reps);
        }
    }

    // The target says 0; allocation counts do not depend on the machine's load, so this is a
    // check, where the time targets are only reported.
    for v in &variants {
        checks.check(
            v.allocations == 0,
            format!(
                "{}: 0 heap allocations on the decision path ({} in {} decisions)",
                v.name,
                v.allocations,
                v.samples.len() * reps * v.requests.len()
            ),
        );
    }

    let base = variants[0].best();
    let mut out = format!(
        "## The core decision, natively\n\n`decide()` on browser-like requests (12 headers, 4 cookies) held as the host's serialized \
         header map, read in place as the filter reads it, 1,000 distinct users, {rounds} interleaved rounds. Target: ≤ 150 ns and 0 allocations; a \
         10,000-id allowlist ≤ 1.2× a 10-id one. The target is judged on the fastest round (noise on a shared machine only adds time; \
         the median of the same code has measured 139 and 208 ns in two runs an hour apart).\n\n\
         | Variant | ns / decision, fastest round | median round | × first row (fastest) | heap allocations / decision |\n|---|---:|---:|---:|---:|\n",
    );
    for v in &variants {
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.2} | {} |\n",
            v.name,
            v.best(),
            v.median(),
            v.best() / base,
            v.allocations_per_decision()
        ));
    }
    let ratio = variants[0].best() / variants[1].best();
    let vip_ratio = variants[2].best() / variants[3].best();
    let ramped = variants[4].best() / variants[0].best();
    out.push_str(&format!(
        "\n10,000-id vs 10-id allowlist: {ratio:.2}× for hashed users, {vip_ratio:.2}× for allowlisted users. \
         A ramp and a guard: {ramped:.2}× the first row (the step in force is found from the time \
         and the split is the ramp's; a guard adds a test of its tripped bit).\n"
    ));

    // Issue 13: the app-side flag schemes' hashes, against Dial's own split (the first row: the
    // same policy and users, `bucketing` aside). Reported, like the other time targets; their
    // allocations (0) are checked above.
    let (worst, worst_ratio) = variants[first_scheme..]
        .iter()
        .zip(schemes())
        .map(|(v, (name, _))| (name, v.best() / base))
        .fold(("", f64::NAN), |(n, r), (vn, vr)| {
            if r.is_nan() || vr > r {
                (vn, vr)
            } else {
                (n, r)
            }
        });
    let ratios: Vec<String> = variants[first_scheme..]
        .iter()
        .zip(schemes())
        .map(|(v, (name, _))| format!("{name} {:.2}×", v.best() / base))
        .collect();
    let scheme_allocations: u64 = variants[first_scheme..].iter().map(|v| v.allocations).sum();
    let mark = |ok: bool| if ok { "met" } else { "**missed**" };
    out.push_str(&format!(
        "\nPer-scheme decision cost (the checkout release's `bucketing`; the same policy and users \
         as the first row, Dial's own split): {}.\n\n\
         | Target | Measured | |\n|---|---:|---|\n\
         | Unleash and flagd decisions ≤ 1.2× Dial's (the worst: {worst}; fastest rounds) | {worst_ratio:.2}× | {} |\n\
         | No heap allocation with any scheme | {scheme_allocations} | {} |\n",
        ratios.join(", "),
        mark(worst_ratio <= 1.2),
        mark(scheme_allocations == 0),
    ));
    out
}
