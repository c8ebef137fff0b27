//! What a vote count may be, for every family: a whole number from zero to
//! [`MAX_VOTES`], read exactly.
//!
//! A source that publishes `-5`, `9223372036854775807`, `1e30` or `12.5` is
//! publishing garbage, and garbage must not reach a county total. Families
//! read counts through [`count_from_text`] or [`count_from_json`], and the
//! registry checks every row a family returns against [`check_count`] (so a
//! family that forgets still cannot publish one). The one exception is a
//! format that defines signed counts: WinEDS's zero-padded `000-1` is a real
//! adjustment row (see FORMATS.md), and its five-character field bounds it.

use std::fmt;

/// The largest count accepted in one cell (shared with the aggregator,
/// which holds votes-topic records to it too).
pub use votewire_schemas::MAX_VOTES;

/// Why a value is not a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountProblem {
    /// Below zero, in a family whose counts are unsigned.
    Negative,
    /// Above [`MAX_VOTES`] (or beyond what any integer type holds).
    AboveCeiling,
    /// A fraction, an exponent that is not a whole number, NaN or infinity.
    NotWhole,
    /// Not a number at all.
    NotANumber,
}

impl fmt::Display for CountProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CountProblem::Negative => "a negative count",
            CountProblem::AboveCeiling => "above the 1,000,000,000 ceiling for one count",
            CountProblem::NotWhole => "not a whole number",
            CountProblem::NotANumber => "not a number",
        })
    }
}

/// Whether `n` is an acceptable count (`signed`: the family's format defines
/// negative adjustments).
pub fn check_count(n: i64, signed: bool) -> Result<i64, CountProblem> {
    if n < 0 && !signed {
        Err(CountProblem::Negative)
    } else if n.unsigned_abs() > MAX_VOTES as u64 {
        Err(CountProblem::AboveCeiling)
    } else {
        Ok(n)
    }
}

/// A count written as text: ASCII digits, thousands separators (`1,089`)
/// grouping them by three (`1,5` and `1,0000` are not counts: one is a
/// European decimal or a cut field, the other a typo), a leading `+` or `-`, and a fraction only when
/// it is all zeros (`12.00`, as some XML writers put floats). Surrounding
/// ASCII space is ignored.
pub fn count_from_text(b: &[u8]) -> Result<i64, CountProblem> {
    let b = b.trim_ascii();
    let (negative, rest) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        Some(_) => (false, b),
        None => return Err(CountProblem::NotANumber),
    };
    let (whole, fraction) = match rest.iter().position(|&c| c == b'.') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut n: i64 = 0;
    let mut digits = 0usize;
    // Digits since the last separator, and whether one was seen.
    let mut group = 0usize;
    let mut grouped = false;
    for &c in whole {
        match c {
            b'0'..=b'9' => {
                // Past the ceiling is past the ceiling: stop multiplying
                // before the value could overflow.
                if n > MAX_VOTES {
                    return Err(CountProblem::AboveCeiling);
                }
                n = n * 10 + i64::from(c - b'0');
                digits += 1;
                group += 1;
            }
            // The first group holds one to three digits, every later one three.
            b',' if (1..=3).contains(&group) && (!grouped || group == 3) => {
                grouped = true;
                group = 0;
            }
            b'e' | b'E' => return Err(CountProblem::NotWhole),
            _ => return Err(CountProblem::NotANumber),
        }
    }
    if digits == 0 || group == 0 || (grouped && group != 3) {
        return Err(CountProblem::NotANumber);
    }
    if let Some(f) = fraction {
        if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
            return Err(if f.iter().any(|c| matches!(c, b'e' | b'E')) {
                CountProblem::NotWhole
            } else {
                CountProblem::NotANumber
            });
        }
        if f.iter().any(|&c| c != b'0') {
            return Err(CountProblem::NotWhole);
        }
    }
    if n > MAX_VOTES {
        return Err(CountProblem::AboveCeiling);
    }
    Ok(if negative { -n } else { n })
}

/// A count from a parsed JSON number: an integer, or a float that is exactly
/// a whole number within the ceiling (every such float is an exact integer,
/// since the ceiling is far below 2^53).
pub fn count_from_json(v: &serde_json::Value, signed: bool) -> Result<i64, CountProblem> {
    let serde_json::Value::Number(n) = v else {
        return Err(CountProblem::NotANumber);
    };
    if let Some(i) = n.as_i64() {
        return check_count(i, signed);
    }
    if n.as_u64().is_some() {
        return Err(CountProblem::AboveCeiling);
    }
    let f = n.as_f64().ok_or(CountProblem::NotANumber)?;
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(CountProblem::NotWhole);
    }
    if f.abs() > MAX_VOTES as f64 {
        return Err(CountProblem::AboveCeiling);
    }
    check_count(f as i64, signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_counts_are_whole_bounded_and_exact() {
        assert_eq!(count_from_text(b"1089"), Ok(1089));
        assert_eq!(count_from_text(b" 1,089 "), Ok(1089));
        assert_eq!(count_from_text(b"12.00"), Ok(12));
        assert_eq!(count_from_text(b"0"), Ok(0));
        assert_eq!(count_from_text(b"1000000000"), Ok(MAX_VOTES));
        assert_eq!(
            count_from_text(b"1000000001"),
            Err(CountProblem::AboveCeiling)
        );
        assert_eq!(
            count_from_text(b"9223372036854775807"),
            Err(CountProblem::AboveCeiling)
        );
        assert_eq!(
            count_from_text(b"99999999999999999999999999999"),
            Err(CountProblem::AboveCeiling)
        );
        assert_eq!(
            count_from_text(b"9007199254740993"),
            Err(CountProblem::AboveCeiling)
        );
        assert_eq!(count_from_text(b"12.5"), Err(CountProblem::NotWhole));
        assert_eq!(count_from_text(b"1e30"), Err(CountProblem::NotWhole));
        assert_eq!(count_from_text(b"1.0e3"), Err(CountProblem::NotWhole));
        assert_eq!(count_from_text(b""), Err(CountProblem::NotANumber));
        assert_eq!(count_from_text(b"-"), Err(CountProblem::NotANumber));
        assert_eq!(count_from_text(b",5"), Err(CountProblem::NotANumber));
        assert_eq!(count_from_text(b"5,"), Err(CountProblem::NotANumber));
        // Separators group by three, or the value is not the count it reads as.
        assert_eq!(count_from_text(b"1,234,567"), Ok(1_234_567));
        assert_eq!(count_from_text(b"12,345.00"), Ok(12_345));
        for bad in [
            &b"1,5"[..],
            b"1,0000",
            b"1234,567",
            b"1,23,456",
            b"1,,234",
            b"12,34",
        ] {
            assert_eq!(
                count_from_text(bad),
                Err(CountProblem::NotANumber),
                "{bad:?}"
            );
        }
        assert_eq!(count_from_text(b"NaN"), Err(CountProblem::NotANumber));
        assert_eq!(count_from_text(b"12."), Err(CountProblem::NotANumber));
        // The sign is read here and judged by check_count.
        assert_eq!(count_from_text(b"-5"), Ok(-5));
        assert_eq!(check_count(-5, false), Err(CountProblem::Negative));
        assert_eq!(check_count(-1, true), Ok(-1));
        assert_eq!(
            check_count(-MAX_VOTES - 1, true),
            Err(CountProblem::AboveCeiling)
        );
    }

    #[test]
    fn json_counts_are_whole_bounded_and_exact() {
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(count_from_json(&j("35"), false), Ok(35));
        assert_eq!(count_from_json(&j("35.0"), false), Ok(35));
        assert_eq!(
            count_from_json(&j("-5"), false),
            Err(CountProblem::Negative)
        );
        assert_eq!(
            count_from_json(&j("1e30"), false),
            Err(CountProblem::AboveCeiling)
        );
        assert_eq!(
            count_from_json(&j("18446744073709551615"), false),
            Err(CountProblem::AboveCeiling)
        );
        assert_eq!(
            count_from_json(&j("9223372036854775807"), false),
            Err(CountProblem::AboveCeiling)
        );
        assert_eq!(
            count_from_json(&j("9007199254740993"), false),
            Err(CountProblem::AboveCeiling)
        );
        assert_eq!(
            count_from_json(&j("12.5"), false),
            Err(CountProblem::NotWhole)
        );
        assert_eq!(
            count_from_json(&j("\"12\""), false),
            Err(CountProblem::NotANumber)
        );
        assert_eq!(
            count_from_json(&j("null"), false),
            Err(CountProblem::NotANumber)
        );
    }
}
