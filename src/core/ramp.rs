//! Ramp schedules: one subset's share raised step by step over time, evaluated by every proxy
//! from the same policy and its clock, so no controller rewrites the policy at each step.
//!
//! Monotone by construction. The release's written weights lay the subsets out on the hash
//! space as usual; the ramped subset keeps its own interval, and as its share grows it takes
//! the same top fraction `f` of every other subset's interval. As `f` grows, users only move from
//! another subset into the ramped one; nobody moves between the others, and nobody leaves the
//! ramped subset. At `f = 0` the layout is exactly the written split.

use crate::core::bucket;

/// Shares are in parts per million of the release's traffic.
pub const PPM: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ramp {
    /// The ramped subset (an index into the release's subsets).
    pub subset: usize,
    /// When the first step begins, in nanoseconds since the epoch.
    pub start: u64,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The ramped subset's share during this step.
    pub share_ppm: u32,
    /// The fraction of every other subset's interval the ramped subset takes (`f`), computed
    /// once from the written weights.
    pub taken_ppm: u32,
    /// When this step ends (the next begins); `None` for the last step, which holds forever.
    pub until: Option<u64>,
    /// The step's weights as running sums out of `PPM` (the ramped subset at `share_ppm`, the
    /// others in their written proportions): what a flag system's weights would be at this step.
    pub cumulative: Vec<u32>,
}

impl Ramp {
    /// The step in force at `now`, or `None` before the start (or when the time is unknown):
    /// the written weights apply then.
    pub fn step_at(&self, now: Option<u64>) -> Option<(usize, &Step)> {
        let now = now?;
        if now < self.start {
            return None;
        }
        self.steps
            .iter()
            .enumerate()
            .find(|(_, s)| s.until.is_none_or(|until| now < until))
    }

    /// When step `k` (an index into `steps`) begins: the start for the first, else when the
    /// step before ends. For people (`dial explain`, `simulate`, `validate`); the filter only
    /// needs `step_at`.
    pub fn step_start(&self, k: usize) -> u64 {
        k.checked_sub(1)
            .and_then(|before| self.steps.get(before))
            .and_then(|s| s.until)
            .unwrap_or(self.start)
    }
}

/// A share in ppm as a percentage with up to two decimals (`12.5`, `0.01`, `100`), written
/// with integers: float formatting would add a fifth to the module.
pub fn percent(ppm: u64) -> String {
    let hundredths = (ppm + 50) / 100;
    let (whole, fraction) = (hundredths / 100, hundredths % 100);
    match fraction {
        0 => format!("{whole}"),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// The running sums of the weights at a step: the ramped subset at `share_ppm` of `PPM`, the
/// others sharing the rest in their written proportions (the rounding remainder to the first).
pub fn step_cumulative(weights: &[u32], ramped: usize, share_ppm: u32) -> Vec<u32> {
    let others: u64 = weights
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != ramped)
        .map(|(_, w)| u64::from(*w))
        .sum();
    let rest = u64::from(PPM - share_ppm.min(PPM));
    let mut step: Vec<u32> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| match i == ramped {
            true => share_ppm.min(PPM),
            false if others == 0 => 0,
            false => u32::try_from(u64::from(*w) * rest / others).unwrap_or(0),
        })
        .collect();
    let short = PPM - step.iter().sum::<u32>().min(PPM);
    if let Some(first) = (0..step.len()).find(|i| *i != ramped && weights.get(*i) != Some(&0)) {
        if let Some(w) = step.get_mut(first) {
            *w += short;
        }
    }
    step.iter()
        .scan(0u32, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect()
}

/// `f` for a step: the share of the others' space the ramped subset needs on top of its written
/// share so that its total is `share_ppm`. `ramped_weight < total` (validation ensures it).
pub fn taken_ppm(share_ppm: u32, ramped_weight: u32, total: u32) -> u32 {
    let (share, ramped, total) = (
        u128::from(share_ppm),
        u128::from(ramped_weight),
        u128::from(total),
    );
    let ppm = u128::from(PPM);
    // f = (share - ramped/total) / (1 - ramped/total), in ppm.
    let above = (share * total).saturating_sub(ramped * ppm);
    let others = total - ramped;
    u32::try_from(((above + others / 2) / others).min(ppm)).unwrap_or(PPM)
}

/// The subset for a hash position with the ramp's fraction `taken_ppm` applied.
pub fn pick(position: u32, cumulative: &[u32], ramped: usize, taken_ppm: u32) -> Option<usize> {
    let written = bucket::pick(position, cumulative)?;
    if written == ramped || taken_ppm == 0 {
        return Some(written);
    }
    let total = u128::from(*cumulative.last()?);
    // Positions and interval bounds in units of 2^-32 of a bucket, so nothing is rounded.
    let x = u128::from(position) * total;
    let lo = u128::from(
        written
            .checked_sub(1)
            .map_or(0, |i| cumulative.get(i).copied().unwrap_or(0)),
    ) << 32;
    let hi = u128::from(*cumulative.get(written)?) << 32;
    let threshold = hi - (hi - lo) * u128::from(taken_ppm) / u128::from(PPM);
    Some(if x >= threshold { ramped } else { written })
}

/// Each subset's part of the bucket space `[0, total weight)`, in buckets, as `pick` lays it
/// out: the written weights' intervals, or at a ramp's step (`(ramped subset, taken_ppm)`) the
/// top fraction of every other subset's interval given to the ramped one. For people (`dial
/// explain`); the filter never calls it.
pub fn intervals(cumulative: &[u32], step: Option<(usize, u32)>) -> Vec<Vec<(f64, f64)>> {
    let taken = step.map(|(ramped, ppm)| (ramped, f64::from(ppm) / f64::from(PPM)));
    let mut pieces: Vec<Vec<(f64, f64)>> = vec![Vec::new(); cumulative.len()];
    let mut low = 0f64;
    for (i, high) in cumulative.iter().enumerate() {
        let high = f64::from(*high);
        let cut = match taken {
            Some((ramped, f)) if ramped != i && f > 0.0 => high - (high - low) * f,
            _ => high,
        };
        let mut add = |s: usize, from: f64, to: f64| {
            if let Some(p) = pieces.get_mut(s) {
                match p.last_mut() {
                    Some(last) if last.1 == from => last.1 = to,
                    _ if to > from => p.push((from, to)),
                    _ => {}
                }
            }
        };
        add(i, low, cut);
        if let Some((ramped, _)) = taken {
            add(ramped, cut, high);
        }
        low = high;
    }
    pieces
}

/// Each subset's effective share in ppm, with the ramp's fraction applied (for the weight gauge).
pub fn shares_ppm(weights: &[u32], ramped: Option<usize>, taken_ppm: u32) -> Vec<u32> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let kept = u64::from(PPM - taken_ppm.min(PPM));
    let others: u64 = weights
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != ramped)
        .map(|(_, w)| u64::from(*w))
        .sum();
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let w = u64::from(*w);
            let share = if Some(i) == ramped {
                // Its own interval, plus what it took from the others.
                w * u64::from(PPM) + others * (u64::from(PPM) - kept)
            } else {
                w * kept
            };
            let share = (share + total / 2) / total;
            u32::try_from(share).unwrap_or(PPM)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::bucket::position;

    fn cumulative(weights: &[u32]) -> Vec<u32> {
        weights
            .iter()
            .scan(0, |sum, w| {
                *sum += w;
                Some(*sum)
            })
            .collect()
    }

    fn positions(n: u32) -> impl Iterator<Item = u32> {
        (0..n).map(|i| position(b"checkout", format!("user-{i}").as_bytes()))
    }

    /// The intervals `dial explain` shows hold exactly the positions `pick` gives each subset.
    #[test]
    fn the_intervals_shown_are_where_pick_places_keys() {
        for weights in [&[90u32, 10][..], &[50, 30, 20], &[0, 70, 30], &[1, 2]] {
            let c = cumulative(weights);
            let total = f64::from(*c.last().unwrap());
            for ramped in 0..weights.len() {
                for taken in [None, Some(0), Some(250_000), Some(600_000), Some(PPM)] {
                    let layout = intervals(&c, taken.map(|t| (ramped, t)));
                    for p in positions(2000).chain([0, u32::MAX]) {
                        let subset = match taken {
                            Some(t) => pick(p, &c, ramped, t),
                            None => bucket::pick(p, &c),
                        }
                        .unwrap();
                        // The position in bucket units, as the intervals are written.
                        let x = f64::from(p) * total / 4_294_967_296.0;
                        let held = layout[subset].iter().any(|(lo, hi)| *lo <= x && x < *hi);
                        assert!(
                            held,
                            "{weights:?} {ramped} {taken:?}: {p} ({x}) in {subset}: {layout:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn no_fraction_is_the_written_split() {
        let c = cumulative(&[50, 30, 20]);
        for p in positions(20_000).chain([0, u32::MAX]) {
            assert_eq!(pick(p, &c, 2, 0), bucket::pick(p, &c));
            assert_eq!(pick(p, &c, 0, 0), bucket::pick(p, &c));
        }
    }

    #[test]
    fn everything_goes_to_the_ramped_subset_at_the_end() {
        let c = cumulative(&[50, 30, 20]);
        for p in positions(5_000).chain([0, u32::MAX]) {
            assert_eq!(pick(p, &c, 1, PPM), Some(1));
        }
    }

    /// With three or more subsets, naively scaling the others down would move users between
    /// them. Here, as the ramp advances, users only ever move into the ramped subset.
    #[test]
    fn advancing_moves_users_only_into_the_ramped_subset() {
        for (weights, ramped) in [
            (&[50u32, 30, 20][..], 2),
            (&[50, 30, 20][..], 0),
            (&[10, 0, 60, 30][..], 1),
            (&[90, 10][..], 1),
        ] {
            let c = cumulative(weights);
            let total: u32 = weights.iter().sum();
            let mut previous: Vec<Option<usize>> =
                positions(20_000).map(|p| pick(p, &c, ramped, 0)).collect();
            for share in [1, 5, 25, 50, 75, 99, 100] {
                let share_ppm = share * 10_000;
                let written = u64::from(weights[ramped]) * 100 / u64::from(total);
                if u64::from(share) < written {
                    continue;
                }
                let f = taken_ppm(share_ppm, weights[ramped], total);
                let now: Vec<Option<usize>> =
                    positions(20_000).map(|p| pick(p, &c, ramped, f)).collect();
                for (before, after) in previous.iter().zip(&now) {
                    assert!(
                        before == after || *after == Some(ramped),
                        "{weights:?} ramping {ramped} to {share}%: {before:?} -> {after:?}"
                    );
                }
                // The ramped share is the step's, within sampling noise.
                let got = now.iter().filter(|s| **s == Some(ramped)).count() as f64 / 200.0;
                assert!(
                    (got - f64::from(share)).abs() < 1.0,
                    "{weights:?} {share}%: {got}"
                );
                previous = now;
            }
        }
    }

    #[test]
    fn the_others_keep_their_written_proportions() {
        let weights = [50, 30, 20];
        let f = taken_ppm(600_000, 20, 100);
        // 60% to the last subset: the others share 40% as 5:3.
        assert_eq!(
            shares_ppm(&weights, Some(2), f),
            [250_000, 150_000, 600_000]
        );
        assert_eq!(shares_ppm(&weights, None, 0), [500_000, 300_000, 200_000]);
        assert_eq!(
            shares_ppm(&[90, 10], Some(1), taken_ppm(PPM, 10, 100)),
            [0, PPM]
        );
        // The written share itself takes nothing.
        assert_eq!(taken_ppm(100_000, 10, 100), 0);
    }

    #[test]
    fn step_weights_keep_the_others_in_proportion() {
        assert_eq!(step_cumulative(&[90, 10], 1, 250_000), [750_000, PPM]);
        assert_eq!(
            step_cumulative(&[50, 30, 20], 2, 600_000),
            [250_000, 400_000, PPM]
        );
        // Rounding: a third each of 900,000 does not divide; the first takes the remainder.
        assert_eq!(
            step_cumulative(&[1, 1, 1, 0], 3, 100_000),
            [300_000, 600_000, 900_000, PPM]
        );
        assert_eq!(step_cumulative(&[90, 10], 1, PPM), [0, PPM]);
    }

    #[test]
    fn percentages_are_written_without_floats() {
        assert_eq!(percent(0), "0");
        assert_eq!(percent(100_000), "10");
        assert_eq!(percent(125_000), "12.5");
        assert_eq!(percent(100), "0.01");
        assert_eq!(percent(123_456), "12.35");
        assert_eq!(percent(u64::from(PPM)), "100");
    }

    #[test]
    fn steps_are_found_by_time() {
        let ramp = Ramp {
            subset: 1,
            start: 1_000,
            steps: vec![
                Step {
                    share_ppm: 10_000,
                    taken_ppm: 1,
                    until: Some(1_600),
                    cumulative: vec![],
                },
                Step {
                    share_ppm: 50_000,
                    taken_ppm: 2,
                    until: Some(2_000),
                    cumulative: vec![],
                },
                Step {
                    share_ppm: PPM,
                    taken_ppm: 3,
                    until: None,
                    cumulative: vec![],
                },
            ],
        };
        let at = |t| ramp.step_at(t).map(|(i, _)| i);
        assert_eq!(at(None), None);
        assert_eq!(at(Some(0)), None);
        assert_eq!(at(Some(999)), None);
        assert_eq!(at(Some(1_000)), Some(0));
        assert_eq!(at(Some(1_599)), Some(0));
        assert_eq!(at(Some(1_600)), Some(1));
        assert_eq!(at(Some(1_999)), Some(1));
        assert_eq!(at(Some(2_000)), Some(2));
        assert_eq!(at(Some(u64::MAX)), Some(2));
        // Each step begins where `step_at` first finds it.
        let starts: Vec<u64> = (0..3).map(|k| ramp.step_start(k)).collect();
        assert_eq!(starts, [1_000, 1_600, 2_000]);
        for (k, start) in starts.into_iter().enumerate() {
            assert_eq!(
                (at(Some(start - 1)), at(Some(start))),
                (k.checked_sub(1), Some(k))
            );
        }
    }
}
