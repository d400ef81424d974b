//! A record of fse.entitled, as the routing stage reads it: decoded, run through the stage, outputs checked.
#![no_main]

use clearing_pipeline::events::model::FseEntitled;
use clearing_pipeline::runtime::StageKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clearing_fuzz::roundtrip::<FseEntitled>(data);
    clearing_fuzz::stage(StageKind::Routing, data);
});
