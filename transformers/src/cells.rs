//! Building cells cheaply: a payload's cells are compact rows of indices into
//! shared tables of contests, units, choices and vote-type labels, plus one
//! shared [`PayloadHeader`]. A [`VoteCell`] is materialized only when asked
//! for, so parsing a payload costs no reference counting per cell, and a diff
//! can compare rows and build cells only for what changed.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use votewire_schemas::*;

use crate::payload::{PayloadContext, PayloadFacts};

/// One cell of a payload: indices into its [`CellTable`] and the measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellRow {
    /// Index of the contest in the table's contests ([`CellTable::contest`]).
    pub contest: u32,
    /// Index of the reporting unit in the table's units ([`CellTable::unit`]).
    pub unit: u32,
    /// Index of the choice in the table's choices ([`CellTable::choice`]).
    pub choice: u32,
    /// Index of the (vote type, raw label) pair.
    pub label: u32,
    /// The cumulative count; negative only where the family's format defines signed counts
    /// (WinEDS's `000-1`).
    pub votes: i64,
    /// Precincts reporting in this unit, where the source says.
    pub precincts_reporting: Option<i32>,
    /// Precincts in this unit, where the source says.
    pub precincts_total: Option<i32>,
    /// Percent of the expected vote counted (AP's eevp; may pass 100 when turnout beats the
    /// estimate), where the source says.
    pub pct_expected_vote: Option<f64>,
    /// Set only when the source calls the race (`Some(true)` for the called choice).
    pub winner: Option<bool>,
}

/// A transformer's result: every cell of the payload (in compact form; see
/// [`CellTable`]), and the facts.
#[derive(Debug, Clone)]
pub struct Transformed {
    /// Every cell of the payload, in compact form.
    pub cells: CellTable,
    /// What the transformer learned besides the cells: AP's `nextrequest` cursor, the test
    /// flag, the publisher's version.
    pub facts: PayloadFacts,
}

/// Every cell of one payload, in compact form.
#[derive(Debug, Clone)]
pub struct CellTable {
    header: Arc<PayloadHeader>,
    contests: Vec<Arc<ContestRef>>,
    units: Vec<Arc<ReportingUnitRef>>,
    choices: Vec<Arc<ChoiceRef>>,
    labels: Vec<(VoteType, Text)>,
    rows: Vec<CellRow>,
}

impl CellTable {
    /// The number of cells (rows) in the payload.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the payload has no cells.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// What every cell of the payload shares.
    pub fn header(&self) -> &Arc<PayloadHeader> {
        &self.header
    }

    /// Every row, in the order the transformer pushed them.
    pub fn rows(&self) -> &[CellRow] {
        &self.rows
    }

    /// Sets every count to zero (an election's zero counts before polls
    /// close): votes, precincts reporting and expected vote at 0 where the
    /// source gives them, and no source call. The races, units, choices,
    /// vote types and precinct totals stay as the source lists them.
    pub fn zero_counts(&mut self) {
        for r in &mut self.rows {
            r.votes = 0;
            r.precincts_reporting = r.precincts_reporting.map(|_| 0);
            r.pct_expected_vote = r.pct_expected_vote.map(|_| 0.0);
            r.winner = None;
        }
    }

    /// The contest at index `id` (a row's `contest`); panics when out of range.
    pub fn contest(&self, id: u32) -> &Arc<ContestRef> {
        &self.contests[id as usize]
    }

    /// The reporting unit at index `id` (a row's `unit`); panics when out of range.
    pub fn unit(&self, id: u32) -> &Arc<ReportingUnitRef> {
        &self.units[id as usize]
    }

    /// The choice at index `id` (a row's `choice`); panics when out of range.
    pub fn choice(&self, id: u32) -> &Arc<ChoiceRef> {
        &self.choices[id as usize]
    }

    /// The normalized vote type and raw label of a label index.
    pub fn label(&self, id: u32) -> (VoteType, &Text) {
        let (vt, raw) = &self.labels[id as usize];
        (*vt, raw)
    }

    /// The stable key of row `i`, without materializing the cell.
    pub fn cell_key(&self, i: usize) -> CellKey {
        let r = &self.rows[i];
        let (vt, raw) = self.label(r.label);
        cell_key(
            &self.header.source_feed_id,
            &self.contest(r.contest).source_id,
            &self.unit(r.unit).source_id,
            &self.choice(r.choice).source_id,
            vt,
            raw,
        )
        .in_mode(self.header.mode)
    }

    /// Row `i` as a full [`VoteCell`].
    pub fn cell(&self, i: usize) -> VoteCell {
        let r = &self.rows[i];
        let (vote_type, raw) = self.label(r.label);
        VoteCell {
            header: self.header.clone(),
            contest: self.contest(r.contest).clone(),
            unit: self.unit(r.unit).clone(),
            choice: self.choice(r.choice).clone(),
            vote_type,
            vote_type_raw: raw.clone(),
            votes: r.votes,
            precincts_reporting: r.precincts_reporting,
            precincts_total: r.precincts_total,
            pct_expected_vote: r.pct_expected_vote,
            winner: r.winner,
            raw_ref: None,
            links: None,
        }
    }

    /// Every cell, materialized one at a time.
    pub fn iter(&self) -> impl Iterator<Item = VoteCell> + '_ {
        (0..self.rows.len()).map(|i| self.cell(i))
    }

    /// Every cell, materialized.
    pub fn to_vec(&self) -> Vec<VoteCell> {
        self.iter().collect()
    }
}

/// Builds the [`CellTable`] of one payload.
pub struct CellBuilder {
    table: CellTable,
    strings: FxHashMap<Box<str>, Text>,
    labels: FxHashMap<(VoteType, Box<str>), u32>,
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
            table: CellTable {
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
                contests: Vec::new(),
                units: Vec::new(),
                choices: Vec::new(),
                labels: Vec::new(),
                rows: Vec::new(),
            },
            strings: FxHashMap::default(),
            labels: FxHashMap::default(),
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

    /// Registers a contest; the caller de-duplicates.
    pub fn contest(&mut self, c: ContestRef) -> u32 {
        self.table.contests.push(Arc::new(c));
        (self.table.contests.len() - 1) as u32
    }

    /// Registers a reporting unit; the caller de-duplicates.
    pub fn unit(&mut self, u: ReportingUnitRef) -> u32 {
        self.table.units.push(Arc::new(u));
        (self.table.units.len() - 1) as u32
    }

    /// Registers a choice; the caller de-duplicates.
    pub fn choice(&mut self, c: ChoiceRef) -> u32 {
        self.table.choices.push(Arc::new(c));
        (self.table.choices.len() - 1) as u32
    }

    /// The label index of (vote type, raw label), registered on first use.
    pub fn label(&mut self, vote_type: VoteType, raw: &str) -> u32 {
        if let Some(id) = self.labels.get(&(vote_type, raw.into())) {
            return *id;
        }
        let text = self.text(raw);
        self.table.labels.push((vote_type, text));
        let id = (self.table.labels.len() - 1) as u32;
        self.labels.insert((vote_type, raw.into()), id);
        id
    }

    /// The contest registered as `id`, as last replaced, for reading it back while
    /// building; panics when out of range.
    pub fn contest_ref(&self, id: u32) -> &Arc<ContestRef> {
        self.table.contest(id)
    }

    /// The reporting unit registered as `id`; panics when out of range.
    pub fn unit_ref(&self, id: u32) -> &Arc<ReportingUnitRef> {
        self.table.unit(id)
    }

    /// The choice registered as `id`; panics when out of range.
    pub fn choice_ref(&self, id: u32) -> &Arc<ChoiceRef> {
        self.table.choice(id)
    }

    /// Replaces a registered contest (for example once a contest turns out to
    /// be a ballot measure); every row that refers to it follows.
    pub fn replace_contest(&mut self, id: u32, c: ContestRef) {
        self.table.contests[id as usize] = Arc::new(c);
    }

    /// Room for `n` more rows.
    pub fn reserve(&mut self, n: usize) {
        self.table.rows.reserve(n);
    }

    /// Appends a row with the optional measures unset, and returns it for
    /// setting them.
    pub fn push(
        &mut self,
        contest: u32,
        unit: u32,
        choice: u32,
        label: u32,
        votes: i64,
    ) -> &mut CellRow {
        self.table.rows.push(CellRow {
            contest,
            unit,
            choice,
            label,
            votes,
            precincts_reporting: None,
            precincts_total: None,
            pct_expected_vote: None,
            winner: None,
        });
        self.table.rows.last_mut().expect("just pushed")
    }

    /// Rows so far (for measures learned after the rows, such as a
    /// precincts-reported line below a race).
    pub fn rows_mut(&mut self) -> &mut [CellRow] {
        &mut self.table.rows
    }

    /// The number of rows pushed so far.
    pub fn len(&self) -> usize {
        self.table.rows.len()
    }

    /// Whether no row has been pushed yet.
    pub fn is_empty(&self) -> bool {
        self.table.rows.is_empty()
    }

    /// Ends building and returns the payload's [`CellTable`].
    pub fn finish(self) -> CellTable {
        self.table
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
