//! Phase one: the policy exactly as written, deserialized by serde. Types are loose where a
//! better message can be given in phase two (a negative weight is read, then rejected there).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Policy")]
pub struct RawPolicy {
    #[serde(default)]
    pub headers: RawHeaders,
    pub releases: Vec<RawRelease>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Headers")]
pub struct RawHeaders {
    pub subset: Option<String>,
    pub version: Option<String>,
    pub mirror: Option<String>,
    pub response: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Release")]
pub struct RawRelease {
    pub name: String,
    #[serde(rename = "match", default)]
    pub scope: RawMatch,
    pub subsets: Vec<RawSubset>,
    #[serde(default)]
    pub key: Vec<RawKeySource>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    pub when_no_key: Option<RawWhenNoKey>,
    #[serde(rename = "override")]
    pub override_: Option<RawOverride>,
    pub mirror: Option<RawMirror>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Match")]
pub struct RawMatch {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub path_prefixes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Subset")]
pub struct RawSubset {
    pub name: String,
    pub version: String,
    pub weight: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "KeySource")]
pub struct RawKeySource {
    pub header: Option<String>,
    pub cookie: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Rule")]
pub struct RawRule {
    pub header: Option<RawMatcher>,
    pub cookie: Option<RawMatcher>,
    pub users: Option<Vec<String>>,
    pub subset: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Matcher")]
pub struct RawMatcher {
    pub name: String,
    pub equals: Option<String>,
    pub prefix: Option<String>,
    pub present: Option<bool>,
    pub one_of: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "WhenNoKey")]
pub struct RawWhenNoKey {
    pub subset: Option<String>,
    pub sticky_cookie: Option<RawStickyCookie>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "StickyCookie")]
pub struct RawStickyCookie {
    pub name: String,
    pub max_age_seconds: Option<i64>,
    pub path: Option<String>,
    #[serde(default)]
    pub secure: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Override")]
pub struct RawOverride {
    pub header: String,
    pub token: Option<String>,
    #[serde(default)]
    pub source_cidrs: Vec<String>,
    #[serde(default)]
    pub allow_anyone: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Mirror")]
pub struct RawMirror {
    pub version: String,
    pub percent: f64,
    pub methods: Option<Vec<String>>,
}

/// Phase one: bytes to `RawPolicy`, or a problem located by JSON path.
pub fn parse(bytes: &[u8]) -> Result<RawPolicy, super::PolicyError> {
    use super::PolicyError;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PolicyError::single(
            "$",
            "the configuration is empty: Dial needs a policy with at least one release",
        ));
    }
    // serde would also read a struct from an array; a policy is an object, say so plainly.
    if let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        if *first != b'{' && (*first == b'[' || first.is_ascii_digit() || b"\"tfn-".contains(first))
        {
            return Err(PolicyError::single(
                "$",
                "the policy must be a JSON object like {\"releases\": [...]}",
            ));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawPolicy = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = json_path(&e.path().to_string());
        let inner = e.into_inner();
        if inner.is_data() {
            PolicyError::single(path, inner.to_string())
        } else {
            PolicyError::single("$", format!("invalid JSON: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| PolicyError::single("$", format!("invalid JSON: {e}")))?;
    Ok(raw)
}

/// `releases[0].weight` → `$.releases[0].weight`; the root (`.`) → `$`.
fn json_path(serde_path: &str) -> String {
    match serde_path {
        "" | "." => "$".to_string(),
        p if p.starts_with('[') => format!("${p}"),
        p => format!("$.{p}"),
    }
}
