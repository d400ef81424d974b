//! The rights look-up (CDRi-like, *consultation des droits intégrée*): a
//! beneficiary's coverage, regime, exemptions, declared GP, local regime and
//! complementary insurer on a date, read from the entitlement stage's state
//! exactly as the stage reads it for a claim with care on that date.
//!
//! The NIR becomes the pseudonymous key at once and is never kept or
//! echoed: the answer names the beneficiary by the key only.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::rights::{LocalRegime, Rights, RightsInput};
use crate::ids::nir::Nir;
use crate::pseudonym::{BeneficiaryKey, PseudonymKey};
use crate::stages::entitlement::{apply_rights, load_rights};
use crate::state::{StateRead, StateTxn, StoreError};

/// The question: who (as on the Vitale card) and on which date.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RightsQuery {
    pub nir: String,
    pub birth_date: NaiveDate,
    pub rank: u8,
    pub date: NaiveDate,
    /// Answer only from state that has applied `ref.rights` at least up to
    /// this offset of the beneficiary's partition (read-your-writes after a
    /// rights update); otherwise the answer says it is not fresh enough.
    #[serde(default)]
    pub min_rights_offset: Option<u64>,
}

/// The query without personal data, for logs and errors.
impl std::fmt::Debug for RightsQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RightsQuery(<redacted>)")
    }
}

/// Why a query cannot be asked (the pipeline's reason codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("invalid_nir: {0}")]
    Nir(crate::ids::IdError),
    #[error("invalid_beneficiary: rank must be 1 to 9")]
    Rank,
}

impl QueryError {
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Nir(_) => "invalid_nir",
            QueryError::Rank => "invalid_beneficiary",
        }
    }
}

impl RightsQuery {
    /// The beneficiary's pseudonymous key (the NIR checked, then dropped).
    pub fn beneficiary(&self, pseudonyms: &PseudonymKey) -> Result<BeneficiaryKey, QueryError> {
        if !(1..=9).contains(&self.rank) {
            return Err(QueryError::Rank);
        }
        let nir = Nir::parse(&self.nir).map_err(QueryError::Nir)?;
        Ok(pseudonyms.insured(&nir, self.birth_date, self.rank))
    }
}

/// Exemptions in force on the date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exemptions {
    /// Long-term illness (ALD).
    pub ald: bool,
    /// Complémentaire santé solidaire.
    pub css: bool,
    /// Aide médicale de l'État.
    pub ame: bool,
    pub maternity: bool,
}

/// A beneficiary's rights on the date, as entitlement would read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RightsOnDate {
    pub covered: bool,
    /// The coverage period's regime and fund, when covered.
    pub regime: Option<String>,
    pub fund: Option<String>,
    pub exemptions: Exemptions,
    pub declared_gp: Option<String>,
    pub local_regime: Option<LocalRegime>,
    /// The complementary insurer (AMC).
    pub amc: Option<String>,
    /// The digest of the stored rights record (what a decision records).
    pub rights_digest: String,
}

impl RightsOnDate {
    pub fn of(rights: &Rights, digest: String, date: NaiveDate) -> RightsOnDate {
        let coverage = rights.coverage_on(date);
        RightsOnDate {
            covered: coverage.is_some(),
            regime: coverage.map(|c| c.regime.clone()),
            fund: coverage.map(|c| c.fund.clone()),
            exemptions: Exemptions {
                ald: Rights::any_on(&rights.ald, date),
                css: Rights::any_on(&rights.css, date),
                ame: Rights::any_on(&rights.ame, date),
                maternity: Rights::any_on(&rights.maternity, date),
            },
            declared_gp: rights.declared_gp_on(date).map(str::to_string),
            local_regime: rights.local_regime_on(date),
            amc: rights.amc_on(date).map(str::to_string),
            rights_digest: digest,
        }
    }
}

/// The rights of `key` on `date` in an entitlement partition's state;
/// `None` when no rights record is stored for the key.
pub fn rights_on(
    state: &dyn StateRead,
    key: &BeneficiaryKey,
    date: NaiveDate,
) -> Result<Option<RightsOnDate>, StoreError> {
    Ok(load_rights(state, key)?.map(|(rights, digest)| RightsOnDate::of(&rights, digest, date)))
}

/// [`rights_on`] over the state with `pending` applied first: the
/// `ref.rights` records of the partition the stage has not applied yet (it
/// applies them when claims come), in order, as the stage will apply them.
/// So the answer is as fresh as the topic, whatever the claims' traffic. A
/// record the stage would dead-letter is skipped, as the stage skips it.
pub fn rights_with_pending(
    state: &dyn StateRead,
    pending: Vec<RightsInput>,
    pseudonyms: &PseudonymKey,
    key: &BeneficiaryKey,
    date: NaiveDate,
) -> Result<Option<RightsOnDate>, StoreError> {
    let mut overlay = StateTxn::new(state);
    for input in pending {
        let _skipped = apply_rights(input, &mut overlay, pseudonyms);
    }
    rights_on(&overlay, key, date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemStore, StateStore};
    use serde_json::json;

    const NIR: &str = "185057800604830";

    fn stored(store: &MemStore, pseudonyms: &PseudonymKey) {
        let input: RightsInput = serde_json::from_value(json!({
            "nir": NIR, "birth_date": "1985-05-12", "rank": 1,
            "coverage": [
                {"from": "2000-01-01", "to": "2024-12-31", "regime": "01", "fund": "751"},
                {"from": "2025-01-01", "to": null, "regime": "02", "fund": "131"}
            ],
            "ald": [{"from": "2025-03-01", "to": null}], "css": [], "ame": [],
            "maternity": [], "local_regime": null, "declared_gp": "10000123454"
        }))
        .unwrap();
        let mut txn = StateTxn::new(store);
        crate::stages::entitlement::apply_rights(input, &mut txn, pseudonyms).unwrap();
        store.apply(&txn.into_writes()).unwrap();
    }

    fn query(date: &str) -> RightsQuery {
        serde_json::from_value(json!({
            "nir": NIR, "birth_date": "1985-05-12", "rank": 1, "date": date
        }))
        .unwrap()
    }

    #[test]
    fn the_answer_is_the_rights_in_force_on_the_date() {
        let (store, pseudonyms) = (MemStore::default(), PseudonymKey::development());
        stored(&store, &pseudonyms);
        let key = query("2024-06-01").beneficiary(&pseudonyms).unwrap();
        let before = rights_on(&store, &key, "2024-06-01".parse().unwrap())
            .unwrap()
            .unwrap();
        assert!(before.covered);
        assert_eq!(before.regime.as_deref(), Some("01"));
        assert!(!before.exemptions.ald);
        let after = rights_on(&store, &key, "2025-06-01".parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (after.regime.as_deref(), after.exemptions.ald),
            (Some("02"), true)
        );
        assert_eq!(after.declared_gp.as_deref(), Some("10000123454"));
        assert_eq!(after.rights_digest, before.rights_digest);
    }

    #[test]
    fn records_the_stage_has_not_applied_yet_are_in_the_answer() {
        let (store, pseudonyms) = (MemStore::default(), PseudonymKey::development());
        stored(&store, &pseudonyms);
        let key = query("2025-06-01").beneficiary(&pseudonyms).unwrap();
        let update: RightsInput = serde_json::from_value(json!({
            "nir": NIR, "birth_date": "1985-05-12", "rank": 1,
            "coverage": [{"from": "2000-01-01", "to": "2025-03-31", "regime": "01", "fund": "751"}],
            "ald": [], "css": [{"from": "2025-01-01", "to": null}], "ame": [],
            "maternity": [], "local_regime": null, "declared_gp": null
        }))
        .unwrap();
        let date = "2025-06-01".parse().unwrap();
        let fresh = rights_with_pending(&store, vec![update], &pseudonyms, &key, date)
            .unwrap()
            .unwrap();
        assert!(!fresh.covered && fresh.exemptions.css && fresh.declared_gp.is_none());
        // The store itself is untouched: the stage applies the record later.
        assert!(rights_on(&store, &key, date).unwrap().unwrap().covered);
    }

    #[test]
    fn an_unknown_beneficiary_and_a_bad_nir_are_told_apart() {
        let (store, pseudonyms) = (MemStore::default(), PseudonymKey::development());
        let key = query("2025-01-01").beneficiary(&pseudonyms).unwrap();
        assert_eq!(
            rights_on(&store, &key, "2025-01-01".parse().unwrap()).unwrap(),
            None
        );
        let mut bad = query("2025-01-01");
        bad.nir = "185057800604831".into();
        assert_eq!(
            bad.beneficiary(&pseudonyms).unwrap_err().code(),
            "invalid_nir"
        );
        let mut rank = query("2025-01-01");
        rank.rank = 0;
        assert_eq!(rank.beneficiary(&pseudonyms).unwrap_err(), QueryError::Rank);
        // The query never prints its NIR.
        assert!(!format!("{bad:?}").contains("1850578"));
    }
}
