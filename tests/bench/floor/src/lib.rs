//! The floors Dial is measured against: a proxy-wasm filter that makes host calls and nothing
//! else. Its plugin configuration lists them, comma-separated, each made once per request:
//!
//! - `read-headers`: the request header map, one buffer (the host calls back into the module
//!   to allocate it), read the way Dial reads it;
//! - `set-header` / `set-second-header`: set `x-dial-subset` / `x-dial-version` (the first one
//!   also makes Envoy match the route again);
//! - `clock`: the host's clock; `count`: a counter increment; `record`: a histogram sample;
//! - `read-status`: the response's `:status` (one buffer, in the response headers callback).
//!
//! An empty configuration is the floor of any wasm filter: contexts that do nothing.
#![allow(clippy::missing_safety_doc)]

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::<FloorRoot>::default() });
}}

#[derive(Clone, Copy, PartialEq)]
enum Call {
    ReadHeaders,
    SetHeader,
    SetSecondHeader,
    Clock,
    Count,
    Record,
    ReadStatus,
}

#[derive(Default)]
struct FloorRoot {
    calls: Rc<[Call]>,
    counter: u32,
    histogram: u32,
}

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let config = String::from_utf8_lossy(&config);
        let mut calls = Vec::new();
        for name in config.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            calls.push(match name {
                "read-headers" => Call::ReadHeaders,
                "set-header" => Call::SetHeader,
                "set-second-header" => Call::SetSecondHeader,
                "clock" => Call::Clock,
                "count" => Call::Count,
                "record" => Call::Record,
                "read-status" => Call::ReadStatus,
                other => {
                    let _ =
                        hostcalls::log(LogLevel::Error, &format!("floor: unknown call {other:?}"));
                    return false;
                }
            });
        }
        let define = |kind, name| hostcalls::define_metric(kind, name).unwrap_or(0);
        self.counter = define(MetricType::Counter, "floor_requests_total");
        self.histogram = define(MetricType::Histogram, "floor_duration_milliseconds");
        self.calls = calls.into();
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        if self.calls.is_empty() {
            return Some(Box::new(Empty));
        }
        Some(Box::new(Calls {
            calls: self.calls.clone(),
            counter: self.counter,
            histogram: self.histogram,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Empty;
impl Context for Empty {}
impl HttpContext for Empty {}

struct Calls {
    calls: Rc<[Call]>,
    counter: u32,
    histogram: u32,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map: MapType, data: *mut *mut u8, size: *mut usize) -> Status;
    fn proxy_get_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> Status;
    fn proxy_replace_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> Status;
    fn proxy_increment_metric(id: u32, offset: i64) -> Status;
    fn proxy_record_metric(id: u32, value: u64) -> Status;
}

/// Frees a buffer the host allocated through the SDK's proxy_on_memory_allocate.
unsafe fn free(data: *mut u8, size: usize) {
    if !data.is_null() {
        drop(unsafe { Vec::from_raw_parts(data, size, size) });
    }
}

unsafe fn set(name: &str, value: &str) {
    unsafe {
        proxy_replace_header_map_value(
            MapType::HttpRequestHeaders,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        );
    }
}

impl Calls {
    fn make(&self, call: Call) {
        let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
        // SAFETY: live locals and slices; buffers the host returns are freed once.
        unsafe {
            match call {
                Call::ReadHeaders => {
                    proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size);
                    if !data.is_null() {
                        std::hint::black_box(std::slice::from_raw_parts(data, size));
                    }
                    free(data, size);
                }
                Call::SetHeader => set("x-dial-subset", "stable"),
                Call::SetSecondHeader => set("x-dial-version", "v1"),
                Call::Clock => {
                    let mut now = 0u64;
                    proxy_get_current_time_nanoseconds(&mut now);
                    std::hint::black_box(now);
                }
                Call::Count => {
                    proxy_increment_metric(self.counter, 1);
                }
                Call::Record => {
                    proxy_record_metric(self.histogram, 1);
                }
                Call::ReadStatus => {
                    let name = ":status";
                    proxy_get_header_map_value(
                        MapType::HttpResponseHeaders,
                        name.as_ptr(),
                        name.len(),
                        &mut data,
                        &mut size,
                    );
                    free(data, size);
                }
            }
        }
    }
}

impl Context for Calls {}
impl HttpContext for Calls {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        for &call in self.calls.iter() {
            if call != Call::ReadStatus {
                self.make(call);
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if self.calls.contains(&Call::ReadStatus) {
            self.make(Call::ReadStatus);
        }
        Action::Continue
    }
}
