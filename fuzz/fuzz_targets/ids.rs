//! One string through every identifier checker (NIR, RPPS, FINESS, CIP13,
//! CCAM, NGAP, country, EHIC ids), the Luhn and EAN-13 keys, and the money parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clearing_fuzz::ids(data));
