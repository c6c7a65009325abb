//! The checks behind Dial's fuzz targets, one module per target, each a `check(&[u8])` that
//! panics when an invariant fails. The fuzz targets (fuzz_targets/) call them under libFuzzer;
//! tests/fuzz_corpus.rs includes this file and replays every file of corpus/<target>/ through
//! the same functions on stable, so a finding added to a corpus is a regression test.
//!
//! Every target asserts invariants, not only the absence of a panic:
//!
//! - `policy`: bytes to a `Policy`. A rejection names at least one problem and never repeats a
//!   secret; an accepted policy is well-formed (every index in range, weights summed right,
//!   steps in order), re-reads the same after a serde_json round trip (compact and pretty), and
//!   decides the same requests the same way.
//! - `headers`: the serialized header map the host hands over, against a reference reader
//!   written from the format's description, and against `HeaderList` with the same pairs.
//! - `cookie`: `Cookie` parsing against the `cookie` crate (with RFC 6265's whitespace, the one
//!   rule where Dial differs), sticky cookie values (only a key Dial could have minted, and
//!   signed, is read back; what Dial writes reads back).
//! - `instant`: RFC 3339 instants against the `time` crate, with the rules where Dial's profile
//!   differs (separator, fraction digits, second 60, the host clock's range) checked.
//! - `override_header`: the override value's split, trust (tokens and address ranges against
//!   a bit-by-bit reference), and whether `decide` honours the override exactly when it should.
//! - `decide`: arbitrary requests against several policies: the decision names an existing
//!   subset of the first release in scope, never depends on a client-sent Dial header, ignores
//!   a host's case, port and root dot, is the same over the serialized map; the exchange never
//!   lets a client-sent Dial header through to the upstream, and a minted sticky cookie, sent
//!   back, keeps the user where they were.

pub mod cookie;
pub mod decide;
pub mod fixtures;
pub mod headers;
pub mod input;
pub mod instant;
pub mod invariants;
pub mod override_header;
pub mod policy;
