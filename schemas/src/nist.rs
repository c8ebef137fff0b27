//! The NIST SP 1500-100 v2 vocabulary votewire reads and writes: the
//! namespace, the `CountItemType` and `ReportingUnitType` enumerations,
//! and how a reporting unit's type maps to a [`UnitType`] and back. The
//! `nist-cdf-*` transformers read with it; the NIST exporter
//! (`votewire_aggregator::nist_export`) writes with it.

use crate::UnitType;

/// The v2 XML namespace.
pub const NAMESPACE: &str = "http://itl.nist.gov/ns/voting/1500-100/v2";

/// The standard's `CountItemType` values (`other` aside).
pub const COUNT_ITEM_TYPES: &[&str] = &[
    "absentee",
    "absentee-fwab",
    "absentee-in-person",
    "absentee-mail",
    "early",
    "election-day",
    "provisional",
    "seats",
    "total",
    "uocava",
    "write-in",
];

/// The standard's `ReportingUnitType` values (`other` aside).
pub const REPORTING_UNIT_TYPES: &[&str] = &[
    "ballot-batch",
    "ballot-style-area",
    "borough",
    "city",
    "city-council",
    "combined-precinct",
    "congressional",
    "country",
    "county",
    "county-council",
    "drop-box",
    "judicial",
    "municipality",
    "polling-place",
    "precinct",
    "school",
    "special",
    "split-precinct",
    "state",
    "state-house",
    "state-senate",
    "town",
    "township",
    "utility",
    "village",
    "vote-center",
    "ward",
    "water",
];

/// The normalized type of a reporting unit whose NIST type is `t`: the
/// standard's values, and those sources use beside them (district kinds
/// such as `transportation` or `fire`).
pub fn unit_type_of(t: &str) -> UnitType {
    match t {
        "state" => UnitType::State,
        "county" => UnitType::County,
        "precinct" => UnitType::Precinct,
        "split-precinct" => UnitType::SplitPrecinct,
        "combined-precinct" => UnitType::CombinedPrecinct,
        "polling-place" => UnitType::PollingPlace,
        "vote-center" => UnitType::VoteCenter,
        "city" | "town" | "township" | "village" | "borough" | "municipality" => {
            UnitType::Municipality
        }
        "congressional" | "state-house" | "state-senate" | "judicial" | "school" | "ward"
        | "water" | "utility" | "transportation" | "drainage" | "fire" | "special"
        | "county-council" | "city-council" | "borough-council" | "combined-district" => {
            UnitType::District
        }
        _ => UnitType::Other,
    }
}

/// The `ReportingUnitType` a normalized unit type is written as.
pub fn reporting_unit_type(t: UnitType) -> &'static str {
    match t {
        UnitType::State => "state",
        UnitType::County => "county",
        UnitType::Precinct => "precinct",
        UnitType::SplitPrecinct => "split-precinct",
        UnitType::CombinedPrecinct => "combined-precinct",
        UnitType::Municipality => "municipality",
        UnitType::District => "special",
        UnitType::PollingPlace => "polling-place",
        UnitType::VoteCenter => "vote-center",
        UnitType::Virtual | UnitType::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every normalized type is written as a standard value (or `other`),
    /// and reads back as itself, but for the two NIST has no value for.
    #[test]
    fn a_unit_type_written_as_nist_reads_back_as_itself() {
        for t in [
            UnitType::State,
            UnitType::County,
            UnitType::Precinct,
            UnitType::SplitPrecinct,
            UnitType::CombinedPrecinct,
            UnitType::Municipality,
            UnitType::District,
            UnitType::PollingPlace,
            UnitType::VoteCenter,
            UnitType::Virtual,
            UnitType::Other,
        ] {
            let nist = reporting_unit_type(t);
            assert!(
                nist == "other" || REPORTING_UNIT_TYPES.contains(&nist),
                "{t:?} is written as {nist:?}"
            );
            let back = unit_type_of(nist);
            if matches!(t, UnitType::Virtual | UnitType::Other) {
                assert_eq!(back, UnitType::Other);
            } else {
                assert_eq!(back, t, "{t:?} via {nist:?}");
            }
        }
    }
}
