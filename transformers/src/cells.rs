//! Building cells cheaply: one shared [`PayloadHeader`], interned strings, and
//! shared contest/unit/choice references.

use std::sync::Arc;

use votewire_schemas::*;

use crate::payload::PayloadContext;

/// Builds the cells of one payload.
pub struct CellBuilder {
    header: Arc<PayloadHeader>,
    strings: rustc_hash::FxHashMap<Box<str>, Text>,
}

impl CellBuilder {
    /// `as_of` is the publisher's timestamp (UTC millis) when the payload has
    /// one; `source_version` overrides the context's when the payload states
    /// its own.
    pub fn new(
        ctx: &PayloadContext,
        mode: FeedMode,
        as_of: Option<(i64, &str)>,
        source_version: Option<&str>,
    ) -> CellBuilder {
        let t = |s: &str| Text::from(s);
        CellBuilder {
            header: Arc::new(PayloadHeader {
                election_id: t(&ctx.election_id),
                source_feed_id: t(&ctx.feed_id),
                mode,
                source_seq: ctx.source_seq,
                source_version: source_version.or(ctx.source_version.as_deref()).map(t),
                as_of: as_of.map(|(ms, _)| ms),
                as_of_raw: as_of.map(|(_, raw)| t(raw)),
                fetched_at: ctx.fetched_at,
                provenance: Provenance {
                    feed_id: t(&ctx.feed_id),
                    fetch_id: t(&ctx.fetch_id),
                    source_uri: t(&ctx.source_uri),
                    payload_sha256: t(&ctx.payload_sha256),
                    trace_id: ctx.trace_id.as_deref().map(t),
                },
            }),
            strings: rustc_hash::FxHashMap::default(),
        }
    }

    /// One shared copy of `s` for this payload.
    pub fn text(&mut self, s: &str) -> Text {
        if let Some(t) = self.strings.get(s) {
            return t.clone();
        }
        let t = Text::from(s);
        self.strings.insert(s.into(), t.clone());
        t
    }

    /// A cell with the optional measures unset.
    pub fn cell(
        &self,
        contest: &Arc<ContestRef>,
        unit: &Arc<ReportingUnitRef>,
        choice: &Arc<ChoiceRef>,
        vote_type: VoteType,
        vote_type_raw: &Text,
        votes: i64,
    ) -> VoteCell {
        VoteCell {
            header: self.header.clone(),
            contest: contest.clone(),
            unit: unit.clone(),
            choice: choice.clone(),
            vote_type,
            vote_type_raw: vote_type_raw.clone(),
            votes,
            precincts_reporting: None,
            precincts_total: None,
            pct_expected_vote: None,
            winner: None,
            raw_ref: None,
        }
    }
}

/// Trims and collapses runs of whitespace: for matching names, never for
/// display.
pub fn match_key(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Classifies a choice by its text: Yes/No answers, write-ins, over/under
/// votes, pseudo rows; everything else is a candidate.
pub fn choice_kind(name: &str) -> ChoiceKind {
    let k = match_key(name);
    let k = k.trim_matches(|c: char| !c.is_alphanumeric());
    match k {
        "yes" | "for" | "yes/for" | "approve" | "approved" => ChoiceKind::Yes,
        "no" | "against" | "no/against" | "reject" | "rejected" => ChoiceKind::No,
        "over votes" | "overvotes" | "over vote" | "overvote" => ChoiceKind::OverVote,
        "under votes" | "undervotes" | "under vote" | "undervote" => ChoiceKind::UnderVote,
        "blank" | "blanks" | "blank votes" => ChoiceKind::Blank,
        "registered voters" => ChoiceKind::RegisteredVoters,
        "ballots cast" | "ballots cast blank" | "total ballots" => ChoiceKind::BallotsCast,
        _ if k.contains("write-in") || k.contains("write in") || k.contains("writein") => {
            ChoiceKind::WriteIn
        }
        _ => ChoiceKind::Candidate,
    }
}

/// The party written inside a candidate's name, as Clarity GA does
/// (`Donald J. Trump (I) (Rep)`): the last parenthesised group that is not
/// the incumbent marker.
pub fn party_in_name(name: &str) -> Option<&str> {
    let mut rest = name;
    let mut last = None;
    while let Some(open) = rest.find('(') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(')') else { break };
        let inner = after[..close].trim();
        if !inner.is_empty() && inner != "I" && inner.len() <= 12 {
            last = Some(inner);
        }
        rest = &after[close + 1..];
    }
    last
}

/// Absentee, mail and provisional buckets reported as if they were
/// precincts (KY's `AB`, `ABSENTEE`, WinEDS `Pct 1151 MB`).
pub fn is_virtual_unit_name(name: &str) -> bool {
    let n = name.trim().to_ascii_uppercase();
    matches!(
        n.as_str(),
        "AB" | "ABS" | "ABSENTEE" | "PROV" | "PROVISIONAL" | "MAIL" | "VBM"
    ) || n.starts_with("ABSENTEE ")
        || n.ends_with(" MB")
        || n.contains("MAIL BALLOT")
}

/// `(I)` in a name marks the incumbent.
pub fn incumbent_in_name(name: &str) -> Option<bool> {
    name.contains("(I)").then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_and_incumbent_markers_are_read_from_clarity_names() {
        assert_eq!(party_in_name("Donald J. Trump (I) (Rep)"), Some("Rep"));
        assert_eq!(incumbent_in_name("Donald J. Trump (I) (Rep)"), Some(true));
        assert_eq!(party_in_name("HUNTER HILL  (REP)"), Some("REP"));
        assert_eq!(party_in_name("Yes"), None);
        assert_eq!(incumbent_in_name("Jon Ossoff (Dem)"), None);
    }

    #[test]
    fn pseudo_rows_and_measure_answers_are_not_candidates() {
        assert_eq!(choice_kind("Yes"), ChoiceKind::Yes);
        assert_eq!(choice_kind(" NO "), ChoiceKind::No);
        assert_eq!(choice_kind("Write-ins"), ChoiceKind::WriteIn);
        assert_eq!(choice_kind("Unassigned write-ins"), ChoiceKind::WriteIn);
        assert_eq!(choice_kind("Over Votes"), ChoiceKind::OverVote);
        assert_eq!(choice_kind("Undervotes"), ChoiceKind::UnderVote);
        assert_eq!(
            choice_kind("Registered Voters"),
            ChoiceKind::RegisteredVoters
        );
        assert_eq!(choice_kind("Jon Ossoff"), ChoiceKind::Candidate);
    }
}
