//! The checks that keep README.md and docs/ from rotting, each a function from the pages to the
//! problems found (file, line, what), so that tests/docs.rs can run them on the repository and,
//! to prove each can fail, on the broken fixtures under tests/data/docs/.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::markdown::{self, Block, Item, Page};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

fn problem(file: &str, line: usize, message: impl Into<String>) -> Problem {
    Problem {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

/// The pages checked, relative to `root`: `full` ones for everything, the others (BENCHMARKS.md,
/// which `make bench` writes) for their links only.
pub struct Docs {
    pub root: PathBuf,
    pub pages: Vec<(String, Page, bool)>,
}

impl Docs {
    /// README.md and every docs/**/*.md under `root` in full; BENCHMARKS.md's links.
    pub fn load(root: &Path) -> Docs {
        let mut full = vec!["README.md".to_string()];
        let mut found = Vec::new();
        markdown_files(&root.join("docs"), &mut found);
        found.sort();
        full.extend(
            found
                .iter()
                .map(|p| p.strip_prefix(root).unwrap().display().to_string()),
        );
        let mut pages: Vec<(String, Page, bool)> = full
            .into_iter()
            .map(|rel| {
                let text = std::fs::read_to_string(root.join(&rel))
                    .unwrap_or_else(|e| panic!("{}: {e}", root.join(&rel).display()));
                (rel, markdown::parse(&text), true)
            })
            .collect();
        if let Ok(text) = std::fs::read_to_string(root.join("BENCHMARKS.md")) {
            pages.push(("BENCHMARKS.md".into(), markdown::parse(&text), false));
        }
        Docs {
            root: root.to_path_buf(),
            pages,
        }
    }

    fn full(&self) -> impl Iterator<Item = (&str, &Page)> {
        self.pages
            .iter()
            .filter(|(_, _, full)| *full)
            .map(|(f, p, _)| (f.as_str(), p))
    }

    pub fn page(&self, rel: &str) -> Option<&Page> {
        self.pages
            .iter()
            .find(|(f, _, _)| f == rel)
            .map(|(_, p, _)| p)
    }
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

// --- Links and anchors ---------------------------------------------------------------------

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path` relative to `root`, `..` and `.` resolved; None if it leaves `root`.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

fn external(dest: &str) -> bool {
    let scheme = dest.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    scheme || dest.starts_with("//")
}

/// Every relative link and image resolves to a file in the repository (not build output), and
/// every anchor to a heading (GitHub's anchors) or an HTML id of the page it names.
pub fn links(docs: &Docs) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut anchors: BTreeMap<PathBuf, Vec<String>> = docs
        .pages
        .iter()
        .map(|(f, p, _)| (PathBuf::from(f), p.anchors.clone()))
        .collect();
    for (file, page, _) in &docs.pages {
        for link in &page.links {
            let dest = link.dest.trim();
            if dest.is_empty() {
                problems.push(problem(file, link.line, "an empty link"));
                continue;
            }
            if external(dest) {
                continue;
            }
            let dest = dest.split('?').next().unwrap_or_default();
            let (path, anchor) = match dest.split_once('#') {
                Some((p, a)) => (p, Some(percent_decode(a))),
                None => (dest, None),
            };
            let what = if link.image { "image" } else { "link" };
            let target = if path.is_empty() {
                PathBuf::from(file)
            } else {
                let decoded = percent_decode(path);
                let joined = if let Some(rooted) = decoded.strip_prefix('/') {
                    PathBuf::from(rooted)
                } else {
                    Path::new(file)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(decoded)
                };
                match normalize(&joined) {
                    Some(t) => t,
                    None => {
                        problems.push(problem(
                            file,
                            link.line,
                            format!("{what} {dest}: leaves the repository"),
                        ));
                        continue;
                    }
                }
            };
            if target.starts_with("target") {
                problems.push(problem(
                    file,
                    link.line,
                    format!("{what} {dest}: build output (target/), not in the repository"),
                ));
                continue;
            }
            let on_disk = docs.root.join(&target);
            if !on_disk.exists() {
                problems.push(problem(
                    file,
                    link.line,
                    format!("{what} {dest}: {} does not exist", target.display()),
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_some_and(|e| e == "md") {
                let known = anchors.entry(target.clone()).or_insert_with(|| {
                    markdown::parse(&std::fs::read_to_string(&on_disk).unwrap_or_default()).anchors
                });
                if !known.contains(&anchor) {
                    problems.push(problem(
                        file,
                        link.line,
                        format!(
                            "{what} {dest}: no heading or id #{anchor} in {}",
                            target.display()
                        ),
                    ));
                }
            } else {
                // A forge's line anchors on a source file: #L10, #L10-L20.
                let line_anchor = anchor.strip_prefix('L').is_some_and(|rest| {
                    rest.split("-L")
                        .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                });
                if !line_anchor {
                    problems.push(problem(
                        file,
                        link.line,
                        format!("{what} {dest}: #{anchor} is not a line anchor (#L10) and {} is not Markdown", target.display()),
                    ));
                }
            }
        }
    }
    problems
}

// --- Policy snippets -------------------------------------------------------------------------

/// The result of running the `dial` binary.
pub struct Run {
    pub code: i32,
    pub output: String,
}

pub fn run_dial(dial: &Path, dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(dial)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", dial.display()));
    Run {
        code: out.status.code().unwrap_or(-1),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The block that shows a rejected snippet's messages: the next code block, before any heading.
fn shown_after(items: &[Item], at: usize) -> Option<&Block> {
    for item in items.get(at + 1..).unwrap_or_default() {
        match item {
            Item::Code(b) => return Some(b),
            Item::Heading => return None,
            Item::Other => {}
        }
    }
    None
}

/// Every ```json policy / ```yaml policy block is accepted by `dial validate` (written to
/// `policy.json` / `policy.yaml` in a directory of its own, validated from there, so the
/// messages name that file); every ```json policy-rejected (or yaml) block is rejected (exit
/// 1), and the ```text block right after it shows lines `dial validate` prints, each verbatim:
/// a whole line, or a problem's message whole from its JSON path (`$...`) to the line's end.
pub fn policies(docs: &Docs, dial: &Path, scratch: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut n = 0;
    for (file, page) in docs.full() {
        for (at, item) in page.items.iter().enumerate() {
            let Item::Code(block) = item else { continue };
            let words = block.words();
            let Some(marker) = words.iter().skip(1).find(|w| w.starts_with("policy")) else {
                continue;
            };
            let rejected = match *marker {
                "policy" => false,
                "policy-rejected" => true,
                other => {
                    problems.push(problem(
                        file,
                        block.line,
                        format!("unknown marker {other:?}: `policy` or `policy-rejected`"),
                    ));
                    continue;
                }
            };
            let name = match words.first().copied() {
                Some("json") => "policy.json",
                Some("yaml") | Some("yml") => "policy.yaml",
                _ => {
                    problems.push(problem(
                        file,
                        block.line,
                        format!("```{}: a policy block is ```json or ```yaml", block.info),
                    ));
                    continue;
                }
            };
            n += 1;
            let dir = scratch.join(format!("snippet-{n}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), &block.text).unwrap();
            let run = run_dial(dial, &dir, &["validate", name]);
            let indented = run
                .output
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n");
            match (rejected, run.code) {
                (false, 0) => {}
                (false, code) => problems.push(problem(
                    file,
                    block.line,
                    format!("`dial validate {name}` refuses this policy (exit {code}):\n{indented}"),
                )),
                (true, 1) => match shown_after(&page.items, at) {
                    Some(shown) if shown.words().first() == Some(&"text") => {
                        let printed: Vec<&str> = run.output.lines().map(str::trim_end).collect();
                        // A whole line, or a problem's whole message from its JSON path on
                        // (the `file:line:column: ` before it left out).
                        let shows = |line: &str| {
                            printed.iter().any(|p| {
                                *p == line
                                    || (line.starts_with('$') && p.ends_with(&format!(": {line}")))
                            })
                        };
                        let lines: Vec<&str> = shown
                            .text
                            .lines()
                            .map(str::trim_end)
                            .filter(|l| !l.trim().is_empty())
                            .collect();
                        if lines.is_empty() {
                            problems.push(problem(
                                file,
                                shown.line,
                                "the ```text block after a rejected policy shows no message",
                            ));
                        }
                        for line in lines {
                            if !shows(line) {
                                problems.push(problem(
                                    file,
                                    shown.line,
                                    format!("`dial validate {name}` does not print {line:?}; it prints:\n{indented}"),
                                ));
                            }
                        }
                    }
                    _ => problems.push(problem(
                        file,
                        block.line,
                        "a rejected policy needs a ```text block right after it, with the messages `dial validate` prints",
                    )),
                },
                (true, code) => problems.push(problem(
                    file,
                    block.line,
                    format!("`dial validate {name}` should reject this policy (exit 1), got exit {code}:\n{indented}"),
                )),
            }
        }
    }
    problems
}

// --- Commands: make targets, dial subcommands and flags --------------------------------------

/// A word of a shell command, and whether it was quoted (a quoted word is never a flag).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub quoted: bool,
}

/// The simple commands in a piece of shell: words split as a shell splits them (quotes, `\`
/// line continuations), commands separated by `;`, `&`, `|`, newlines and parentheses, and
/// comments dropped. Enough for documentation; no expansions.
pub fn shell_commands(text: &str) -> Vec<Vec<Word>> {
    let mut commands = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let end_word =
        |words: &mut Vec<Word>, word: &mut String, in_word: &mut bool, quoted: &mut bool| {
            if *in_word {
                words.push(Word {
                    text: std::mem::take(word),
                    quoted: *quoted,
                });
            }
            *in_word = false;
            *quoted = false;
        };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                quoted = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(n) => {
                    in_word = true;
                    word.push(n);
                }
            },
            '#' if !in_word => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                end_word(&mut words, &mut word, &mut in_word, &mut quoted);
                commands.push(std::mem::take(&mut words));
            }
            ';' | '&' | '|' | '\n' | '(' | ')' | '`' => {
                end_word(&mut words, &mut word, &mut in_word, &mut quoted);
                commands.push(std::mem::take(&mut words));
            }
            c if c.is_whitespace() => end_word(&mut words, &mut word, &mut in_word, &mut quoted),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut words, &mut word, &mut in_word, &mut quoted);
    commands.push(words);
    commands.retain(|c| !c.is_empty());
    commands
}

/// The shell in the pages: inline code spans, and ```sh, ```shell, ```bash blocks whole and
/// ```console blocks' `$ ` lines: (file, line, shell text).
fn shell_snippets(docs: &Docs) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    for (file, page) in docs.full() {
        for (span, line) in &page.code_spans {
            out.push((file.to_string(), *line, span.clone()));
        }
        for block in page.blocks() {
            match block.words().first().copied() {
                Some("sh") | Some("shell") | Some("bash") => {
                    for (i, l) in logical_lines(&block.text) {
                        out.push((file.to_string(), block.line + 1 + i, l));
                    }
                }
                Some("console") => {
                    for (i, l) in logical_lines(&block.text) {
                        if let Some(cmd) = l.strip_prefix("$ ") {
                            out.push((file.to_string(), block.line + 1 + i, cmd.to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Lines joined across `\` continuations: (index of the first line, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut continued = false;
    for (i, line) in text.lines().enumerate() {
        if continued {
            if let Some(last) = out.last_mut() {
                last.1.push('\n');
                last.1.push_str(line);
            }
        } else {
            out.push((i, line.to_string()));
        }
        continued = line.trim_end().ends_with('\\');
    }
    out
}

/// `>`, `>>`, `2>`, `<`, `2>&1`: a redirection whose target is the next word (or none, for `&1`).
fn is_redirection(word: &str) -> bool {
    let op = word.trim_start_matches(|c: char| c.is_ascii_digit());
    !op.is_empty() && op.chars().all(|c| c == '<' || c == '>') && word.len() <= 3
}

/// The words after any leading `VAR=value` assignments and `sudo`, `nice`, `time`, `env`.
fn command_words(words: &[Word]) -> &[Word] {
    let skip = words
        .iter()
        .take_while(|w| {
            !w.quoted
                && (["sudo", "nice", "time", "env"].contains(&w.text.as_str())
                    || w.text.split_once('=').is_some_and(|(name, _)| {
                        !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    }))
        })
        .count();
    &words[skip..]
}

/// The Makefile's targets (every rule's, explicit ones; no variables or patterns) and the
/// prerequisites of `test`, in order.
pub struct Makefile {
    pub targets: BTreeSet<String>,
    pub test: Vec<String>,
}

impl Makefile {
    pub fn parse(text: &str) -> Makefile {
        let mut targets = BTreeSet::new();
        let mut test = Vec::new();
        let joined = text.replace("\\\n", " ");
        for line in joined.lines() {
            if line.starts_with('\t') || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((head, rest)) = line.split_once(':') else {
                continue;
            };
            if rest.starts_with('=')
                || head.contains('=')
                || head.trim_start().starts_with("export ")
            {
                continue;
            }
            // A target-specific variable (`t: VAR := v`) names its target, like a rule.
            for t in head.split_whitespace() {
                if !t.contains('$') && !t.contains('%') {
                    targets.insert(t.to_string());
                }
            }
            if head.trim() == "test" && !rest.contains('=') {
                test = rest
                    .split('#')
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
            }
        }
        Makefile { targets, test }
    }
}

/// `make` and `dial` commands named in the pages: every make target exists in the Makefile;
/// every `dial` subcommand exists and each of its flags is one its `--help` lists.
pub fn commands(docs: &Docs, makefile: &Makefile, cli: &CliHelp) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (file, line, shell) in shell_snippets(docs) {
        for words in shell_commands(&shell) {
            problems.extend(
                missing_paths(&docs.root, &words)
                    .into_iter()
                    .map(|m| problem(&file, line, m)),
            );
            let words = command_words(&words);
            let Some(first) = words.first() else { continue };
            if first.text == "make" && !first.quoted {
                let mut args = words[1..].iter();
                while let Some(w) = args.next() {
                    if w.text.starts_with('-') {
                        if ["-C", "-f", "-I", "-o", "-W"].contains(&w.text.as_str()) {
                            args.next();
                        }
                        continue;
                    }
                    if is_redirection(&w.text) {
                        args.next();
                        continue;
                    }
                    // Variables, placeholders (`<new tag>`), redirections (`>out`).
                    if ['=', '<', '>', '$'].iter().any(|c| w.text.contains(*c)) {
                        continue;
                    }
                    if !makefile.targets.contains(&w.text) {
                        problems.push(problem(
                            &file,
                            line,
                            format!("`make {}`: no such target in the Makefile", w.text),
                        ));
                    }
                }
            } else if (first.text == "dial" || first.text.ends_with("/dial"))
                && !first.quoted
                && words.get(1).is_some_and(|w| looks_like_argument(&w.text))
            {
                problems.extend(
                    cli.check(&words[1..])
                        .into_iter()
                        .map(|m| problem(&file, line, m)),
                );
            } else if first.text == "cargo" {
                // `cargo run ... --bin dial -- <subcommand> ...`
                let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
                let runs_dial = texts.windows(2).any(|w| w == ["--bin", "dial"]);
                if let (true, Some(dashes)) = (runs_dial, texts.iter().position(|t| *t == "--")) {
                    problems.extend(
                        cli.check(&words[dashes + 1..])
                            .into_iter()
                            .map(|m| problem(&file, line, m)),
                    );
                }
            }
        }
    }
    problems
}

/// Whether the word after `dial` makes it a command line (`dial explain`, `dial --version`), not
/// a log line quoted in prose (`dial 0.1.0 (git …) started`, `dial: policy loaded`).
fn looks_like_argument(word: &str) -> bool {
    word.starts_with('-')
        || word.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && word.chars().all(|c| c.is_ascii_lowercase() || c == '-')
}

/// Whether git ignores `path` (relative to `root`): a place a tool writes, such as
/// tests/fuzz/work/, named but not committed.
fn git_ignored(root: &Path, path: &str) -> bool {
    Command::new("git")
        .current_dir(root)
        .args(["check-ignore", "-q", "--no-index", path])
        .status()
        .is_ok_and(|s| s.success())
}

/// Paths in the repository that a command names and that do not exist (nor are git-ignored): words whose first
/// component is one of the repository's top-level directories (`istio/sidecar/`, `tests/...`),
/// and the rendered Istio manifests (`target/istio-quickstart/...`, `target/istio/...`, copies
/// of istio/ with the image filled in), checked against istio/.
fn missing_paths(root: &Path, words: &[Word]) -> Vec<String> {
    let mut missing = Vec::new();
    for w in words {
        let text = w.text.rsplit_once('=').map_or(w.text.as_str(), |(_, v)| v);
        if text.is_empty()
            || ['*', '<', '$', '…', '{', '?']
                .iter()
                .any(|c| text.contains(*c))
        {
            continue;
        }
        let source = ["target/istio-quickstart/", "target/istio/"]
            .iter()
            .find_map(|rendered| text.strip_prefix(rendered))
            .map(|rest| format!("istio/{rest}"));
        let checked = match source {
            Some(source) => source,
            None => {
                let Some((top, _)) = text.split_once('/') else {
                    continue;
                };
                if top.is_empty()
                    || top == "target"
                    || top.starts_with('.')
                    || !root.join(top).is_dir()
                {
                    continue;
                }
                text.to_string()
            }
        };
        if !root.join(&checked).exists() && !git_ignored(root, &checked) {
            missing.push(if checked == text {
                format!("{text}: no such file or directory in the repository")
            } else {
                format!("{text}: no such file or directory ({checked} is what it is rendered from)")
            });
        }
    }
    missing
}

/// `dial --help` and each subcommand's: the subcommands and the flags each accepts.
pub struct CliHelp {
    pub top: BTreeSet<String>,
    pub subcommands: BTreeMap<String, BTreeSet<String>>,
}

/// The flags in a clap help text: `-o`, `--output` from lines like `  -o, --output <FORMAT>  ...`.
pub fn help_flags(help: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for line in help.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        let left = line.split("  ").next().unwrap_or_default();
        for part in left.split([',', ' ']) {
            let flag = part.split(['=', '<', '[']).next().unwrap_or_default();
            if flag.starts_with('-') && flag.len() > 1 {
                flags.insert(flag.to_string());
            }
        }
    }
    flags
}

impl CliHelp {
    pub fn from_binary(dial: &Path) -> CliHelp {
        let dir = std::env::temp_dir();
        let top = run_dial(dial, &dir, &["--help"]);
        assert_eq!(top.code, 0, "dial --help: {}", top.output);
        let mut subcommands = BTreeMap::new();
        let mut in_commands = false;
        for line in top.output.lines() {
            if line.trim_end() == "Commands:" {
                in_commands = true;
                continue;
            }
            if in_commands {
                let Some(name) = line.split_whitespace().next() else {
                    break;
                };
                if !line.starts_with("  ") {
                    break;
                }
                if name == "help" {
                    // clap's own: `dial help <subcommand>`, no options.
                    subcommands.insert(name.to_string(), BTreeSet::new());
                    continue;
                }
                let help = run_dial(dial, &dir, &[name, "--help"]);
                assert_eq!(help.code, 0, "dial {name} --help: {}", help.output);
                subcommands.insert(name.to_string(), help_flags(&help.output));
            }
        }
        assert!(
            subcommands.contains_key("validate"),
            "no subcommands read from `dial --help`:\n{}",
            top.output
        );
        CliHelp {
            top: help_flags(&top.output),
            subcommands,
        }
    }

    /// Problems with the arguments of one `dial` command.
    pub fn check(&self, args: &[Word]) -> Vec<String> {
        let Some(sub) = args.first() else {
            return Vec::new();
        };
        let flag_of = |w: &Word| -> Option<String> {
            if w.quoted || !w.text.starts_with('-') || w.text == "-" || w.text == "--" {
                return None;
            }
            if w.text.starts_with("--") {
                return Some(w.text.split('=').next().unwrap_or_default().to_string());
            }
            // `-5` is a value; `-ojson` is `-o json`.
            let second = w.text.chars().nth(1)?;
            (!second.is_ascii_digit()).then(|| format!("-{second}"))
        };
        if flag_of(sub).is_some() {
            return args
                .iter()
                .filter_map(flag_of)
                .filter(|f| !self.top.contains(f))
                .map(|f| format!("`dial {f}`: `dial --help` lists no such option"))
                .collect();
        }
        let Some(flags) = self.subcommands.get(&sub.text) else {
            if sub.text.contains('<') || sub.text.contains('…') || sub.text == "..." {
                return Vec::new();
            }
            return vec![format!(
                "`dial {}`: no such subcommand (`dial --help` lists {})",
                sub.text,
                self.subcommands
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )];
        };
        args[1..]
            .iter()
            .take_while(|w| w.text != "--")
            .filter_map(flag_of)
            .filter(|f| !flags.contains(f))
            .map(|f| {
                format!(
                    "`dial {} {f}`: `dial {} --help` lists no such option",
                    sub.text, sub.text
                )
            })
            .collect()
    }
}

// --- What make test runs ---------------------------------------------------------------------

/// docs/testing.md's list of what `make test` runs (the first bullet list whose every item
/// starts with `` `make <target>` ``) names the Makefile's `test:` prerequisites, in order.
pub fn test_list(docs: &Docs, makefile: &Makefile) -> Vec<Problem> {
    let file = "docs/testing.md";
    let Some(page) = docs.page(file) else {
        return vec![problem(file, 1, "missing: it lists what `make test` runs")];
    };
    let list = page.bullet_lists.iter().find(|items| {
        !items.is_empty()
            && items
                .iter()
                .all(|i| i.as_deref().is_some_and(|c| c.starts_with("make ")))
    });
    let Some(list) = list else {
        return vec![problem(
            file,
            1,
            "no bullet list whose items each start with `make <target>`: the list of what `make test` runs",
        )];
    };
    let listed: Vec<String> = list
        .iter()
        .flatten()
        .map(|c| c.trim_start_matches("make ").trim().to_string())
        .collect();
    if listed == makefile.test {
        Vec::new()
    } else {
        vec![problem(
            file,
            1,
            format!(
                "the list of what `make test` runs names {}; the Makefile's `test:` runs {}",
                listed.join(" "),
                makefile.test.join(" ")
            ),
        )]
    }
}

// --- The demo's output -----------------------------------------------------------------------

pub const DEMO_MARKER: &str = "<!-- demo-output -->";

/// The blocks right after a `<!-- demo-output -->` line: (line, text), or a problem where the
/// block is not ```text.
pub fn demo_blocks(file: &str, page: &Page) -> Result<Vec<(usize, String)>, Vec<Problem>> {
    let mut blocks = Vec::new();
    let mut problems = Vec::new();
    for block in page.blocks() {
        if block.comment_before.as_deref() != Some(DEMO_MARKER) {
            continue;
        }
        if block.words().first() == Some(&"text") {
            blocks.push((block.line, block.text.clone()));
        } else {
            problems.push(problem(
                file,
                block.line,
                format!(
                    "the block after {DEMO_MARKER} is ```{}, not ```text",
                    block.info
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(blocks)
    } else {
        Err(problems)
    }
}
