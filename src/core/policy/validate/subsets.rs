//! Subset names written elsewhere in a release (rules, `whenNoKey`, `ramp`, `guard`, `lanes`),
//! resolved to the indices of the release's subsets. Its own module: the release's parts take
//! it from here, and the release (which calls them) builds it, so no import runs back up.

use super::checker::Checker;
use crate::core::policy::error::{quote, JsonPath, ProblemKind};
use crate::core::policy::Subset;

/// Resolves subset names written elsewhere in a release to indices.
pub struct SubsetRefs<'a> {
    release: &'a str,
    subsets: &'a [Subset],
}

impl<'a> SubsetRefs<'a> {
    pub fn new(release: &'a str, subsets: &'a [Subset]) -> Self {
        SubsetRefs { release, subsets }
    }

    pub fn resolve(&self, c: &mut Checker, path: JsonPath, name: &str) -> Option<usize> {
        let found = self.subsets.iter().position(|s| s.name == name);
        if found.is_none() {
            // Owned, as elsewhere: one instantiation of `join` in the module.
            let known: Vec<String> = self.subsets.iter().map(|s| s.name.clone()).collect();
            c.fail(
                path,
                ProblemKind::UnknownSubset,
                name,
                format!(
                    "{} is not a subset of release {} (its subsets: {})",
                    quote(name),
                    quote(self.release),
                    known.join(", ")
                ),
            );
        }
        found
    }
}
