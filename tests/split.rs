//! Envoy end to end: weighted splits over 10,000 distinct users land within one percentage
//! point of the weights, and every user stays on the same subset.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::HashMap;

use support::{Backend, Client, Envoy, EnvoyConfig};

const USERS: usize = 10_000;

fn policy(subsets: &[(&str, u32)]) -> String {
    let subsets: Vec<String> = subsets
        .iter()
        .enumerate()
        .map(|(i, (name, w))| {
            format!(r#"{{ "name": "{name}", "version": "v{i}", "weight": {w} }}"#)
        })
        .collect();
    format!(
        r#"{{ "releases": [{{ "name": "checkout", "subsets": [{}],
              "key": [{{ "header": "x-user-id" }}], "whenNoKey": {{ "subset": "s0" }} }}] }}"#,
        subsets.join(", ")
    )
}

fn check_split(weights: &[u32]) {
    let names: Vec<String> = (0..weights.len()).map(|i| format!("s{i}")).collect();
    let backends: Vec<Backend> = names.iter().map(|n| Backend::start(n)).collect();
    let subsets: Vec<(&str, u32)> = names
        .iter()
        .map(String::as_str)
        .zip(weights.iter().copied())
        .collect();
    let routes: Vec<(&str, u16)> = names
        .iter()
        .map(String::as_str)
        .zip(backends.iter().map(|b| b.port))
        .collect();
    let envoy = Envoy::start(&EnvoyConfig::new(&policy(&subsets), &routes));

    let first = Client::new(envoy.port).backends_of_users("shop.example.com", "/", USERS);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for b in &first {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    let total: u32 = weights.iter().sum();
    for (name, w) in &subsets {
        let share = *counts.get(name).unwrap_or(&0) as f64 * 100.0 / USERS as f64;
        let want = f64::from(*w) * 100.0 / f64::from(total);
        assert!(
            (share - want).abs() <= 1.0,
            "{name}: {share:.2}% for a weight of {want}% ({counts:?})"
        );
    }
    // Each backend saw exactly the requests Dial sent it (nothing lost, nothing doubled).
    for b in &backends {
        assert_eq!(
            b.count() as usize,
            *counts.get(b.name.as_str()).unwrap_or(&0)
        );
    }

    // Every user, asked again (a new connection), lands on the same subset.
    let second = Client::new(envoy.port).backends_of_users("shop.example.com", "/", USERS);
    let moved = first.iter().zip(&second).filter(|(a, b)| a != b).count();
    assert_eq!(
        moved, 0,
        "{moved} users changed subset between two requests"
    );
}

#[test]
fn ninety_ten_split_of_ten_thousand_users() {
    check_split(&[90, 10]);
}

#[test]
fn three_way_fifty_thirty_twenty_split() {
    check_split(&[50, 30, 20]);
}
