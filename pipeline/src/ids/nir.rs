//! The French social-security number (NIR, "numéro de sécurité sociale"):
//! 13-character body plus a 2-digit mod-97 key. Personal data: the value is
//! never shown by `Debug` or in errors, only through [`Nir::expose`].

use std::fmt;

use super::{IdError, digit_value};

const KIND: &str = "NIR";
const EXPECTED: &str = "sex 1-8, year, month, department (digits, 2A or 2B), commune, order, key";
const EXPECTED_BODY: &str = "13-character body: sex 1-8, year, month, department, commune, order";

/// A NIR whose format and key have been checked. Stored as 15 ASCII
/// characters, spaces removed and Corsican departments in uppercase.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nir(String);

/// Trim, drop internal spaces (NIRs are often written in groups) and
/// uppercase. Lowercase `2a`/`2b` is accepted on purpose: it is a common
/// typing variant and carries no ambiguity. Non-ASCII input is rejected
/// here so that later byte indexing is safe.
fn clean(s: &str) -> Result<String, IdError> {
    let s = s.trim();
    if !s.is_ascii() {
        return Err(IdError::Format {
            kind: KIND,
            expected: EXPECTED,
        });
    }
    Ok(s.chars()
        .filter(|&c| c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect())
}

/// Checks a cleaned 13-byte body and returns its value modulo 97, with the
/// Corsican departments 2A and 2B counted as 19 and 18.
fn body_mod97(body: &[u8]) -> Result<u64, IdError> {
    let bad = IdError::Format {
        kind: KIND,
        expected: EXPECTED_BODY,
    };
    // Destructuring instead of indexing: the length check is the pattern.
    let &[sex, y1, y2, m1, m2, d1, d2, c1, c2, c3, o1, o2, o3] = body else {
        return Err(bad);
    };
    if !(b'1'..=b'8').contains(&sex) {
        return Err(bad);
    }
    // 2A/2B are the only letters a NIR may hold; they count as 19/18 in N.
    let [n1, n2] = match [d1, d2] {
        [b'2', b'A'] => [b'1', b'9'],
        [b'2', b'B'] => [b'1', b'8'],
        other => other,
    };
    let digits = [sex, y1, y2, m1, m2, n1, n2, c1, c2, c3, o1, o2, o3];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    // Months 01-12 are real months. INSEE also issues 20-42 and 50-99 when
    // the month of birth is unknown (e.g. incomplete civil-status records),
    // so only 00 and 13-19 are impossible; 43-49 are let through too rather
    // than risk rejecting a real insured person.
    let month = digit_value(m1) * 10 + digit_value(m2);
    if month == 0 || (13..=19).contains(&month) {
        return Err(bad);
    }
    Ok(digits
        .iter()
        .fold(0u64, |acc, &b| (acc * 10 + u64::from(digit_value(b))) % 97))
}

fn key_from_mod(m: u64) -> u8 {
    // m < 97, so the key is in 1..=97 and fits in u8; m == 0 gives 97.
    (97 - m) as u8
}

impl Nir {
    /// Parses a NIR: surrounding whitespace trimmed, internal spaces removed,
    /// `2a`/`2b` uppercased; format then key are checked.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let cleaned = clean(s)?;
        let bad = IdError::Format {
            kind: KIND,
            expected: EXPECTED,
        };
        let [body @ .., k1, k2] = cleaned.as_bytes() else {
            return Err(bad);
        };
        if body.len() != 13 || !k1.is_ascii_digit() || !k2.is_ascii_digit() {
            return Err(bad);
        }
        let m = body_mod97(body).map_err(|_| bad)?;
        let key = digit_value(*k1) * 10 + digit_value(*k2);
        if key != key_from_mod(m) {
            return Err(IdError::Key { kind: KIND });
        }
        Ok(Nir(cleaned))
    }

    /// The key (1..=97) for a 13-character body, after the same clean-up as
    /// [`Nir::parse`].
    pub fn key_for(first13: &str) -> Result<u8, IdError> {
        let cleaned = clean(first13)?;
        Ok(key_from_mod(body_mod97(cleaned.as_bytes())?))
    }

    /// Builds a NIR from its 13-character body by appending the key. Used by
    /// the synthetic data generator.
    pub fn from_body(first13: &str) -> Result<Nir, IdError> {
        let cleaned = clean(first13)?;
        let key = key_from_mod(body_mod97(cleaned.as_bytes())?);
        Ok(Nir(format!("{cleaned}{key:02}")))
    }

    /// The full 15-character value. Personal data: only where the caller is
    /// allowed to disclose it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first 13 characters (without the key).
    pub fn body(&self) -> &str {
        // Always 15 ASCII bytes by construction; `get` keeps this panic-free.
        self.0.get(..13).unwrap_or_default()
    }

    /// The 2-digit key as a number (1..=97).
    pub fn key(&self) -> u8 {
        match self.0.as_bytes() {
            [.., a, b] => digit_value(*a) * 10 + digit_value(*b),
            _ => 0,
        }
    }

    /// The first digit: 1/2 normal, 3/4 rare, 5/6 provisional for migrants,
    /// 7/8 provisional for insured persons (odd = male, even = female).
    pub fn sex_digit(&self) -> u8 {
        self.0.as_bytes().first().map_or(0, |&b| digit_value(b))
    }
}

impl fmt::Debug for Nir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nir(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VECTORS: [(&str, u8); 9] = [
        ("2951099126111", 93),
        ("253072B073004", 70),
        ("253072A073004", 43),
        ("1850578006048", 30),
        ("169022A004123", 16),
        ("275102B010056", 5),
        ("1800399109012", 17),
        ("2990175112034", 25),
        ("1891275125012", 82),
    ];

    #[test]
    fn vectors_key_for_from_body_and_parse() {
        for (body, key) in VECTORS {
            assert_eq!(Nir::key_for(body).unwrap(), key, "{body}");
            let nir = Nir::from_body(body).unwrap();
            assert_eq!(nir.body(), body);
            assert_eq!(nir.key(), key);
            let full = format!("{body}{key:02}");
            assert_eq!(nir.expose(), full);
            assert_eq!(Nir::parse(&full).unwrap(), nir);
        }
        assert_eq!(
            Nir::from_body("2951099126111").unwrap().expose(),
            "295109912611193"
        );
        assert_eq!(
            Nir::from_body("1850578006048").unwrap().expose(),
            "185057800604830"
        );
        assert_eq!(
            Nir::from_body("275102B010056").unwrap().expose(),
            "275102B01005605"
        );
    }

    #[test]
    fn accessors() {
        let nir = Nir::parse("295109912611193").unwrap();
        assert_eq!(nir.sex_digit(), 2);
        assert_eq!(nir.key(), 93);
        assert_eq!(nir.body(), "2951099126111");
    }

    #[test]
    fn bad_key() {
        assert_eq!(
            Nir::parse("295109912611199"),
            Err(IdError::Key { kind: "NIR" })
        );
        assert_eq!(
            Nir::parse("295109912611100"),
            Err(IdError::Key { kind: "NIR" })
        );
    }

    #[test]
    fn key_97_when_remainder_is_zero() {
        // Consecutive order numbers step N mod 97 by one, so one of 97
        // consecutive bodies has remainder 0; its key must be 97, not 00.
        let body = (0..97)
            .map(|order| format!("2951099126{order:03}"))
            .find(|b| Nir::key_for(b) == Ok(97))
            .unwrap();
        assert!(Nir::parse(&format!("{body}97")).is_ok());
        assert!(Nir::parse(&format!("{body}00")).is_err());
    }

    #[test]
    fn spaces_and_lowercase_corsica() {
        let nir = Nir::parse("  2 53 07 2B 073 004 70 ").unwrap();
        assert_eq!(nir.expose(), "253072B07300470");
        let lower = Nir::parse("253072a07300443").unwrap();
        assert_eq!(lower.expose(), "253072A07300443");
    }

    #[test]
    fn rejections() {
        for bad in [
            "",
            "   ",
            "29510991261119",   // 14
            "2951099126111933", // 16
            "095109912611193",  // sex 0
            "995109912611193",  // sex 9
            "2951A99126111xx",
            "29510991261119X",
            "295002B12611193", // month 00
            "295132B12611193", // month 13
            "295192B12611193", // month 19
            "295102C07311193", // department 2C
            "25307A2073004xx",
            "2A3072B07300470", // letter outside department
            "253072B0730A470",
            "253072é07300470",   // multibyte
            "２53072B07300470",  // full-width digit
            "253072B073004\t70", // tab is not an accepted separator
        ] {
            assert!(
                matches!(Nir::parse(bad), Err(IdError::Format { .. })),
                "{bad:?} -> {:?}",
                Nir::parse(bad)
            );
        }
        assert!(Nir::key_for("29510991261").is_err());
        assert!(Nir::from_body("295109912611193").is_err());
        assert!(Nir::from_body("é".repeat(13).as_str()).is_err());
    }

    #[test]
    fn unknown_month_values_accepted() {
        for month in ["20", "42", "50", "99", "01", "12"] {
            let body = format!("295{month}99126111");
            assert!(Nir::from_body(&body).is_ok(), "{month}");
        }
        for month in ["43", "49"] {
            // 43-49 are not in the INSEE ranges either, but only 00 and 13-19
            // are rejected: see `body_mod97`.
            assert!(Nir::from_body(&format!("295{month}99126111")).is_ok());
        }
    }

    #[test]
    fn debug_and_errors_do_not_leak() {
        let nir = Nir::parse("295109912611193").unwrap();
        let dbg = format!("{nir:?}");
        assert_eq!(dbg, "Nir(<redacted>)");
        assert!(!dbg.chars().any(|c| c.is_ascii_digit()));
        for bad in ["295109912611199", "29510991261119X", "295109912611"] {
            let err = Nir::parse(bad).unwrap_err();
            assert!(!err.to_string().contains(bad));
            assert!(!format!("{err:?}").contains(bad));
        }
    }

    fn body_strategy() -> impl Strategy<Value = String> {
        let month = prop_oneof![1u8..=12, 20u8..=42, 50u8..=99];
        let dept = prop_oneof!["[0-9]{2}", Just("2A".to_string()), Just("2B".to_string())];
        (1u8..=8, 0u8..=99, month, dept, "[0-9]{3}", "[0-9]{3}").prop_map(
            |(sex, year, month, dept, commune, order)| {
                format!("{sex}{year:02}{month:02}{dept}{commune}{order}")
            },
        )
    }

    proptest! {
        #[test]
        fn from_body_parse_round_trip(body in body_strategy()) {
            let nir = Nir::from_body(&body).unwrap();
            prop_assert_eq!(nir.body(), body.as_str());
            prop_assert!((1..=97).contains(&nir.key()));
            let parsed = Nir::parse(nir.expose()).unwrap();
            prop_assert_eq!(&parsed, &nir);
            let dbg = format!("{parsed:?}");
            prop_assert!(!dbg.contains(nir.expose()));
        }

        #[test]
        fn single_digit_change_rejected(
            body in body_strategy(),
            pos in 0usize..15,
            delta in 1u8..=9,
        ) {
            let nir = Nir::from_body(&body).unwrap();
            let mut bytes = nir.expose().as_bytes().to_vec();
            prop_assume!(bytes[pos].is_ascii_digit());
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(Nir::parse(&changed).is_err());
        }

        #[test]
        fn never_panics_any(s in ".*") {
            let _ = Nir::parse(&s);
            let _ = Nir::key_for(&s);
            let _ = Nir::from_body(&s);
        }

        #[test]
        fn never_panics_charset(s in "[0-9A-Z ]{0,20}") {
            if let Ok(nir) = Nir::parse(&s) {
                let _ = (nir.body(), nir.key(), nir.sex_digit());
            }
            let _ = Nir::key_for(&s);
            let _ = Nir::from_body(&s);
        }

        #[test]
        fn errors_never_contain_input(s in "[0-9]{15}") {
            if let Err(e) = Nir::parse(&s) {
                prop_assert!(!e.to_string().contains(&s));
                let dbg = format!("{e:?}");
                prop_assert!(!dbg.contains(&s));
            }
        }
    }
}
