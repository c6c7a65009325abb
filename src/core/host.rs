//! What the core asks of a host while it serves an exchange: the writes (request and response
//! headers, metrics) and the few reads that are not the request itself (the response status,
//! the clock). The request is read through `RequestView`. Each binding implements this once,
//! over its own calls; the lifecycle is generic over it, so dispatch is static and free.
//!
//! Every call may fail (the host refuses, the stream is gone): the lifecycle logs the failure
//! and carries on, because a request must never fail on Dial's account.

use std::fmt::Debug;

/// A metric by its position in the policy's `catalog::Catalog`; the binding maps it to the id the
/// host gave the metric when it was defined.
pub type MetricIndex = usize;

pub trait Host {
    /// Why a call failed, as the host reports it (logged, never acted on).
    type Error: Debug;

    /// Sets a request header, replacing every value it had. Setting Dial's subset header is what
    /// steers the request: the binding makes sure the route is chosen again afterwards.
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), Self::Error>;
    /// Removes every value of a request header.
    fn remove_request_header(&mut self, name: &str) -> Result<(), Self::Error>;
    /// Adds a response header, keeping any value it already has (`Set-Cookie`).
    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), Self::Error>;
    /// Sets a response header, replacing every value it had.
    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), Self::Error>;
    /// The response's status code, read when its headers pass (`None`: absent or not a number).
    fn response_status(&mut self) -> Result<Option<u32>, Self::Error>;
    /// Adds one to a counter.
    fn increment(&mut self, metric: MetricIndex) -> Result<(), Self::Error>;
    /// Records a value in a histogram.
    fn record(&mut self, metric: MetricIndex, value: u64) -> Result<(), Self::Error>;
    /// The host clock, in nanoseconds since the Unix epoch.
    fn now_nanos(&mut self) -> Result<u64, Self::Error>;

    // What a VM's tick uses to judge the whole proxy's traffic and share its verdict.

    /// A counter's value across the whole proxy (every worker's increments).
    fn read_counter(&mut self, metric: MetricIndex) -> Result<u64, Self::Error>;
    /// Sets a gauge.
    fn set_gauge(&mut self, metric: MetricIndex, value: u64) -> Result<(), Self::Error>;
    /// A value every VM of the proxy sees, with its version for `set_shared`.
    fn shared(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), Self::Error>;
    /// Sets a shared value if it is still at version `cas` (0: whatever it is); `Ok(false)` if
    /// another VM changed it first.
    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, Self::Error>;
}
