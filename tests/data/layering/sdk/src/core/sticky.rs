use proxy_wasm::types::Status;

extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: &str);
}

pub fn log(message: &str) -> Status {
    log::info!("{:?}", ::proxy_wasm::hostcalls::log(message))
}
