//! An exchange's whole life as Dial follows it, for any host: on the request headers, decide
//! and apply (remove client-sent Dial headers, set the steering headers, count); on the response
//! headers, read the status and add what the response carries (a freshly minted sticky cookie,
//! the debug echo); at the end, count the status class and record the duration.
//!
//! A binding reads the request view and the clock, hands them in with its `Host`, and keeps the
//! returned `Exchange` until the end of the stream.

use crate::core::baggage;
use crate::core::catalog::Catalog;
use crate::core::decide::{decide, Assignment, Context, Decision};
use crate::core::host::{Host, MetricIndex};
use crate::core::lane::{self, LaneName, Read, Rejection};
use crate::core::policy::{Policy, PolicyError, WhenNoKey};
use crate::core::request::RequestView;
use crate::core::secret::Environment;

/// A policy in force, with the metrics it defines: what every exchange reads.
#[derive(Debug)]
pub struct Engine {
    pub policy: Policy,
    pub catalog: Catalog,
}

/// What Dial follows of one exchange once it assigned the request; nothing for a request that
/// passed.
#[derive(Debug, Default)]
pub struct Exchange {
    assigned: Option<Assigned>,
}

#[derive(Debug)]
struct Assigned {
    release: usize,
    subset: usize,
    /// The context's clock when the request headers arrived, in nanoseconds.
    started: Option<u64>,
    /// The response's status code, once its headers pass.
    status: Option<u32>,
    /// A `Set-Cookie` value for a freshly minted sticky key.
    set_cookie: Option<String>,
    /// The value of the policy's debug response header.
    echo: Option<String>,
}

impl Engine {
    pub fn new(policy: Policy) -> Engine {
        let catalog = Catalog::for_policy(&policy);
        Engine { policy, catalog }
    }

    /// The line a binding logs when the policy is in force.
    pub fn loaded_message(&self, metrics_defined: usize) -> String {
        // Owned, as the policy reader's lists are: one instantiation of `join` in the module.
        let releases: Vec<String> = self
            .policy
            .releases
            .iter()
            .map(|r| r.name.clone())
            .collect();
        format!(
            "dial: policy loaded: {} release(s): {}; {metrics_defined} metrics defined",
            releases.len(),
            releases.join(", ")
        )
    }

    /// Parses and validates the plugin configuration bytes (no environment variables).
    pub fn from_config(bytes: &[u8]) -> Result<Engine, PolicyError> {
        Policy::parse(bytes).map(Engine::new)
    }

    /// The same, with `{"fromEnv": ...}` secrets read from `env` (a binding's host).
    pub fn from_config_in(bytes: &[u8], env: Environment) -> Result<Engine, PolicyError> {
        Policy::parse_in(bytes, env).map(Engine::new)
    }

    /// The request headers arrived: decide, then steer. Client-sent copies of Dial's headers
    /// never reach the upstream: set replaces them, and the rest are removed.
    pub fn on_request_headers<H: Host>(
        &self,
        host: &mut H,
        request: &impl RequestView,
        context: &Context,
    ) -> Exchange {
        let plan = self.plan(request, context);
        self.steer(host, plan, context)
    }

    /// Applies a decision already made (`on_request_headers` decides first).
    pub fn apply<H: Host>(
        &self,
        host: &mut H,
        request: &impl RequestView,
        context: &Context,
        decision: Decision,
    ) -> Exchange {
        let plan = self.plan_for(request, context, decision);
        self.steer(host, plan, context)
    }

    /// Everything the request's headers decide, read before any write: a binding whose view
    /// borrows the host's own header map (the native build) drops the view before `steer`
    /// changes the map.
    pub fn plan(&self, request: &impl RequestView, context: &Context) -> Plan {
        self.plan_for(request, context, decide(&self.policy, context, request))
    }

    /// `plan` with the decision already made.
    pub fn plan_for(
        &self,
        request: &impl RequestView,
        context: &Context,
        decision: Decision,
    ) -> Plan {
        let steered = match decision {
            Decision::Assign(a) => self.steering(&a),
            Decision::Pass => None,
        };
        let lane = match decision {
            Decision::Assign(a) => self.lane_plan(request, context, &a),
            Decision::Pass => LanePlan::default(),
        };
        let policy = &self.policy;
        // Dial's headers the client sent and Dial will not set (set replaces the client's).
        let remove = policy
            .owned_request_headers
            .iter()
            .enumerate()
            .filter(|(_, name)| {
                let will_set = steered.as_ref().is_some_and(|s| {
                    **name == policy.headers.subset
                        || **name == policy.headers.version
                        || (**name == policy.headers.mirror && s.mirror.is_some())
                });
                !will_set && request.header(name).is_some()
            })
            .fold(0u64, |mask, (i, _)| mask | bit(i).unwrap_or(0));
        Plan {
            decision,
            remove,
            lane,
        }
    }

    /// What an assignment does to the request's lane member. A following release forwards a
    /// valid member untouched, whatever decided at this hop (the lane is the edge's decision).
    /// An issuing release, when the request carried no valid member, removes any member of the
    /// name and appends its own for the subset it assigned, within W3C's limits.
    fn lane_plan(&self, request: &impl RequestView, context: &Context, a: &Assignment) -> LanePlan {
        let Some(lanes) = self
            .policy
            .releases
            .get(a.release)
            .and_then(|r| r.lanes.as_ref())
        else {
            return LanePlan::default();
        };
        let mut plan = LanePlan::default();
        match a.lane {
            Read::Valid(v) => {
                plan.lane = Some(v.lane);
                return plan;
            }
            Read::Rejected(why) => plan.counted[0] = Some(why),
            Read::Absent => {}
        }
        if !lanes.issue {
            return plan;
        }
        let rest = baggage::without(request.header_values("baggage"), &lanes.member);
        if rest.removed && !lanes.follow {
            plan.counted[0] = Some(Rejection::Replaced);
        }
        let lane = lanes.subset_lanes.get(a.subset);
        let value = lane
            .zip(context.now_nanos)
            .and_then(|(lane, now)| Some((lane, lanes.issue_value(lane, now / 1_000_000_000)?)));
        let mut text = rest.text;
        if let Some((lane, value)) = value {
            let comma = usize::from(!text.is_empty());
            let bytes = text.len() + comma + lanes.member.len() + 1 + value.len();
            if baggage::fits(rest.members + 1, bytes) {
                if comma == 1 {
                    text.push(b',');
                }
                text.extend_from_slice(lanes.member.as_bytes());
                text.push(b'=');
                text.extend_from_slice(value.as_bytes());
                plan.lane = LaneName::new(lane.as_bytes());
                plan.baggage = String::from_utf8(text).ok().map(BaggageWrite::Set);
                return plan;
            }
            plan.counted[1] = Some(Rejection::BaggageFull);
        }
        if rest.removed {
            plan.baggage = Some(if text.is_empty() {
                BaggageWrite::Remove
            } else {
                BaggageWrite::Set(String::from_utf8(text).unwrap_or_default())
            });
        }
        plan
    }

    /// Writes what a plan says: removes client-sent Dial headers, sets the steering headers,
    /// counts; the exchange to follow to its end.
    pub fn steer<H: Host>(&self, host: &mut H, plan: Plan, context: &Context) -> Exchange {
        let policy = &self.policy;
        let write = match &plan.lane.baggage {
            Some(BaggageWrite::Set(text)) => host.set_request_header(BAGGAGE, text),
            Some(BaggageWrite::Remove) => host.remove_request_header(BAGGAGE),
            None => Ok(()),
        };
        if let Err(e) = write {
            log::warn!("dial: cannot write the baggage header: {e:?}");
        }
        for (i, name) in policy.owned_request_headers.iter().enumerate() {
            if plan.removes(i) {
                if let Err(e) = host.remove_request_header(name) {
                    log::warn!("dial: cannot remove client-sent {name}: {e:?}");
                }
            }
        }

        let steered = match plan.decision {
            Decision::Assign(a) => self.steering(&a).map(|s| (a, s)),
            Decision::Pass => None,
        };
        let Some((a, s)) = steered else {
            return Exchange::default();
        };
        let headers = [
            Some((&policy.headers.subset, s.subset)),
            Some((&policy.headers.version, s.version)),
            s.mirror.map(|version| (&policy.headers.mirror, version)),
        ];
        for (name, value) in headers.into_iter().flatten() {
            if let Err(e) = host.set_request_header(name, value) {
                log::warn!("dial: cannot set {name}: {e:?}");
            }
        }
        increment(host, self.catalog.requests(a.release, a.subset, a.reason));
        for why in plan.lane.counted.into_iter().flatten() {
            increment(host, self.catalog.lane_rejected(a.release, why));
            lane::log_rejection(s.release, why, context.now_nanos);
        }
        if s.mirror.is_some() {
            increment(host, self.catalog.mirrored(a.release));
        }

        // What the response will carry: a freshly minted sticky key, the debug echo.
        let set_cookie = match (a.new_sticky_key, s.when_no_key) {
            (Some(key), WhenNoKey::Sticky(cookie)) => Some(cookie.set_cookie(&key)),
            _ => None,
        };
        let echo = policy.headers.response.is_some().then(|| {
            let mut echo = format!(
                "release={}; subset={}; version={}; reason={}",
                s.release,
                s.subset,
                s.version,
                a.reason.as_str()
            );
            if let Some(lane) = plan.lane.lane {
                echo.push_str("; lane=");
                echo.push_str(lane.as_str());
            }
            if let Read::Rejected(why) = a.lane {
                echo.push_str("; lane_rejected=");
                echo.push_str(why.as_str());
            }
            echo
        });
        Exchange {
            assigned: Some(Assigned {
                release: a.release,
                subset: a.subset,
                started: context.now_nanos,
                status: None,
                set_cookie,
                echo,
            }),
        }
    }

    /// The names an assignment steers with, looked up once.
    fn steering(&self, a: &Assignment) -> Option<Steering<'_>> {
        let release = self.policy.releases.get(a.release)?;
        let subset = release.subsets.get(a.subset)?;
        Some(Steering {
            release: &release.name,
            subset: &subset.name,
            version: &subset.version,
            mirror: release
                .mirror
                .as_ref()
                .filter(|_| a.mirror)
                .map(|m| m.version.as_str()),
            when_no_key: &release.when_no_key,
        })
    }
}

/// The request header lanes travel in.
const BAGGAGE: &str = "baggage";

/// What a request's headers decided (`Engine::plan`), for `Engine::steer` to write.
#[derive(Debug, Clone)]
pub struct Plan {
    pub decision: Decision,
    /// Which of the policy's own request headers to remove (bit i: the i-th): the client
    /// sent them and Dial does not set them.
    remove: u64,
    pub lane: LanePlan,
}

/// What the assignment does to the request's lane member.
#[derive(Debug, Clone, Default)]
pub struct LanePlan {
    /// The new `baggage` header, if it changes.
    pub baggage: Option<BaggageWrite>,
    /// The lane the request is on downstream: followed, or issued here.
    pub lane: Option<LaneName>,
    /// What `dial_lane_rejected_total` counts: a refused member (or one replaced), and a lane
    /// not issued for want of room.
    pub counted: [Option<Rejection>; 2],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaggageWrite {
    Set(String),
    /// The request carried only the removed member.
    Remove,
}

impl Plan {
    fn removes(&self, i: usize) -> bool {
        // Past the mask's 64 bits (no policy owns that many), always remove: removing a header
        // the client did not send, or one Dial sets just after, leaves the same request.
        bit(i).is_none_or(|bit| self.remove & bit != 0)
    }
}

/// The mask bit of the i-th owned header (`None` past 64).
fn bit(i: usize) -> Option<u64> {
    1u64.checked_shl(u32::try_from(i).ok()?)
}

struct Steering<'p> {
    release: &'p str,
    subset: &'p str,
    version: &'p str,
    /// The mirror version, when the request is sampled for shadow traffic.
    mirror: Option<&'p str>,
    when_no_key: &'p WhenNoKey,
}

impl Exchange {
    /// The (release, subset) Dial assigned, if it did.
    pub fn assigned(&self) -> Option<(usize, usize)> {
        self.assigned.as_ref().map(|a| (a.release, a.subset))
    }

    /// The response headers are passing: note the status, add the sticky cookie and the echo.
    pub fn on_response_headers<H: Host>(&mut self, engine: &Engine, host: &mut H) {
        let Some(a) = &mut self.assigned else {
            return;
        };
        a.status = host.response_status().unwrap_or_else(|e| {
            log::warn!("dial: cannot read the response status: {e:?}");
            None
        });
        if let Some(cookie) = a.set_cookie.take() {
            if let Err(e) = host.add_response_header("set-cookie", &cookie) {
                log::warn!("dial: cannot set the sticky cookie: {e:?}");
            }
        }
        if let (Some(name), Some(value)) = (&engine.policy.headers.response, a.echo.take()) {
            if let Err(e) = host.set_response_header(name, &value) {
                log::warn!("dial: cannot set {name}: {e:?}");
            }
        }
    }

    /// The exchange is over: count the response's status class and record its duration, both
    /// from what Dial saw itself (the response's `:status`, the clock at either end).
    pub fn on_end<H: Host>(&mut self, engine: &Engine, host: &mut H) {
        let Some(a) = self.assigned.take() else {
            return;
        };
        if let Some(status) = a.status {
            increment(host, engine.catalog.responses(a.release, a.subset, status));
        }
        let Some(metric) = engine.catalog.duration(a.release, a.subset) else {
            return;
        };
        let Some(started) = a.started else {
            return;
        };
        let millis = match host.now_nanos() {
            Ok(now) => now.saturating_sub(started) / 1_000_000,
            Err(e) => {
                log::warn!("dial: cannot read the clock: {e:?}");
                return;
            }
        };
        if let Err(e) = host.record(metric, millis) {
            log::warn!("dial: cannot record the request duration: {e:?}");
        }
        // A guard's slow rate counts the responses over its bound (guarded and fallback alike).
        let over = engine
            .policy
            .releases
            .get(a.release)
            .and_then(|r| r.guard.as_ref()?.max_slow_rate)
            .is_some_and(|s| millis > s.over_ms);
        if over {
            increment(host, engine.catalog.slow(a.release, a.subset));
        }
    }
}

fn increment<H: Host>(host: &mut H, metric: Option<MetricIndex>) {
    if let Some(metric) = metric {
        if let Err(e) = host.increment(metric) {
            log::warn!("dial: cannot increment metric {metric}: {e:?}");
        }
    }
}
