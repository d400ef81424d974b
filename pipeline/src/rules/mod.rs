//! Rule tables as data: tariffs, rates, deductions, exemptions, EU coverage.
//!
//! Each table is a TOML file under `pipeline/rules/` (embedded in the binary)
//! or in a directory given with `--rules DIR`. Every value is versioned by an
//! effective-from date ([`dated`]); every file has a content hash, and the
//! set's [`Rules::version`] (a hash over the file hashes) is recorded in every
//! decision so that an old claim replays under its own rules: the sets put
//! in force before the current one stay compiled in ([`Rules::published`]).
//!
//! This module owns parsing and checking the tables and answering "what was in
//! force on this date"; it never decides a claim.

pub mod dated;
mod outbound_tables;
pub mod prescriptions;
pub mod products;
mod published;
mod tables;

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

pub use dated::{Dated, Version};
pub use outbound_tables::*;
pub use products::{ListedPrice, ProductKind, ProductTable, Unlisted};
pub use tables::*;

/// The table files of a rule set, in the order they are hashed.
pub const TABLE_FILES: [&str; 8] = [
    "acts.toml",
    "rates.toml",
    "deductions.toml",
    "exemptions.toml",
    "general.toml",
    "eu.toml",
    "calendar.toml",
    "outbound.toml",
];

const EMBEDDED: [(&str, &str); 8] = [
    ("acts.toml", include_str!("../../rules/acts.toml")),
    ("rates.toml", include_str!("../../rules/rates.toml")),
    (
        "deductions.toml",
        include_str!("../../rules/deductions.toml"),
    ),
    (
        "exemptions.toml",
        include_str!("../../rules/exemptions.toml"),
    ),
    ("general.toml", include_str!("../../rules/general.toml")),
    ("eu.toml", include_str!("../../rules/eu.toml")),
    ("calendar.toml", include_str!("../../rules/calendar.toml")),
    ("outbound.toml", include_str!("../../rules/outbound.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("rule table {file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("rule table {file}: {message}")]
    Parse { file: String, message: String },
    #[error("rule tables: {0}")]
    Inconsistent(String),
}

/// A complete, checked rule set.
#[derive(Debug, Clone)]
pub struct Rules {
    pub acts: ActTable,
    pub rates: RateTable,
    pub deductions: DeductionTable,
    pub exemptions: ExemptionTable,
    pub general: GeneralTable,
    pub eu: EuTable,
    /// Working days and French public holidays.
    pub calendar: CalendarTable,
    /// Payment runs, the payment guarantee, EU claim limits, AMC contracts.
    pub outbound: OutboundTable,
    /// `sha256:<hex>` of each table file, by file name.
    pub table_hashes: BTreeMap<String, String>,
    /// `sha256:<hex>` over the sorted `name=hash` lines: the version a decision records.
    pub version: String,
}

impl Rules {
    /// The rule set compiled into the binary.
    pub fn embedded() -> Result<Rules, RulesError> {
        Rules::from_sources(EMBEDDED.iter().map(|(n, t)| (n.to_string(), t.to_string())))
    }

    /// A rule set from a directory holding every file of [`TABLE_FILES`].
    pub fn from_dir(dir: &Path) -> Result<Rules, RulesError> {
        let mut sources = Vec::with_capacity(TABLE_FILES.len());
        for name in TABLE_FILES {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|source| RulesError::Read {
                file: path.display().to_string(),
                source,
            })?;
            sources.push((name.to_string(), text));
        }
        Rules::from_sources(sources)
    }

    fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Rules, RulesError> {
        let texts: BTreeMap<String, String> = sources.into_iter().collect();
        let text = |name: &str| {
            texts
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| RulesError::Inconsistent(format!("missing table {name}")))
        };
        let parse_err = |file: &str| {
            let file = file.to_string();
            move |message: String| RulesError::Parse {
                file: file.clone(),
                message,
            }
        };
        let acts = ActTable::parse(text("acts.toml")?).map_err(parse_err("acts.toml"))?;
        let rates = RateTable::parse(text("rates.toml")?).map_err(parse_err("rates.toml"))?;
        let deductions = DeductionTable::parse(text("deductions.toml")?)
            .map_err(parse_err("deductions.toml"))?;
        let exemptions = ExemptionTable::parse(text("exemptions.toml")?)
            .map_err(parse_err("exemptions.toml"))?;
        let general =
            GeneralTable::parse(text("general.toml")?).map_err(parse_err("general.toml"))?;
        let eu = EuTable::parse(text("eu.toml")?).map_err(parse_err("eu.toml"))?;
        let calendar =
            CalendarTable::parse(text("calendar.toml")?).map_err(parse_err("calendar.toml"))?;
        let outbound =
            OutboundTable::parse(text("outbound.toml")?).map_err(parse_err("outbound.toml"))?;

        let mut table_hashes = BTreeMap::new();
        for name in TABLE_FILES {
            table_hashes.insert(name.to_string(), sha256_tag(text(name)?.as_bytes()));
        }
        let manifest: String = table_hashes
            .iter()
            .map(|(name, hash)| format!("{name}={hash}\n"))
            .collect();
        let version = sha256_tag(manifest.as_bytes());

        let rules = Rules {
            acts,
            rates,
            deductions,
            exemptions,
            general,
            eu,
            calendar,
            outbound,
            table_hashes,
            version,
        };
        rules.check_references()?;
        Ok(rules)
    }

    /// Cross-table checks: every family an act uses has a rate.
    fn check_references(&self) -> Result<(), RulesError> {
        for act in self.acts.entries() {
            if act.rate_override().is_none() && self.rates.family(act.family).is_none() {
                return Err(RulesError::Inconsistent(format!(
                    "act {} uses family {:?}, which has no rate",
                    act.code, act.family
                )));
            }
        }
        Ok(())
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_tag(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod corrections_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_load_and_hash_stably() {
        let a = Rules::embedded().unwrap();
        let b = Rules::embedded().unwrap();
        assert_eq!(a.version, b.version);
        assert!(a.version.starts_with("sha256:"));
        assert_eq!(a.table_hashes.len(), TABLE_FILES.len());
    }

    #[test]
    fn a_rules_dir_with_one_byte_changed_has_another_version() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in EMBEDDED {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let same = Rules::from_dir(dir.path()).unwrap();
        assert_eq!(same.version, Rules::embedded().unwrap().version);
        let general = std::fs::read_to_string(dir.path().join("general.toml")).unwrap();
        std::fs::write(
            dir.path().join("general.toml"),
            format!("{general}\n# edit\n"),
        )
        .unwrap();
        let edited = Rules::from_dir(dir.path()).unwrap();
        assert_ne!(edited.version, same.version);
    }

    #[test]
    fn a_missing_table_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Rules::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("acts.toml"), "{err}");
    }
}
