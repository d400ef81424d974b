//! A record of fse.submitted, as the validation stage reads it: decoded, run through the stage, outputs checked.
#![no_main]

use clearing_pipeline::events::model::FseSubmitted;
use clearing_pipeline::runtime::StageKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clearing_fuzz::roundtrip::<FseSubmitted>(data);
    clearing_fuzz::stage(StageKind::Validation, data);
});
