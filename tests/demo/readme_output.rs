//! The README's copy of the demo's output (the ```text block after `<!-- demo-output -->`)
//! against what the demo printed (`first_part.rs`, run by tests/demo_safety.rs): the same lines,
//! in the same order, but for what depends on the clock, the machine or random values (`mask`).

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

/// Whether `shown` (the README's block) is what the demo printed (`printed`): its lines appear in
/// the demo's output in the same order and one after another, except where the README elides
/// with a line `...` or `…`; each compared with the demo's line masked, in the demo's section.
/// On a mismatch, the first line that is not there.
pub fn compare(shown: &str, printed: &str) -> Result<(), String> {
    let printed_lines: Vec<&str> = printed.lines().collect();
    let mut sections = Vec::new();
    let mut section = String::new();
    for l in &printed_lines {
        if !l.is_empty() && !l.starts_with(' ') {
            section = l.to_string();
        }
        sections.push(section.clone());
    }
    let printed: Vec<String> = printed_lines
        .iter()
        .zip(&sections)
        .map(|(l, s)| mask(l, s))
        .collect();
    let shown_lines: Vec<&str> = shown.lines().collect();
    let mut runs: Vec<Vec<(usize, &str)>> = vec![Vec::new()];
    for (i, line) in shown_lines.iter().enumerate() {
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
    // How many lines of `run` match the demo's from `start` on.
    let matching = |run: &[(usize, &str)], start: usize| {
        run.iter()
            .enumerate()
            .take_while(|(k, (_, l))| {
                let at = start + k;
                printed
                    .get(at)
                    .is_some_and(|p| *p == mask(l, &sections[at]))
            })
            .count()
    };
    let mut from = 0;
    for run in &runs {
        match (from..printed.len()).find(|&start| matching(run, start) == run.len()) {
            Some(start) => from = start + run.len(),
            None => {
                // The longest prefix of the run that matches somewhere, to point at the line.
                let (n, start) = (from..printed.len())
                    .map(|start| (matching(run, start), start))
                    .max_by_key(|(n, start)| (*n, std::cmp::Reverse(*start)))
                    .unwrap_or((0, from));
                let (i, line) = run[n];
                let there = match (n, printed_lines.get(start + n)) {
                    (0, _) => String::new(),
                    (_, Some(l)) => format!(", which is {l:?}"),
                    (_, None) => ", where it ends".to_string(),
                };
                return Err(format!(
                    "line {} of the block, {line:?}, is not what the demo prints there{there}",
                    i + 1
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
        assert_eq!(compare(&other, PRINTED), Ok(()));
        // Part of it, with an elision.
        let part: Vec<&str> = PRINTED.lines().collect();
        let shown = [&part[2..4], &["  ..."], &part[9..11]].concat().join("\n");
        assert_eq!(compare(&shown, PRINTED), Ok(()));
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
            let err = compare(&shown, PRINTED).unwrap_err();
            assert!(err.contains("is not what the demo prints"), "{from}: {err}");
        }
        // Lines out of order, or dropped without an elision, are not what it prints either.
        let lines: Vec<&str> = PRINTED.lines().collect();
        let swapped = [lines[5], lines[4]].join("\n");
        assert!(compare(&swapped, PRINTED).is_err());
        let dropped = [lines[4], lines[6]].join("\n");
        assert!(compare(&dropped, PRINTED).is_err());
        assert!(compare("", PRINTED).is_err());
    }
}
