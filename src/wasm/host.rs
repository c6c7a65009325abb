//! The host calls Dial makes while serving requests, made raw. The SDK's `hostcalls` wrappers
//! panic on any status they do not expect (`set_map_value` on anything but Ok, for one), and a
//! panic traps the worker's VM; here every status comes back as an error to handle.

use std::net::IpAddr;

use proxy_wasm::types::{BufferType, MapType, MetricType, Status};

use crate::core::host::{Host, MetricIndex};
use crate::core::logging::Severity;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
    fn proxy_remove_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
    ) -> Status;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> Status;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status;
    fn proxy_record_metric(metric_id: u32, value: u64) -> Status;
    fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> Status;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> Status;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> Status;
    fn proxy_set_tick_period_milliseconds(period: u32) -> Status;
    fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> Status;
    fn proxy_define_metric(
        metric_type: MetricType,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> Status;
    /// `level` is proxy-wasm's `LogLevel`, which `Severity` numbers alike.
    fn proxy_log(level: Severity, message_data: *const u8, message_size: usize) -> Status;
}

/// Declares the host calls that write a header value (map, name, value): replacing every value
/// and adding one take the same arguments.
macro_rules! header_value_writes {
    ($($name:ident),+) => {
        #[link(wasm_import_module = "env")]
        extern "C" {
            $(fn $name(
                map_type: MapType,
                key_data: *const u8,
                key_size: usize,
                value_data: *const u8,
                value_size: usize,
            ) -> Status;)+
        }
    };
}

header_value_writes!(proxy_replace_header_map_value, proxy_add_header_map_value);

fn ok(status: Status) -> Result<(), Status> {
    match status {
        Status::Ok => Ok(()),
        other => Err(other),
    }
}

/// Takes ownership of a buffer the host returned. The host allocates it through the SDK's
/// proxy_on_memory_allocate (a boxed slice of exactly `size` bytes).
///
/// # Safety
/// `data` must be null or such a buffer of `size` bytes, not owned by anything else.
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: per this function's contract.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

/// A whole header map, serialized by the host, in one buffer.
pub fn header_map(map: MapType) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the host writes `data`/`size` only on Ok, with a buffer we then own.
    unsafe {
        ok(proxy_get_header_map_pairs(map, &mut data, &mut size))?;
        Ok(take(data, size))
    }
}

/// One header's value (the first, if repeated).
pub fn header_value(map: MapType, name: &str) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the name is a live slice; on Ok the host hands over a buffer we then own.
    unsafe {
        match proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size) {
            Status::Ok => Ok(Some(take(data, size))),
            Status::NotFound => Ok(None),
            other => Err(other),
        }
    }
}

/// The host's clock, in nanoseconds since the epoch. Unlike a property, it costs no buffer.
pub fn now_nanos() -> Result<u64, Status> {
    let mut nanos = 0u64;
    // SAFETY: the host writes one u64 to a live local.
    ok(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(nanos)
}

/// Sets a header, replacing every value it had.
pub fn replace_header(map: MapType, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: pointers and lengths of live slices, only read by the host.
    ok(unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_header(map: MapType, name: &str) -> Result<(), Status> {
    // SAFETY: as above.
    ok(unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) })
}

pub fn add_header(map: MapType, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: as above.
    ok(unsafe {
        proxy_add_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

/// A property by its serialized path (segments joined by NUL, e.g. `b"source\0address"`).
/// Costly (the host builds an expression context for it): kept off the common path.
pub fn property(path: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the path is a live slice; on Ok the host hands over a buffer we then own.
    unsafe {
        match proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) {
            Status::Ok => Ok(Some(take(data, size))),
            Status::NotFound => Ok(None),
            other => Err(other),
        }
    }
}

/// The downstream connection's peer, when the host shows it. The proxy-wasm host offers no
/// property for the connection's own peer: `source.address` is the stream's remote address,
/// which Envoy replaces with an `X-Forwarded-For` entry unless the connection manager uses the
/// remote address. `trust::connection_peer` refuses such a replaced address (port 0).
pub fn source_ip() -> Option<IpAddr> {
    let raw = property(b"source\0address").ok()??;
    crate::core::trust::connection_peer(&raw)
}

pub fn increment(metric: u32) -> Result<(), Status> {
    // SAFETY: plain integers.
    ok(unsafe { proxy_increment_metric(metric, 1) })
}

pub fn record(metric: u32, value: u64) -> Result<(), Status> {
    // SAFETY: plain integers.
    ok(unsafe { proxy_record_metric(metric, value) })
}

/// A counter's or gauge's value, across the whole proxy.
pub fn metric_value(metric: u32) -> Result<u64, Status> {
    let mut value = 0u64;
    // SAFETY: the host writes one u64 to a live local.
    ok(unsafe { proxy_get_metric(metric, &mut value) })?;
    Ok(value)
}

/// A shared-data value and its version (`None`, 0 when the key is absent).
pub fn shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), Status> {
    let (mut data, mut size, mut cas) = (std::ptr::null_mut(), 0usize, 0u32);
    // SAFETY: the key is a live slice; on Ok the host hands over a buffer we then own.
    unsafe {
        match proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) {
            Status::Ok => Ok((Some(take(data, size)), cas)),
            Status::NotFound => Ok((None, 0)),
            other => Err(other),
        }
    }
}

/// Sets a shared-data value if it is still at version `cas`; `Ok(false)` on a CAS mismatch.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<bool, Status> {
    // SAFETY: pointers and lengths of live slices, only read by the host.
    match unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    } {
        Status::Ok => Ok(true),
        Status::CasMismatch => Ok(false),
        other => Err(other),
    }
}

/// The plugin configuration (the policy), whole.
pub fn plugin_configuration(size: usize) -> Result<Vec<u8>, Status> {
    buffer(BufferType::PluginConfiguration, size)
}

/// A host buffer's first `size` bytes (empty when the host has none).
fn buffer(which: BufferType, size: usize) -> Result<Vec<u8>, Status> {
    let (mut data, mut size_out) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the host writes `data`/`size_out` only on Ok, with a buffer we then own.
    unsafe {
        match proxy_get_buffer_bytes(which, 0, size, &mut data, &mut size_out) {
            Status::Ok => Ok(take(data, size_out)),
            Status::NotFound => Ok(Vec::new()),
            other => Err(other),
        }
    }
}

/// Defines a metric by name (the same name is the same Envoy stat process-wide); its id.
pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: the name is a live slice; the host writes one u32 to a live local.
    ok(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Writes to Envoy's log. A failure cannot be reported anywhere, so it is ignored.
pub fn log(level: Severity, message: &str) {
    // SAFETY: pointer and length of a live slice, only read by the host.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// Asks for `on_tick` every `millis` milliseconds on this VM's root context (0: no more ticks).
pub fn set_tick_period(millis: u32) -> Result<(), Status> {
    // SAFETY: a plain integer.
    ok(unsafe { proxy_set_tick_period_milliseconds(millis) })
}

/// Sends an HTTP GET to `cluster` from the root context; the answer comes to
/// `on_http_call_response` with the token. This is the SDK's call, the one exception to raw
/// calls: the SDK routes a response only for a token it registered itself (a token it does not
/// know makes its `on_http_call_response` panic), and registering is private to it. It panics
/// only on a status other than Ok, BadArgument and InternalFailure, and Envoy's `http_call`
/// returns no other for valid memory.
pub fn http_get(
    cluster: &str,
    authority: &str,
    path: &str,
    timeout_millis: u32,
) -> Result<u32, Status> {
    proxy_wasm::hostcalls::dispatch_http_call(
        cluster,
        vec![
            (":method", "GET"),
            (":path", path),
            (":authority", authority),
            ("accept", "application/json"),
        ],
        None,
        vec![],
        std::time::Duration::from_millis(u64::from(timeout_millis)),
    )
}

/// The body of the HTTP call's response being delivered, whole.
pub fn http_call_body(size: usize) -> Result<Vec<u8>, Status> {
    buffer(BufferType::HttpCallResponseBody, size)
}

/// The core's `Host` over these calls. Metrics are named by their catalog position; the ids
/// Envoy gave them at configure time sit at the same positions.
pub struct WasmHost<'a> {
    pub metric_ids: &'a [u32],
}

impl WasmHost<'_> {
    fn metric(&self, index: MetricIndex) -> Result<u32, Status> {
        self.metric_ids.get(index).copied().ok_or(Status::NotFound)
    }
}

impl Host for WasmHost<'_> {
    type Error = Status;

    /// Envoy clears the route cache when a filter changes request headers, so the route table
    /// sees Dial's subset header without a call of its own.
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), Status> {
        replace_header(MapType::HttpRequestHeaders, name, value)
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), Status> {
        remove_header(MapType::HttpRequestHeaders, name)
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), Status> {
        add_header(MapType::HttpResponseHeaders, name, value)
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), Status> {
        replace_header(MapType::HttpResponseHeaders, name, value)
    }

    fn response_status(&mut self) -> Result<Option<u32>, Status> {
        let value = header_value(MapType::HttpResponseHeaders, ":status")?;
        Ok(value.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }

    fn increment(&mut self, metric: MetricIndex) -> Result<(), Status> {
        increment(self.metric(metric)?)
    }

    fn record(&mut self, metric: MetricIndex, value: u64) -> Result<(), Status> {
        record(self.metric(metric)?, value)
    }

    fn now_nanos(&mut self) -> Result<u64, Status> {
        now_nanos()
    }

    fn read_counter(&mut self, metric: MetricIndex) -> Result<u64, Status> {
        metric_value(self.metric(metric)?)
    }

    fn set_gauge(&mut self, metric: MetricIndex, value: u64) -> Result<(), Status> {
        record(self.metric(metric)?, value)
    }

    fn shared(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), Status> {
        shared_data(key)
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, Status> {
        set_shared_data(key, value, cas)
    }
}
