//! A host that records: the request as the upstream would get it, the response as the client
//! would, every metric counted and every host call in order. Tests run the exchange's lifecycle
//! against it, and tools use it to show what Dial would do to a request.

use std::collections::BTreeMap;

use crate::core::catalog::Catalog;
use crate::core::host::{Host, MetricIndex};
use crate::core::request::HeaderList;

/// One host call, as the lifecycle made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    SetRequestHeader(String, String),
    RemoveRequestHeader(String),
    AddResponseHeader(String, String),
    SetResponseHeader(String, String),
    ResponseStatus,
    Increment(MetricIndex),
    Record(MetricIndex, u64),
    Now,
    ReadCounter(MetricIndex),
    SetGauge(MetricIndex, u64),
    Shared(String),
    SetShared(String),
}

/// The host refused a call (when `RecordingHost::refuse` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

#[derive(Debug, Default, Clone)]
pub struct RecordingHost {
    /// The request headers: the client's, with every write applied, in order.
    pub request: HeaderList,
    /// The response headers: the upstream's (`:status` among them), with every write applied.
    pub response: Vec<(String, String)>,
    /// What the clock says, in nanoseconds.
    pub clock: u64,
    /// Counter values by metric.
    pub counters: BTreeMap<MetricIndex, u64>,
    /// Histogram values, in order.
    pub records: Vec<(MetricIndex, u64)>,
    /// Gauge values by metric.
    pub gauges: BTreeMap<MetricIndex, u64>,
    /// Shared data: value and version by key.
    pub shared: BTreeMap<String, (Vec<u8>, u32)>,
    /// Every call, in order (refused ones too).
    pub calls: Vec<Call>,
    /// When set, every call fails and changes nothing (a host that lost the stream).
    pub refuse: bool,
}

impl RecordingHost {
    /// A host holding the client's request.
    pub fn new(request: &HeaderList) -> RecordingHost {
        RecordingHost {
            request: request.clone(),
            ..RecordingHost::default()
        }
    }

    /// The upstream answers with this status.
    pub fn respond(&mut self, status: u32) {
        self.response = vec![(":status".into(), status.to_string())];
    }

    /// Every value of a request header, as the upstream would get it.
    pub fn request_values(&self, name: &str) -> Vec<&[u8]> {
        self.request
            .pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Every value of a response header, as the client would get it.
    pub fn response_values(&self, name: &str) -> Vec<&str> {
        self.response
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The gauges set, by metric name, with their values.
    pub fn gauged<'c>(&self, catalog: &'c Catalog) -> Vec<(&'c str, u64)> {
        self.gauges
            .iter()
            .filter_map(|(i, n)| Some((catalog.metrics.get(*i)?.name.as_str(), *n)))
            .collect()
    }

    /// The counters that moved, by metric name, with their values.
    pub fn counted<'c>(&self, catalog: &'c Catalog) -> Vec<(&'c str, u64)> {
        self.counters
            .iter()
            .filter_map(|(i, n)| Some((catalog.metrics.get(*i)?.name.as_str(), *n)))
            .collect()
    }

    /// The histogram values recorded, by metric name.
    pub fn recorded<'c>(&self, catalog: &'c Catalog) -> Vec<(&'c str, u64)> {
        self.records
            .iter()
            .filter_map(|(i, v)| Some((catalog.metrics.get(*i)?.name.as_str(), *v)))
            .collect()
    }

    fn call(&mut self, call: Call) -> Result<(), Refused> {
        self.calls.push(call);
        if self.refuse {
            Err(Refused)
        } else {
            Ok(())
        }
    }
}

impl Host for RecordingHost {
    type Error = Refused;

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), Refused> {
        self.call(Call::SetRequestHeader(name.into(), value.into()))?;
        let pairs = &mut self.request.pairs;
        match pairs.iter().position(|(n, _)| n == name) {
            Some(first) => {
                if let Some(slot) = pairs.get_mut(first) {
                    slot.1 = value.as_bytes().to_vec();
                }
                let mut i = 0;
                pairs.retain(|(n, _)| {
                    i += 1;
                    i - 1 == first || n != name
                });
            }
            None => pairs.push((name.into(), value.as_bytes().to_vec())),
        }
        Ok(())
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), Refused> {
        self.call(Call::RemoveRequestHeader(name.into()))?;
        self.request.pairs.retain(|(n, _)| n != name);
        Ok(())
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), Refused> {
        self.call(Call::AddResponseHeader(name.into(), value.into()))?;
        self.response.push((name.into(), value.into()));
        Ok(())
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), Refused> {
        self.call(Call::SetResponseHeader(name.into(), value.into()))?;
        self.response.retain(|(n, _)| n != name);
        self.response.push((name.into(), value.into()));
        Ok(())
    }

    fn response_status(&mut self) -> Result<Option<u32>, Refused> {
        self.call(Call::ResponseStatus)?;
        Ok(self
            .response
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| v.parse().ok()))
    }

    fn increment(&mut self, metric: MetricIndex) -> Result<(), Refused> {
        self.call(Call::Increment(metric))?;
        *self.counters.entry(metric).or_default() += 1;
        Ok(())
    }

    fn record(&mut self, metric: MetricIndex, value: u64) -> Result<(), Refused> {
        self.call(Call::Record(metric, value))?;
        self.records.push((metric, value));
        Ok(())
    }

    fn now_nanos(&mut self) -> Result<u64, Refused> {
        self.call(Call::Now)?;
        Ok(self.clock)
    }

    fn read_counter(&mut self, metric: MetricIndex) -> Result<u64, Refused> {
        self.call(Call::ReadCounter(metric))?;
        Ok(self.counters.get(&metric).copied().unwrap_or(0))
    }

    fn set_gauge(&mut self, metric: MetricIndex, value: u64) -> Result<(), Refused> {
        self.call(Call::SetGauge(metric, value))?;
        self.gauges.insert(metric, value);
        Ok(())
    }

    fn shared(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), Refused> {
        self.call(Call::Shared(key.into()))?;
        Ok(match self.shared.get(key) {
            Some((value, version)) => (Some(value.clone()), *version),
            None => (None, 0),
        })
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, Refused> {
        self.call(Call::SetShared(key.into()))?;
        let version = self.shared.get(key).map_or(0, |(_, v)| *v);
        if cas != 0 && cas != version {
            return Ok(false);
        }
        self.shared
            .insert(key.into(), (value.to_vec(), version + 1));
        Ok(true)
    }
}
