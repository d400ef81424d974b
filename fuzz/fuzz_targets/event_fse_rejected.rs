//! A record of fse.rejected, as the returns stage reads it: decoded, run through the stage, outputs checked.
#![no_main]

use clearing_pipeline::events::model::FseRejected;
use clearing_pipeline::runtime::StageKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clearing_fuzz::roundtrip::<FseRejected>(data);
    clearing_fuzz::stage(StageKind::Returns, data);
});
