//! The fleet's verdict: a guard may also ask a Prometheus query API (anything that serves it:
//! Thanos, Mimir, VictoriaMetrics) for the fleet-wide excess error (and slow) rate of its guarded
//! subset over its fallback, computed from the `dial_responses_total` series every proxy
//! exports. Pure: this module builds the query's text and reads the answer's bytes; the binding
//! makes the callout and acts on the verdict.
//!
//! The rule is the local guard's (`guard::judge`): the guarded subset's rate minus the
//! fallback's, the fallback counting as 0% below `minRequests`, no verdict below `minRequests`
//! guarded responses; only counted fleet-wide. The excess rate is `excess_rate`: docs/ramps-and-guard.md,
//! the shipped alert rule (`DialCanaryErrorRateAboveStable`) and the Grafana dashboard show the
//! same text (tests/fleet.rs compares them), so an operator sees what the proxies saw.
//!
//! A failure is never a verdict: a verdict can only trip, and an answer Dial cannot read as one
//! (or no answer) is a `Failure`, counted by reason.

use crate::core::guard::Measure;
use crate::core::policy::{json, Fleet, Guard};
use crate::core::stats::{RESPONSES, SLOW_RESPONSES};

/// The largest answer read: a valid one has three samples and fits in a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Why a query gave no verdict (the `reason` label of `dial_fleet_query_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The host refused to start the callout (an unknown cluster, say).
    Refused,
    /// No connection, or it was reset.
    Unreachable,
    /// No answer within `timeout`.
    Timeout,
    /// An answer with a status other than 200.
    Status,
    /// A body larger than `MAX_ANSWER_BYTES`.
    TooLarge,
    /// Not the query API's JSON, or an error in it.
    Malformed,
    /// No sample where one was due.
    Empty,
    /// A sample that is NaN or infinite.
    NaN,
    /// A sample for another release or figure than asked.
    WrongSeries,
}

impl Failure {
    pub const ALL: [Failure; 9] = [
        Failure::Refused,
        Failure::Unreachable,
        Failure::Timeout,
        Failure::Status,
        Failure::TooLarge,
        Failure::Malformed,
        Failure::Empty,
        Failure::NaN,
        Failure::WrongSeries,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Unreachable => "unreachable",
            Failure::Timeout => "timeout",
            Failure::Status => "status",
            Failure::TooLarge => "too_large",
            Failure::Malformed => "malformed",
            Failure::Empty => "empty",
            Failure::NaN => "nan",
            Failure::WrongSeries => "wrong_series",
        }
    }
}

/// What the fleet says over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Guarded responses fleet-wide (Prometheus' `increase`, so not always a whole number).
    pub responses: f64,
    /// The guarded subset's error (slow) rate minus the fallback's; `None` below `minRequests`.
    pub errors: Option<f64>,
    pub slow: Option<f64>,
}

/// A fleet trip, with its figures for the log line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetTrip {
    pub what: Measure,
    /// The guarded subset's rate minus the fallback's, fleet-wide.
    pub excess: f64,
    pub responses: f64,
}

/// A PromQL duration for a window in nanoseconds (whole milliseconds).
pub fn duration(nanos: u64) -> String {
    let ms = nanos / 1_000_000;
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A PromQL string literal.
fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The fleet-wide excess rate of subset `guarded` over `fallback`, per release: the share of
/// the guarded subset's responses counted by `numerator` (with `extra` matchers) minus the
/// fallback's share, over `window`; no sample below `min` guarded responses; the fallback's
/// share counts as 0 below `min` fallback responses. `scope` is matchers every selector starts
/// with (`release="checkout", `, or empty for every release).
///
/// docs/ramps-and-guard.md, the alert rule and the dashboard show this text (tests/fleet.rs compares them),
/// so keep its layout: it is what an operator reads.
pub fn excess_rate(
    scope: &str,
    numerator: &str,
    extra: &str,
    guarded: &str,
    fallback: &str,
    window: &str,
    min: u64,
) -> String {
    let (g, f) = (literal(guarded), literal(fallback));
    format!(
        "(
  sum by (release) (increase({numerator}{{{scope}subset={g}{extra}}}[{window}]))
  /
  (sum by (release) (increase({RESPONSES}{{{scope}subset={g}}}[{window}])) >= {min})
)
- on (release)
(
  (
    sum by (release) (increase({numerator}{{{scope}subset={f}{extra}}}[{window}]))
    /
    (sum by (release) (increase({RESPONSES}{{{scope}subset={f}}}[{window}])) >= {min})
  )
  or on (release)
  0 * sum by (release) (increase({RESPONSES}{{{scope}subset={g}}}[{window}]))
)
"
    )
}

/// The excess 5xx rate (the alert's and dashboard's figure).
pub fn excess_error_rate(
    scope: &str,
    guarded: &str,
    fallback: &str,
    window: &str,
    min: u64,
) -> String {
    excess_rate(
        scope,
        RESPONSES,
        ", status_class=\"5xx\"",
        guarded,
        fallback,
        window,
        min,
    )
}

/// The query a proxy sends for a guard: the excess error rate (and slow rate, with
/// `maxSlowRate`) and the guarded responses, each sample marked by a `dial` label.
pub fn query(release: &str, guarded: &str, fallback: &str, guard: &Guard, fleet: &Fleet) -> String {
    let scope = format!("release={}, ", literal(release));
    let window = duration(fleet.window);
    let min = guard.min_requests;
    let mark = |expr: String, figure: &str| {
        format!("label_replace(\n{expr}, \"dial\", \"{figure}\", \"\", \"\")")
    };
    let mut parts = Vec::new();
    if guard.max_error_rate.is_some() {
        parts.push(mark(
            excess_error_rate(&scope, guarded, fallback, &window, min),
            "errors",
        ));
    }
    if guard.max_slow_rate.is_some() {
        parts.push(mark(
            excess_rate(&scope, SLOW_RESPONSES, "", guarded, fallback, &window, min),
            "slow",
        ));
    }
    parts.push(mark(
        format!(
            "sum by (release) (increase({RESPONSES}{{{scope}subset={}}}[{window}]))\n",
            literal(guarded)
        ),
        "responses",
    ));
    parts.join("\nor\n")
}

/// The callout's path: the endpoint and the URL-encoded query.
pub fn request_path(fleet: &Fleet, query: &str) -> String {
    let mut path = fleet.path.clone();
    path.push_str(if fleet.path.contains('?') { "&" } else { "?" });
    path.push_str("query=");
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

/// Reads the query API's answer (status 200, `body`) for `release`.
pub fn read_answer(body: &[u8], release: &str) -> Result<Figures, Failure> {
    if body.len() > MAX_ANSWER_BYTES {
        return Err(Failure::TooLarge);
    }
    // The policy's JSON reader: a second serde_json instantiation would cost the module ~10 KB.
    let answer = json::parse(body).map_err(|_| Failure::Malformed)?;
    if answer.get("status").and_then(|s| s.as_str()) != Some("success") {
        return Err(Failure::Malformed);
    }
    let data = answer.get("data").ok_or(Failure::Malformed)?;
    if data.get("resultType").and_then(|t| t.as_str()) != Some("vector") {
        return Err(Failure::Malformed);
    }
    let result = data
        .get("result")
        .and_then(|r| r.as_array())
        .ok_or(Failure::Malformed)?;
    if result.is_empty() {
        return Err(Failure::Empty);
    }
    let (mut responses, mut errors, mut slow) = (None, None, None);
    for sample in result {
        let label = |name: &str| sample.get("metric")?.get(name)?.as_str();
        if label("release") != Some(release) {
            return Err(Failure::WrongSeries);
        }
        let slot = match label("dial") {
            Some("responses") => &mut responses,
            Some("errors") => &mut errors,
            Some("slow") => &mut slow,
            _ => return Err(Failure::WrongSeries),
        };
        if slot.is_some() {
            return Err(Failure::WrongSeries);
        }
        let value = sample
            .get("value")
            .and_then(|v| v.get(1))
            .and_then(|v| v.as_str())
            .ok_or(Failure::Malformed)?;
        let value = match value {
            "NaN" | "+Inf" | "-Inf" | "Inf" => return Err(Failure::NaN),
            // A JSON number in a string: read by the same reader (no second float parser).
            v => json::parse(v.as_bytes())
                .ok()
                .and_then(|n| n.as_f64())
                .ok_or(Failure::Malformed)?,
        };
        if !value.is_finite() {
            return Err(Failure::NaN);
        }
        *slot = Some(value);
    }
    Ok(Figures {
        responses: responses.ok_or(Failure::Empty)?,
        errors,
        slow,
    })
}

/// The verdict on the fleet's figures, by the local guard's rule: below `minRequests` no
/// verdict; over the threshold, a trip. A figure the guard judges that is missing where the
/// responses say it is due is a failure.
pub fn verdict(guard: &Guard, figures: &Figures) -> Result<Option<FleetTrip>, Failure> {
    if figures.responses < 1.0 || figures.responses < guard.min_requests as f64 {
        return Ok(None);
    }
    let checks = [
        (Measure::Errors, guard.max_error_rate, figures.errors),
        (
            Measure::Slow,
            guard.max_slow_rate.map(|s| s.rate),
            figures.slow,
        ),
    ];
    for (what, max, excess) in checks {
        let Some(max) = max else { continue };
        let excess = excess.ok_or(Failure::Empty)?;
        if excess > max {
            return Ok(Some(FleetTrip {
                what,
                excess,
                responses: figures.responses,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
