//! The override header and who may use it.

use super::checker::Checker;
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::raw::RawOverride;
use crate::core::policy::Override;
use crate::core::trust::{Cidr, Trust};

pub fn override_(c: &mut Checker, path: &JsonPath, o: RawOverride) -> Option<Override> {
    let mark = c.mark();
    let header = c.header_name(path.key("header"), &o.header, true);
    let written = o.token.is_some();
    let token = o
        .token
        .and_then(|t| c.secret(path.key("token"), "the token", t));
    let mut source_cidrs = Vec::with_capacity(o.source_cidrs.len());
    for (i, s) in o.source_cidrs.iter().enumerate() {
        match Cidr::parse(s) {
            Some(cidr) => source_cidrs.push(cidr),
            None => c.fail(
                path.key("sourceCidrs").index(i),
                ProblemKind::InvalidValue,
                s,
                format!(
                    "{} is not an address range like \"10.0.0.0/8\" or \"fd00::/8\"",
                    quote(s)
                ),
            ),
        }
    }
    if !written && source_cidrs.is_empty() && !o.allow_anyone && c.clean_since(mark) {
        c.fail_here(
            path.clone(),
            ProblemKind::Conflict,
            "an override must say who may use it: set \"token\", \"sourceCidrs\", or \"allowAnyone\": true",
        );
    }
    let header = header?;
    c.clean_since(mark).then_some(Override {
        header,
        trust: Trust {
            token,
            source_cidrs,
            anyone: o.allow_anyone,
        },
    })
}
