//! An FSE JSON line, as clearing adjudicate and clearing submit read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clearing_fuzz::json_fse(data));
