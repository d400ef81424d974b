//! Every rule set put in force before the current one, compiled in, so that a
//! run recorded under an earlier set replays under it years later: the replay
//! asks for the version a batch's checkpoint names ([`Rules::published`]).
//!
//! `rules/history/sets.toml` names each set's files by content hash; a file's
//! text is the current table's when it still hashes so, otherwise a kept copy
//! in `rules/history/`. Loading checks every hash and the set's version, so a
//! set that loads is exactly the one recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::{EMBEDDED, Rules, RulesError, TABLE_FILES, sha256_tag};

const SETS: &str = include_str!("../../rules/history/sets.toml");

/// The table texts no current file holds any more, by file name.
const KEPT_FILES: [(&str, &str); 13] = [
    (
        "general.toml",
        include_str!("../../rules/history/general.4db9f9a607f4.toml"),
    ),
    (
        "general.toml",
        include_str!("../../rules/history/general.7cc181f03cee.toml"),
    ),
    (
        "acts.toml",
        include_str!("../../rules/history/acts.b31b7d34c9eb.toml"),
    ),
    (
        "rates.toml",
        include_str!("../../rules/history/rates.57f45eb0e7e2.toml"),
    ),
    (
        "deductions.toml",
        include_str!("../../rules/history/deductions.73f1c8dbd66d.toml"),
    ),
    (
        "outbound.toml",
        include_str!("../../rules/history/outbound.974f59632a62.toml"),
    ),
    (
        "acts.toml",
        include_str!("../../rules/history/acts.01b1c9d3049a.toml"),
    ),
    (
        "acts.toml",
        include_str!("../../rules/history/acts.392e16c3baf9.toml"),
    ),
    (
        "acts.toml",
        include_str!("../../rules/history/acts.13e76e810f61.toml"),
    ),
    (
        "general.toml",
        include_str!("../../rules/history/general.311064dfae74.toml"),
    ),
    (
        "acts.toml",
        include_str!("../../rules/history/acts.3708f1b62ed1.toml"),
    ),
    (
        "general.toml",
        include_str!("../../rules/history/general.f0235fca9e25.toml"),
    ),
    (
        "acts.toml",
        include_str!("../../rules/history/acts.4741f5d238e0.toml"),
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetsFile {
    set: Vec<PublishedSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishedSet {
    version: String,
    #[allow(dead_code)] // read by people: when the set was in force
    in_force: String,
    #[allow(dead_code)] // read by people: why it was replaced
    replaced_because: String,
    files: BTreeMap<String, String>,
}

fn sets() -> Result<SetsFile, RulesError> {
    toml::from_str(SETS).map_err(|e| RulesError::Parse {
        file: "history/sets.toml".into(),
        message: e.to_string(),
    })
}

/// The text, among the current tables and the kept ones, whose hash is `hash`.
fn text_of(name: &str, hash: &str) -> Option<&'static str> {
    EMBEDDED
        .iter()
        .chain(KEPT_FILES.iter())
        .find(|(file, text)| *file == name && sha256_tag(text.as_bytes()) == hash)
        .map(|(_, text)| *text)
}

fn load(set: &PublishedSet) -> Result<Rules, RulesError> {
    let mut sources = Vec::with_capacity(TABLE_FILES.len());
    for name in TABLE_FILES {
        let hash = set.files.get(name).ok_or_else(|| {
            RulesError::Inconsistent(format!("published set {} lacks {name}", set.version))
        })?;
        let text = text_of(name, hash).ok_or_else(|| {
            RulesError::Inconsistent(format!(
                "published set {}: no kept text of {name} hashes to {hash}",
                set.version
            ))
        })?;
        sources.push((name.to_string(), text.to_string()));
    }
    let rules = Rules::from_sources(sources)?;
    if rules.version != set.version {
        return Err(RulesError::Inconsistent(format!(
            "published set {} hashes to {}",
            set.version, rules.version
        )));
    }
    Ok(rules)
}

type Published = BTreeMap<String, Arc<Rules>>;

/// The current set and every published one, by version, loaded once.
fn published() -> &'static Result<Published, String> {
    static CACHE: OnceLock<Result<Published, String>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let mut all = BTreeMap::new();
        let current = Rules::embedded().map_err(|e| e.to_string())?;
        all.insert(current.version.clone(), Arc::new(current));
        for set in sets().map_err(|e| e.to_string())?.set {
            let rules = load(&set).map_err(|e| e.to_string())?;
            all.insert(rules.version.clone(), Arc::new(rules));
        }
        Ok(all)
    })
}

impl Rules {
    /// The compiled-in rule set whose version is `version` (the current one or
    /// an earlier published one); `Ok(None)` when this binary never had it.
    pub fn published(version: &str) -> Result<Option<Arc<Rules>>, RulesError> {
        match published() {
            Ok(all) => Ok(all.get(version).cloned()),
            Err(message) => Err(RulesError::Inconsistent(message.clone())),
        }
    }

    /// The versions of every compiled-in rule set, the current one included.
    pub fn published_versions() -> Result<Vec<String>, RulesError> {
        match published() {
            Ok(all) => Ok(all.keys().cloned().collect()),
            Err(message) => Err(RulesError::Inconsistent(message.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_set_loads_as_recorded() {
        let sets = sets().unwrap();
        assert!(!sets.set.is_empty());
        for set in &sets.set {
            let rules = load(set).unwrap();
            assert_eq!(rules.version, set.version);
            assert_ne!(rules.version, Rules::embedded().unwrap().version);
        }
    }

    /// The set the kept archive (tests/fixtures/archive-3b6183f) recorded.
    #[test]
    fn the_set_of_november_2026_is_published() {
        let version = "sha256:eeeedaef47c517134464ebd88db5da96e90c730bad50d568aaa8e157ba44644a";
        let rules = Rules::published(version).unwrap().expect("published");
        let care = chrono::NaiveDate::from_ymd_opt(2024, 1, 10).unwrap();
        let limit = rules.general.limitation.at(care).unwrap().value;
        assert_eq!(limit.days, Some(730), "it read the time-bar as 730 days");
    }

    #[test]
    fn the_current_set_is_published_and_an_unknown_one_is_not() {
        let current = Rules::embedded().unwrap().version;
        assert!(Rules::published(&current).unwrap().is_some());
        assert!(Rules::published_versions().unwrap().contains(&current));
        assert!(Rules::published("sha256:00").unwrap().is_none());
    }

    /// A kept file is named by its own hash, so the name says which it is.
    #[test]
    fn kept_files_are_named_by_their_hash() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/history");
        let mut kept = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if name == "sets.toml" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let hash = sha256_tag(text.as_bytes());
            let (stem, rest) = name.split_once('.').unwrap();
            assert_eq!(
                rest,
                format!("{}.toml", &hash["sha256:".len()..][..12]),
                "{name}"
            );
            assert!(
                KEPT_FILES
                    .iter()
                    .any(|(file, t)| *file == format!("{stem}.toml") && *t == text),
                "{name} is compiled in"
            );
            kept += 1;
        }
        assert_eq!(kept, KEPT_FILES.len());
    }
}
