//! The policy's secrets (the override token, the sticky cookie's signing secrets): written
//! inline, or named by a variable of the proxy's environment (`{"fromEnv": "NAME"}`) and read
//! when the policy loads, so that the value sits in neither the policy resource nor Envoy's
//! `/config_dump`. The core never reads an environment: each caller of the parser passes one.

use std::fmt;

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`, at most this long.
pub const MAX_VARIABLE_LEN: usize = 128;

/// Reads one variable of an environment: `None` when it is not set (or not UTF-8).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where `{"fromEnv": ...}` secrets are read while a policy is parsed.
#[derive(Clone, Copy)]
pub struct Environment<'a> {
    lookup: Lookup<'a>,
    proxy: bool,
}

impl<'a> Environment<'a> {
    /// The proxy's own (each binding's): a variable it lacks rejects the policy.
    pub fn proxy(lookup: Lookup<'a>) -> Environment<'a> {
        Environment {
            lookup,
            proxy: true,
        }
    }

    /// One away from the proxy (the CLI's): a variable set here is read and checked, one that
    /// is not leaves its secret unresolved (the proxy checks it when it loads the policy).
    pub fn elsewhere(lookup: Lookup<'a>) -> Environment<'a> {
        Environment {
            lookup,
            proxy: false,
        }
    }

    pub fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// Whether an unset variable rejects the policy.
    pub fn is_proxy(&self) -> bool {
        self.proxy
    }
}

impl Environment<'static> {
    /// A proxy with no variables at all: a policy naming one is rejected.
    pub fn none() -> Environment<'static> {
        Environment::proxy(&unset)
    }
}

fn unset(_: &str) -> Option<String> {
    None
}

/// `[A-Za-z_][A-Za-z0-9_]*`, 1 to `MAX_VARIABLE_LEN` bytes: what a shell, Kubernetes and
/// Envoy's `host_env_keys` all accept.
pub fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_VARIABLE_LEN
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A secret in force. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// `None` only away from the proxy, for a variable not set there: it matches and signs
    /// nothing.
    value: Option<String>,
    /// The environment variable it came from.
    variable: Option<String>,
}

impl Secret {
    pub fn inline(value: impl Into<String>) -> Secret {
        Secret {
            value: Some(value.into()),
            variable: None,
        }
    }

    pub fn from_env(variable: impl Into<String>, value: Option<String>) -> Secret {
        Secret {
            value,
            variable: Some(variable.into()),
        }
    }

    /// The value; `None` when its variable was not set where the policy was parsed (only
    /// outside the proxy).
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The environment variable it is read from, if any.
    pub fn variable(&self) -> Option<&str> {
        self.variable.as_deref()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.variable, &self.value) {
            (None, _) => f.write_str("Secret(inline)"),
            (Some(v), Some(_)) => write!(f, "Secret(fromEnv {v})"),
            (Some(v), None) => write!(f, "Secret(fromEnv {v}, unresolved)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names() {
        for good in ["A", "_", "DIAL_TOKEN", "dial_token_2", &"X".repeat(128)] {
            assert!(is_variable_name(good), "{good}");
        }
        for bad in ["", "2X", "DIAL-TOKEN", "A B", "A=B", "É", &"X".repeat(129)] {
            assert!(!is_variable_name(bad), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_value() {
        let shown = format!(
            "{:?} {:?} {:?}",
            Secret::inline("s3cret-value-0123"),
            Secret::from_env("DIAL_TOKEN", Some("s3cret-value-0123".into())),
            Secret::from_env("DIAL_TOKEN", None)
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            shown,
            "Secret(inline) Secret(fromEnv DIAL_TOKEN) Secret(fromEnv DIAL_TOKEN, unresolved)"
        );
    }

    #[test]
    fn the_environment_is_asked_not_read() {
        let lookup = |name: &str| (name == "SET").then(|| "value".to_string());
        let env = Environment::proxy(&lookup);
        assert_eq!(env.var("SET").as_deref(), Some("value"));
        assert_eq!(env.var("UNSET"), None);
        assert!(env.is_proxy() && !Environment::elsewhere(&lookup).is_proxy());
        assert_eq!(Environment::none().var("PATH"), None);
    }
}
