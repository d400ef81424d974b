//! The decision on one FSE (`fse.decided` / `fse.rejected`), in the JSON shape
//! of contract.md, plus the extra fields an auditor needs (which versions,
//! which deductions, which key).

use chrono::NaiveDate;
use serde::Serialize;

use crate::domain::Reason;
use crate::money::{Cents, Rate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Paid,
    Rejected,
}

/// Who bears the claim: the French scheme, or the visitor's institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Domestic,
    Eu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureCheck {
    Verified,
    NotChecked,
}

/// One act line of a paid decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionLine {
    pub code: String,
    pub charged: Cents,
    pub base: Cents,
    pub rate: Rate,
    /// AMO share of this line, after its participation and franchise.
    pub amo: Cents,
    pub css: Cents,
    pub participation: Cents,
    pub franchise: Cents,
    /// Rule entries used: tariff version `CODE@from`, rate source.
    pub tariff: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub fse_id: Option<String>,
    pub status: Status,
    pub route: Option<Route>,
    pub reasons: Vec<Reason>,
    /// Signals that do not stop payment (the "S" of a return).
    pub warnings: Vec<Reason>,
    pub lines: Vec<DecisionLine>,
    pub amo: Cents,
    pub css: Cents,
    pub participation: Cents,
    pub franchise: Cents,
    /// Flat fee on costly acts borne instead of the ticket modérateur.
    pub flat_fee: Cents,
    /// Deductions owed for this claim but not taken from its payment.
    pub deferred: Cents,
    /// Earlier deferred deductions taken from this claim's payment.
    pub imputed: Cents,
    pub patient: Cents,
    pub paid_to_professional: Cents,
    pub paid_to_insured: Cents,
    pub rules_version: String,
    pub signature_check: Option<SignatureCheck>,
    /// Pseudonymous beneficiary key (never the NIR).
    pub beneficiary_key: Option<String>,
    pub care_date: Option<NaiveDate>,
    pub reimbursement_date: Option<NaiveDate>,
}

impl Decision {
    /// A rejection: no money moves.
    pub fn rejected(
        fse_id: Option<String>,
        reasons: Vec<Reason>,
        warnings: Vec<Reason>,
        rules_version: &str,
    ) -> Decision {
        Decision {
            fse_id,
            status: Status::Rejected,
            route: None,
            reasons,
            warnings,
            lines: Vec::new(),
            amo: Cents::ZERO,
            css: Cents::ZERO,
            participation: Cents::ZERO,
            franchise: Cents::ZERO,
            flat_fee: Cents::ZERO,
            deferred: Cents::ZERO,
            imputed: Cents::ZERO,
            patient: Cents::ZERO,
            paid_to_professional: Cents::ZERO,
            paid_to_insured: Cents::ZERO,
            rules_version: rules_version.to_string(),
            signature_check: None,
            beneficiary_key: None,
            care_date: None,
            reimbursement_date: None,
        }
    }

    /// The charged total of the lines.
    pub fn charged(&self) -> Cents {
        self.lines.iter().map(|l| l.charged).sum()
    }

    /// The invariants every paid decision holds; a failure is a bug, not bad
    /// input. Checked where the decision is made and again where it is read.
    pub fn check_invariants(&self) -> Result<(), String> {
        let sum = |f: fn(&DecisionLine) -> Cents| -> Cents { self.lines.iter().map(f).sum() };
        let checks = [
            (sum(|l| l.amo) == self.amo, "line amo sums to amo"),
            (sum(|l| l.css) == self.css, "line css sums to css"),
            (
                sum(|l| l.participation) == self.participation,
                "line participation sums",
            ),
            (
                sum(|l| l.franchise) == self.franchise,
                "line franchise sums",
            ),
            (
                self.charged() == self.amo + self.css + self.patient,
                "charged = amo + css + patient",
            ),
            (
                self.lines.iter().all(|l| l.amo + l.css <= l.base),
                "amo + css within base on every line",
            ),
            (
                self.lines.iter().all(|l| l.base <= l.charged),
                "base within charged on every line",
            ),
            (
                [
                    self.amo,
                    self.css,
                    self.participation,
                    self.franchise,
                    self.deferred,
                    self.imputed,
                    self.patient,
                    self.paid_to_professional,
                    self.paid_to_insured,
                ]
                .iter()
                .all(|c| !c.is_negative()),
                "no negative amount",
            ),
            (
                self.deferred <= self.participation + self.franchise,
                "deferred within deductions",
            ),
            (
                self.paid_to_professional + self.paid_to_insured + self.imputed
                    == self.amo + self.css + self.deferred,
                "payments = amo + css + deferred − imputed",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, what)) => Err(format!(
                "decision {:?} breaks: {what}",
                self.fse_id.as_deref().unwrap_or("?")
            )),
            None => Ok(()),
        }
    }
}
