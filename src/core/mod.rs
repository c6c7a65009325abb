//! The core: everything Dial decides and does, with no host in sight. It parses and checks the
//! policy, decides each request, and runs the exchange's lifecycle (which headers to set and
//! remove, which metrics to count, what the response gets) against the small `Host` interface
//! each binding implements. It never imports a host SDK, so it is tested natively and on wasm32.

pub mod baggage;
pub mod bucket;
pub mod catalog;
pub mod configure;
pub mod cookie;
pub mod decide;
pub mod exchange;
pub mod fleet;
pub mod guard;
pub mod host;
pub mod lane;
pub mod logging;
pub mod policy;
pub mod ramp;
pub mod recording;
pub mod request;
pub mod rules;
pub mod runtime;
pub mod scheme;
pub mod scope;
pub mod secret;
pub mod stats;
pub mod sticky;
pub mod time;
pub mod trust;
