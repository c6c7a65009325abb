//! Deliberate exceptions to `dial validate`'s warnings, written where the policy is: a comment
//! line `# dial-validate: allow <kind>[, <kind>...] -- <reason>` applies to the YAML document
//! it sits in (a comment before a document's content, after the `---` that opens it, belongs to
//! that document); `# dial-validate: allow-file <kind> -- <reason>` to every policy in the file.
//! A JSON file cannot hold comments: its markers go in `<file>.dial-validate`, next to it, and
//! apply to the whole file. An exception is always printed (`allowed: ...`), never silent; a
//! marker that excuses nothing, or cannot be read, is itself a warning.

/// The warning kinds (`modes`' warnings and the markers' own), as `-o json` and allow markers
/// name them. Here, not in `modes`: `modes` reads what `find` found, and `find` reads markers.
pub const KINDS: [&str; 12] = [
    "sticky_cookie_to_service",
    "source_cidrs_local_peer",
    "fail_open_at_edge",
    "placeholder_sha256",
    "placeholder_url",
    "unsigned_sticky_cookie",
    "allow_anyone",
    "inline_secret",
    "ramp_in_past",
    "lanes_follow_at_edge",
    "unused_allow",
    "bad_allow_marker",
];

/// The comment that starts a marker.
pub const PREFIX: &str = "dial-validate:";

/// The suffix of the file beside a JSON file that holds its markers.
pub const SIDE_FILE: &str = ".dial-validate";

/// One marker, as written.
#[derive(Debug, Clone)]
pub struct Marker {
    pub file: String,
    pub seq: usize,
    pub line: usize,
    /// The warning kinds it excuses (empty when it cannot be read).
    pub kinds: Vec<String>,
    pub reason: String,
    /// `allow-file`, or a marker in a JSON file's side file.
    pub whole_file: bool,
    /// Why the marker cannot be read, if it cannot.
    pub bad: Option<String>,
}

impl Marker {
    pub fn allows(&self, kind: &str) -> bool {
        self.bad.is_none() && self.kinds.iter().any(|k| k == kind)
    }
}

/// Every marker line of a file's text: (line from 1, the marker).
pub fn find(file: &str, seq: usize, text: &str) -> Vec<Marker> {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let comment = line.trim_start().strip_prefix('#')?.trim_start();
            let body = comment.strip_prefix(PREFIX)?.trim();
            Some(parse(file, seq, n + 1, body))
        })
        .collect()
}

fn parse(file: &str, seq: usize, line: usize, body: &str) -> Marker {
    let mut marker = Marker {
        file: file.into(),
        seq,
        line,
        kinds: Vec::new(),
        reason: String::new(),
        whole_file: false,
        bad: None,
    };
    let usage = "write `# dial-validate: allow <kind> -- <reason>` (this document) or `# dial-validate: allow-file <kind> -- <reason>` (the whole file)";
    let (verb, rest) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    marker.whole_file = match verb {
        "allow" => false,
        "allow-file" => true,
        _ => {
            marker.bad = Some(format!("not a marker ({usage})"));
            return marker;
        }
    };
    let Some((kinds, reason)) = rest.split_once("--") else {
        marker.bad = Some(format!(
            "an exception needs its reason after `--` ({usage})"
        ));
        return marker;
    };
    marker.reason = reason.trim().to_string();
    marker.kinds = kinds
        .split([',', ' '])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if marker.reason.is_empty() {
        marker.bad = Some(format!(
            "an exception needs its reason after `--` ({usage})"
        ));
    } else if marker.kinds.is_empty() {
        marker.bad = Some(format!("name the warning kind to allow ({usage})"));
    } else if let Some(unknown) = marker.kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
        marker.bad = Some(format!(
            "unknown warning kind `{unknown}`; the kinds: {}",
            KINDS.join(", ")
        ));
    }
    marker
}

/// The document (index into the file's documents) a marker on `line` applies to: the one it
/// sits in, where a comment between a `---` and the next document's content belongs to that
/// next document. `starts` are the documents' first lines, `separators` the `---` lines.
pub fn document_of(line: usize, starts: &[usize], separators: &[usize]) -> Option<usize> {
    let Some(last) = starts.iter().rposition(|s| *s <= line) else {
        return (!starts.is_empty()).then_some(0);
    };
    let start = starts.get(last).copied().unwrap_or(0);
    let opened_later = separators.iter().any(|s| *s > start && *s <= line);
    if opened_later && last + 1 < starts.len() {
        Some(last + 1)
    } else {
        Some(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_read_and_refuse() {
        let text = "# dial-validate: allow placeholder_sha256, placeholder_url -- make oci fills it\n  #dial-validate: allow-file inline_secret -- a test fixture\n# dial-validate: allow nope -- x\n# dial-validate: allow allow_anyone\n# dial-validate: permit x -- y\n# an ordinary comment\n";
        let m = find("f.yaml", 1, text);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].kinds, ["placeholder_sha256", "placeholder_url"]);
        assert_eq!(m[0].reason, "make oci fills it");
        assert!(!m[0].whole_file && m[0].bad.is_none() && m[0].allows("placeholder_url"));
        assert!(m[1].whole_file && m[1].line == 2 && m[1].allows("inline_secret"));
        assert!(m[2]
            .bad
            .as_deref()
            .unwrap()
            .contains("unknown warning kind `nope`"));
        assert!(m[3].bad.as_deref().unwrap().contains("reason"));
        assert!(m[4].bad.as_deref().unwrap().contains("not a marker"));
        assert!(!m[2].allows("nope"));
    }

    #[test]
    fn a_marker_belongs_to_its_document_or_the_next_one() {
        // Documents start on lines 2 and 7; `---` on lines 1 and 6.
        let starts = [2, 7];
        let separators = [1, 6];
        assert_eq!(document_of(1, &starts, &separators), Some(0));
        assert_eq!(document_of(4, &starts, &separators), Some(0));
        assert_eq!(document_of(6, &starts, &separators), Some(1));
        assert_eq!(document_of(9, &starts, &separators), Some(1));
        assert_eq!(document_of(3, &[], &[]), None);
    }
}
