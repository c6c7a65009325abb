//! Plugin configuration "empty": root and HTTP contexts that do nothing. "set-header": the HTTP
//! context sets `x-dial-subset: stable` and nothing else. "read-and-set": it first reads the
//! request header map (one host call, which the host answers by calling back into the module
//! to allocate the copy), the least a filter that looks at the request must do.
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot { mode: Mode::Empty }) });
}}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Empty,
    SetHeader,
    ReadAndSet,
}

struct FloorRoot {
    mode: Mode,
}

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.mode = match config.as_slice() {
            b"set-header" => Mode::SetHeader,
            b"read-and-set" => Mode::ReadAndSet,
            _ => Mode::Empty,
        };
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        match self.mode {
            Mode::Empty => Some(Box::new(Empty)),
            mode => Some(Box::new(SetHeader {
                read: mode == Mode::ReadAndSet,
            })),
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Empty;
impl Context for Empty {}
impl HttpContext for Empty {}

struct SetHeader {
    read: bool,
}
impl Context for SetHeader {}
impl HttpContext for SetHeader {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if self.read {
            let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
        }
        let _ =
            hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-dial-subset", Some("stable"));
        Action::Continue
    }
}
