//! Envoy end to end, both builds: the override token and the sticky cookie's secrets come from
//! environment variables of the Envoy process (the Wasm VM gets them through
//! `vm_config.environment_variables.host_env_keys`, the native module reads the process's). The
//! token works, the cookie is signed with the variable's value, neither `/config_dump` nor the
//! log (at debug level) holds a value, a missing variable refuses the policy by its name, and a
//! rotation through the environment alone (same policy, restarted Envoy) keeps every cookie's
//! key and signs it again with the new secret.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use dial::core::secret::Secret;
use dial::core::sticky::{Signing, StickyCookie, KEY_LEN};
use support::http::Response;
use support::policies::{HOST, PATH};
use support::{for_each_build, free_port, Backend, Build, Client, Envoy, EnvoyConfig};

for_each_build!(
    secrets_from_the_environment_work_and_show_nowhere,
    a_missing_variable_refuses_the_policy_by_name,
);

/// The policy: every secret named by a variable, nothing secret in the text.
const POLICY: &str = include_str!("data/checkout-secrets-from-env.json");
const TOKEN_VAR: &str = "DIAL_CHECKOUT_TOKEN";
const SECRET_VAR: &str = "DIAL_CHECKOUT_COOKIE_SECRET";
const PREVIOUS_VAR: &str = "DIAL_CHECKOUT_COOKIE_SECRET_PREVIOUS";

const TOKEN: &str = "env-token-7c1f0e9a2b";
/// Three generations of the cookie secret: before the first start, in force, after rotation.
const OLDEST: &str = "env-cookie-secret-0-4d2a91";
const CURRENT: &str = "env-cookie-secret-1-8e5b37";
const NEXT: &str = "env-cookie-secret-2-f06c12";
const COOKIE: &str = "dial-checkout";

fn env(token: &str, secret: &str, previous: &str) -> Vec<(String, String)> {
    [
        (TOKEN_VAR, token),
        (SECRET_VAR, secret),
        (PREVIOUS_VAR, previous),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Dial's own cookie code with these secrets: what a signed value must be.
fn cookie(secret: &str, previous: &str) -> StickyCookie {
    StickyCookie {
        name: COOKIE.into(),
        max_age_seconds: Some(2_592_000),
        path: "/".into(),
        secure: false,
        signing: Some(Signing {
            secret: Secret::inline(secret),
            previous: Some(Secret::inline(previous)),
        }),
    }
}

fn set_value(r: &Response) -> Option<String> {
    let sc = r.header("set-cookie")?;
    let value = sc.strip_prefix(&format!("{COOKIE}="))?.split(';').next()?;
    Some(value.to_string())
}

fn reason(r: &Response) -> &str {
    r.header("x-dial-assignment")
        .and_then(|a| a.rsplit("reason=").next())
        .unwrap_or("<none>")
}

/// Envoy with the policy and `vars` on its process, its whole log at debug level except the
/// two components that print each request's headers (a client's own token would be there),
/// and the file watcher, which would log each write to the log (it is in the watched directory).
fn start(build: Build, backends: &[(&str, u16)], vars: Vec<(String, String)>) -> Envoy {
    let mut config = EnvoyConfig::for_build(build, POLICY, backends);
    config.port = free_port();
    config.host_env = vars;
    let (envoy, _) = Envoy::start_lds_with(
        &config,
        1,
        &[
            "--log-level",
            "debug",
            "--component-log-level",
            "http:info,router:info,file:info",
        ],
    );
    envoy
}

/// Neither the admin API's configuration dump nor any log line holds a secret value; the dump
/// does hold the policy (it names the variables).
fn assert_nowhere(envoy: &Envoy, values: &[&str]) {
    let dump = envoy
        .admin_get("/config_dump")
        .expect("/config_dump answers");
    assert!(
        dump.contains(TOKEN_VAR) && dump.contains(SECRET_VAR),
        "the dump lacks the policy"
    );
    let log = envoy.log();
    assert!(log.contains("dial: policy loaded"), "{log}");
    assert!(
        log.lines().any(|l| l.contains("[debug]")),
        "not a debug log"
    );
    for value in values {
        assert!(!dump.contains(value), "a secret value is in /config_dump");
        let leaks: Vec<&str> = log.lines().filter(|l| l.contains(value)).collect();
        assert!(leaks.is_empty(), "a secret value is in the log: {leaks:?}");
    }
}

fn secrets_from_the_environment_work_and_show_nowhere(build: Build) {
    let stable = Backend::start("stable");
    let canary = Backend::start("canary");
    let backends = [("stable", stable.port), ("canary", canary.port)];
    let envoy = start(build, &backends, env(TOKEN, CURRENT, OLDEST));
    let mut c = Client::new(envoy.port);

    // The token from the environment forces the canary; a wrong one or none does not.
    let mut without = Vec::new();
    for i in 0..30 {
        let user = format!("user-{i}");
        let with = format!("canary; token={TOKEN}");
        let r = c.get(
            HOST,
            PATH,
            &[("x-user-id", &user), ("x-dial-override", &with)],
        );
        assert_eq!(
            (r.status, r.backend(), reason(&r)),
            (200, "canary", "override"),
            "{user}"
        );
        for offered in ["canary", "canary; token=env-token-wrong-0000"] {
            let r = c.get(
                HOST,
                PATH,
                &[("x-user-id", &user), ("x-dial-override", offered)],
            );
            assert_eq!(r.status, 200);
            assert_ne!(reason(&r), "override", "{user} {offered}");
            without.push(r.backend().to_string());
        }
    }
    assert!(without.iter().any(|b| b == "stable"), "{without:?}");

    // An anonymous visitor gets a cookie signed with the variable's value.
    let signer = cookie(CURRENT, OLDEST);
    let mut minted = Vec::new();
    for _ in 0..30 {
        let r = c.get(HOST, PATH, &[]);
        assert_eq!((r.status, reason(&r)), (200, "sticky_cookie"));
        let value = set_value(&r).expect("a minted cookie");
        let key: [u8; KEY_LEN] = value.as_bytes()[..KEY_LEN].try_into().unwrap();
        assert_eq!(
            value,
            signer.value(&key),
            "signed with {SECRET_VAR}'s value"
        );
        // Honoured as is.
        let again = c.get(HOST, PATH, &[("cookie", &format!("{COOKIE}={value}"))]);
        assert_eq!(again.backend(), r.backend());
        assert_eq!(again.header("set-cookie"), None);
        minted.push((value, r.backend().to_string()));
    }
    assert!(minted.iter().any(|(_, b)| b == "stable"));
    // One signed with the previous variable's value is signed again with the current one.
    let key = *b"0123456789abcdef";
    let old = cookie(OLDEST, "unused-previous-000000").value(&key);
    let r = c.get(HOST, PATH, &[("cookie", &format!("{COOKIE}={old}"))]);
    assert_eq!(set_value(&r), Some(signer.value(&key)));

    assert_nowhere(&envoy, &[TOKEN, CURRENT, OLDEST]);
    assert_eq!(envoy.vm_failures(), Vec::<String>::new());
    drop(envoy);

    // Rotation through the environment: the same policy, Envoy restarted with the new secret
    // in SECRET_VAR and the one it replaces in PREVIOUS_VAR.
    let envoy = start(build, &backends, env(TOKEN, NEXT, CURRENT));
    let mut c = Client::new(envoy.port);
    let rotated = cookie(NEXT, CURRENT);
    for (value, backend) in &minted {
        let r = c.get(HOST, PATH, &[("cookie", &format!("{COOKIE}={value}"))]);
        assert_eq!(
            (r.status, r.backend(), reason(&r)),
            (200, backend.as_str(), "sticky_cookie")
        );
        let key: [u8; KEY_LEN] = value.as_bytes()[..KEY_LEN].try_into().unwrap();
        let resigned = set_value(&r).expect("signed again with the new secret");
        assert_eq!(
            resigned,
            rotated.value(&key),
            "the same key, the new secret's tag"
        );
        let again = c.get(HOST, PATH, &[("cookie", &format!("{COOKIE}={resigned}"))]);
        assert_eq!(again.backend(), backend.as_str());
        assert_eq!(again.header("set-cookie"), None);
    }
    // The secret now two generations old is no longer honoured: its cookie is replaced.
    let r = c.get(HOST, PATH, &[("cookie", &format!("{COOKIE}={old}"))]);
    let fresh = set_value(&r).expect("a new cookie");
    assert_ne!(fresh[..KEY_LEN], old[..KEY_LEN]);
    assert!(rotated.read(fresh.as_bytes()).is_some_and(|p| !p.resign));
    assert_nowhere(&envoy, &[TOKEN, CURRENT, NEXT]);
    assert_eq!(envoy.vm_failures(), Vec::<String>::new());
}

fn a_missing_variable_refuses_the_policy_by_name(build: Build) {
    let stable = Backend::start("stable");
    let mut config = EnvoyConfig::for_build(build, POLICY, &[("stable", stable.port)]);
    // The token's variable is not set; the cookie's are.
    config.host_env = env(TOKEN, CURRENT, OLDEST)
        .into_iter()
        .filter(|(k, _)| k != TOKEN_VAR)
        .collect();
    let (status, log) = Envoy::start_expecting_failure(&config);
    assert!(!status.success(), "Envoy started without {TOKEN_VAR}");
    assert!(
        log.lines().any(|l| l.contains(
            "dial: policy rejected (1 problem): $.releases[0].override.token.fromEnv: the environment variable \"DIAL_CHECKOUT_TOKEN\" is not set where the proxy runs"
        )),
        "{log}"
    );
    assert!(log.contains(build.refusal()), "{log}");
    for value in [CURRENT, OLDEST] {
        assert!(!log.contains(value), "a secret value is in the log:\n{log}");
    }
}
