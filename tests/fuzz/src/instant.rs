//! RFC 3339 instants as a policy writes them (`ramp.start`, `lanes[].until`, ...).
//!
//! Input: the text (lossy UTF-8, as `parse_instant` takes a `str`).
//!
//! `time::parse_instant` is checked against the `time` crate (`OffsetDateTime::parse` with
//! `Rfc3339`, nanoseconds since the epoch). Where Dial differs from the crate on purpose, the
//! rule is stated here and checked, not skipped:
//!
//! - Separator: Dial takes `T`, `t` or a space between date and time (RFC 3339 §5.6 and its
//!   NOTE); the crate takes any one byte there.
//! - Fraction: Dial takes 1 to 9 digits (the host clock counts nanoseconds); the crate takes
//!   any number and drops the digits past the ninth.
//! - Second 60: Dial reads `hh:mm:60` at any minute as the second after `hh:mm:59` (the host
//!   clock, POSIX time, has no leap second, so the instant is the one that follows); the crate
//!   takes 60 only at a real leap second (23:59:60 UTC on a month's last day) and reads it as
//!   the last nanosecond of second 59.
//! - Range: Dial refuses an instant before 1970-01-01T00:00:00Z (the host clock cannot be
//!   there) or past `u64::MAX` nanoseconds (2554-07-21T23:34:33.709551615Z).
//!
//! So Dial's answer is the crate's on the text, after those rules. And what Dial accepts, it
//! formats (`format_instant`, to the second) as a text both read back as that second.

use dial::core::time::{format_instant, parse_instant, NANOS_PER_SECOND};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Nanoseconds since the epoch, as the crate reads `text`.
fn crate_nanos(text: &str) -> Option<i128> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp_nanos)
}

/// What Dial must answer for `text`, from the crate and the rules above.
fn expected(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    // Separator.
    if !b.get(10).is_some_and(|c| b"Tt ".contains(c)) {
        return None;
    }
    // Fraction: the digits after `ss.` (a `.` there follows the seconds in any text the crate
    // reads).
    if b.get(19) == Some(&b'.') {
        let digits = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 9 {
            return None;
        }
    }
    // Second 60: the instant after second 59 of the same minute.
    let nanos = if b.get(17..19) == Some(b"60") {
        let mut at_59 = b.to_vec();
        at_59[17..19].copy_from_slice(b"59");
        crate_nanos(std::str::from_utf8(&at_59).ok()?)? + i128::from(NANOS_PER_SECOND)
    } else {
        crate_nanos(text)?
    };
    // Range.
    u64::try_from(nanos).ok()
}

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let dial = parse_instant(&text);
    assert_eq!(dial, expected(&text), "{text:?}");
    if let Some(nanos) = dial {
        let formatted = format_instant(nanos);
        let second = nanos - nanos % NANOS_PER_SECOND;
        assert_eq!(parse_instant(&formatted), Some(second), "{formatted}");
        assert_eq!(
            crate_nanos(&formatted),
            Some(i128::from(second)),
            "{formatted}"
        );
    }
}
