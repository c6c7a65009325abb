extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: *const u8);
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() {}
