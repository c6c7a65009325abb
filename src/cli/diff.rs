//! `dial diff`: what a policy change does to users. Every key is decided by the old policy and
//! by the new one (each release on its own, matched by name), and the moves are counted: from
//! subset to subset, with shares. A user moved by the split from a subset whose share did not
//! shrink, or into one whose share did not grow, moved back: the change breaks monotonicity
//! and stickiness (a reordered subset list, a renamed subset...). `--fail-on-move-back` turns
//! that into exit code 1, so a pipeline can refuse the change.

use std::time::Instant;

use dial::core::decide::{decide_release, Context, Decision, Reason};
use dial::core::policy::{Policy, Release};
use dial::core::runtime::effective_weights;
use serde_json::{json, Value};

use crate::common::{
    key_sources, Failure, Format, Loaded, Outcome, Probe, SharedArgs, OK, PROBLEMS,
};
use crate::population::{self, KeyArgs};
use crate::report::{self, thousands, Table};

pub const EXAMPLES: &str = "\
Examples:
  dial diff <(git show main:policy.json) policy.json --fail-on-move-back
  dial diff old.json new.json --users 1000000 --fail-on-move-back
  dial diff istio/gateway/wasmplugin.yaml new-wasmplugin.yaml --at 2026-12-01T10:00:00Z -o json";

#[derive(Debug, clap::Args)]
#[command(
    mut_arg("at", |a| a.help("The moment to compare at (ramps depend on it): RFC 3339, `now`, or +DURATION")),
    mut_arg("policy", |a| a.help("Which policy, when a file holds several: its number or a part of its name")),
    mut_arg("output", |a| a.help("`json`: the shares and moves as one object, for tools")),
)]
pub struct Args {
    /// The policy as it is (a policy JSON, an Envoy configuration or a WasmPlugin manifest)
    #[arg(value_name = "OLD")]
    pub old: String,
    /// The policy as it would be
    #[arg(value_name = "NEW")]
    pub new: String,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Exit 1 if any user moves back (against the change of shares)
    #[arg(long)]
    pub fail_on_move_back: bool,
    /// Only this release
    #[arg(long, value_name = "NAME")]
    pub release: Option<String>,
    #[command(flatten)]
    pub shared: SharedArgs,
}

/// What the workers count: moves[from][to] by how they happened.
struct Tally {
    old: Probe,
    new: Probe,
    cells: Vec<Vec<Cell>>,
}

#[derive(Clone, Copy, Default)]
struct Cell {
    /// Placed by the split on both sides.
    split: u64,
    /// Placed by a rule, an override or whenNoKey on either side.
    other: u64,
}

fn by_split(r: Reason) -> bool {
    matches!(r, Reason::Hash | Reason::StickyCookie)
}

pub fn run(args: &Args) -> Outcome {
    let old = args.shared.load(&args.old)?;
    let new = args.shared.load(&args.new)?;
    let at = args.shared.at()?;
    let keys = args.keys.keys()?;
    let started = Instant::now();
    let context = Context::at(at);
    let (op, np) = (&old.engine.policy, &new.engine.policy);
    let names: Vec<&str> = op
        .releases
        .iter()
        .map(|r| r.name.as_str())
        .filter(|n| args.release.as_deref().is_none_or(|want| want == *n))
        .collect();
    if let Some(want) = &args.release {
        if names.is_empty() || index_of(np, want).is_none() {
            return Err(Failure::usage(format!(
                "--release {want}: not in both policies (old: {}; new: {})",
                crate::common::release_names(op),
                crate::common::release_names(np)
            )));
        }
    }
    let mut notes = Vec::new();
    for r in &op.releases {
        if index_of(np, &r.name).is_none() && args.release.is_none() {
            notes.push(format!(
                "release {} is only in OLD: its requests go to whatever release the new policy matches, or pass",
                r.name
            ));
        }
    }
    for r in &np.releases {
        if index_of(op, &r.name).is_none() && args.release.is_none() {
            notes.push(format!(
                "release {} is only in NEW: its users are assigned afresh (a renamed release reshuffles them: the name salts the hash)",
                r.name
            ));
        }
    }
    let mut text = String::new();
    let mut releases = Vec::new();
    let mut total_back = 0u64;
    for name in names {
        let (Some(oi), Some(ni)) = (index_of(op, name), index_of(np, name)) else {
            continue;
        };
        let (result, json) = release_diff(args, &old, &new, oi, ni, &context, &keys, &mut notes)?;
        text.push_str(&result.text);
        total_back += result.back;
        releases.push(json);
    }
    let seconds = started.elapsed().as_secs_f64();
    let failing = args.fail_on_move_back && total_back > 0;
    match args.shared.output {
        Format::Text => {
            println!("Old:    {}", old.label);
            println!("New:    {}", new.label);
            println!("At:     {}", report::instant(at));
            println!("Users:  {}, in {seconds:.2} s", keys.describe());
            for n in &notes {
                println!("Note:   {n}");
            }
            print!("{text}");
        }
        Format::Json => {
            let mut head = keys.json();
            if let Value::Object(m) = &mut head {
                m.insert("old".into(), old.source_json());
                m.insert("new".into(), new.source_json());
                m.insert("at".into(), Value::String(report::instant(at)));
                m.insert("seconds".into(), json!(seconds));
                m.insert("releases".into(), Value::Array(releases));
                m.insert("moved_back".into(), json!(total_back));
                m.insert("notes".into(), json!(notes));
                m.insert(
                    "exit_code".into(),
                    json!(if failing { PROBLEMS } else { OK }),
                );
            }
            println!("{head}");
        }
    }
    if failing {
        eprintln!(
            "dial: {} users moved back: refusing the change (--fail-on-move-back)",
            thousands(total_back)
        );
        return Ok(PROBLEMS);
    }
    Ok(OK)
}

fn index_of(policy: &Policy, name: &str) -> Option<usize> {
    policy.releases.iter().position(|r| r.name == name)
}

struct ReleaseResult {
    text: String,
    back: u64,
}

#[allow(clippy::too_many_arguments)]
fn release_diff(
    args: &Args,
    old: &Loaded,
    new: &Loaded,
    oi: usize,
    ni: usize,
    context: &Context,
    keys: &population::Keys,
    notes: &mut Vec<String>,
) -> Result<(ReleaseResult, Value), Failure> {
    let (op, np) = (&old.engine.policy, &new.engine.policy);
    let (Some(or), Some(nr)) = (op.releases.get(oi), np.releases.get(ni)) else {
        return Err(Failure::problems("a release vanished"));
    };
    let name = or.name.clone();
    if or.key != nr.key {
        notes.push(format!(
            "release {name}: the key sources change ({} -> {}): each key is put in each policy's first source, but real requests may present another key",
            key_sources(or),
            key_sources(nr)
        ));
    }
    if or.scope.hosts != nr.scope.hosts || or.scope.path_prefixes != nr.scope.path_prefixes {
        notes.push(format!(
            "release {name}: its match (hosts, path prefixes) changes: it catches other requests; the users compared are those it catches in both"
        ));
    }
    // Subsets by name: the old ones in order, then the new ones.
    let mut names: Vec<String> = or.subsets.iter().map(|s| s.name.clone()).collect();
    for s in &nr.subsets {
        if !names.contains(&s.name) {
            names.push(s.name.clone());
        }
    }
    let to_union = |r: &Release| -> Vec<usize> {
        r.subsets
            .iter()
            .map(|s| names.iter().position(|n| *n == s.name).unwrap_or(0))
            .collect()
    };
    let (omap, nmap) = (to_union(or), to_union(nr));
    for s in &or.subsets {
        if let Some(n) = nr
            .subsets
            .iter()
            .find(|n| n.name == s.name && n.version != s.version)
        {
            notes.push(format!(
                "release {name}: subset {} changes version {} -> {}: its users stay, on the new version",
                s.name, s.version, n.version
            ));
        }
    }
    let at = context.now_nanos.unwrap_or(0);
    let share = |loaded: &Loaded, index: usize, map: &[usize]| -> Vec<u64> {
        let mut out = vec![0u64; names.len()];
        for (i, bps) in effective_weights(&loaded.engine, index, at, false)
            .into_iter()
            .enumerate()
        {
            if let Some(slot) = map.get(i).and_then(|u| out.get_mut(*u)) {
                *slot = bps;
            }
        }
        out
    };
    let (old_share, new_share) = (share(old, oi, &omap), share(new, ni, &nmap));
    let n = names.len();
    let (oprobe, nprobe) = (Probe::new(or)?, Probe::new(nr)?);
    let tallies = population::run(
        keys,
        &format!("diff {name}"),
        args.keys.quiet,
        || Tally {
            old: oprobe.clone(),
            new: nprobe.clone(),
            cells: vec![vec![Cell::default(); n]; n],
        },
        |t, key| {
            t.old.set_key(key);
            t.new.set_key(key);
            let (Decision::Assign(a), Decision::Assign(b)) = (
                decide_release(op, oi, context, &t.old.request),
                decide_release(np, ni, context, &t.new.request),
            ) else {
                return;
            };
            let (from, to) = (
                omap.get(a.subset).copied().unwrap_or(0),
                nmap.get(b.subset).copied().unwrap_or(0),
            );
            if let Some(cell) = t.cells.get_mut(from).and_then(|r| r.get_mut(to)) {
                if by_split(a.reason) && by_split(b.reason) {
                    cell.split += 1;
                } else {
                    cell.other += 1;
                }
            }
        },
    )?;
    let mut cells = vec![vec![Cell::default(); n]; n];
    for t in &tallies {
        for (f, row) in t.cells.iter().enumerate() {
            for (to, c) in row.iter().enumerate() {
                if let Some(cell) = cells.get_mut(f).and_then(|r| r.get_mut(to)) {
                    cell.split += c.split;
                    cell.other += c.other;
                }
            }
        }
    }
    let total = keys.len();
    let grew = |s: usize| new_share.get(s) > old_share.get(s);
    let shrank = |s: usize| new_share.get(s) < old_share.get(s);

    let mut text = format!("\nRelease {name}\n");
    let mut shares = Table::new(&["subset", "old", "new", "change"]);
    let mut shares_json = Vec::new();
    for (s, subset) in names.iter().enumerate() {
        let (o, w) = (
            old_share.get(s).copied().unwrap_or(0),
            new_share.get(s).copied().unwrap_or(0),
        );
        let present = |map: &[usize]| map.contains(&s);
        shares.row(vec![
            subset.clone(),
            if present(&omap) {
                report::bps(o)
            } else {
                "-".into()
            },
            if present(&nmap) {
                report::bps(w)
            } else {
                "-".into()
            },
            report::bps_change(o, w),
        ]);
        shares_json.push(
            json!({ "subset": subset, "old": o as f64 / 10_000.0, "new": w as f64 / 10_000.0 }),
        );
    }
    text.push_str(&shares.render(2));

    // The matrix: rows are where users were, columns where they go.
    let mut header = vec!["from \\ to".to_string()];
    header.extend(names.iter().cloned());
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut matrix = Table::new(&header);
    let mut moves = Table::new(&["move", "users", "share", "kind"]);
    let mut moves_json = Vec::new();
    let (mut forward, mut back, mut by_rule) = (0u64, 0u64, 0u64);
    for (f, row) in cells.iter().enumerate() {
        let mut cells_text = vec![names.get(f).cloned().unwrap_or_default()];
        for (to, c) in row.iter().enumerate() {
            let users = c.split + c.other;
            cells_text.push(format!(
                "{} ({})",
                thousands(users),
                report::share(users, total)
            ));
            if f == to || users == 0 {
                continue;
            }
            let kind_split = if shrank(f) && grew(to) {
                "forward"
            } else {
                "back"
            };
            let (from_name, to_name) = (
                names.get(f).cloned().unwrap_or_default(),
                names.get(to).cloned().unwrap_or_default(),
            );
            for (count, kind) in [(c.split, kind_split), (c.other, "rule")] {
                if count == 0 {
                    continue;
                }
                match kind {
                    "forward" => forward += count,
                    "back" => back += count,
                    _ => by_rule += count,
                }
                moves.row(vec![
                    format!("{from_name} -> {to_name}"),
                    thousands(count),
                    report::share(count, total),
                    match kind {
                        "rule" => "by a rule, override or whenNoKey".to_string(),
                        k => k.to_string(),
                    },
                ]);
                moves_json.push(json!({
                    "from": from_name, "to": to_name, "users": count,
                    "share": count as f64 / total as f64, "kind": kind,
                }));
            }
        }
        matrix.row(cells_text);
    }
    text.push('\n');
    text.push_str(&matrix.render(2));
    let must_move: u64 = (0..n)
        .map(|s| {
            new_share
                .get(s)
                .copied()
                .unwrap_or(0)
                .saturating_sub(old_share.get(s).copied().unwrap_or(0))
        })
        .sum();
    let moved = forward + back + by_rule;
    text.push('\n');
    if moved == 0 {
        text.push_str("  no user moves\n");
    } else {
        text.push_str(&moves.render(2));
        text.push('\n');
    }
    text.push_str(&format!(
        "  moved forward: {} ({}; the shares move {})\n",
        thousands(forward),
        report::share(forward, total),
        report::bps(must_move)
    ));
    if by_rule > 0 {
        text.push_str(&format!(
            "  moved by rules: {} ({})\n",
            thousands(by_rule),
            report::share(by_rule, total)
        ));
    }
    text.push_str(&format!(
        "  moved back: {} ({}){}\n",
        thousands(back),
        report::share(back, total),
        if back > 0 {
            ": users leave a subset whose share did not shrink, or join one whose share did not grow; the change breaks stickiness"
        } else {
            ""
        }
    ));
    let json = json!({
        "name": name,
        "shares": shares_json,
        "moves": moves_json,
        "moved": moved,
        "forward": forward,
        "back": back,
        "by_rule": by_rule,
        "shares_move": must_move as f64 / 10_000.0,
    });
    Ok((ReleaseResult { text, back }, json))
}
