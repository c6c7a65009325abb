//! The policies requests are decided against: the project's own (tests/data/) and two more
//! that together use every part of a policy (custom header names, host wildcards, path
//! prefixes, every rule kind, a ramp, a guard, a mirror, signed and bare sticky cookies, an
//! override by token, by address range and for anyone, keys from baggage, and the Unleash and
//! flagd bucketing schemes). Parsed once per process.

use std::sync::OnceLock;

use dial::core::exchange::Engine;

pub const POLICIES: [(&str, &str); 5] = [
    ("checkout", include_str!("../../data/checkout.json")),
    ("bench", include_str!("../../data/bench.json")),
    ("progressive", include_str!("../policies/progressive.json")),
    ("open", include_str!("../policies/open.json")),
    ("schemes", include_str!("../policies/schemes.json")),
];

/// The override token of checkout.json and progressive.json.
pub const TOKEN: &str = "qa-token-0123456789";

pub fn engines() -> &'static [Engine] {
    static ENGINES: OnceLock<Vec<Engine>> = OnceLock::new();
    ENGINES.get_or_init(|| {
        POLICIES
            .iter()
            .map(|(name, text)| match Engine::from_config(text.as_bytes()) {
                Ok(engine) => engine,
                Err(e) => panic!("fixture policy {name} is rejected: {e}"),
            })
            .collect()
    })
}
