//! What a binding decides when a configuration arrives, written once for both builds: whether
//! this VM (or filter configuration) is the first to apply or refuse it, so the policy counters
//! count configurations; the runtime's first tick; and whether the configuration ticks after it.
//! The binding reads the bytes, defines the metrics, counts and asks its host for the ticks.

use crate::core::exchange::Engine;
use crate::core::host::Host;
use crate::core::runtime::{cannot, Runtime, Shared, TICK_MILLIS, TICK_NANOS};

/// What became of a configuration: applied, or refused (Envoy then refuses the listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Loaded,
    Rejected,
}

/// Whether this VM (or native filter configuration) is the first to have `outcome` for this
/// exact configuration, and so the one to count it in `dial_policy_loads_total` or
/// `dial_policy_rejections_total`. Envoy configures the Wasm plugin in several VMs (the base
/// one, the main thread's, each worker's) and may create a native filter configuration more
/// than once; the counters count configurations: the first records the configuration's
/// fingerprint under the outcome's shared key, the others find it there (or lose the
/// compare-and-swap).
///
/// When the host cannot tell (reading or writing shared data fails), the outcome counts, and
/// the failure is logged. Alerts watch these counters for any increase (a refused policy is a
/// rollout that did not happen): a configuration counted twice shows as one more, where one
/// never counted would hide the refusal. Both builds judge alike.
pub fn first_to_apply<H: Host>(host: &mut H, shared: &Shared, outcome: Outcome) -> bool {
    let name = match outcome {
        Outcome::Loaded => "loaded",
        Outcome::Rejected => "rejected",
    };
    let key = format!("{}.{name}", shared.prefix);
    let first = host.shared(&key).and_then(|(seen, cas)| {
        if seen.as_deref() == Some(shared.fingerprint.as_slice()) {
            return Ok(false);
        }
        // A compare-and-swap mismatch (`Ok(false)`): another VM recorded it first.
        host.set_shared(&key, &shared.fingerprint, cas)
    });
    first.unwrap_or_else(|e| {
        cannot("tell whether another VM counted, so counting", &key, &e);
        true
    })
}

/// The runtime of a configuration just applied, after its first tick, right away (when the host
/// gives the time): the gauges are set before any traffic.
pub fn start<H: Host>(engine: &Engine, host: &mut H, now: Option<u64>, shared: &Shared) -> Runtime {
    let mut runtime = Runtime::new(engine);
    if let Some(now) = now {
        runtime.on_tick(engine, host, now, shared);
    }
    runtime
}

/// How an applied configuration ticks after its first tick. Ticks judge the guards, keep the
/// gauges current and send the fleet's queries; a policy with no ramp and no guard needs none
/// (its weights never change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    /// The period, in milliseconds (0: no tick after the first).
    pub every_millis: u32,
    /// A guard asks the fleet's verdict (its queries go out from ticks).
    pub asks_the_fleet: bool,
}

impl Ticks {
    pub fn of(engine: &Engine) -> Ticks {
        let releases = &engine.policy.releases;
        let changes = releases
            .iter()
            .any(|r| r.ramp.is_some() || r.guard.is_some());
        Ticks {
            every_millis: if changes { TICK_MILLIS } else { 0 },
            asks_the_fleet: releases
                .iter()
                .any(|r| r.guard.as_ref().is_some_and(|g| g.fleet.is_some())),
        }
    }

    /// Whether the configuration ticks at all after the first.
    pub fn needed(self) -> bool {
        self.every_millis != 0
    }

    /// Where ticks run on the request path (the native build: its filters have no timer), when
    /// the first after `configured` (the first tick's time) is due: at once when the fleet is
    /// asked (the first request sends the first query), else a period later.
    pub fn first_due(self, configured: u64) -> u64 {
        if self.asks_the_fleet {
            configured
        } else {
            configured.saturating_add(TICK_NANOS)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use super::*;
    use crate::core::recording::RecordingHost;

    fn shared(fingerprint: &[u8]) -> Shared {
        Shared {
            prefix: "dial.test".into(),
            fingerprint: fingerprint.to_vec(),
        }
    }

    fn engine(release: &str) -> Engine {
        let policy = format!(
            r#"{{ "releases": [ {{ "name": "checkout", "key": [{{ "header": "x-user-id" }}],
                "subsets": [ {{ "name": "stable", "version": "v1", "weight": 90 }},
                             {{ "name": "canary", "version": "v2", "weight": 10 }} ]{release} }} ] }}"#
        );
        Engine::from_config(policy.as_bytes()).unwrap()
    }

    const GUARD: &str = r#", "guard": { "subset": "canary", "fallback": "stable",
        "window": "10s", "minRequests": 20, "maxErrorRate": 0.05"#;
    const FLEET: &str = r#", "fleet": { "cluster": "prometheus", "authority": "prom.test",
        "every": "5s", "window": "1m", "timeout": "1s" }"#;
    const RAMP: &str = r#", "ramp": { "subset": "canary", "start": "2026-12-01T09:00:00Z",
        "steps": [ { "weight": 10, "hold": "30s" }, { "weight": 100 } ] }"#;

    #[test]
    fn each_outcome_of_a_configuration_counts_once_across_vms() {
        let mut host = RecordingHost::default();
        let (a, b) = (shared(b"policy-1"), shared(b"policy-2"));
        // Three VMs apply policy 1: the first counts it.
        assert!(first_to_apply(&mut host, &a, Outcome::Loaded));
        assert!(!first_to_apply(&mut host, &a, Outcome::Loaded));
        assert!(!first_to_apply(&mut host, &a, Outcome::Loaded));
        // Refusing it is another outcome, counted on its own.
        assert!(first_to_apply(&mut host, &a, Outcome::Rejected));
        assert!(!first_to_apply(&mut host, &a, Outcome::Rejected));
        // Another configuration counts again, and so does the first one coming back after it.
        assert!(first_to_apply(&mut host, &b, Outcome::Loaded));
        assert!(first_to_apply(&mut host, &a, Outcome::Loaded));
        assert_eq!(
            host.shared.keys().collect::<Vec<_>>(),
            ["dial.test.loaded", "dial.test.rejected"]
        );
    }

    #[test]
    fn a_vm_that_loses_the_compare_and_swap_does_not_count() {
        let mut host = RecordingHost::default();
        host.shared
            .insert("dial.test.loaded".into(), (b"policy-0".to_vec(), 7));
        // What this VM read (version 7) changes before it writes: another VM recorded first.
        let (_, cas) = host.shared("dial.test.loaded").unwrap();
        host.set_shared("dial.test.loaded", b"policy-1", cas)
            .unwrap();
        assert!(!host
            .set_shared("dial.test.loaded", b"policy-1", cas)
            .unwrap());
        assert!(!first_to_apply(
            &mut host,
            &shared(b"policy-1"),
            Outcome::Loaded
        ));
    }

    #[test]
    fn a_host_that_cannot_tell_counts_the_outcome() {
        let mut host = RecordingHost {
            refuse: true,
            ..RecordingHost::default()
        };
        for outcome in [Outcome::Loaded, Outcome::Rejected] {
            assert!(first_to_apply(&mut host, &shared(b"p"), outcome));
            assert!(first_to_apply(&mut host, &shared(b"p"), outcome));
        }
        assert!(host.shared.is_empty());
    }

    #[test]
    fn only_a_policy_that_changes_with_time_ticks() {
        let still = Ticks::of(&engine(""));
        assert_eq!(
            still,
            Ticks {
                every_millis: 0,
                asks_the_fleet: false
            }
        );
        assert!(!still.needed());
        for (release, fleet) in [
            (format!("{GUARD} }}"), false),
            (RAMP.to_string(), false),
            (format!("{GUARD}{FLEET} }}"), true),
        ] {
            let ticks = Ticks::of(&engine(&release));
            assert!(ticks.needed(), "{release}");
            assert_eq!(ticks.every_millis, TICK_MILLIS);
            assert_eq!(ticks.asks_the_fleet, fleet, "{release}");
        }
    }

    #[test]
    fn the_first_request_path_tick_asks_the_fleet_at_once() {
        let t = 1_796_115_600_000_000_000;
        let ticks = |fleet| Ticks {
            every_millis: TICK_MILLIS,
            asks_the_fleet: fleet,
        };
        assert_eq!(ticks(true).first_due(t), t);
        assert_eq!(ticks(false).first_due(t), t + 500_000_000);
        assert_eq!(ticks(false).first_due(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_first_tick_sets_the_gauges_before_any_traffic() {
        let e = engine(&format!("{GUARD} }}"));
        let mut host = RecordingHost::default();
        let _ = start(&e, &mut host, Some(1), &shared(b"p"));
        let weights: Vec<u64> = host
            .gauged(&e.catalog)
            .into_iter()
            .filter(|(name, _)| name.ends_with(crate::core::stats::SUBSET_WEIGHT))
            .map(|(_, value)| value)
            .collect();
        assert_eq!(weights, [9000, 1000]);
        // The guard's shared key exists from configure time on (not tripped: empty).
        assert_eq!(host.shared["dial.test.guard.checkout"].0, b"");
        // Without the time, no tick: nothing is set.
        let mut host = RecordingHost::default();
        let _ = start(&e, &mut host, None, &shared(b"p"));
        assert!(host.calls.is_empty());
    }
}
