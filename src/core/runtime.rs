//! What a VM keeps between requests, and its tick. Each tick judges every guard over the whole
//! proxy's traffic (the response counters are process-wide stats, whichever worker counted),
//! shares a trip with every VM through shared data, and refreshes the weight and guard gauges.
//! The request path only reads `context()`: the time and the tripped guards, no host call.

use std::fmt::{Debug, Display};

use crate::core::catalog::Catalog;
use crate::core::decide::Context;
use crate::core::exchange::Engine;
use crate::core::fleet::{self, Failure, FleetTrip};
use crate::core::guard::{Counts, Trip, Window};
use crate::core::host::Host;
use crate::core::policy::Guard;
use crate::core::ramp::{self, PPM};
use crate::core::stats::STATUS_CLASSES;

/// How often each VM ticks. A trip reaches every worker within one tick.
pub const TICK_MILLIS: u32 = 500;
/// The same, in nanoseconds.
pub const TICK_NANOS: u64 = TICK_MILLIS as u64 * 1_000_000;

/// Where a policy's shared state lives: keys start with `prefix` (Dial's name and the plugin's:
/// shared data is per vm_id, which Istio leaves empty), and a trip is recorded as the policy's
/// fingerprint, so it holds until the policy changes.
#[derive(Debug, Clone)]
pub struct Shared {
    pub prefix: String,
    pub fingerprint: Vec<u8>,
}

impl Shared {
    /// The shared state of plugin (or filter) `plugin` under this configuration: keys start with
    /// `dial.<plugin>`; the fingerprint is the configuration's hash and length.
    pub fn for_configuration(plugin: &str, configuration: &[u8]) -> Shared {
        let mut fingerprint = crate::core::bucket::position(b"dial-policy", configuration)
            .to_le_bytes()
            .to_vec();
        fingerprint.extend_from_slice(&(configuration.len() as u32).to_le_bytes());
        Shared {
            prefix: format!("dial.{plugin}"),
            fingerprint,
        }
    }
}

#[derive(Debug)]
pub struct Runtime {
    /// Each release's guard window (`None`: not guarded).
    windows: Vec<Option<Window>>,
    tripped: u64,
    /// The gauges as this VM last set them: weights in basis points, tripped flags.
    weights: Vec<Vec<u64>>,
    tripped_gauges: Vec<Option<u64>>,
    /// Whether the guards' shared keys were created (on the first tick, at configure time).
    prepared: bool,
    /// Per release: whether this VM has a fleet query in flight.
    asking: Vec<bool>,
    /// When this VM last logged a fleet query's failure (they are logged at most once a minute).
    failure_logged: Option<u64>,
}

/// A fleet query the binding is to send: an HTTP GET to `cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetQuery {
    pub release: usize,
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_millis: u32,
}

/// What came back from a fleet query, as the binding saw it.
#[derive(Debug)]
pub enum Answer<'a> {
    /// A response with status 200 and this body.
    Ok(&'a [u8]),
    /// No verdict to read.
    Failed(Failure),
}

impl<'a> Answer<'a> {
    /// A query API's response as a binding saw it: `status` (`None`: no response at all),
    /// whether it came `late` (at or past the query's timeout), the body's full size and its
    /// bytes (read only when the size is within `MAX_ANSWER_BYTES`). Both builds read their
    /// host's callout result through this one mapping, Envoy's own replies included.
    pub fn of_response(
        status: Option<&[u8]>,
        late: bool,
        body_size: usize,
        body: &'a [u8],
    ) -> Answer<'a> {
        match status {
            // No response: the connection failed or was reset (or timed out).
            None if late => Answer::Failed(Failure::Timeout),
            None => Answer::Failed(Failure::Unreachable),
            Some(b"200") if body_size > fleet::MAX_ANSWER_BYTES => {
                Answer::Failed(Failure::TooLarge)
            }
            Some(b"200") => Answer::Ok(body),
            // Envoy's own replies: its timeout, or no connection to the query API.
            Some(b"504") if late || body.starts_with(b"upstream request timeout") => {
                Answer::Failed(Failure::Timeout)
            }
            Some(b"503")
                if body.starts_with(b"upstream connect error")
                    || body.starts_with(b"no healthy upstream") =>
            {
                Answer::Failed(Failure::Unreachable)
            }
            Some(_) => Answer::Failed(Failure::Status),
        }
    }
}

/// The fleet queries a binding sent and awaits, by the id its host gave each call.
#[derive(Debug)]
pub struct Callouts<Id> {
    sent: Vec<(Id, Sent)>,
}

/// A fleet query in flight: its release, when it was sent, and its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub release: usize,
    pub at: u64,
    pub timeout_millis: u32,
}

impl Sent {
    /// Whether an answer at `now` came late: at or past the query's timeout.
    pub fn late(&self, now: u64) -> bool {
        now.saturating_sub(self.at) >= u64::from(self.timeout_millis) * 1_000_000
    }
}

impl<Id> Default for Callouts<Id> {
    fn default() -> Self {
        Callouts { sent: Vec::new() }
    }
}

impl<Id: PartialEq> Callouts<Id> {
    /// The host took `query` at `now` as call `id`.
    pub fn sent(&mut self, id: Id, query: &FleetQuery, now: u64) {
        self.sent.push((
            id,
            Sent {
                release: query.release,
                at: now,
                timeout_millis: query.timeout_millis,
            },
        ));
    }

    /// The query call `id` answers, no longer awaited; `None` for a call this configuration
    /// did not send (or that was answered already).
    pub fn answered(&mut self, id: Id) -> Option<Sent> {
        let at = self.sent.iter().position(|c| c.0 == id)?;
        Some(self.sent.swap_remove(at).1)
    }

    /// Forgets every query in flight: an answer to the previous policy's query is not this
    /// policy's verdict.
    pub fn clear(&mut self) {
        self.sent.clear();
    }
}

/// How often a VM logs a fleet query's failure at most.
const FAILURE_LOG_NANOS: u64 = 60_000_000_000;

impl Runtime {
    pub fn new(engine: &Engine) -> Runtime {
        let releases = &engine.policy.releases;
        Runtime {
            windows: releases
                .iter()
                .map(|r| r.guard.as_ref().map(|g| Window::for_guard(g, TICK_NANOS)))
                .collect(),
            tripped: 0,
            weights: releases.iter().map(|_| Vec::new()).collect(),
            tripped_gauges: releases.iter().map(|_| None).collect(),
            prepared: false,
            asking: releases.iter().map(|_| false).collect(),
            failure_logged: None,
        }
    }

    /// The fleet queries due now that this VM won (by compare-and-swap on the release's shared
    /// due time, so one worker per proxy asks, once per `every`). None for a tripped guard: a
    /// fleet verdict can only trip.
    pub fn fleet_due<H: Host>(
        &mut self,
        engine: &Engine,
        host: &mut H,
        now: u64,
        shared: &Shared,
    ) -> Vec<FleetQuery> {
        let mut due = Vec::new();
        for (i, release) in engine.policy.releases.iter().enumerate() {
            let Some((guard, f)) = release
                .guard
                .as_ref()
                .and_then(|g| Some((g, g.fleet.as_ref()?)))
            else {
                continue;
            };
            if self.tripped & (1 << i) != 0 || self.asking.get(i) != Some(&false) {
                continue;
            }
            let key = fleet_key(shared, &release.name);
            let Ok((Some(value), cas)) = host.shared(&key) else {
                continue;
            };
            let next = <[u8; 8]>::try_from(value.as_slice()).map_or(0, u64::from_le_bytes);
            if now < next {
                continue;
            }
            match host.set_shared(&key, &now.saturating_add(f.every).to_le_bytes(), cas) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    cannot("take the fleet query's turn", &key, &e);
                    continue;
                }
            }
            let (Some(g), Some(fb)) = (
                release.subsets.get(guard.subset),
                release.subsets.get(guard.fallback),
            ) else {
                continue;
            };
            let query = fleet::query(&release.name, &g.name, &fb.name, guard, f);
            due.push(FleetQuery {
                release: i,
                cluster: f.cluster.clone(),
                authority: f.authority.clone(),
                path: fleet::request_path(f, &query),
                timeout_millis: u32::try_from(f.timeout / 1_000_000).unwrap_or(u32::MAX),
            });
            if let Some(a) = self.asking.get_mut(i) {
                *a = true;
            }
        }
        due
    }

    /// Sends each query of `due` (from `fleet_due`) with the host's `send`, and counts it as
    /// sent or refused (a refusal is logged, and counted as a failed query).
    pub fn send_fleet_queries<H: Host, E: Debug>(
        &mut self,
        engine: &Engine,
        host: &mut H,
        due: Vec<FleetQuery>,
        now: u64,
        mut send: impl FnMut(&FleetQuery) -> Result<(), E>,
    ) {
        for q in due {
            let sent = send(&q);
            if let Err(e) = &sent {
                cannot("send the fleet query to cluster", &q.cluster, e);
            }
            self.fleet_sent(engine, host, q.release, sent.is_ok(), now);
        }
    }

    /// Counts a fleet query as sent, or as refused by the host.
    pub fn fleet_sent<H: Host>(
        &mut self,
        engine: &Engine,
        host: &mut H,
        release: usize,
        sent: bool,
        now: u64,
    ) {
        if sent {
            if let Some(m) = engine.catalog.fleet(release) {
                count(host, m.queries);
            }
        } else {
            self.on_fleet_answer(
                engine,
                host,
                release,
                Answer::Failed(Failure::Refused),
                now,
                None,
            );
        }
    }

    /// The answer to release `i`'s fleet query: a trip (shared with every VM like a local
    /// one), nothing, or a failure counted by reason. Never an un-trip.
    pub fn on_fleet_answer<H: Host>(
        &mut self,
        engine: &Engine,
        host: &mut H,
        i: usize,
        answer: Answer,
        now: u64,
        shared: Option<&Shared>,
    ) {
        if let Some(a) = self.asking.get_mut(i) {
            *a = false;
        }
        let (Some(release), Some(shared)) = (engine.policy.releases.get(i), shared) else {
            if let Answer::Failed(f) = answer {
                self.fleet_failure(engine, host, i, f, now);
            }
            return;
        };
        let Some(guard) = &release.guard else {
            return;
        };
        let judged = match answer {
            Answer::Ok(body) => fleet::read_answer(body, &release.name)
                .and_then(|figures| fleet::verdict(guard, &figures)),
            Answer::Failed(f) => Err(f),
        };
        match judged {
            Err(f) => self.fleet_failure(engine, host, i, f, now),
            Ok(None) => {}
            Ok(Some(trip)) => {
                let key = format!("{}.guard.{}", shared.prefix, release.name);
                if self.tripped & (1 << i) == 0 {
                    self.tripped |= 1 << i;
                    let (seen, cas) = read_shared(host, &key);
                    if seen.as_deref() != Some(shared.fingerprint.as_slice())
                        && share_trip(engine, host, i, &key, shared, cas)
                    {
                        log_fleet_trip(engine, i, guard, &trip);
                        if let Some(m) = engine.catalog.fleet(i) {
                            count(host, m.trips);
                        }
                    }
                }
            }
        }
    }

    fn fleet_failure<H: Host>(
        &mut self,
        engine: &Engine,
        host: &mut H,
        i: usize,
        failure: Failure,
        now: u64,
    ) {
        if let Some(m) = engine.catalog.fleet_failure(i, failure) {
            count(host, m);
        }
        if self
            .failure_logged
            .is_none_or(|at| now.saturating_sub(at) >= FAILURE_LOG_NANOS)
        {
            self.failure_logged = Some(now);
            let name = engine
                .policy
                .releases
                .get(i)
                .map_or("?", |r| r.name.as_str());
            log::warn!(
                "dial: the fleet's verdict for release {name} failed ({}): no verdict, the local guard goes on (failures are counted in dial_fleet_query_failures_total, logged at most once a minute)",
                failure.as_str()
            );
        }
    }

    /// The context a request is decided in: the time, and the guards that tripped.
    pub fn context(&self, now_nanos: Option<u64>) -> Context {
        Context {
            now_nanos,
            tripped: self.tripped,
        }
    }

    pub fn tripped(&self) -> u64 {
        self.tripped
    }

    pub fn on_tick<H: Host>(&mut self, engine: &Engine, host: &mut H, now: u64, shared: &Shared) {
        if !self.prepared {
            self.prepared = true;
            prepare(engine, host, shared);
        }
        for (i, release) in engine.policy.releases.iter().enumerate() {
            if let (Some(guard), Some(Some(window))) = (&release.guard, self.windows.get_mut(i)) {
                let key = format!("{}.guard.{}", shared.prefix, release.name);
                if self.tripped & (1 << i) == 0
                    && judge(engine, host, i, guard, window, now, &key, shared)
                {
                    self.tripped |= 1 << i;
                }
                let flag = u64::from(self.tripped & (1 << i) != 0);
                if let (Some(metric), Some(last)) =
                    (engine.catalog.guard(i), self.tripped_gauges.get_mut(i))
                {
                    if *last != Some(flag) && set_gauge(host, metric.tripped, flag) {
                        *last = Some(flag);
                    }
                }
            }
            let weights = effective_weights(engine, i, now, self.tripped & (1 << i) != 0);
            if let Some(last) = self.weights.get_mut(i) {
                if *last != weights {
                    let all_set = weights.iter().enumerate().all(|(j, w)| {
                        engine
                            .catalog
                            .weight(i, j)
                            .is_none_or(|m| set_gauge(host, m, *w))
                    });
                    if all_set {
                        *last = weights;
                    }
                }
            }
        }
    }
}

/// Creates each guard's shared key (empty: not tripped) where it is absent. Writing a value to an
/// absent key cannot be a compare-and-swap (version 0 means "whatever"), so two workers tripping
/// at once would both win and count the trip twice; with the key there from configure time (long
/// before any window can fill), exactly one compare-and-swap wins.
///
/// The same holds for a fleet verdict's due time (created due at once).
fn prepare<H: Host>(engine: &Engine, host: &mut H, shared: &Shared) {
    for release in engine.policy.releases.iter() {
        let Some(guard) = &release.guard else {
            continue;
        };
        let mut keys = vec![format!("{}.guard.{}", shared.prefix, release.name)];
        if guard.fleet.is_some() {
            keys.push(fleet_key(shared, &release.name));
        }
        for key in keys {
            if let Ok((None, _)) = host.shared(&key) {
                if let Err(e) = host.set_shared(&key, b"", 0) {
                    cannot("create the guard's shared state", &key, &e);
                }
            }
        }
    }
}

/// Whether release `i`'s guard is tripped now: by another VM (its mark in shared data) or by
/// this VM's judgement of the window, which it then shares.
#[allow(clippy::too_many_arguments)]
fn judge<H: Host>(
    engine: &Engine,
    host: &mut H,
    i: usize,
    guard: &Guard,
    window: &mut Window,
    now: u64,
    key: &str,
    shared: &Shared,
) -> bool {
    let (seen, cas) = read_shared(host, key);
    if seen.as_deref() == Some(shared.fingerprint.as_slice()) {
        return true;
    }
    let (Some(guarded), Some(fallback)) = (
        counts(&engine.catalog, host, i, guard.subset),
        counts(&engine.catalog, host, i, guard.fallback),
    ) else {
        return false;
    };
    let Some(trip) = window.observe(guard, now, guarded, fallback) else {
        return false;
    };
    if share_trip(engine, host, i, key, shared, cas) {
        log_trip(engine, i, guard, &trip);
    }
    true
}

/// Records release `i`'s trip in shared data if it is still at version `cas`, and counts it;
/// false if another VM tripped it in the meantime (and said so), or on a host error.
fn share_trip<H: Host>(
    engine: &Engine,
    host: &mut H,
    i: usize,
    key: &str,
    shared: &Shared,
    cas: u32,
) -> bool {
    match host.set_shared(key, &shared.fingerprint, cas) {
        Ok(true) => {
            if let Some(m) = engine.catalog.guard(i) {
                count(host, m.trips);
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            cannot("share the guard's trip", &key, &e);
            false
        }
    }
}

fn count<H: Host>(host: &mut H, metric: usize) {
    if let Err(e) = host.increment(metric) {
        cannot("count metric", &metric, &e);
    }
}

/// A guard's shared state and its version; absent when the host cannot say (logged).
fn read_shared<H: Host>(host: &mut H, key: &str) -> (Option<Vec<u8>>, u32) {
    host.shared(key).unwrap_or_else(|e| {
        cannot("read the guard's shared state", &key, &e);
        (None, 0)
    })
}

/// Logs a host call that failed, `dial: cannot <what> <subject>: <error>`: one body for the
/// tick's and the configuration's lines of this kind.
pub(crate) fn cannot(what: &str, subject: &dyn Display, e: &dyn Debug) {
    log::warn!("dial: cannot {what} {subject}: {e:?}");
}

/// The shared key holding when release `name`'s next fleet query is due (u64 LE nanoseconds).
fn fleet_key(shared: &Shared, name: &str) -> String {
    format!("{}.fleet.{name}", shared.prefix)
}

/// The names a trip's log line gives: release `i`'s, its guarded subset's and its fallback's.
fn trip_names<'e>(engine: &'e Engine, i: usize, guard: &Guard) -> Option<[&'e str; 3]> {
    let release = engine.policy.releases.get(i)?;
    let name = |s: usize| release.subsets.get(s).map_or("?", |s| s.name.as_str());
    Some([
        release.name.as_str(),
        name(guard.subset),
        name(guard.fallback),
    ])
}

fn log_fleet_trip(engine: &Engine, i: usize, guard: &Guard, trip: &FleetTrip) {
    let Some([release, subset, fallback]) = trip_names(engine, i, guard) else {
        return;
    };
    let window = guard.fleet.as_ref().map_or(0, |f| f.window / 1_000_000);
    let ppm = |rate: f64| (rate.max(0.0) * f64::from(PPM)) as u64;
    log::warn!(
        "dial: guard tripped by the fleet's verdict: release {release}, subset {subset} goes to {fallback}: {} {} points above {fallback} over {} responses across the fleet in the last {window} ms (the most allowed: {} points above {fallback})",
        trip.what.as_str(),
        ramp::percent(ppm(trip.excess)),
        trip.responses.round() as u64,
        ramp::percent(ppm(trip.what.most_allowed(guard))),
    );
}

fn log_trip(engine: &Engine, i: usize, guard: &Guard, trip: &Trip) {
    let Some([release, subset, fallback]) = trip_names(engine, i, guard) else {
        return;
    };
    let ppm = |rate: f64| (rate * f64::from(PPM)) as u64;
    log::warn!(
        "dial: guard tripped: release {release}, subset {subset} goes to {fallback}: {} {}% against {}% for {fallback} over {} responses in the last {} ms (the most allowed: {} points above {fallback})",
        trip.what.as_str(),
        ramp::percent(ppm(trip.rate)),
        ramp::percent(ppm(trip.fallback_rate)),
        trip.responses,
        trip.covered / 1_000_000,
        ramp::percent(ppm(trip.what.most_allowed(guard))),
    );
}

/// A subset's cumulative response counts, read from the process-wide counters.
fn counts<H: Host>(
    catalog: &Catalog,
    host: &mut H,
    release: usize,
    subset: usize,
) -> Option<Counts> {
    let mut read = |metric: Option<usize>| -> Option<u64> {
        host.read_counter(metric?)
            .map_err(|e| log::warn!("dial: cannot read a guard counter: {e:?}"))
            .ok()
    };
    let mut responses = 0u64;
    let mut errors = 0u64;
    for (class, status) in STATUS_CLASSES.iter().zip([200, 300, 400, 500]) {
        let n = read(catalog.responses(release, subset, status))?;
        responses += n;
        if *class == "5xx" {
            errors = n;
        }
    }
    let slow = match catalog.slow(release, subset) {
        Some(m) => read(Some(m))?,
        None => 0,
    };
    Some(Counts {
        responses,
        errors,
        slow,
    })
}

/// Each subset's effective share of release `i` now, in basis points: the ramp's step applied;
/// a tripped guard gives its subset's share to the fallback (and stops the ramp).
pub fn effective_weights(engine: &Engine, i: usize, now: u64, tripped: bool) -> Vec<u64> {
    let Some(release) = engine.policy.releases.get(i) else {
        return Vec::new();
    };
    let weights: Vec<u32> = release.subsets.iter().map(|s| s.weight).collect();
    let step = release
        .ramp
        .as_ref()
        .filter(|_| !tripped)
        .and_then(|r| Some((r.subset, r.step_at(Some(now))?.1.taken_ppm)));
    let mut shares = match step {
        Some((ramped, taken)) => ramp::shares_ppm(&weights, Some(ramped), taken),
        None => ramp::shares_ppm(&weights, None, 0),
    };
    if let Some(g) = release.guard.as_ref().filter(|_| tripped) {
        let moved = shares.get(g.subset).copied().unwrap_or(0);
        if let Some(s) = shares.get_mut(g.subset) {
            *s = 0;
        }
        if let Some(f) = shares.get_mut(g.fallback) {
            *f = (*f + moved).min(PPM);
        }
    }
    shares
        .into_iter()
        .map(|ppm| (u64::from(ppm) + 50) / 100)
        .collect()
}

fn set_gauge<H: Host>(host: &mut H, metric: usize, value: u64) -> bool {
    host.set_gauge(metric, value)
        .map_err(|e| cannot("set gauge", &metric, &e))
        .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use super::*;
    use crate::core::recording::RecordingHost;

    fn query(release: usize, timeout_millis: u32) -> FleetQuery {
        FleetQuery {
            release,
            cluster: "prometheus".into(),
            authority: "prom.test".into(),
            path: "/api/v1/query".into(),
            timeout_millis,
        }
    }

    #[test]
    fn an_answer_finds_its_query_once_and_says_whether_it_came_late() {
        let mut callouts = Callouts::default();
        callouts.sent(7u32, &query(1, 1000), 10);
        callouts.sent(8, &query(0, 200), 20);
        assert_eq!(callouts.answered(9), None);
        let sent = callouts.answered(8).unwrap();
        assert_eq!(
            sent,
            Sent {
                release: 0,
                at: 20,
                timeout_millis: 200
            }
        );
        assert!(!sent.late(20 + 199_999_999));
        assert!(sent.late(20 + 200_000_000));
        // A clock that went back is not late.
        assert!(!sent.late(0));
        assert_eq!(callouts.answered(8), None);
        // A new policy forgets the previous one's queries.
        callouts.clear();
        assert_eq!(callouts.answered(7), None);
    }

    #[test]
    fn a_query_the_host_refuses_counts_as_a_failure_not_as_a_query() {
        let e = Engine::from_config(
            br#"{ "releases": [ { "name": "checkout", "key": [{ "header": "x-user-id" }],
                "subsets": [ { "name": "stable", "version": "v1", "weight": 90 },
                             { "name": "canary", "version": "v2", "weight": 10 } ],
                "guard": { "subset": "canary", "fallback": "stable", "window": "10s",
                  "minRequests": 20, "maxErrorRate": 0.05,
                  "fleet": { "cluster": "prometheus", "authority": "prom.test",
                             "every": "5s", "window": "1m", "timeout": "1s" } } } ] }"#,
        )
        .unwrap();
        let mut runtime = Runtime::new(&e);
        let mut host = RecordingHost::default();
        // The host takes the first and the third query, and refuses the second.
        let mut asked = 0;
        runtime.send_fleet_queries(
            &e,
            &mut host,
            vec![query(0, 1000), query(0, 1000), query(0, 1000)],
            1,
            |_| {
                asked += 1;
                if asked == 2 {
                    Err("BadArgument")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(asked, 3);
        let fleet = e.catalog.fleet(0).unwrap();
        let refused = e.catalog.fleet_failure(0, Failure::Refused).unwrap();
        assert_eq!(host.counters[&fleet.queries], 2);
        assert_eq!(host.counters[&refused], 1);
    }
}
