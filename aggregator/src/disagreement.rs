//! Where linked sources disagree: from one [`ContestResult`] of a merged
//! contest, the sources whose values at the unit differ from the official
//! source's beyond a threshold, one [`SourceDisagreement`] each.
//!
//! Only values both sources report for the unit itself are compared
//! (`choices[].by_source`): a source that has not reported a choice yet
//! is late, not in disagreement.

use std::collections::BTreeMap;

use votewire_schemas::{ContestResult, SourceDisagreement};

/// When two sources' values at a unit count as a disagreement: the largest
/// difference over the choices must exceed both figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisagreementThreshold {
    /// Votes: differences of this many or fewer are not reported.
    pub votes: i64,
    /// Percent of the unit's total votes: differences of this share or less
    /// are not reported.
    pub pct: f64,
}

impl Default for DisagreementThreshold {
    /// More than 0 votes and more than 1 % of the unit's total.
    fn default() -> Self {
        Self { votes: 0, pct: 1.0 }
    }
}

/// One other source's comparison with the official source at a unit.
#[derive(Debug, Default)]
struct Comparison {
    choices_disagreeing: i32,
    /// The choice with the largest difference: (difference, choice id,
    /// official votes and seq, other votes and seq).
    worst: Option<(i64, String, i64, i64, i64, i64)>,
}

/// The disagreements at `result`'s unit, by the other source's feed id.
pub fn disagreements(
    result: &ContestResult,
    threshold: DisagreementThreshold,
) -> BTreeMap<String, SourceDisagreement> {
    let official = result.official_feed_id.as_str();
    let mut by_other: BTreeMap<&str, Comparison> = BTreeMap::new();
    for choice in &result.choices {
        let Some(off) = choice.by_source.iter().find(|s| s.feed_id == official) else {
            continue;
        };
        for other in choice.by_source.iter().filter(|s| s.feed_id != official) {
            let difference = off.votes.abs_diff(other.votes);
            if difference == 0 {
                continue;
            }
            let difference = i64::try_from(difference).unwrap_or(i64::MAX);
            let c = by_other.entry(other.feed_id.as_str()).or_default();
            c.choices_disagreeing += 1;
            if c.worst.as_ref().is_none_or(|w| difference > w.0) {
                c.worst = Some((
                    difference,
                    choice.choice_id.clone(),
                    off.votes,
                    off.source_seq,
                    other.votes,
                    other.source_seq,
                ));
            }
        }
    }
    let total = result.total_votes.max(1) as f64;
    by_other
        .into_iter()
        .filter_map(|(other, c)| {
            let (difference, choice_id, official_votes, official_seq, other_votes, other_seq) =
                c.worst?;
            let difference_pct = difference as f64 * 100.0 / total;
            (difference > threshold.votes && difference_pct > threshold.pct).then(|| {
                (
                    other.to_string(),
                    SourceDisagreement {
                        election_id: result.election_id.clone(),
                        contest_id: result.contest_id.clone(),
                        unit_id: result.unit_id.clone(),
                        unit_name: result.unit_name.clone(),
                        official_feed_id: official.to_string(),
                        other_feed_id: other.to_string(),
                        choice_id,
                        official_votes,
                        other_votes,
                        difference,
                        difference_pct,
                        choices_disagreeing: c.choices_disagreeing,
                        official_source_seq: official_seq,
                        other_source_seq: other_seq,
                        last_updated: result.last_updated,
                        trace_id: result.trace_id.clone(),
                    },
                )
            })
        })
        .collect()
}

/// The alerts topic's key of a disagreement:
/// `<election_id>/<contest_id>/<unit_id>/<other_feed_id>`.
pub fn disagreement_key(d: &SourceDisagreement) -> String {
    format!(
        "{}/{}/{}/{}",
        d.election_id, d.contest_id, d.unit_id, d.other_feed_id
    )
}

#[cfg(test)]
mod tests {
    use votewire_schemas::{ChoiceResult, FeedMode, SourceValue, UnitType};

    use super::*;

    fn choice(id: &str, values: &[(&str, i64)]) -> ChoiceResult {
        ChoiceResult {
            choice_id: id.into(),
            choice_name: id.into(),
            party: None,
            votes: values[0].1,
            percent: 0.0,
            reported: Some(values[0].1),
            sum_of_children: None,
            winner: None,
            by_source: values
                .iter()
                .map(|(f, v)| SourceValue {
                    feed_id: (*f).into(),
                    votes: *v,
                    source_seq: if *f == "sos" { 7 } else { 3 },
                })
                .collect(),
        }
    }

    fn result(choices: Vec<ChoiceResult>, total: i64) -> ContestResult {
        ContestResult {
            election_id: "e".into(),
            contest_id: "gov".into(),
            contest_name: "Governor".into(),
            unit_id: "fulton".into(),
            unit_name: "Fulton".into(),
            unit_type: UnitType::County,
            parent_unit_id: None,
            mode: FeedMode::Live,
            official_feed_id: "sos".into(),
            choices,
            total_votes: total,
            leader_choice_id: None,
            margin_votes: None,
            margin_pct: None,
            aggregates_disagree: false,
            precincts_reporting: None,
            precincts_total: None,
            pct_expected_vote: None,
            last_updated: 1_000,
            contributors: Vec::new(),
            trace_id: None,
        }
    }

    #[test]
    fn the_largest_difference_past_both_thresholds_is_reported_per_other_source() {
        let r = result(
            vec![
                choice("a", &[("sos", 5_000), ("ap", 4_900), ("county", 5_000)]),
                choice("b", &[("sos", 3_000), ("ap", 3_010), ("county", 2_990)]),
            ],
            8_000,
        );
        let t = DisagreementThreshold::default();
        let found = disagreements(&r, t);
        // AP: 100 votes (1.25 % of 8,000) on a, 10 on b. The county: 10
        // votes (0.125 %), under the percentage.
        assert_eq!(found.keys().collect::<Vec<_>>(), ["ap"]);
        let d = &found["ap"];
        assert_eq!(
            (
                d.choice_id.as_str(),
                d.official_votes,
                d.other_votes,
                d.difference
            ),
            ("a", 5_000, 4_900, 100)
        );
        assert_eq!(d.choices_disagreeing, 2);
        assert_eq!((d.official_source_seq, d.other_source_seq), (7, 3));
        assert!((d.difference_pct - 1.25).abs() < 1e-9);
        assert_eq!(disagreement_key(d), "e/gov/fulton/ap");
        // Thresholds are exclusive: 100 votes silences AP's 100; 99
        // keeps it; with no percentage the county's 10 counts too.
        let at_100 = DisagreementThreshold {
            votes: 100,
            pct: 0.0,
        };
        assert!(disagreements(&r, at_100).is_empty());
        let at_99 = DisagreementThreshold {
            votes: 99,
            pct: 0.0,
        };
        assert_eq!(disagreements(&r, at_99).keys().collect::<Vec<_>>(), ["ap"]);
        let none = DisagreementThreshold { votes: 0, pct: 0.0 };
        assert_eq!(disagreements(&r, none).len(), 2);
    }

    #[test]
    fn agreeing_late_or_lone_sources_raise_nothing() {
        // The other source has not reported choice b yet: late, and a
        // equal.
        let r = result(
            vec![
                choice("a", &[("sos", 5_000), ("ap", 5_000)]),
                choice("b", &[("sos", 3_000)]),
            ],
            8_000,
        );
        assert!(disagreements(&r, DisagreementThreshold::default()).is_empty());
        let lone = result(vec![choice("a", &[("sos", 5)])], 5);
        assert!(disagreements(&lone, DisagreementThreshold { votes: 0, pct: 0.0 }).is_empty());
        // A unit at zero votes: the share is of 1.
        let zero = result(vec![choice("a", &[("sos", 0), ("ap", 3)])], 0);
        assert_eq!(
            disagreements(&zero, DisagreementThreshold::default()).len(),
            1
        );
    }
}
