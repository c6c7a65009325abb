//! The guardrail's judgement: a sliding window over the process-wide response counters of the
//! guarded subset and its fallback, and the verdict on it. Pure: the caller feeds it the
//! counters' cumulative values and the time at each tick.
//!
//! Rates are judged relative to the fallback: the guarded subset trips when its error (or slow)
//! rate exceeds the fallback's own rate by more than the threshold. An incident that fails both
//! subsets alike (a database down) does not pull back a healthy canary. When the fallback saw
//! fewer than `minRequests` responses in the window, its rate counts as 0.

use std::collections::VecDeque;

use crate::core::policy::Guard;

/// Cumulative counts of one subset's responses (what the counters say now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub responses: u64,
    pub errors: u64,
    pub slow: u64,
}

impl Counts {
    fn since(self, earlier: Counts) -> Counts {
        Counts {
            responses: self.responses.saturating_sub(earlier.responses),
            errors: self.errors.saturating_sub(earlier.errors),
            slow: self.slow.saturating_sub(earlier.slow),
        }
    }
}

/// Why a guard tripped, with the figures for the log line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trip {
    pub what: Measure,
    /// The guarded subset's rate and the fallback's, over the window.
    pub rate: f64,
    pub fallback_rate: f64,
    /// Guarded responses in the window.
    pub responses: u64,
    /// How much time the window actually covered, in nanoseconds.
    pub covered: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Errors,
    Slow,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Errors => "error rate",
            Measure::Slow => "slow rate",
        }
    }

    /// The most `guard` lets the guarded subset's rate of this measure exceed the fallback's.
    pub fn most_allowed(self, guard: &Guard) -> f64 {
        match self {
            Measure::Errors => guard.max_error_rate.unwrap_or(0.0),
            Measure::Slow => guard.max_slow_rate.map_or(0.0, |s| s.rate),
        }
    }
}

/// Samples of the counters, oldest first, covering at least the window.
#[derive(Debug, Default, Clone)]
pub struct Window {
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: u64,
    guarded: Counts,
    fallback: Counts,
}

impl Window {
    /// An empty window with room for every sample `guard`'s window can hold when samples come
    /// at least `spacing` nanoseconds apart (the VM's tick): it never grows after it is made,
    /// so a guard's memory is fixed when the policy loads, whatever the traffic.
    pub fn for_guard(guard: &Guard, spacing: u64) -> Window {
        let held = guard.window / spacing.max(1);
        Window {
            samples: VecDeque::with_capacity(
                usize::try_from(held)
                    .unwrap_or(usize::MAX)
                    .saturating_add(2),
            ),
        }
    }

    /// Adds the counters as they are at `now` and judges the window that ends now.
    pub fn observe(
        &mut self,
        guard: &Guard,
        now: u64,
        guarded: Counts,
        fallback: Counts,
    ) -> Option<Trip> {
        self.samples.push_back(Sample {
            at: now,
            guarded,
            fallback,
        });
        // The baseline is the oldest sample inside the window: the judged span never exceeds
        // the window (it falls short of it by less than a tick).
        let start = now.saturating_sub(guard.window);
        while self.samples.len() > 1 && self.samples.front().is_some_and(|s| s.at < start) {
            self.samples.pop_front();
        }
        let base = self.samples.front()?;
        judge(
            guard,
            guarded.since(base.guarded),
            fallback.since(base.fallback),
            now.saturating_sub(base.at),
        )
    }
}

/// The verdict on one window's counts.
pub fn judge(guard: &Guard, guarded: Counts, fallback: Counts, covered: u64) -> Option<Trip> {
    if guarded.responses == 0 || guarded.responses < guard.min_requests {
        return None;
    }
    let rate = |n: u64, of: u64| n as f64 / of as f64;
    let fallback_counts = fallback.responses >= guard.min_requests.max(1);
    let check = |what, max: f64, n: u64, fallback_n: u64| {
        let r = rate(n, guarded.responses);
        let fr = if fallback_counts {
            rate(fallback_n, fallback.responses)
        } else {
            0.0
        };
        (r - fr > max).then_some(Trip {
            what,
            rate: r,
            fallback_rate: fr,
            responses: guarded.responses,
            covered,
        })
    };
    guard
        .max_error_rate
        .and_then(|max| check(Measure::Errors, max, guarded.errors, fallback.errors))
        .or_else(|| {
            guard
                .max_slow_rate
                .and_then(|s| check(Measure::Slow, s.rate, guarded.slow, fallback.slow))
        })
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn a_window_made_for_its_guard_never_grows() {
        let guard = Guard {
            window: 3_000_000_000,
            ..guard()
        };
        let tick = 500_000_000;
        let mut w = Window::for_guard(&guard, tick);
        let capacity = w.samples.capacity();
        let none = Counts::default();
        for i in 0..1000u64 {
            let _ = w.observe(&guard, i * tick, none, none);
            assert_eq!(w.samples.capacity(), capacity, "grew at sample {i}");
        }
    }

    use super::*;
    use crate::core::policy::SlowRate;

    const S: u64 = 1_000_000_000;

    /// A guard of subset 1 falling back to 0 (the fleet's tests ask the fleet with it too).
    pub(crate) fn guard() -> Guard {
        Guard {
            subset: 1,
            fallback: 0,
            window: 10 * S,
            min_requests: 20,
            max_error_rate: Some(0.05),
            max_slow_rate: Some(SlowRate {
                over_ms: 800,
                rate: 0.01,
            }),
            fleet: None,
        }
    }

    fn counts(responses: u64, errors: u64, slow: u64) -> Counts {
        Counts {
            responses,
            errors,
            slow,
        }
    }

    #[test]
    fn a_failing_subset_trips_on_its_error_rate() {
        let g = guard();
        let t = judge(&g, counts(100, 10, 0), counts(900, 0, 0), 10 * S).unwrap();
        assert_eq!(
            (t.what, t.rate, t.fallback_rate, t.responses),
            (Measure::Errors, 0.1, 0.0, 100)
        );
        // At the threshold, not over it: no trip.
        assert_eq!(judge(&g, counts(100, 5, 0), counts(900, 0, 0), S), None);
    }

    #[test]
    fn below_min_requests_there_is_no_verdict() {
        let g = guard();
        assert_eq!(judge(&g, counts(19, 19, 19), counts(900, 0, 0), S), None);
        assert!(judge(&g, counts(20, 19, 0), counts(900, 0, 0), S).is_some());
    }

    #[test]
    fn an_incident_that_fails_the_fallback_alike_trips_nothing() {
        let g = guard();
        assert_eq!(judge(&g, counts(100, 100, 0), counts(900, 900, 0), S), None);
        assert_eq!(judge(&g, counts(100, 50, 0), counts(900, 405, 0), S), None);
        // Worse than the fallback by more than the threshold: trips.
        assert!(judge(&g, counts(100, 60, 0), counts(900, 450, 0), S).is_some());
        // A fallback with too few responses to judge counts as healthy.
        assert!(judge(&g, counts(100, 100, 0), counts(10, 10, 0), S).is_some());
    }

    #[test]
    fn slow_responses_trip_on_the_slow_rate() {
        let g = guard();
        let t = judge(&g, counts(100, 0, 2), counts(900, 0, 0), S).unwrap();
        assert_eq!((t.what, t.rate), (Measure::Slow, 0.02));
        assert_eq!(judge(&g, counts(100, 0, 1), counts(900, 0, 0), S), None);
        let errors_only = Guard {
            max_slow_rate: None,
            ..guard()
        };
        assert_eq!(
            judge(&errors_only, counts(100, 0, 100), counts(900, 0, 0), S),
            None
        );
    }

    #[test]
    fn the_window_slides_over_the_samples() {
        let g = guard();
        let mut w = Window::default();
        // Ten healthy seconds at 100 responses a second.
        let mut total = 0;
        for s in 0..=10 {
            total = s * 100;
            assert_eq!(
                w.observe(&g, s * S, counts(total, 0, 0), counts(0, 0, 0)),
                None
            );
        }
        // The next second fails entirely: 100 errors among the window's 1,000 responses.
        let t = w
            .observe(&g, 11 * S, counts(total + 100, 100, 0), counts(0, 0, 0))
            .unwrap();
        assert_eq!((t.responses, t.covered, t.rate), (1000, 10 * S, 0.1));
        // Old errors leave the window: ten seconds later, healthy again.
        let mut w = Window::default();
        w.observe(&g, 0, counts(0, 0, 0), counts(0, 0, 0));
        w.observe(&g, S, counts(100, 100, 0), counts(0, 0, 0));
        for s in 2..=11 {
            w.observe(
                &g,
                s * S,
                counts(100 + (s - 1) * 100, 100, 0),
                counts(0, 0, 0),
            );
        }
        assert_eq!(
            w.observe(&g, 12 * S, counts(1200, 100, 0), counts(0, 0, 0)),
            None
        );
    }

    #[test]
    fn counters_that_restart_do_not_underflow() {
        let g = guard();
        let mut w = Window::default();
        w.observe(&g, 0, counts(500, 50, 5), counts(500, 0, 0));
        assert_eq!(w.observe(&g, S, counts(10, 0, 0), counts(10, 0, 0)), None);
    }
}
