//! Values versioned by effective-from date.
//!
//! A [`Dated<T>`] is a list of versions sorted by `from`; the version in force
//! on a date is the last one whose `from` is on or before it. Each version
//! keeps its source note so that a decision can cite it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One version of a value, in force from `from` (inclusive) until the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version<T> {
    pub from: NaiveDate,
    #[serde(flatten)]
    pub value: T,
    /// Where the figure comes from, and `UNCONFIRMED` where it is a choice.
    #[serde(default)]
    pub source: String,
}

/// Versions sorted by `from`, no two on the same date (checked at load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Dated<T> {
    versions: Vec<Version<T>>,
}

impl<T> Dated<T> {
    /// Sorts and checks the versions; `what` names the table entry in errors.
    pub fn new(mut versions: Vec<Version<T>>, what: &str) -> Result<Dated<T>, String> {
        if versions.is_empty() {
            return Err(format!("{what}: no version"));
        }
        versions.sort_by_key(|v| v.from);
        if let Some(pair) = versions.windows(2).find(|w| w[0].from == w[1].from) {
            return Err(format!("{what}: two versions from {}", pair[0].from));
        }
        Ok(Dated { versions })
    }

    /// The version in force on `date`, if any began on or before it.
    pub fn at(&self, date: NaiveDate) -> Option<&Version<T>> {
        let after = self.versions.partition_point(|v| v.from <= date);
        after.checked_sub(1).map(|i| &self.versions[i])
    }

    pub fn versions(&self) -> &[Version<T>] {
        &self.versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn picks_the_version_in_force() {
        let v = |from: &str, value: u32| Version {
            from: d(from),
            value,
            source: String::new(),
        };
        let table = Dated::new(vec![v("2017-05-01", 25), v("2011-01-01", 23)], "G").unwrap();
        assert_eq!(table.at(d("2010-12-31")), None);
        assert_eq!(table.at(d("2011-01-01")).unwrap().value, 23);
        assert_eq!(table.at(d("2017-04-30")).unwrap().value, 23);
        assert_eq!(table.at(d("2017-05-01")).unwrap().value, 25);
        assert_eq!(table.at(d("2099-01-01")).unwrap().value, 25);
        assert!(Dated::new(vec![v("2017-05-01", 1), v("2017-05-01", 2)], "G").is_err());
        assert!(Dated::<u32>::new(vec![], "G").is_err());
    }
}
