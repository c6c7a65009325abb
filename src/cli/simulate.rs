//! `dial simulate`: how users spread over each release's subsets, decided one by one by the
//! core (rules and allowlists included), against the shares the policy promises; with a ramp,
//! at each of its steps, and how many users each step moves.

use std::time::Instant;

use dial::core::decide::{decide_release, Context, Decision, Reason};
use dial::core::lane::{Lanes, Reach};
use dial::core::policy::Release;
use dial::core::runtime::effective_weights;
use serde_json::{json, Value};

use crate::common::{
    key_sources, pick_releases, tripped_bits, Format, Outcome, Probe, SharedArgs, OK,
};
use crate::population::{self, KeyArgs};
use crate::report::{self, thousands, Table};

pub const EXAMPLES: &str = "\
Examples:
  dial simulate tests/data/checkout.json --users 1000000
  dial simulate istio/gateway/wasmplugin.yaml --at 2026-12-01T10:00:00Z     (the ramp's steps too)
  dial simulate envoy-config/envoy.yaml --release search --keys ids.txt -o json";

#[derive(Debug, clap::Args)]
#[command(
    mut_arg("at", |a| a.help("The moment to simulate (a ramp's step depends on it): RFC 3339, `now`, or +DURATION")),
    mut_arg("output", |a| a.help("`json`: the counts as one object, for tools")),
)]
pub struct Args {
    /// The policy: a policy JSON, an Envoy configuration or a WasmPlugin manifest
    #[arg(value_name = "FILE")]
    pub file: String,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Only this release
    #[arg(long, value_name = "NAME")]
    pub release: Option<String>,
    /// Take the guard of this release as tripped (repeat it)
    #[arg(long, value_name = "RELEASE")]
    pub tripped: Vec<String>,
    #[command(flatten)]
    pub shared: SharedArgs,
}

/// One moment the release is decided at: the `--at` moment, or a ramp's period.
struct Period {
    label: String,
    from: Option<u64>,
    hold: Option<u64>,
    context: Context,
}

/// What the workers count, per period.
struct Tally {
    probe: Probe,
    /// [period][subset][reason]
    counts: Vec<Vec<[u64; Reason::ALL.len()]>>,
    mirrored: Vec<u64>,
    /// Users whose subset changed from the period before, and of them those that did not go to
    /// the ramped subset.
    moved: Vec<u64>,
    moved_elsewhere: Vec<u64>,
    passed: u64,
}

fn reason_index(r: Reason) -> usize {
    Reason::ALL.iter().position(|x| *x == r).unwrap_or(0)
}

/// A release's lanes: the lane an issuing release writes for each subset (and for how many of
/// the users), and the subset each lane reaches at a following release, as the core's
/// `Lanes::reaches` tells it.
fn lanes(
    text: &mut String,
    l: &Lanes,
    release: &Release,
    users_of: impl Fn(usize) -> u64,
    total: u64,
) -> Value {
    let subset = |i: usize| release.subsets.get(i).map_or("?", |s| s.name.as_str());
    let mut issued = Vec::new();
    if l.issue {
        text.push_str(&format!(
            "  issues lanes as the baggage member {}:",
            l.member
        ));
        for (i, lane) in l.subset_lanes.iter().enumerate() {
            let users = users_of(i);
            text.push_str(&format!(
                " {} -> lane {lane} ({} users, {})",
                subset(i),
                thousands(users),
                report::share(users, total)
            ));
            issued.push(json!({ "subset": subset(i), "lane": lane, "users": users }));
        }
        text.push('\n');
    }
    let mut reach = Vec::new();
    if l.follow {
        // ` -> stable (lane)`, with the lane's entry in `reach`; or `: refused (unknown_lane)`.
        let mut reached = |lane: Option<&str>, r: Option<Reach>| {
            let (s, reason) = match r {
                Some(Reach::Subset(s)) => (s, Reason::Lane.as_str()),
                Some(Reach::Base(s)) => (s, Reason::LaneFallback.as_str()),
                Some(Reach::Refused(why)) => return format!(": refused ({})", why.as_str()),
                None => return ": assigned as without a lane".to_string(),
            };
            reach.push(json!({ "lane": lane, "subset": subset(s), "reason": reason }));
            format!(" -> {} ({reason})", subset(s))
        };
        let map = l.reaches();
        text.push_str(&format!("  follows lanes ({}):", l.member));
        for (lane, r) in map.known {
            text.push_str(&format!(" lane {lane}{};", reached(Some(lane), Some(r))));
        }
        text.push_str(&format!(" any other lane{}", reached(None, map.other)));
        text.push('\n');
    }
    json!({ "member": l.member, "issue": l.issue, "follow": l.follow, "issued": issued, "reach": reach })
}

pub fn run(args: &Args) -> Outcome {
    let loaded = args.shared.load(&args.file)?;
    let at = args.shared.at()?;
    let tripped = tripped_bits(&loaded.engine.policy, &args.tripped)?;
    let keys = args.keys.keys()?;
    let started = Instant::now();
    let mut releases_json = Vec::new();
    let mut text = String::new();
    let policy = &loaded.engine.policy;
    for index in pick_releases(policy, args.release.as_deref())? {
        let Some(release) = policy.releases.get(index) else {
            continue;
        };
        let is_tripped = Context {
            now_nanos: None,
            tripped,
        }
        .is_tripped(index);
        let context = |now: u64| Context {
            now_nanos: Some(now),
            tripped,
        };
        // The periods: `--at` alone, or a ramp's (before the start, then each step); a tripped
        // guard stops the ramp (`decide` keeps the written weights), so its periods would not differ.
        let (periods, current) = match release.ramp.as_ref().filter(|_| !is_tripped) {
            Some(ramp) => {
                let mut periods = vec![Period {
                    label: "before".into(),
                    from: None,
                    hold: None,
                    context: context(ramp.start.saturating_sub(1)),
                }];
                for (k, step) in ramp.steps.iter().enumerate() {
                    let from = ramp.step_start(k);
                    periods.push(Period {
                        label: (k + 1).to_string(),
                        from: Some(from),
                        hold: step.until.map(|u| u.saturating_sub(from)),
                        context: context(from),
                    });
                }
                let current = ramp.step_at(Some(at)).map_or(0, |(k, _)| k + 1);
                (periods, current)
            }
            None => (
                vec![Period {
                    label: "now".into(),
                    from: Some(at),
                    hold: None,
                    context: context(at),
                }],
                0,
            ),
        };
        let ramped = release.ramp.as_ref().map(|r| r.subset);
        let subsets = release.subsets.len();
        let probe = Probe::new(release)?;
        let keyed = probe.keyed();
        let tallies = population::run(
            &keys,
            &format!("simulate {}", release.name),
            args.keys.quiet,
            || Tally {
                probe: probe.clone(),
                counts: vec![vec![[0u64; Reason::ALL.len()]; subsets]; periods.len()],
                mirrored: vec![0; periods.len()],
                moved: vec![0; periods.len()],
                moved_elsewhere: vec![0; periods.len()],
                passed: 0,
            },
            |t, key| {
                t.probe.set_key(key);
                let mut previous = None;
                for (p, period) in periods.iter().enumerate() {
                    match decide_release(policy, index, &period.context, &t.probe.request) {
                        Decision::Assign(a) => {
                            if let Some(c) = t.counts.get_mut(p).and_then(|c| c.get_mut(a.subset)) {
                                if let Some(n) = c.get_mut(reason_index(a.reason)) {
                                    *n += 1;
                                }
                            }
                            if a.mirror {
                                if let Some(m) = t.mirrored.get_mut(p) {
                                    *m += 1;
                                }
                            }
                            if previous.is_some_and(|s| s != a.subset) {
                                if let Some(m) = t.moved.get_mut(p) {
                                    *m += 1;
                                }
                                if Some(a.subset) != ramped {
                                    if let Some(m) = t.moved_elsewhere.get_mut(p) {
                                        *m += 1;
                                    }
                                }
                            }
                            previous = Some(a.subset);
                        }
                        Decision::Pass => t.passed += 1,
                    }
                }
            },
        )?;
        // Merge the workers' tallies.
        let mut counts = vec![vec![[0u64; Reason::ALL.len()]; subsets]; periods.len()];
        let mut mirrored = vec![0u64; periods.len()];
        let mut moved = vec![0u64; periods.len()];
        let mut moved_elsewhere = vec![0u64; periods.len()];
        for t in &tallies {
            for (p, per) in t.counts.iter().enumerate() {
                for (s, reasons) in per.iter().enumerate() {
                    for (r, n) in reasons.iter().enumerate() {
                        if let Some(c) = counts
                            .get_mut(p)
                            .and_then(|c| c.get_mut(s))
                            .and_then(|c| c.get_mut(r))
                        {
                            *c += n;
                        }
                    }
                }
            }
            for (into, from) in [
                (&mut mirrored, &t.mirrored),
                (&mut moved, &t.moved),
                (&mut moved_elsewhere, &t.moved_elsewhere),
            ] {
                for (a, b) in into.iter_mut().zip(from) {
                    *a += b;
                }
            }
        }
        let total = keys.len();
        let expected = |p: &Period| {
            effective_weights(
                &loaded.engine,
                index,
                p.context.now_nanos.unwrap_or(at),
                is_tripped,
            )
        };
        let users_of = |p: usize, s: usize| -> u64 {
            counts
                .get(p)
                .and_then(|c| c.get(s))
                .map_or(0, |r| r.iter().sum())
        };
        let name = &release.name;

        // Text: the table at `--at`, then the ramp's.
        text.push_str(&format!(
            "\nRelease {name}: key from {}",
            key_sources(release)
        ));
        if !keyed {
            text.push_str(" (each key stands for an anonymous visitor's minted key)");
        }
        if is_tripped {
            text.push_str(&format!(
                "; guard tripped: {} goes to {}",
                release
                    .guard
                    .as_ref()
                    .and_then(|g| release.subsets.get(g.subset))
                    .map_or("?", |s| s.name.as_str()),
                release
                    .guard
                    .as_ref()
                    .and_then(|g| release.subsets.get(g.fallback))
                    .map_or("?", |s| s.name.as_str()),
            ));
        }
        text.push('\n');
        let reasons_seen: Vec<usize> = (0..Reason::ALL.len())
            .filter(|r| {
                counts
                    .get(current)
                    .is_some_and(|c| c.iter().any(|s| s.get(*r).copied().unwrap_or(0) > 0))
            })
            .collect();
        let mut header = vec!["subset", "version", "weight", "expected", "users", "share"];
        header.extend(
            reasons_seen
                .iter()
                .filter_map(|r| Reason::ALL.get(*r).map(|x| x.as_str())),
        );
        let mut table = Table::new(&header);
        let now_expected = periods.get(current).map(expected).unwrap_or_default();
        let mut subsets_json = Vec::new();
        for (s, subset) in release.subsets.iter().enumerate() {
            let users = users_of(current, s);
            let bps = now_expected.get(s).copied().unwrap_or(0);
            let mut row = vec![
                subset.name.clone(),
                subset.version.clone(),
                subset.weight.to_string(),
                report::bps(bps),
                thousands(users),
                report::share(users, total),
            ];
            let mut reasons = serde_json::Map::new();
            for r in &reasons_seen {
                let n = counts
                    .get(current)
                    .and_then(|c| c.get(s))
                    .and_then(|c| c.get(*r))
                    .copied()
                    .unwrap_or(0);
                row.push(thousands(n));
            }
            for (r, reason) in Reason::ALL.iter().enumerate() {
                let n = counts
                    .get(current)
                    .and_then(|c| c.get(s))
                    .and_then(|c| c.get(r))
                    .copied()
                    .unwrap_or(0);
                if n > 0 {
                    reasons.insert(reason.as_str().into(), n.into());
                }
            }
            table.row(row);
            subsets_json.push(json!({
                "name": subset.name, "version": subset.version, "weight": subset.weight,
                "expected_share": bps as f64 / 10_000.0, "users": users,
                "share": users as f64 / total as f64, "reasons": reasons,
            }));
        }
        text.push_str(&table.render(2));
        let mirrored_now = mirrored.get(current).copied().unwrap_or(0);
        if let Some(m) = &release.mirror {
            text.push_str(&format!(
                "  mirrored to {}: {} users ({}; the policy samples {:.2}% of {} requests)\n",
                m.version,
                thousands(mirrored_now),
                report::share(mirrored_now, total),
                m.percent(),
                m.methods.join(", ")
            ));
        }
        let lanes_json = release
            .lanes
            .as_ref()
            .map(|l| lanes(&mut text, l, release, |s| users_of(current, s), total));
        let mut ramp_json = Value::Null;
        if let (Some(ramp), true) = (&release.ramp, periods.len() > 1) {
            let ramped_name = release
                .subsets
                .get(ramp.subset)
                .map_or("?", |s| s.name.as_str());
            text.push_str(&format!(
                "  ramp of {ramped_name} from {} (at {}: {}); each subset: expected / simulated\n",
                report::instant(ramp.start),
                report::instant(at),
                if current == 0 {
                    "before the start".to_string()
                } else {
                    format!("step {current}")
                }
            ));
            let mut header: Vec<String> = vec!["step".into(), "from".into(), "hold".into()];
            header.extend(release.subsets.iter().map(|s| s.name.clone()));
            header.push("moved in".into());
            header.push("moved elsewhere".into());
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let mut table = Table::new(&header);
            let mut steps_json = Vec::new();
            for (p, period) in periods.iter().enumerate() {
                let exp = expected(period);
                let mut row = vec![
                    if p == current {
                        format!("{} <-", period.label)
                    } else {
                        period.label.clone()
                    },
                    period.from.map_or("-".into(), report::instant),
                    period.hold.map_or("-".into(), report::duration),
                ];
                let mut shares = Vec::new();
                for s in 0..subsets {
                    let e = exp.get(s).copied().unwrap_or(0);
                    let u = users_of(p, s);
                    row.push(format!("{} / {}", report::bps(e), report::share(u, total)));
                    shares.push(json!({
                        "subset": release.subsets.get(s).map(|x| x.name.clone()),
                        "expected_share": e as f64 / 10_000.0, "users": u,
                        "share": u as f64 / total as f64,
                    }));
                }
                let (m, other) = (
                    moved.get(p).copied().unwrap_or(0),
                    moved_elsewhere.get(p).copied().unwrap_or(0),
                );
                row.push(if p == 0 {
                    "-".into()
                } else {
                    thousands(m - other)
                });
                row.push(if p == 0 { "-".into() } else { thousands(other) });
                table.row(row);
                steps_json.push(json!({
                    "step": if p == 0 { Value::Null } else { Value::from(p) },
                    "from": period.from.map(report::instant),
                    "hold": period.hold.map(report::duration),
                    "current": p == current,
                    "shares": shares,
                    "moved_in": if p == 0 { 0 } else { m - other },
                    "moved_elsewhere": other,
                }));
            }
            text.push_str(&table.render(2));
            ramp_json = json!({ "subset": ramped_name, "start": report::instant(ramp.start), "steps": steps_json });
        }
        releases_json.push(json!({
            "name": name,
            "key": key_sources(release),
            "tripped": is_tripped,
            "subsets": subsets_json,
            "mirrored": release.mirror.as_ref().map(|m| json!({ "version": m.version, "users": mirrored_now })),
            "ramp": ramp_json,
            "lanes": lanes_json,
        }));
    }
    let seconds = started.elapsed().as_secs_f64();
    match args.shared.output {
        Format::Text => {
            println!("Policy: {}, at {}", loaded.label, report::instant(at));
            println!("Users:  {}, in {seconds:.2} s", keys.describe());
            print!("{text}");
        }
        Format::Json => {
            let mut head = keys.json();
            if let Value::Object(m) = &mut head {
                m.insert("policy".into(), loaded.source_json());
                m.insert("at".into(), Value::String(report::instant(at)));
                m.insert("seconds".into(), json!(seconds));
                m.insert("releases".into(), Value::Array(releases_json));
            }
            println!("{head}");
        }
    }
    Ok(OK)
}
