//! The metrics of one policy, derived at configure time: the list each binding defines, and
//! where each release's and subset's metrics sit in it (names and labels from `stats`).

use crate::core::decide::Reason;
use crate::core::fleet::Failure;
use crate::core::lane::Rejection;
use crate::core::policy::Policy;
use crate::core::stats::{
    tagged, Kind, Metric, DURATION, FLEET_FAILURES, FLEET_QUERIES, FLEET_TRIPS, GUARD_TRIPPED,
    GUARD_TRIPS, LANE_REJECTED, MIRRORED, REQUESTS, RESPONSES, SLOW_RESPONSES, STATUS_CLASSES,
    SUBSET_WEIGHT,
};

/// Positions in `Catalog::metrics` for one subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsetMetrics {
    /// Indexed like `Reason::ALL`; the lane reasons only for a release that follows lanes.
    pub requests: [Option<usize>; Reason::ALL.len()],
    /// Indexed like `STATUS_CLASSES`.
    pub responses: [usize; STATUS_CLASSES.len()],
    pub duration: usize,
    /// The effective share now, in basis points (a gauge).
    pub weight: usize,
    /// Responses slower than the guard's bound, for a guarded release's guarded and fallback
    /// subsets.
    pub slow: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseMetrics {
    pub subsets: Vec<SubsetMetrics>,
    pub mirrored: Option<usize>,
    pub guard: Option<GuardMetrics>,
    /// Lane members refused or replaced, and lanes not issued, indexed like `Rejection::ALL`,
    /// for a release with lanes.
    pub lane_rejected: Option<[usize; Rejection::ALL.len()]>,
}

/// A guarded release's state, labelled with the guarded subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardMetrics {
    /// 1 while tripped (a gauge).
    pub tripped: usize,
    pub trips: usize,
    /// For a guard with a fleet verdict.
    pub fleet: Option<FleetMetrics>,
}

/// A fleet verdict's counters, labelled with the guarded subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMetrics {
    /// Trips the fleet's verdict made (also counted in the guard's `trips`).
    pub trips: usize,
    /// Queries sent.
    pub queries: usize,
    /// Queries that gave no verdict, indexed like `fleet::Failure::ALL`.
    pub failures: [usize; Failure::ALL.len()],
}

/// The metrics of one policy: the list to define, and where each one sits in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub metrics: Vec<Metric>,
    pub releases: Vec<ReleaseMetrics>,
}

impl Catalog {
    pub fn for_policy(policy: &Policy) -> Catalog {
        let mut metrics = Vec::new();
        let mut add = |kind, name| {
            metrics.push(Metric { kind, name });
            metrics.len() - 1
        };
        let releases = policy
            .releases
            .iter()
            .map(|r| ReleaseMetrics {
                subsets: r
                    .subsets
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let base = [
                            ("release", r.name.as_str()),
                            ("subset", &s.name),
                            ("version", &s.version),
                        ];
                        SubsetMetrics {
                            requests: Reason::ALL.map(|reason| {
                                let lane = matches!(reason, Reason::Lane | Reason::LaneFallback);
                                let follows = r.lanes.as_ref().is_some_and(|l| l.follow);
                                let mut labels = base.to_vec();
                                labels.push(("reason", reason.as_str()));
                                (follows || !lane)
                                    .then(|| add(Kind::Counter, tagged(&labels, REQUESTS)))
                            }),
                            responses: STATUS_CLASSES.map(|class| {
                                let mut labels = base.to_vec();
                                labels.push(("status_class", class));
                                add(Kind::Counter, tagged(&labels, RESPONSES))
                            }),
                            duration: add(Kind::Histogram, tagged(&base, DURATION)),
                            weight: add(Kind::Gauge, tagged(&base[..2], SUBSET_WEIGHT)),
                            slow: r
                                .guard
                                .as_ref()
                                .filter(|g| g.subset == i || g.fallback == i)
                                .map(|_| add(Kind::Counter, tagged(&base, SLOW_RESPONSES))),
                        }
                    })
                    .collect(),
                mirrored: r.mirror.as_ref().map(|m| {
                    add(
                        Kind::Counter,
                        tagged(&[("release", &r.name), ("version", &m.version)], MIRRORED),
                    )
                }),
                guard: r.guard.as_ref().map(|g| {
                    let subset = r.subsets.get(g.subset).map_or("", |s| s.name.as_str());
                    let labels = [("release", r.name.as_str()), ("subset", subset)];
                    GuardMetrics {
                        tripped: add(Kind::Gauge, tagged(&labels, GUARD_TRIPPED)),
                        trips: add(Kind::Counter, tagged(&labels, GUARD_TRIPS)),
                        fleet: g.fleet.as_ref().map(|_| FleetMetrics {
                            trips: add(Kind::Counter, tagged(&labels, FLEET_TRIPS)),
                            queries: add(Kind::Counter, tagged(&labels, FLEET_QUERIES)),
                            failures: Failure::ALL.map(|f| {
                                let mut labels = labels.to_vec();
                                labels.push(("reason", f.as_str()));
                                add(Kind::Counter, tagged(&labels, FLEET_FAILURES))
                            }),
                        }),
                    }
                }),
                lane_rejected: r.lanes.as_ref().map(|_| {
                    Rejection::ALL.map(|why| {
                        let labels = [("release", r.name.as_str()), ("reason", why.as_str())];
                        add(Kind::Counter, tagged(&labels, LANE_REJECTED))
                    })
                }),
            })
            .collect();
        Catalog { metrics, releases }
    }

    pub fn requests(&self, release: usize, subset: usize, reason: Reason) -> Option<usize> {
        let i = Reason::ALL.iter().position(|r| *r == reason)?;
        self.subset(release, subset)?
            .requests
            .get(i)
            .copied()
            .flatten()
    }

    pub fn lane_rejected(&self, release: usize, why: Rejection) -> Option<usize> {
        let i = Rejection::ALL.iter().position(|r| *r == why)?;
        self.releases.get(release)?.lane_rejected?.get(i).copied()
    }

    pub fn responses(&self, release: usize, subset: usize, status: u32) -> Option<usize> {
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            _ => return None,
        };
        self.subset(release, subset)?.responses.get(class).copied()
    }

    pub fn duration(&self, release: usize, subset: usize) -> Option<usize> {
        Some(self.subset(release, subset)?.duration)
    }

    pub fn mirrored(&self, release: usize) -> Option<usize> {
        self.releases.get(release)?.mirrored
    }

    pub fn weight(&self, release: usize, subset: usize) -> Option<usize> {
        Some(self.subset(release, subset)?.weight)
    }

    pub fn slow(&self, release: usize, subset: usize) -> Option<usize> {
        self.subset(release, subset)?.slow
    }

    pub fn guard(&self, release: usize) -> Option<&GuardMetrics> {
        self.releases.get(release)?.guard.as_ref()
    }

    pub fn fleet(&self, release: usize) -> Option<&FleetMetrics> {
        self.guard(release)?.fleet.as_ref()
    }

    pub fn fleet_failure(&self, release: usize, failure: Failure) -> Option<usize> {
        let i = Failure::ALL.iter().position(|f| *f == failure)?;
        self.fleet(release)?.failures.get(i).copied()
    }

    fn subset(&self, release: usize, subset: usize) -> Option<&SubsetMetrics> {
        self.releases.get(release)?.subsets.get(subset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::parse(
            br#"{ "releases": [
              { "name": "checkout", "key": [{ "header": "x-user-id" }],
                "subsets": [{ "name": "stable", "version": "v1", "weight": 90 },
                            { "name": "canary", "version": "v2.1", "weight": 10 }],
                "mirror": { "version": "v3", "percent": 1 } },
              { "name": "search", "key": [{ "header": "x-user-id" }],
                "subsets": [{ "name": "a", "version": "r1", "weight": 1 }] } ] }"#,
        )
        .unwrap()
    }

    #[test]
    fn names_carry_labels_in_the_istio_encoding() {
        let c = Catalog::for_policy(&policy());
        let at = |i: Option<usize>| c.metrics[i.unwrap()].name.clone();
        assert_eq!(
            at(c.requests(0, 1, Reason::Hash)),
            "release=.=checkout;.;subset=.=canary;.;version=.=v2.1;.;reason=.=hash;.;dial_requests_total"
        );
        assert_eq!(
            at(c.responses(0, 0, 503)),
            "release=.=checkout;.;subset=.=stable;.;version=.=v1;.;status_class=.=5xx;.;dial_responses_total"
        );
        assert_eq!(
            at(c.duration(1, 0)),
            "release=.=search;.;subset=.=a;.;version=.=r1;.;dial_request_duration_milliseconds"
        );
        assert_eq!(
            at(c.mirrored(0)),
            "release=.=checkout;.;version=.=v3;.;dial_mirrored_requests_total"
        );
        assert_eq!(c.mirrored(1), None);
        assert_eq!(c.metrics[c.duration(0, 0).unwrap()].kind, Kind::Histogram);
    }

    #[test]
    fn cardinality_is_bounded_by_the_policy() {
        let c = Catalog::for_policy(&policy());
        // 3 subsets x (8 reasons + 4 classes + 1 histogram + 1 weight gauge) + 1 mirror counter.
        assert_eq!(c.metrics.len(), 3 * 14 + 1);
        let mut names: Vec<&str> = c.metrics.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            c.metrics.len(),
            "every metric has its own name"
        );
    }

    #[test]
    fn status_codes_map_to_classes() {
        let c = Catalog::for_policy(&policy());
        let class = |code| c.responses(0, 0, code).map(|i| c.metrics[i].name.clone());
        assert!(class(200).unwrap().contains("status_class=.=2xx;"));
        assert!(class(399).unwrap().contains("status_class=.=3xx;"));
        assert!(class(404).unwrap().contains("status_class=.=4xx;"));
        assert!(class(599).unwrap().contains("status_class=.=5xx;"));
        assert_eq!(class(101), None);
        assert_eq!(class(0), None);
        assert_eq!(c.responses(9, 0, 200), None);
    }
}
