//! Times and durations as a policy writes them: RFC 3339 instants (`2026-12-01T09:00:00Z`,
//! `2026-12-01T10:00:00+01:00`) and durations (`10m`, `1h30m`, `500ms`). Nanoseconds since the
//! Unix epoch throughout, the unit of the host clock.

pub const NANOS_PER_MILLI: u64 = 1_000_000;
pub const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// An RFC 3339 date-time with an explicit offset (`Z` or `±hh:mm`), to nanoseconds since the
/// epoch. Instants before 1970 are refused (the host clock cannot be there).
pub fn parse_instant(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Optional fraction of a second, up to nanoseconds.
    let mut at = 19;
    let mut nanos: i64 = 0;
    if sep(at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let len = at - start;
        if len == 0 || len > 9 {
            return None;
        }
        nanos = digits(start, len)? * 10i64.pow(9 - len as u32);
    }
    let offset_seconds = match b.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == at + 6 && sep(at + 3, b":") => {
            let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = h * 3600 + m * 60;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    u64::try_from(seconds)
        .ok()?
        .checked_mul(NANOS_PER_SECOND)?
        .checked_add(u64::try_from(nanos).ok()?)
}

/// A duration: one or more of a whole number and a unit (`ms`, `s`, `m`, `h`, `d`), largest
/// first, as in `1h30m`. Zero is a valid duration here; callers decide whether they allow it.
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut rest = text.as_bytes();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut last_unit = u64::MAX;
    while !rest.is_empty() {
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > 12 {
            return None;
        }
        let (number, tail) = rest.split_at(len);
        let number = number
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        let (unit, tail) = if let Some(t) = tail.strip_prefix(b"ms") {
            (NANOS_PER_MILLI, t)
        } else {
            let (&u, t) = tail.split_first()?;
            let unit = match u {
                b's' => NANOS_PER_SECOND,
                b'm' => 60 * NANOS_PER_SECOND,
                b'h' => 3600 * NANOS_PER_SECOND,
                b'd' => 86_400 * NANOS_PER_SECOND,
                _ => return None,
            };
            (unit, t)
        };
        if unit >= last_unit {
            return None;
        }
        last_unit = unit;
        total = total.checked_add(number.checked_mul(unit)?)?;
        rest = tail;
    }
    Some(total)
}

/// An instant as RFC 3339 in UTC, to the second (`2026-12-01T09:00:00Z`): what `parse_instant`
/// reads back.
pub fn format_instant(nanos: u64) -> String {
    let seconds = nanos / NANOS_PER_SECOND;
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    // Howard Hinnant's civil_from_days, the inverse of days_from_civil below.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NANOS_PER_SECOND;

    #[test]
    fn instants_match_known_epoch_seconds() {
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        // `date -u -d 2026-12-01T09:00:00Z +%s`
        assert_eq!(
            parse_instant("2026-12-01T09:00:00Z"),
            Some(1_796_115_600 * S)
        );
        assert_eq!(
            parse_instant("2026-12-01T10:00:00+01:00"),
            parse_instant("2026-12-01T09:00:00Z")
        );
        assert_eq!(
            parse_instant("2026-12-01T04:30:00-04:30"),
            parse_instant("2026-12-01T09:00:00Z")
        );
        assert_eq!(
            parse_instant("2024-02-29T23:59:59.5Z"),
            Some(1_709_251_199 * S + S / 2)
        );
        assert_eq!(
            parse_instant("2000-03-01T00:00:00.000000001Z"),
            Some(951_868_800 * S + 1)
        );
    }

    #[test]
    fn formatted_instants_read_back() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2026-12-01T09:00:00Z",
            "2024-02-29T23:59:59Z",
            "2100-03-01T00:00:00Z",
        ] {
            assert_eq!(format_instant(parse_instant(text).unwrap()), text);
        }
    }

    #[test]
    fn malformed_instants_are_refused() {
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01T09:00:00",
            "2026-12-01T09:00Z",
            "2026-13-01T09:00:00Z",
            "2026-02-29T09:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T09:00:00+1:00",
            "2026-12-01T09:00:00.Z",
            "1969-12-31T23:59:59Z",
            "2026-12-01T09:00:00Zjunk",
            "２026-12-01T09:00:00Z",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_add_their_parts() {
        assert_eq!(parse_duration("10s"), Some(10 * S));
        assert_eq!(parse_duration("10m"), Some(600 * S));
        assert_eq!(parse_duration("1h30m"), Some(5400 * S));
        assert_eq!(parse_duration("2d"), Some(172_800 * S));
        assert_eq!(parse_duration("1s500ms"), Some(1500 * NANOS_PER_MILLI));
        assert_eq!(parse_duration("0s"), Some(0));
        for bad in [
            "",
            "10",
            "s",
            "1.5h",
            "10x",
            "30m1h",
            "1m1m",
            "-5s",
            "1 h",
            "99999999999999s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
