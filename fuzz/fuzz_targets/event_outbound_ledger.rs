//! A record of outbound.ledger, as the ledger stage reads it: decoded, run through the stage, outputs checked.
#![no_main]

use clearing_pipeline::events::model::LedgerEntry;
use clearing_pipeline::runtime::StageKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clearing_fuzz::roundtrip::<LedgerEntry>(data);
    clearing_fuzz::stage(StageKind::Ledger, data);
});
