//! Property tests of the core's invariants, over weights, keys and schedules proptest makes up
//! (a bounded number of cases each, so the file runs in a second or two):
//!
//! - raising the last subset's weight, or any re-weighting that does not lower its share, moves
//!   no user out of it (the split alone, and whole policies through `decide`);
//! - the same key always gets the same subset: twice, under two parses of the policy, over the
//!   serialized header map, whatever else the request carries, from a header or a cookie;
//! - releases are independent: a release's assignments depend on its own definition only
//!   (other releases changed, added, removed or reordered change none), and its split is salted
//!   with its own name;
//! - ramps: for any weights and any non-decreasing steps, advancing the ramp moves users only
//!   into the ramped subset (`ramp::pick` with `ramp::taken_ppm`, and whole policies over time).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dial::core::bucket;
use dial::core::decide::{decide, Context, Decision};
use dial::core::policy::Policy;
use dial::core::ramp::{self, PPM};
use dial::core::request::{serialize, HeaderList, SerializedHeaders, SerializedRequest};
use proptest::prelude::*;
use serde_json::{json, Value};

const CASES: u32 = 64;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn cumulative(weights: &[u32]) -> Vec<u32> {
    weights
        .iter()
        .scan(0u32, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect()
}

/// 2 to 16 weights with a positive total.
fn weights() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0u32..=5_000, 2..=16)
        .prop_filter("a positive total", |w| w.iter().sum::<u32>() > 0)
}

/// Hash positions: arbitrary ones and the ends of the range.
fn positions() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(any::<u32>(), 200).prop_map(|mut p| {
        p.extend([0, 1, u32::MAX - 1, u32::MAX, 1 << 31]);
        p
    })
}

/// User keys as a header carries them.
fn keys() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[A-Za-z0-9._-]{1,40}", 1..40)
}

fn subsets(weights: &[u32]) -> Vec<Value> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({ "name": format!("s{i}"), "version": format!("v{i}"), "weight": w }))
        .collect()
}

fn release(name: &str, prefix: &str, weights: &[u32]) -> Value {
    json!({
        "name": name,
        "match": { "pathPrefixes": [prefix] },
        "subsets": subsets(weights),
        "key": [ { "header": "x-user-id" }, { "cookie": "uid" } ],
    })
}

fn policy(releases: Vec<Value>) -> Policy {
    let text = json!({ "releases": releases }).to_string();
    Policy::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn keyed(path: &str, key: &str) -> HeaderList {
    HeaderList::from_strs(&[(":path", path), ("x-user-id", key)])
}

/// The (release, subset) a request is assigned to.
fn placed(policy: &Policy, context: &Context, request: &HeaderList) -> Option<(usize, usize)> {
    match decide(policy, context, request) {
        Decision::Assign(a) => Some((a.release, a.subset)),
        Decision::Pass => None,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn raising_the_last_weight_moves_nobody_out_of_it(
        before in weights(),
        raise in 1u32..=100_000,
        positions in positions(),
        keys in keys(),
    ) {
        let mut after = before.clone();
        *after.last_mut().unwrap() += raise;
        let last = before.len() - 1;
        let (b, a) = (cumulative(&before), cumulative(&after));
        for p in positions {
            if bucket::pick(p, &b) == Some(last) {
                prop_assert_eq!(bucket::pick(p, &a), Some(last), "position {}", p);
            }
        }
        let (pb, pa) = (
            policy(vec![release("r", "/", &before)]),
            policy(vec![release("r", "/", &after)]),
        );
        for k in &keys {
            let request = keyed("/", k);
            if placed(&pb, &Context::default(), &request) == Some((0, last)) {
                prop_assert_eq!(placed(&pa, &Context::default(), &request), Some((0, last)), "key {}", k);
            }
        }
    }

    /// Any new weights (the same subsets) that do not lower the last subset's share.
    #[test]
    fn no_reweighting_that_keeps_the_last_share_moves_anyone_out_of_it(
        (before, after) in (2usize..=16).prop_flat_map(|n| (
            prop::collection::vec(0u32..=5_000, n),
            prop::collection::vec(0u32..=5_000, n),
        )),
        positions in positions(),
    ) {
        let (tb, ta) = (before.iter().sum::<u32>(), after.iter().sum::<u32>());
        prop_assume!(tb > 0 && ta > 0);
        let last = before.len() - 1;
        // last / total does not fall: after[last] * tb >= before[last] * ta.
        prop_assume!(u64::from(after[last]) * u64::from(tb) >= u64::from(before[last]) * u64::from(ta));
        let (b, a) = (cumulative(&before), cumulative(&after));
        for p in positions {
            if bucket::pick(p, &b) == Some(last) {
                prop_assert_eq!(bucket::pick(p, &a), Some(last), "position {}", p);
            }
        }
    }

    #[test]
    fn the_same_key_always_gets_the_same_subset(
        weights in weights(),
        keys in keys(),
        raw_key in prop::collection::vec(any::<u8>(), 1..=64),
        entropy in any::<u64>(),
        now in any::<u64>(),
    ) {
        let text = || vec![release("r", "/", &weights)];
        let (one, two) = (policy(text()), policy(text()));
        let mut all: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        all.push(raw_key);
        for k in &all {
            let base = HeaderList::new(vec![
                (":path".into(), b"/x".to_vec()),
                ("x-user-id".into(), k.clone()),
            ]);
            let first = placed(&one, &Context::default(), &base);
            prop_assert!(first.is_some());
            // Twice, and under another parse of the same policy (another proxy).
            prop_assert_eq!(placed(&one, &Context::default(), &base), first);
            prop_assert_eq!(placed(&two, &Context::default(), &base), first);
            // Whatever else the request carries, whenever it comes, wherever from.
            let mut busy = base.clone();
            busy.pairs.insert(0, ("user-agent".into(), b"curl".to_vec()));
            busy.pairs.push(("cookie".into(), b"session=1".to_vec()));
            busy.pairs.push(("x-user-id".into(), b"someone-else".to_vec()));
            busy.entropy = entropy;
            busy.source_ip = Some([192, 0, 2, 7].into());
            let context = Context { now_nanos: Some(now), tripped: u64::MAX };
            prop_assert_eq!(placed(&one, &context, &busy), first);
            // Over the serialized map the host hands over.
            let buf = serialize(busy.pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())));
            let serialized = SerializedRequest {
                headers: SerializedHeaders::new(&buf).unwrap(),
                source_ip: || None,
            };
            let over_map = match decide(&one, &context, &serialized) {
                Decision::Assign(a) => Some((a.release, a.subset)),
                Decision::Pass => None,
            };
            prop_assert_eq!(over_map, first);
        }
        // From the cookie the same key is in, when no header has it.
        for k in &keys {
            let by_header = placed(&one, &Context::default(), &keyed("/", k));
            let cookie = format!("a=1; uid={k}");
            let by_cookie = HeaderList::from_strs(&[(":path", "/"), ("cookie", &cookie)]);
            prop_assert_eq!(placed(&one, &Context::default(), &by_cookie), by_header);
        }
    }

    #[test]
    fn releases_are_independent(
        mine in weights(),
        other in weights(),
        changed in weights(),
        keys in keys(),
        name in "[a-z][a-z0-9-]{0,20}",
    ) {
        prop_assume!(name != "mine");
        let me = release("mine", "/mine", &mine);
        let base = policy(vec![release(&name, "/other", &other), me.clone()]);
        let variants = [
            // Another release re-weighted, renamed, moved after, added, or gone.
            policy(vec![release(&name, "/other", &changed), me.clone()]),
            policy(vec![release("renamed", "/other", &other), me.clone()]),
            policy(vec![me.clone(), release(&name, "/other", &other)]),
            policy(vec![release(&name, "/other", &other), release("third", "/third", &changed), me.clone()]),
            policy(vec![me.clone()]),
        ];
        let salted = bucket::Salted::new(b"mine");
        let cum = cumulative(&mine);
        for k in &keys {
            let request = keyed("/mine/page", k);
            let Decision::Assign(a) = decide(&base, &Context::default(), &request) else {
                panic!("/mine is in scope");
            };
            prop_assert_eq!(&base.releases[a.release].name, "mine");
            // Salted with its own name: murmur3("mine:<key>") alone places the key.
            let position = bucket::position(b"mine", k.as_bytes());
            prop_assert_eq!(salted.position(k.as_bytes()), position);
            prop_assert_eq!(a.position, Some(position));
            prop_assert_eq!(Some(a.subset), bucket::pick(position, &cum));
            for v in &variants {
                let Decision::Assign(b) = decide(v, &Context::default(), &request) else {
                    panic!("/mine is in scope");
                };
                prop_assert_eq!(&v.releases[b.release].name, "mine");
                prop_assert_eq!((b.subset, b.position), (a.subset, a.position), "key {}", k);
            }
        }
    }

    #[test]
    fn advancing_a_ramp_moves_users_only_into_the_ramped_subset(
        (weights, ramped) in weights().prop_flat_map(|w| {
            let n = w.len();
            (Just(w), 0..n)
        }),
        raw_steps in prop::collection::vec(0u32..=PPM, 1..8),
        positions in positions(),
    ) {
        let total: u32 = weights.iter().sum();
        prop_assume!(weights[ramped] < total);
        // Non-decreasing steps from the written share up to 100%.
        let written = (u64::from(weights[ramped]) * u64::from(PPM)).div_ceil(u64::from(total)) as u32;
        let mut steps: Vec<u32> = raw_steps.iter().map(|s| s.max(&written).to_owned()).collect();
        steps.sort_unstable();
        let fractions: Vec<u32> = steps
            .iter()
            .map(|s| ramp::taken_ppm(*s, weights[ramped], total))
            .collect();
        prop_assert!(fractions.windows(2).all(|f| f[0] <= f[1]), "{:?}", fractions);
        let cum = cumulative(&weights);
        for p in positions {
            // Before the ramp: the written split.
            let mut previous = bucket::pick(p, &cum);
            prop_assert_eq!(ramp::pick(p, &cum, ramped, 0), previous);
            for f in &fractions {
                let now = ramp::pick(p, &cum, ramped, *f);
                prop_assert!(
                    now == previous || now == Some(ramped),
                    "{:?} ramping {} at {}: position {} moved {:?} -> {:?}",
                    weights, ramped, f, p, previous, now
                );
                if previous == Some(ramped) {
                    prop_assert_eq!(now, Some(ramped));
                }
                previous = now;
            }
        }
    }

    /// The same through whole policies: the ramp's steps as written (whole percentages), decided
    /// at a time inside each step.
    #[test]
    fn a_policy_ramp_moves_users_only_into_the_ramped_subset(
        (weights, ramped) in prop::collection::vec(0u32..=50, 2..=8)
            .prop_filter("a positive total", |w| w.iter().sum::<u32>() > 0)
            .prop_flat_map(|w| { let n = w.len(); (Just(w), 0..n) }),
        raw_steps in prop::collection::vec(0u32..=100, 1..6),
        keys in keys(),
    ) {
        let total: u32 = weights.iter().sum();
        prop_assume!(weights[ramped] < total);
        let written = (weights[ramped] * 100).div_ceil(total);
        let mut steps: Vec<u32> = raw_steps.iter().map(|s| (*s).max(written)).collect();
        steps.sort_unstable();
        let n = steps.len();
        let steps_json: Vec<Value> = steps
            .iter()
            .enumerate()
            .map(|(i, w)| if i + 1 < n { json!({ "weight": w, "hold": "1h" }) } else { json!({ "weight": w }) })
            .collect();
        let mut r = release("r", "/", &weights);
        r["ramp"] = json!({ "subset": format!("s{ramped}"), "start": "2026-12-01T09:00:00Z", "steps": steps_json });
        let p = policy(vec![r]);
        const START: u64 = 1_796_115_600_000_000_000;
        const HOUR: u64 = 3_600_000_000_000;
        let times: Vec<u64> = std::iter::once(START - 1)
            .chain((0..n as u64).map(|i| START + i * HOUR + 1))
            .collect();
        for k in &keys {
            let request = keyed("/", k);
            let mut previous = None;
            for t in &times {
                let now = placed(&p, &Context::at(*t), &request).map(|(_, s)| s);
                if let Some(before) = previous {
                    prop_assert!(
                        now == Some(before) || now == Some(ramped),
                        "{:?} ramping s{} by {:?}: key {} moved s{} -> {:?}", weights, ramped, steps, k, before, now
                    );
                }
                previous = now;
            }
        }
    }
}
