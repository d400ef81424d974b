//! A reference JSON line (rights, EU institution, PKI), as clearing publish reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clearing_fuzz::json_ref(data));
