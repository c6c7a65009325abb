//! What `decide` saw and judged on its way to a decision, told as it goes, so a tool can explain
//! a decision (`dial explain`) from the core's own reasons instead of working them out again.
//!
//! `decide` is generic over an `Observer`; the filter's `decide` passes `Unobserved`, whose
//! methods do nothing and whose `ACTIVE` is false, so with static dispatch every call and every
//! fact gathered only for an observer compiles away.

use crate::core::lane::Read;
pub use crate::core::scope::ScopeFit;
pub use crate::core::trust::Verdict;

/// Receives the facts of one decision, in the order `decide` meets them. Every method defaults
/// to doing nothing.
#[allow(unused_variables)]
pub trait Observer {
    /// Whether to gather facts that cost work the decision itself does not need (both halves of
    /// a scope, the ramp's state, where the split alone would have put a request a rule or the
    /// override placed). Only `Unobserved` says no.
    const ACTIVE: bool = true;

    /// A release's scope, tried in order up to the first that fits.
    fn scope(&mut self, release: usize, fit: ScopeFit) {}

    /// One of the release's key sources, in order up to the one that gives the key: what it
    /// holds (a baggage member percent-decoded) and whether it is the key.
    fn key_source(&mut self, index: usize, value: Option<&[u8]>, read: KeyRead) {}

    /// The release's override header, if the release has one.
    fn override_(&mut self, seen: OverrideSeen<'_>) {}

    /// The lane member a following release read from the request.
    fn lane(&mut self, read: Read) {}

    /// A rule tried, in order up to the first that matches.
    fn rule(&mut self, index: usize, matched: bool) {}

    /// The release's ramp, if it has one: the step in force, or why none is.
    fn ramp(&mut self, state: RampState) {}

    /// Where the split put the key (`decided`), or, when a rule or the override decided, where
    /// it would have put it.
    fn split(&mut self, split: Split) {}

    /// Why the request got the release's fallback subset.
    fn fallback(&mut self, why: Fallback) {}

    /// A tripped guard moved the request from its subset to the fallback.
    fn guard(&mut self, from: usize, to: usize) {}

    /// Whether the request is sampled for the release's mirror, and on what.
    fn mirror(&mut self, sample: MirrorSample) {}
}

/// The observer of the filter's decisions: nothing, at no cost.
pub struct Unobserved;

impl Observer for Unobserved {
    const ACTIVE: bool = false;
}

/// What a key source gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRead {
    Absent,
    /// Present but empty: skipped.
    Empty,
    /// Longer than `MAX_KEY_LEN`: ignored.
    TooLong,
    /// The request's key.
    Key,
}

/// The release's override header, and what came of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideSeen<'a> {
    Absent,
    /// It asks for a subset the release does not have: ignored.
    NoSuchSubset(&'a [u8]),
    /// It asks for one of the release's subsets: the trust verdict decides.
    Judged {
        subset: usize,
        verdict: Verdict,
    },
}

/// The ramp's state for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RampState {
    /// This step (an index into the ramp's steps) is in force.
    Step(usize),
    /// Before its start: the written weights apply.
    NotStarted,
    /// The release's guard is tripped, which stops the ramp: the written weights apply.
    Stopped,
    /// The host could not tell the time: the written weights apply.
    NoClock,
}

/// The split's placement of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The subset the split gives (before a tripped guard moves it).
    pub subset: usize,
    /// The key's hash position, out of 2^32, under the release's scheme.
    pub position: u32,
    /// Under Dial's own scheme, the position's bucket in `[0, total weight)`; `None` when
    /// another scheme's formula placed the key.
    pub bucket: Option<u32>,
    /// Whether the split decided the request (`false`: a rule or the override did, and this is
    /// where the split would have put it).
    pub decided: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// No key, and the release's `whenNoKey` names a subset.
    NoKey,
    /// The split placed the key in no subset.
    Unplaced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorSample {
    /// The request's method is not one the mirror copies.
    Method,
    /// Sampled on the key (user or sticky) at this sampling position, out of 2^32.
    Key { position: u32, sampled: bool },
    /// No key: sampled at random.
    Random { sampled: bool },
}
