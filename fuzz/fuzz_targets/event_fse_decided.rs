//! A record of fse.decided, as the settlement stage reads it: decoded, run through the stage, outputs checked.
#![no_main]

use clearing_pipeline::events::model::FseDecided;
use clearing_pipeline::runtime::StageKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clearing_fuzz::roundtrip::<FseDecided>(data);
    clearing_fuzz::stage(StageKind::Settlement, data);
});
