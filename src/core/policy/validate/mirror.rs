//! Shadow traffic: the mirror version, the sampled share and the eligible methods.

use super::checker::Checker;
use crate::core::bucket::Salted;
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::raw::RawMirror;
use crate::core::policy::{Mirror, DEFAULT_MIRROR_METHODS};

pub fn mirror(c: &mut Checker, path: &JsonPath, release: &str, m: RawMirror) -> Option<Mirror> {
    let mark = c.mark();
    c.version(path.key("version"), &m.version);
    // JSON numbers are finite, so NaN means "not representable" and fails the range check.
    let percent = m.percent.as_f64().unwrap_or(f64::NAN);
    if !(0.0..=100.0).contains(&percent) {
        c.fail_number(
            path.key("percent"),
            ProblemKind::OutOfRange,
            m.percent.clone(),
            format!("must be between 0 and 100, got {}", m.percent),
        );
    }
    let methods = match m.methods {
        None => DEFAULT_MIRROR_METHODS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(methods) => {
            if methods.is_empty() {
                c.fail_here(
                    path.key("methods"),
                    ProblemKind::OutOfRange,
                    "at least one method is required (or leave \"methods\" out for GET, HEAD, OPTIONS)",
                );
            }
            for (i, method) in methods.iter().enumerate() {
                if method.is_empty()
                    || method.len() > 32
                    || !method
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
                {
                    c.fail(
                        path.key("methods").index(i),
                        ProblemKind::InvalidValue,
                        method,
                        format!(
                            "{} is not an HTTP method (write it in upper case, like \"GET\")",
                            quote(method)
                        ),
                    );
                }
            }
            methods
        }
    };
    // percent% of the 2^32 position space; 100% covers all of it.
    let threshold = (percent.clamp(0.0, 100.0) / 100.0 * 4_294_967_296.0).round() as u64;
    c.clean_since(mark).then_some(Mirror {
        version: m.version,
        sample_hash: Salted::new(format!("{release}#mirror").as_bytes()),
        threshold,
        methods,
    })
}
