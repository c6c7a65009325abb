//! Envoy end to end: the sticky cookie with and without its secret. Without one (the example
//! policy as is), a client can choose its sticky key: `dial-checkout=0000000000000001` is
//! honoured and lands on the canary, every time (the gap docs/security.md warns about). With
//! `stickyCookie.secret`, that forged value is replaced by a freshly minted, signed key, and the
//! request is assigned by the minted key; a cookie Dial signed is honoured as is; after a
//! rotation through an LDS reload (`secret` new, `previousSecret` the old one), a cookie signed
//! with the old secret keeps its key, hence its subset, and the response signs it again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use dial::core::secret::Secret;
use dial::core::sticky::{Signing, StickyCookie, KEY_LEN};
use serde_json::json;
use support::http::Response;
use support::policies::{checkout_with, Core, CHECKOUT, HOST, PATH};
use support::{free_port, Backend, Client, Envoy, EnvoyConfig};

const NAME: &str = "dial-checkout";
const MAX_AGE: u32 = 2_592_000;
/// A key a client can compute to land on the example's canary.
const FORGED: &str = "0000000000000001";
const OLD_SECRET: &str = "sticky-secret-one-0123456789";
const NEW_SECRET: &str = "sticky-secret-two-9876543210";

/// The example policy with its sticky cookie signed by `secret` (and still honouring `previous`).
fn signed_policy(secret: &str, previous: Option<&str>) -> String {
    let mut cookie = json!({ "name": NAME, "maxAgeSeconds": MAX_AGE, "secret": secret });
    if let Some(p) = previous {
        cookie["previousSecret"] = json!(p);
    }
    checkout_with(&[("whenNoKey", json!({ "stickyCookie": cookie }))])
}

/// Dial's own cookie code with the same settings: what a signed value must be.
fn cookie(secret: &str, previous: Option<&str>) -> StickyCookie {
    StickyCookie {
        name: NAME.into(),
        max_age_seconds: Some(MAX_AGE),
        path: "/".into(),
        secure: false,
        signing: Some(Signing {
            secret: Secret::inline(secret),
            previous: previous.map(Secret::inline),
        }),
    }
}

/// The cookie value a response sets, if any.
fn set_value(r: &Response) -> Option<String> {
    let sc = r.header("set-cookie")?;
    let value = sc.strip_prefix(&format!("{NAME}="))?.split(';').next()?;
    Some(value.to_string())
}

fn reason(r: &Response) -> &str {
    r.header("x-dial-assignment")
        .and_then(|a| a.rsplit("reason=").next())
        .unwrap_or("<none>")
}

/// The subset Dial's core gives an anonymous request carrying `cookie_value` under `policy`.
fn subset_by_core(policy: &str, cookie_value: &str) -> String {
    let core = Core::new(policy);
    let a = core
        .decide(&[
            (":authority", HOST),
            (":path", PATH),
            ("cookie", &format!("{NAME}={cookie_value}")),
        ])
        .unwrap();
    core.subset_name(&a).to_string()
}

#[test]
fn without_a_secret_a_client_chooses_its_sticky_key() {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let config = EnvoyConfig::new(
        CHECKOUT,
        &[("stable", stable.port), ("canary", canary.port)],
    );
    let envoy = Envoy::start(&config);
    let mut c = Client::new(envoy.port);
    assert_eq!(subset_by_core(CHECKOUT, FORGED), "canary");
    for _ in 0..20 {
        let r = c.get(HOST, PATH, &[("cookie", &format!("{NAME}={FORGED}"))]);
        assert_eq!((r.status, r.backend()), (200, "canary"));
        assert_eq!(reason(&r), "sticky_cookie");
        assert_eq!(r.header("set-cookie"), None, "the chosen key is kept");
    }
}

#[test]
fn a_secret_replaces_forged_keys_honours_signed_ones_and_survives_a_rotation() {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let first = signed_policy(OLD_SECRET, None);
    let mut config = EnvoyConfig::new(&first, &[("stable", stable.port), ("canary", canary.port)]);
    config.port = free_port();
    let (envoy, lds) = Envoy::start_lds(&config);
    let mut c = Client::new(envoy.port);
    let old = cookie(OLD_SECRET, None);

    // The forged key is replaced by a minted, signed one, and the request placed by it.
    let mut minted: Vec<(String, String)> = Vec::new();
    for _ in 0..40 {
        let r = c.get(HOST, PATH, &[("cookie", &format!("{NAME}={FORGED}"))]);
        assert_eq!(r.status, 200);
        assert_eq!(reason(&r), "sticky_cookie");
        let value = set_value(&r).expect("a new cookie for a forged key");
        let key: [u8; KEY_LEN] = value.as_bytes()[..KEY_LEN].try_into().unwrap();
        assert_ne!(&key[..], FORGED.as_bytes());
        let presented = old.read(value.as_bytes()).expect("signed with the secret");
        assert!(!presented.resign);
        assert_eq!(r.header("set-cookie"), Some(old.set_cookie(&key).as_str()));
        assert_eq!(r.backend(), subset_by_core(&first, &value), "{value}");
        minted.push((value, r.backend().to_string()));
    }
    // Had the forged key counted, all forty would be on the canary.
    assert!(
        minted.iter().any(|(_, b)| b == "stable"),
        "every forged request went to the canary: {minted:?}"
    );

    // A cookie Dial signed is honoured as is: same subset, no new cookie.
    for (value, backend) in &minted {
        let r = c.get(HOST, PATH, &[("cookie", &format!("{NAME}={value}"))]);
        assert_eq!((r.status, r.backend()), (200, backend.as_str()), "{value}");
        assert_eq!(reason(&r), "sticky_cookie");
        assert_eq!(r.header("set-cookie"), None, "{value}");
    }

    // Rotation: the new secret signs, the old one is still honoured, through an LDS reload.
    let rotated = signed_policy(NEW_SECRET, Some(OLD_SECRET));
    config.policy = rotated.clone();
    envoy.reload_lds(&lds, &config.lds_file(), true);
    let new = cookie(NEW_SECRET, Some(OLD_SECRET));
    let mut c = Client::new(envoy.port);
    for (value, backend) in &minted {
        let r = c.get(HOST, PATH, &[("cookie", &format!("{NAME}={value}"))]);
        assert_eq!((r.status, r.backend()), (200, backend.as_str()), "{value}");
        assert_eq!(reason(&r), "sticky_cookie");
        // Signed again: the same key, a new tag, exactly what the new secret gives.
        let resigned = set_value(&r).expect("an old cookie is signed again");
        let key: [u8; KEY_LEN] = value.as_bytes()[..KEY_LEN].try_into().unwrap();
        assert_eq!(resigned[..KEY_LEN], value[..KEY_LEN]);
        assert_ne!(resigned, *value);
        assert_eq!(resigned, new.value(&key));
        assert_eq!(r.header("set-cookie"), Some(new.set_cookie(&key).as_str()));
        // The re-signed cookie is honoured with no further Set-Cookie.
        let again = c.get(HOST, PATH, &[("cookie", &format!("{NAME}={resigned}"))]);
        assert_eq!(again.backend(), backend.as_str(), "{resigned}");
        assert_eq!(again.header("set-cookie"), None, "{resigned}");
        assert_eq!(subset_by_core(&rotated, &resigned), *backend);
    }
    // The forged key is still refused after the rotation.
    let r = c.get(HOST, PATH, &[("cookie", &format!("{NAME}={FORGED}"))]);
    let value = set_value(&r).expect("a new cookie for a forged key");
    assert!(new.read(value.as_bytes()).is_some_and(|p| !p.resign));
    assert!(envoy.vm_failures().is_empty(), "{:?}", envoy.vm_failures());
}
