//! A record of fse.validated, as the entitlement stage reads it: decoded, run through the stage, outputs checked.
#![no_main]

use clearing_pipeline::events::model::FseValidated;
use clearing_pipeline::runtime::StageKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clearing_fuzz::roundtrip::<FseValidated>(data);
    clearing_fuzz::stage(StageKind::Entitlement, data);
});
