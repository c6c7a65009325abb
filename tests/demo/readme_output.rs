//! The README's copy of the demo's output (the ```text block after `<!-- demo-output -->`)
//! against what the demo prints (tests/demo_safety.rs runs its first part and its Unleash part
//! as `make demo` does; the timeline's lines come from `timeline.rs`'s own formatting): the
//! same lines, in the same order, but for what depends on the clock, the machine or random
//! values (`mask`), the timeline's numbers and its rows' values.

use crate::timeline::mask_numbers;

/// A line with what depends on the clock, the machine or random values replaced by `…`: the
/// ramp's start (moved relative to now), paths, sizes and durations, the anonymous visitors'
/// counts and shares (their keys are random cookies), the shadow's counts and the metrics'
/// values (which count the anonymous visitors too). `section` is the table the line is in
/// (the last line that did not start with a space), for the anonymous rows.
pub fn mask(line: &str, section: &str) -> String {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("Dial demo: Envoy (") {
        // Paths and the module's size.
        let after = rest.split_once(" bytes)").map_or("", |(_, a)| a);
        return format!("Dial demo: Envoy (…) with … (… bytes){after}");
    }
    if line.contains(" requests through Envoy in ") {
        let (count, rest) = line
            .split_once(" requests through Envoy in ")
            .unwrap_or_default();
        let after = rest.split_once("s. ").map_or("", |(_, a)| a);
        return format!("{count} requests through Envoy in …s. {after}");
    }
    if let Some(rest) = line.strip_prefix("  ramp: ") {
        if let Some((subset, tail)) = rest.split_once(" from ") {
            let after = tail.split_once("Z: ").map_or(tail, |(_, a)| a);
            return format!("  ramp: {subset} from …Z: {after}");
        }
    }
    if line.starts_with("Shadow traffic: ") {
        if let Some((head, tail)) = line.split_once(" Dial marked ") {
            let after = tail.split_once(" GET), ").map_or("", |(_, a)| a);
            return format!(
                "{head} Dial marked … requests; the shadow received … copies (… GET), {after}"
            );
        }
    }
    if let Some(rest) = line.strip_prefix("Envoy's log: ") {
        // The guard's log line (timeline): its figures are the run's.
        if let Some(at) = rest.find(crate::timeline::GUARD_LOG) {
            return format!(
                "Envoy's log: {}…",
                &rest[..at + crate::timeline::GUARD_LOG.len()]
            );
        }
    }
    if line.starts_with("  dial_") {
        if let Some((series, _)) = line.rsplit_once(' ') {
            return format!("{series} …");
        }
    }
    if section.contains("anonymous visitors")
        && line.starts_with("  ")
        && !line.starts_with("  subset ")
    {
        // subset, version, weight, users, share, answered by, stayed: the 4th and 5th vary.
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() == 7 {
            return format!(
                "  {} {} {} … …% {} {}",
                words[0], words[1], words[2], words[5], words[6]
            );
        }
    }
    line.to_string()
}

/// One line (or, for `Rows`, lines) of what the demo prints, as the README's copy must show it.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A line the test printed as the demo does: compared with what `mask` leaves, in its
    /// section (the last line that did not start with a space).
    Line { text: String, section: String },
    /// A line whose numbers are the run's own (the timeline's outcome): compared with every
    /// number masked.
    Numbers(String),
    /// One or more rows of the timeline, whatever their values (`timeline::is_row`).
    Rows,
}

/// `printed` (what the test printed as the demo does), line by line.
pub fn lines(printed: &str) -> Vec<Expect> {
    let mut section = String::new();
    printed
        .lines()
        .map(|l| {
            if !l.is_empty() && !l.starts_with(' ') {
                section = l.to_string();
            }
            Expect::Line {
                text: l.to_string(),
                section: section.clone(),
            }
        })
        .collect()
}

/// `template`'s lines, to be compared with their numbers masked.
pub fn numbers(template: &str) -> Vec<Expect> {
    template
        .lines()
        .map(|l| Expect::Numbers(l.to_string()))
        .collect()
}

fn matches(e: &Expect, line: &str) -> bool {
    match e {
        Expect::Line { text, section } => mask(line, section) == mask(text, section),
        Expect::Numbers(t) => mask_numbers(&mask(line, "")) == mask_numbers(&mask(t, "")),
        Expect::Rows => false,
    }
}

/// Matches `run` (consecutive lines of the README's block) against `expected` from `j`: Ok with
/// where the next run may start (at `Rows` if the run ended within them), or Err with how many
/// lines matched.
fn match_run(
    run: &[(usize, &str)],
    expected: &[Expect],
    mut j: usize,
    is_row: &dyn Fn(&str) -> bool,
) -> Result<usize, usize> {
    let mut i = 0;
    while i < run.len() {
        match expected.get(j) {
            None => return Err(i),
            Some(Expect::Rows) => {
                if !is_row(run[i].1) {
                    return Err(i);
                }
                while i < run.len() && is_row(run[i].1) {
                    i += 1;
                }
                if i < run.len() {
                    j += 1;
                }
            }
            Some(e) if matches(e, run[i].1) => {
                i += 1;
                j += 1;
            }
            Some(_) => return Err(i),
        }
    }
    Ok(j)
}

/// Whether `shown` (the README's block) is what the demo prints (`expected`): its lines in the
/// same order and one after another, except where the README elides with a line `...` or `…`.
/// On a mismatch, the first line that is not there.
pub fn compare(
    shown: &str,
    expected: &[Expect],
    is_row: &dyn Fn(&str) -> bool,
) -> Result<(), String> {
    let mut runs: Vec<Vec<(usize, &str)>> = vec![Vec::new()];
    for (i, line) in shown.lines().enumerate() {
        if matches!(line.trim(), "..." | "…") {
            runs.push(Vec::new());
        } else if let Some(run) = runs.last_mut() {
            run.push((i, line));
        }
    }
    runs.retain(|r| !r.is_empty());
    if runs.is_empty() {
        return Err("the block is empty".into());
    }
    let mut from = 0;
    for run in &runs {
        let mut best: (usize, usize) = (0, from);
        let mut found = None;
        for start in from..expected.len() {
            match match_run(run, expected, start, is_row) {
                Ok(next) => {
                    found = Some(next);
                    break;
                }
                Err(n) if n > best.0 => best = (n, start),
                Err(_) => {}
            }
        }
        match found {
            Some(next) => from = next,
            None => {
                let (n, _) = best;
                let (i, line) = run[n];
                return Err(format!(
                    "line {} of the block, {line:?}, is not what the demo prints there{}",
                    i + 1,
                    if n > 0 {
                        format!(" (after {n} line(s) that are)")
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINTED: &str = "Dial demo: Envoy (/x/.venv/bin/envoy) with /x/dial.wasm (288651 bytes) on 127.0.0.1:10000, policy from envoy-config/envoy.yaml (its ramp)

checkout: 4000 signed-in users (key: x-user-id), murmur3 split 90/10
  ramp: canary from 2026-12-07T01:00:00Z: 10% for 30m, then 100%; not started yet
  subset    version  weight   users   share  answered by   same subset on 2nd visit
  stable    v1           90    3594   89.8%  checkout-v1   100.0%
  canary    v2           10     406   10.2%  checkout-v2   100.0%

checkout: 1000 anonymous visitors (no key: Dial sets a sticky cookie)
  subset    version  weight   users   share  answered by   same subset on 2nd visit
  stable    v1           90     895   89.5%  checkout-v1   100.0%
  canary    v2           10     105   10.5%  checkout-v2   100.0%

Dial's metrics from http://127.0.0.1:9901/stats/prometheus (non-zero series):
  dial_requests_total{release=\"checkout\",subset=\"stable\"} 8123

14008 requests through Envoy in 6.1s. Envoy's log: target/demo/envoy.log";

    fn no_rows(_: &str) -> bool {
        false
    }

    fn readme(edit: impl Fn(&str) -> String) -> String {
        PRINTED.lines().map(edit).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn what_the_clock_and_the_dice_change_is_masked() {
        // Another run: other paths, size, ramp start, anonymous counts, metric values, duration.
        let other = readme(|l| {
            l.replace("/x/", "/y/")
                .replace("288651", "290000")
                .replace("2026-12-07T01:00:00Z", "2030-01-01T00:00:00Z")
                .replace("895   89.5%", "901   90.1%")
                .replace("105   10.5%", " 99    9.9%")
                .replace("} 8123", "} 8130")
                .replace("6.1s", "12.4s")
        });
        assert_eq!(compare(&other, &lines(PRINTED), &no_rows), Ok(()));
        // Part of it, with an elision.
        let part: Vec<&str> = PRINTED.lines().collect();
        let shown = [&part[2..4], &["  ..."], &part[9..11]].concat().join("\n");
        assert_eq!(compare(&shown, &lines(PRINTED), &no_rows), Ok(()));
    }

    #[test]
    fn what_is_deterministic_is_compared_exactly() {
        for (from, to) in [
            ("3594", "3595"),
            ("90/10", "80/20"),
            (
                "stable    v1           90     895",
                "stable    v2           90     895",
            ),
            (
                "100.0%\n  canary    v2           10     105",
                "99.9%\n  canary    v2           10     105",
            ),
            ("14008 requests", "14000 requests"),
            (
                "{release=\"checkout\",subset=\"stable\"}",
                "{release=\"checkout\",subset=\"canary\"}",
            ),
        ] {
            let shown = PRINTED.replace(from, to);
            assert_ne!(shown, PRINTED, "{from}");
            let err = compare(&shown, &lines(PRINTED), &no_rows).unwrap_err();
            assert!(err.contains("is not what the demo prints"), "{from}: {err}");
        }
        // Lines out of order, or dropped without an elision, are not what it prints either.
        let printed: Vec<&str> = PRINTED.lines().collect();
        let swapped = [printed[5], printed[4]].join("\n");
        assert!(compare(&swapped, &lines(PRINTED), &no_rows).is_err());
        let dropped = [printed[4], printed[6]].join("\n");
        assert!(compare(&dropped, &lines(PRINTED), &no_rows).is_err());
        assert!(compare("", &lines(PRINTED), &no_rows).is_err());
    }

    /// The timeline: rows of any values in the row's format, numbers of the outcome masked.
    #[test]
    fn timeline_rows_and_outcome() {
        let expected: Vec<Expect> = lines("  t (s)  weight   reqs  stable  canary  canary 5xx  guardrail  guard    event")
            .into_iter()
            .chain([Expect::Rows])
            .chain(numbers("\nThe canary's first 500: t=0.00 s.\nEnvoy's log: dial: guard tripped: release checkout, subset canary goes to stable: …"))
            .collect();
        let rows = "    0.5     10%    200   89.0%   11.0%        0.0%       0.0%  ok
    2.5     10%    199   88.9%   11.1%        0.0%       0.0%  ok       ramp starts: 10%
   12.0      0%    200   56.5%   43.5%      100.0%       2.0%  TRIPPED  canary fails (500); guard tripped
   14.5      0%    200  100.0%    0.0%           -       9.0%  TRIPPED  ramp step 100%: not taken (guard tripped)";
        let row = crate::timeline::is_row;
        let header =
            "  t (s)  weight   reqs  stable  canary  canary 5xx  guardrail  guard    event";
        let outcome = "\nThe canary's first 500: t=11.51 s.\nEnvoy's log: dial: guard tripped: release checkout, subset canary goes to stable: error rate 19.59% against 0%";
        let shown = format!("{header}\n{rows}\n{outcome}");
        assert_eq!(compare(&shown, &expected, &row), Ok(()));
        // Rows elided in the middle, and a block that starts within the rows.
        let lines_of: Vec<&str> = rows.lines().collect();
        let elided = format!("{header}\n{}\n...\n{}\n{outcome}", lines_of[0], lines_of[3]);
        assert_eq!(compare(&elided, &expected, &row), Ok(()));
        assert_eq!(compare(lines_of[2], &expected, &row), Ok(()));
        // A row out of its format, an event no row shows, other text around the numbers.
        for bad in [
            rows.replace("   89.0%   11.0%", "  89.0%   11.0% "),
            rows.replace("canary fails (500)", "canary fails"),
            rows.replace("TRIPPED  ramp", "tripped  ramp"),
        ] {
            assert!(
                compare(&format!("{header}\n{bad}\n{outcome}"), &expected, &row).is_err(),
                "{bad}"
            );
        }
        let other = outcome.replace("canary's first 500", "canary's last 500");
        assert!(compare(&format!("{header}\n{rows}\n{other}"), &expected, &row).is_err());
    }
}
