//! A record of fse.routed, as the reimbursement stage reads it: decoded, run through the stage, outputs checked.
#![no_main]

use clearing_pipeline::events::model::FseRouted;
use clearing_pipeline::runtime::StageKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clearing_fuzz::roundtrip::<FseRouted>(data);
    clearing_fuzz::stage(StageKind::Reimbursement, data);
});
