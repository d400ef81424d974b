//! Returns to the professional (NOEMIE-like): one final return per FSE
//! (RSP: payment, with its warnings as signals, or rejection, with its coded
//! reasons) and one acknowledgement per batch (ARL, positive or negative).
//!
//! A batch is what one professional sent on one day of receipt (the FSE's
//! `rpps` and `received_on`). In the runtime a partition sees only its own
//! beneficiaries' FSEs, so a batch's ARL is emitted per partition and its id
//! says which (docs/outbound.md): the professional's software adds up the
//! `fse_count` of the ARLs of a day to match what it sent.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::blank_header;
use crate::domain::Stage;
use crate::events::model::{
    ClaimRefRec, DecisionRec, LedgerOutcomeRec, ProfessionalReturn, ReasonRec, ReturnKind,
};

/// At most this many distinct reason codes listed on a negative ARL.
pub const MAX_ARL_REASONS: usize = 20;

/// RSP payment: what the professional is paid for this FSE (zero without
/// tiers payant: the insured is paid), with the decision's warnings, and the
/// billing identifier it is paid to when not the RPPS.
pub fn payment_return(decision: &DecisionRec, claim: &ClaimRefRec) -> ProfessionalReturn {
    ProfessionalReturn {
        header: blank_header(),
        kind: ReturnKind::RspPayment,
        rpps: claim.rpps.clone(),
        batch_id: None,
        fse_id: decision.fse_id.clone(),
        amount_cents: Some(decision.paid_to_professional_cents),
        reasons: decision.warnings.clone(),
        fse_count: None,
        payee: claim.payee.clone(),
    }
}

/// RSP rejection: the coded reasons, as stable as the codes themselves.
pub fn rejection_return(decision: &DecisionRec, claim: &ClaimRefRec) -> ProfessionalReturn {
    ProfessionalReturn {
        header: blank_header(),
        kind: ReturnKind::RspRejection,
        rpps: claim.rpps.clone(),
        batch_id: None,
        fse_id: decision.fse_id.clone(),
        amount_cents: None,
        reasons: decision.reasons.clone(),
        fse_count: None,
        payee: None,
    }
}

/// One FSE of a batch, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotEntry {
    pub validation_rejected: bool,
    pub codes: Vec<String>,
}

impl LotEntry {
    pub fn of(outcome: &LedgerOutcomeRec) -> LotEntry {
        LotEntry {
            validation_rejected: outcome.validation_rejected,
            codes: if outcome.validation_rejected {
                outcome.reason_codes.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// The batch id: professional, day of receipt, partition, and the close
/// that acknowledged it (a late FSE of an acknowledged day forms a new batch).
pub fn batch_id(rpps: &str, received_on: NaiveDate, partition: u32, close_on: NaiveDate) -> String {
    format!(
        "{rpps}-{}-p{partition}-c{}",
        received_on.format("%Y%m%d"),
        close_on.format("%Y%m%d")
    )
}

/// The ARL of a batch: negative when validation refused every FSE of it (the
/// batch as sent could not be accepted), listing the codes; positive otherwise.
pub fn acknowledgement(
    rpps: &str,
    received_on: NaiveDate,
    entries: &[LotEntry],
    partition: u32,
    close_on: NaiveDate,
) -> ProfessionalReturn {
    let refused = !entries.is_empty() && entries.iter().all(|e| e.validation_rejected);
    let mut codes: Vec<&str> = entries
        .iter()
        .flat_map(|e| e.codes.iter().map(String::as_str))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let reasons = if refused {
        codes
            .iter()
            .take(MAX_ARL_REASONS)
            .map(|code| ReasonRec {
                code: (*code).to_string(),
                stage: Stage::Validation,
                message: "every FSE of the batch was refused; this code among them".to_string(),
                field: None,
                line: None,
            })
            .collect()
    } else {
        Vec::new()
    };
    ProfessionalReturn {
        header: blank_header(),
        kind: if refused {
            ReturnKind::ArlNegative
        } else {
            ReturnKind::ArlPositive
        },
        rpps: rpps.to_string(),
        batch_id: Some(batch_id(rpps, received_on, partition, close_on)),
        fse_id: None,
        amount_cents: None,
        reasons,
        fse_count: Some(i32::try_from(entries.len()).unwrap_or(i32::MAX)),
        // A batch is what one professional (RPPS) sent, whoever bills.
        payee: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn entry(rejected: bool, code: &str) -> LotEntry {
        LotEntry {
            validation_rejected: rejected,
            codes: if rejected { vec![code.into()] } else { vec![] },
        }
    }

    #[test]
    fn a_batch_with_one_accepted_fse_is_acknowledged_positively() {
        let arl = acknowledgement(
            "10000123454",
            d("2025-01-20"),
            &[entry(true, "bad_signature"), entry(false, "")],
            2,
            d("2025-01-21"),
        );
        assert_eq!(arl.kind, ReturnKind::ArlPositive);
        assert_eq!(arl.fse_count, Some(2));
        assert!(arl.reasons.is_empty());
        assert_eq!(
            arl.batch_id.as_deref(),
            Some("10000123454-20250120-p2-c20250121")
        );
    }

    #[test]
    fn a_batch_refused_whole_is_acknowledged_negatively_with_its_codes_once() {
        let arl = acknowledgement(
            "10000123454",
            d("2025-01-20"),
            &[entry(true, "b"), entry(true, "a"), entry(true, "b")],
            0,
            d("2025-01-20"),
        );
        assert_eq!(arl.kind, ReturnKind::ArlNegative);
        let codes: Vec<&str> = arl.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes, ["a", "b"]);
        assert_eq!(arl.fse_count, Some(3));
    }
}
