//! Reads Envoy's `/stats/prometheus` text into samples that tests can query by labels. The text
//! is parsed by openmetrics-parser, which resolves the escapes in label values (`\"`, `\\`,
//! `\n`: Envoy 1.40 writes them for a tag value holding those characters); a histogram comes
//! back as the series the text holds: `_bucket` with `le`, `_sum` and `_count`.

use std::collections::BTreeMap;

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::PrometheusValue;

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every series in `text`. Fails the test if `text` is not in the Prometheus text format.
pub fn parse(text: &str) -> Vec<Sample> {
    let exposition = parse_prometheus(text)
        .unwrap_or_else(|e| panic!("not in the Prometheus text format ({e}):\n{text}"));
    let mut samples = Vec::new();
    for (name, family) in &exposition.families {
        for sample in family.iter_samples() {
            let labels: BTreeMap<String, String> = sample
                .get_labelset()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut push = |suffix: &str, extra: Option<(&str, String)>, value: f64| {
                let mut labels = labels.clone();
                labels.extend(extra.map(|(k, v)| (k.to_string(), v)));
                samples.push(Sample {
                    name: format!("{name}{suffix}"),
                    labels,
                    value,
                });
            };
            match &sample.value {
                PrometheusValue::Unknown(n) | PrometheusValue::Gauge(n) => {
                    push("", None, n.as_f64())
                }
                PrometheusValue::Counter(c) => push("", None, c.value.as_f64()),
                PrometheusValue::Histogram(h) => {
                    for b in &h.buckets {
                        push(
                            "_bucket",
                            Some(("le", bound(b.upper_bound))),
                            b.count.as_f64(),
                        );
                    }
                    if let Some(sum) = h.sum {
                        push("_sum", None, sum.as_f64());
                    }
                    if let Some(count) = h.count {
                        push("_count", None, count as f64);
                    }
                }
                PrometheusValue::Summary(s) => {
                    for q in &s.quantiles {
                        push("", Some(("quantile", bound(q.quantile))), q.value.as_f64());
                    }
                    if let Some(sum) = s.sum {
                        push("_sum", None, sum.as_f64());
                    }
                    if let Some(count) = s.count {
                        push("_count", None, count as f64);
                    }
                }
            }
        }
    }
    samples
}

/// A bucket's bound as the text writes it: `+Inf`, or the shortest decimal that reads back
/// as the same number (Envoy's bounds, 0.5 to 3600000, print the same either way).
fn bound(b: f64) -> String {
    match b {
        f64::INFINITY => "+Inf".to_string(),
        b => b.to_string(),
    }
}

/// The value of the one series named `name` whose labels are exactly `labels`; None if absent.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && s.labels == want)
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} appears {} times",
        found.len()
    );
    found.first().map(|s| s.value)
}
