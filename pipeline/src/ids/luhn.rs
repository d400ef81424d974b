//! The Luhn (mod 10) check used by RPPS, FINESS and possibly the EHIC card
//! number. Pure functions over ASCII digit strings.

/// Sum (mod 10) of the Luhn weights over `digits`, where `double_first` says whether the
/// rightmost digit is doubled (true when computing a check digit to append).
/// `None` when a byte is not an ASCII digit.
fn luhn_sum(digits: &str, double_first: bool) -> Option<u32> {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let mut d = u32::from(b - b'0');
        if (i % 2 == 0) == double_first {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        // Only the sum mod 10 matters; reducing keeps huge inputs from overflowing.
        sum = (sum + d) % 10;
    }
    Some(sum)
}

/// True when `digits` is a non-empty string of ASCII digits whose Luhn sum is
/// a multiple of 10 (its last digit being the key).
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() {
        return false;
    }
    matches!(luhn_sum(digits, false), Some(sum) if sum % 10 == 0)
}

/// The digit to append to `body` so that `body + digit` passes [`luhn_valid`].
/// `None` if `body` contains a non-digit. An empty body gives `Some(0)`.
pub fn luhn_check_digit(body: &str) -> Option<u8> {
    let sum = luhn_sum(body, true)?;
    // sum % 10 < 10, so the cast cannot truncate.
    Some(((10 - sum % 10) % 10) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        for v in [
            "10000123454",
            "10101234564",
            "10000000009",
            "10002727377",
            "240000117",
            "79927398713",
            "0",
        ] {
            assert!(luhn_valid(v), "{v}");
        }
        assert!(!luhn_valid("79927398710"));
        assert!(!luhn_valid("10000123455"));
    }

    #[test]
    fn rejects_empty_and_non_digits() {
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("1234a"));
        assert!(!luhn_valid("12 34"));
        assert!(!luhn_valid("١٢٣"));
        assert_eq!(luhn_check_digit("12x"), None);
        assert_eq!(luhn_check_digit("é"), None);
        assert_eq!(luhn_check_digit(""), Some(0));
    }

    #[test]
    fn check_digit_vectors() {
        assert_eq!(luhn_check_digit("1000012345"), Some(4));
        assert_eq!(luhn_check_digit("7992739871"), Some(3));
        assert_eq!(luhn_check_digit("24000011"), Some(7));
    }

    proptest! {
        #[test]
        fn appended_check_digit_is_valid(body in "[0-9]{0,30}") {
            let d = luhn_check_digit(&body).unwrap();
            prop_assert!(d < 10);
            let full = format!("{body}{d}");
            prop_assert!(luhn_valid(&full));
        }

        #[test]
        fn single_digit_change_detected(body in "[0-9]{1,30}", pos in any::<prop::sample::Index>(), delta in 1u8..=9) {
            let d = luhn_check_digit(&body).unwrap();
            let mut bytes = format!("{body}{d}").into_bytes();
            let i = pos.index(bytes.len());
            bytes[i] = b'0' + (bytes[i] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(!luhn_valid(&changed));
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = luhn_valid(&s);
            let _ = luhn_check_digit(&s);
        }
    }
}
