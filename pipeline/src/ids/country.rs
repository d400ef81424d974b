//! The 32 states under EU social-security coordination (EU27, Iceland,
//! Liechtenstein, Norway, Switzerland, United Kingdom), with the EU/ISO code
//! aliases for Greece (EL/GR) and the United Kingdom (UK/GB).

use std::fmt;

use serde::{Serialize, Serializer};

use super::IdError;

/// Which coordination regime brings a state in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CountryGroup {
    Eu,
    Eea,
    Switzerland,
    UnitedKingdom,
}

/// Declares the states once: the enum and the list of all of them.
macro_rules! countries {
    ($($state:ident),+ $(,)?) => {
        /// A coordination state. Variants are in the alphabetical order of their EU
        /// codes, so the derived `Ord` matches the order of `as_str()`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Country {
            $($state),+
        }

        const ALL: [Country; 32] = [$(Country::$state),+];
    };
}

countries!(
    Austria,
    Belgium,
    Bulgaria,
    Switzerland,
    Cyprus,
    Czechia,
    Germany,
    Denmark,
    Estonia,
    Greece,
    Spain,
    Finland,
    France,
    Croatia,
    Hungary,
    Ireland,
    Iceland,
    Italy,
    Liechtenstein,
    Lithuania,
    Luxembourg,
    Latvia,
    Malta,
    Netherlands,
    Norway,
    Poland,
    Portugal,
    Romania,
    Sweden,
    Slovenia,
    Slovakia,
    UnitedKingdom,
);

use Country::*;

impl Country {
    /// Parses a 2-letter code, case-insensitive, trimmed. Both the EU
    /// convention (EL, UK) and ISO 3166 (GR, GB) are accepted.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let unknown = IdError::Unknown { kind: "country" };
        let [a, b] = s.as_bytes() else {
            return Err(unknown);
        };
        let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
        match &code {
            b"GR" => Ok(Greece),
            b"GB" => Ok(UnitedKingdom),
            _ => ALL
                .iter()
                .copied()
                .find(|c| c.as_str().as_bytes() == code)
                .ok_or(unknown),
        }
    }

    /// The EU-convention code (`EL` for Greece, `UK` for the United Kingdom).
    pub fn as_str(&self) -> &'static str {
        match self {
            Austria => "AT",
            Belgium => "BE",
            Bulgaria => "BG",
            Switzerland => "CH",
            Cyprus => "CY",
            Czechia => "CZ",
            Germany => "DE",
            Denmark => "DK",
            Estonia => "EE",
            Greece => "EL",
            Spain => "ES",
            Finland => "FI",
            France => "FR",
            Croatia => "HR",
            Hungary => "HU",
            Ireland => "IE",
            Iceland => "IS",
            Italy => "IT",
            Liechtenstein => "LI",
            Lithuania => "LT",
            Luxembourg => "LU",
            Latvia => "LV",
            Malta => "MT",
            Netherlands => "NL",
            Norway => "NO",
            Poland => "PL",
            Portugal => "PT",
            Romania => "RO",
            Sweden => "SE",
            Slovenia => "SI",
            Slovakia => "SK",
            UnitedKingdom => "UK",
        }
    }

    /// The ISO 3166-1 alpha-2 code: same as [`Country::as_str`] except `GR`
    /// and `GB`.
    pub fn iso_code(&self) -> &'static str {
        match self {
            Greece => "GR",
            UnitedKingdom => "GB",
            other => other.as_str(),
        }
    }

    pub fn group(&self) -> CountryGroup {
        match self {
            Iceland | Liechtenstein | Norway => CountryGroup::Eea,
            Switzerland => CountryGroup::Switzerland,
            UnitedKingdom => CountryGroup::UnitedKingdom,
            _ => CountryGroup::Eu,
        }
    }

    /// All 32 states, in `Ord` order.
    pub fn all() -> &'static [Country] {
        &ALL
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn thirty_two_states_in_groups() {
        assert_eq!(Country::all().len(), 32);
        let count = |g| Country::all().iter().filter(|c| c.group() == g).count();
        assert_eq!(count(CountryGroup::Eu), 27);
        assert_eq!(count(CountryGroup::Eea), 3);
        assert_eq!(count(CountryGroup::Switzerland), 1);
        assert_eq!(count(CountryGroup::UnitedKingdom), 1);
        let eu27 =
            "AT BE BG HR CY CZ DK EE FI FR DE EL HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE";
        for code in eu27.split(' ') {
            assert_eq!(
                Country::parse(code).unwrap().group(),
                CountryGroup::Eu,
                "{code}"
            );
        }
        for code in ["IS", "LI", "NO"] {
            assert_eq!(Country::parse(code).unwrap().group(), CountryGroup::Eea);
        }
    }

    #[test]
    fn all_sorted_unique_and_round_trip() {
        let all = Country::all();
        assert!(
            all.windows(2)
                .all(|w| w[0] < w[1] && w[0].as_str() < w[1].as_str())
        );
        for &c in all {
            assert_eq!(Country::parse(c.as_str()).unwrap(), c);
            assert_eq!(Country::parse(c.iso_code()).unwrap(), c);
            assert_eq!(c.to_string(), c.as_str());
        }
    }

    #[test]
    fn aliases() {
        assert_eq!(Country::parse("GR").unwrap(), Country::Greece);
        assert_eq!(Country::parse("el").unwrap().as_str(), "EL");
        assert_eq!(Country::parse("gb").unwrap().as_str(), "UK");
        assert_eq!(Country::parse(" Uk ").unwrap(), Country::UnitedKingdom);
        assert_eq!(Country::Greece.iso_code(), "GR");
        assert_eq!(Country::UnitedKingdom.iso_code(), "GB");
        assert_eq!(Country::France.iso_code(), "FR");
    }

    #[test]
    fn unknown() {
        for bad in ["", "F", "FRA", "US", "TR", "XK", "É", "ÉÉ", "F1", "12"] {
            assert_eq!(
                Country::parse(bad),
                Err(IdError::Unknown { kind: "country" }),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn case_insensitive(i in 0usize..32, upper in any::<[bool; 2]>()) {
            let c = Country::all()[i];
            let code: String = c
                .as_str()
                .chars()
                .zip(upper)
                .map(|(ch, u)| if u { ch } else { ch.to_ascii_lowercase() })
                .collect();
            prop_assert_eq!(Country::parse(&code).unwrap(), c);
        }

        #[test]
        fn aliases_normalise(gr in "[gG][rR]", el in "[eE][lL]", gb in "[gG][bB]", uk in "[uU][kK]") {
            prop_assert_eq!(Country::parse(&gr).unwrap(), Country::parse(&el).unwrap());
            prop_assert_eq!(Country::parse(&gr).unwrap().as_str(), "EL");
            prop_assert_eq!(Country::parse(&gb).unwrap(), Country::parse(&uk).unwrap());
            prop_assert_eq!(Country::parse(&uk).unwrap().as_str(), "UK");
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = Country::parse(&s);
        }

        #[test]
        fn never_panics_charset(s in "[0-9A-Z ]{0,20}") {
            let _ = Country::parse(&s);
        }
    }
}
