//! Plain-text output: aligned tables, counts and shares, times and durations.

use dial::core::time::{NANOS_PER_MILLI, NANOS_PER_SECOND};

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `part` of `total` as a percentage with two decimals: `10.02%`.
pub fn share(part: u64, total: u64) -> String {
    if total == 0 {
        return "-".into();
    }
    format!("{:.2}%", part as f64 * 100.0 / total as f64)
}

/// Basis points as a percentage: `2500` → `25.00%`.
pub fn bps(bps: u64) -> String {
    format!("{}.{:02}%", bps / 100, bps % 100)
}

/// A signed change in basis points: `+15.00`, `-15.00`, `0`.
pub fn bps_change(from: u64, to: u64) -> String {
    match to.cmp(&from) {
        std::cmp::Ordering::Equal => "0".into(),
        std::cmp::Ordering::Greater => format!("+{}", bps(to - from).trim_end_matches('%')),
        std::cmp::Ordering::Less => format!("-{}", bps(from - to).trim_end_matches('%')),
    }
}

/// Nanoseconds since the epoch as RFC 3339 in UTC: `2026-12-01T09:00:00Z`.
pub fn instant(nanos: u64) -> String {
    let seconds = nanos / NANOS_PER_SECOND;
    let fraction = nanos % NANOS_PER_SECOND;
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A duration as a policy writes it: `1h30m`, `10m`, `90s`, `500ms`.
pub fn duration(nanos: u64) -> String {
    let units = [
        (86_400 * NANOS_PER_SECOND, "d"),
        (3600 * NANOS_PER_SECOND, "h"),
        (60 * NANOS_PER_SECOND, "m"),
        (NANOS_PER_SECOND, "s"),
        (NANOS_PER_MILLI, "ms"),
    ];
    let mut rest = nanos;
    let mut out = String::new();
    for (unit, name) in units {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Columns padded to their widest cell, two spaces apart; numeric-looking cells aligned right.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, each line indented by `indent` spaces.
    pub fn render(&self, indent: usize) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = |c: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        // A column is numeric when every body cell is.
        let numeric: Vec<bool> = (0..columns)
            .map(|c| {
                let mut body = self.rows.iter().skip(1).filter_map(|r| r.get(c)).peekable();
                body.peek().is_some() && body.all(|s| is_numeric(s))
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = " ".repeat(indent);
            for (c, cell) in row.iter().enumerate() {
                let w = widths.get(c).copied().unwrap_or(0);
                let pad = w.saturating_sub(cell.chars().count());
                if c > 0 {
                    line.push_str("  ");
                }
                if numeric.get(c).copied().unwrap_or(false) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if c + 1 < row.len() {
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn is_numeric(s: &str) -> bool {
    s == "-"
        || (!s.is_empty()
            && s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == '+' || c == '-')
            && s.chars()
                .all(|c| c.is_ascii_digit() || ",.%+-() ".contains(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_read_as_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(10_000_000), "10,000,000");
        assert_eq!(share(1, 3), "33.33%");
        assert_eq!(bps(2500), "25.00%");
        assert_eq!(bps_change(1000, 2500), "+15.00");
        assert_eq!(bps_change(9000, 7500), "-15.00");
        assert_eq!(duration(5_400 * NANOS_PER_SECOND), "1h30m");
        assert_eq!(duration(NANOS_PER_MILLI * 500), "500ms");
        let t = "2026-12-01T09:00:00Z";
        assert_eq!(instant(dial::core::time::parse_instant(t).unwrap()), t);
        assert_eq!(instant(0), "1970-01-01T00:00:00Z");
        assert_eq!(instant(1_500_000_000), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["subset", "users"]);
        t.row(vec!["stable".into(), "9,000".into()]);
        t.row(vec!["canary".into(), "10".into()]);
        assert_eq!(
            t.render(2),
            "  subset  users\n  stable  9,000\n  canary     10\n"
        );
    }
}
