//! Plugin configuration "empty": root and HTTP contexts that do nothing. "set-header": the HTTP
//! context sets `x-dial-subset: stable` and nothing else.
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot { set_header: false }) });
}}

struct FloorRoot {
    set_header: bool,
}

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.set_header = config == b"set-header";
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        if self.set_header {
            Some(Box::new(SetHeader))
        } else {
            Some(Box::new(Empty))
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Empty;
impl Context for Empty {}
impl HttpContext for Empty {}

struct SetHeader;
impl Context for SetHeader {}
impl HttpContext for SetHeader {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let _ =
            hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-dial-subset", Some("stable"));
        Action::Continue
    }
}
