use proxy_wasm::hostcalls;

pub fn now() -> u64 {
    hostcalls::get_current_time().unwrap_or(0)
}
