#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dial_fuzz::instant::check(data));
