//! A record of ref.eu.institutions: decoded, converted, applied to the reference state.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clearing_fuzz::ref_eu_institutions(data));
