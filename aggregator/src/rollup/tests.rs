use super::*;
use crate::contest_cells::Applied;
use votewire_schemas::types::{ChoiceKind, ChoiceRef, UnitType, VoteType};
use votewire_schemas::types::{
    ContestKind, ContestRef, FeedMode, PayloadHeader, Provenance, VoteCell,
};

struct Cell<'a> {
    seq: i64,
    unit: (&'a str, UnitType, Option<&'a str>),
    choice: (&'a str, ChoiceKind),
    vote_type: VoteType,
    votes: i64,
}

fn vote_cell(c: &Cell) -> VoteCell {
    VoteCell {
        header: Arc::new(PayloadHeader {
            election_id: "e1".into(),
            source_feed_id: "feed-a".into(),
            mode: FeedMode::Live,
            source_seq: c.seq,
            source_version: Some(format!("v{}", c.seq).into()),
            as_of: None,
            as_of_raw: None,
            fetched_at: 1_000 * c.seq,
            provenance: Provenance {
                feed_id: "feed-a".into(),
                fetch_id: format!("fetch-{}", c.seq).into(),
                source_uri: "http://example.test/".into(),
                payload_sha256: "00".into(),
                trace_id: Some(format!("trace-{}", c.seq).into()),
            },
        }),
        contest: Arc::new(ContestRef {
            source_id: "c1".into(),
            name: "Mayor".into(),
            kind: ContestKind::Candidate,
            vote_for: Some(1),
            primary_party: None,
        }),
        unit: Arc::new(ReportingUnitRef {
            source_id: c.unit.0.into(),
            name: c.unit.0.to_uppercase().into(),
            unit_type: c.unit.1,
            type_raw: None,
            parent_source_id: c.unit.2.map(Into::into),
            fips: None,
        }),
        choice: Arc::new(ChoiceRef {
            source_id: c.choice.0.into(),
            name: format!("Choice {}", c.choice.0).into(),
            kind: c.choice.1,
            party: None,
            incumbent: None,
        }),
        vote_type: c.vote_type,
        vote_type_raw: c.vote_type.as_str().into(),
        votes: c.votes,
        precincts_reporting: None,
        precincts_total: None,
        pct_expected_vote: None,
        winner: None,
        raw_ref: None,
        links: None,
    }
}

fn contest(cells: &[Cell]) -> (ContestKey, ContestCells) {
    let mut cc = ContestCells::default();
    let mut key = None;
    for c in cells.iter() {
        let vc = vote_cell(c);
        key.get_or_insert_with(|| ContestKey::of(&vc));
        cc.apply(vc.cell_key().0, vc);
    }
    (key.unwrap(), cc)
}

fn unit<'a>(results: &'a [ContestResult], id: &str) -> &'a ContestResult {
    results
        .iter()
        .find(|r| r.unit_id == id)
        .expect("unit result")
}

fn votes(r: &ContestResult) -> Vec<(&str, i64)> {
    r.choices
        .iter()
        .map(|c| (c.choice_id.as_str(), c.votes))
        .collect()
}

const CAND: ChoiceKind = ChoiceKind::Candidate;

#[test]
fn a_later_payload_wins_even_when_its_count_is_lower_and_older_ones_never_do() {
    let p1 = ("p1", UnitType::Precinct, None);
    let at = |seq, votes| Cell {
        seq,
        unit: p1,
        choice: ("1", CAND),
        vote_type: VoteType::Total,
        votes,
    };
    let mut cc = ContestCells::default();
    let first = vote_cell(&at(1, 500));
    let key = first.cell_key().0;
    let ck = ContestKey::of(&first);
    assert_eq!(cc.apply(key, first), Applied::Stored);
    // A correction: the count goes down in payload 2.
    assert_eq!(cc.apply(key, vote_cell(&at(2, 480))), Applied::Stored);
    // Payload 1 republished late (an ingestor restart) is ignored.
    assert_eq!(cc.apply(key, vote_cell(&at(1, 500))), Applied::Older);
    // The same payload twice changes nothing.
    assert_eq!(cc.apply(key, vote_cell(&at(2, 480))), Applied::Stored);
    assert_eq!(cc.len(), 1);
    let r = roll_up(&ck, &cc).unwrap();
    assert_eq!(votes(unit(&r, "p1")), [("1", 480)]);
    assert_eq!(unit(&r, "p1").contributors[0].source_seq, 2);
    assert_eq!(unit(&r, "p1").trace_id.as_deref(), Some("trace-2"));
}

#[test]
fn a_sum_past_i64_is_an_overflow_naming_where_never_a_wrapped_count() {
    let big = i64::MAX / 2 + 1;
    let cell = |unit, choice, vote_type, votes| Cell {
        seq: 1,
        unit,
        choice: (choice, CAND),
        vote_type,
        votes,
    };
    let p1 = ("p1", UnitType::Precinct, Some("c"));
    let p2 = ("p2", UnitType::Precinct, Some("c"));
    // Vote types of one choice at one unit.
    let (k, cc) = contest(&[
        cell(p1, "1", VoteType::ElectionDay, big),
        cell(p1, "1", VoteType::Early, big),
    ]);
    let e = roll_up(&k, &cc).expect_err("types overflow");
    assert_eq!((e.unit_id.as_str(), e.choice_id.as_str()), ("p1", "1"));
    // Children summed into their parent.
    let (k, cc) = contest(&[
        cell(p1, "1", VoteType::Total, big),
        cell(p2, "1", VoteType::Total, big),
    ]);
    let e = roll_up(&k, &cc).expect_err("children overflow");
    assert_eq!((e.unit_id.as_str(), e.choice_id.as_str()), ("c", "1"));
    // Choices summed into a unit's total votes.
    let alone = ("p1", UnitType::Precinct, None);
    let (k, cc) = contest(&[
        cell(alone, "1", VoteType::Total, big),
        cell(alone, "2", VoteType::Total, big),
    ]);
    let e = roll_up(&k, &cc).expect_err("total overflow");
    assert_eq!(e.unit_id, "p1");
    assert!(e.to_string().contains("not retryable"), "{e}");
    // Just under the edge it sums exactly.
    let (k, cc) = contest(&[
        cell(alone, "1", VoteType::Total, big - 1),
        cell(alone, "2", VoteType::Total, big),
    ]);
    let r = roll_up(&k, &cc).expect("fits");
    assert_eq!(unit(&r, "p1").total_votes, i64::MAX);
}

#[test]
fn vote_types_add_up_to_a_total_only_when_the_source_gives_none() {
    let p = ("p1", UnitType::Precinct, None);
    let (k, cc) = contest(&[
        // Choice 1: types only, 30 + 12 + 3.
        Cell {
            seq: 1,
            unit: p,
            choice: ("1", CAND),
            vote_type: VoteType::ElectionDay,
            votes: 30,
        },
        Cell {
            seq: 1,
            unit: p,
            choice: ("1", CAND),
            vote_type: VoteType::Early,
            votes: 12,
        },
        Cell {
            seq: 1,
            unit: p,
            choice: ("1", CAND),
            vote_type: VoteType::Absentee,
            votes: 3,
        },
        // Choice 2: a total and types that disagree with it; the total wins.
        Cell {
            seq: 1,
            unit: p,
            choice: ("2", CAND),
            vote_type: VoteType::Total,
            votes: 50,
        },
        Cell {
            seq: 1,
            unit: p,
            choice: ("2", CAND),
            vote_type: VoteType::ElectionDay,
            votes: 40,
        },
    ]);
    let r = roll_up(&k, &cc).unwrap();
    let p1 = unit(&r, "p1");
    assert_eq!(votes(p1), [("1", 45), ("2", 50)]);
    assert_eq!(p1.total_votes, 95);
    assert_eq!(p1.leader_choice_id.as_deref(), Some("2"));
    assert_eq!(p1.margin_votes, Some(5));
    let pct: Vec<f64> = p1.choices.iter().map(|c| c.percent).collect();
    assert!((pct[0] - 100.0 * 45.0 / 95.0).abs() < 1e-9, "{pct:?}");
}

#[test]
fn precincts_roll_up_to_counties_and_a_state_the_source_never_reports() {
    let p = |id, county| (id, UnitType::Precinct, Some(county));
    let c = |id| (id, UnitType::County, Some("GA"));
    let total = VoteType::Total;
    let (k, cc) = contest(&[
        Cell {
            seq: 1,
            unit: p("a1", "A"),
            choice: ("1", CAND),
            vote_type: total,
            votes: 10,
        },
        Cell {
            seq: 1,
            unit: p("a1", "A"),
            choice: ("2", CAND),
            vote_type: total,
            votes: 20,
        },
        Cell {
            seq: 2,
            unit: p("a2", "A"),
            choice: ("1", CAND),
            vote_type: total,
            votes: 5,
        },
        Cell {
            seq: 1,
            unit: p("b1", "B"),
            choice: ("1", CAND),
            vote_type: total,
            votes: 7,
        },
        // County A reports itself and agrees; county B reports 9, its
        // one precinct says 7: both kept, flagged.
        Cell {
            seq: 1,
            unit: c("A"),
            choice: ("1", CAND),
            vote_type: total,
            votes: 15,
        },
        Cell {
            seq: 1,
            unit: c("A"),
            choice: ("2", CAND),
            vote_type: total,
            votes: 20,
        },
        Cell {
            seq: 1,
            unit: c("B"),
            choice: ("1", CAND),
            vote_type: total,
            votes: 9,
        },
    ]);
    let r = roll_up(&k, &cc).unwrap();
    let a = unit(&r, "A");
    assert_eq!(votes(a), [("1", 15), ("2", 20)]);
    assert!(!a.aggregates_disagree);
    let b = unit(&r, "B");
    assert_eq!(votes(b), [("1", 9)], "the reported aggregate is official");
    assert_eq!(b.choices[0].reported, Some(9));
    assert_eq!(b.choices[0].sum_of_children, Some(7));
    assert!(b.aggregates_disagree);
    // GA exists only as the counties' parent: the sum of their
    // official values, typed one level up.
    let ga = unit(&r, "GA");
    assert_eq!(votes(ga), [("1", 24), ("2", 20)]);
    assert_eq!(ga.unit_type, UnitType::State);
    assert_eq!(ga.choices[0].reported, None);
    assert_eq!(ga.contributors[0].source_seq, 2, "the newest payload below");
    assert_eq!(ga.last_updated, 2_000);
    assert_eq!(unit(&r, "a1").parent_unit_id.as_deref(), Some("A"));
    assert_eq!(r.len(), 6, "three precincts, two counties, one state");
}

#[test]
fn overlapping_unit_types_are_never_summed_together() {
    let total = VoteType::Total;
    let (k, cc) = contest(&[
        Cell {
            seq: 1,
            unit: ("p1", UnitType::Precinct, Some("X")),
            choice: ("1", CAND),
            vote_type: total,
            votes: 10,
        },
        Cell {
            seq: 1,
            unit: ("p2", UnitType::Precinct, Some("X")),
            choice: ("1", CAND),
            vote_type: total,
            votes: 11,
        },
        // A polling place made of p1 and p2: the same ballots again.
        Cell {
            seq: 1,
            unit: ("pp", UnitType::PollingPlace, Some("X")),
            choice: ("1", CAND),
            vote_type: total,
            votes: 21,
        },
        // District D has only districts' children: overlapping, summed
        // alone, one type.
        Cell {
            seq: 1,
            unit: ("vc1", UnitType::VoteCenter, Some("D")),
            choice: ("1", CAND),
            vote_type: total,
            votes: 4,
        },
        Cell {
            seq: 1,
            unit: ("vc2", UnitType::VoteCenter, Some("D")),
            choice: ("1", CAND),
            vote_type: total,
            votes: 6,
        },
    ]);
    let r = roll_up(&k, &cc).unwrap();
    assert_eq!(votes(unit(&r, "X")), [("1", 21)], "not 42");
    assert_eq!(votes(unit(&r, "D")), [("1", 10)]);
}

#[test]
fn pseudo_choices_do_not_count_toward_the_total_or_the_lead() {
    let u = ("s", UnitType::State, None);
    let total = VoteType::Total;
    let (k, cc) = contest(&[
        Cell {
            seq: 1,
            unit: u,
            choice: ("1", CAND),
            vote_type: total,
            votes: 60,
        },
        Cell {
            seq: 1,
            unit: u,
            choice: ("2", CAND),
            vote_type: total,
            votes: 40,
        },
        Cell {
            seq: 1,
            unit: u,
            choice: ("under", ChoiceKind::UnderVote),
            vote_type: total,
            votes: 900,
        },
    ]);
    let s = &roll_up(&k, &cc).unwrap()[0];
    assert_eq!(s.total_votes, 100);
    assert_eq!(s.leader_choice_id.as_deref(), Some("1"));
    assert_eq!((s.margin_votes, s.margin_pct), (Some(20), Some(20.0)));
    let under = s.choices.iter().find(|c| c.choice_id == "under").unwrap();
    assert_eq!((under.votes, under.percent), (900, 0.0));
}

#[test]
fn a_parent_cycle_in_garbage_data_does_not_hang_or_lose_units() {
    let total = VoteType::Total;
    let (k, cc) = contest(&[
        Cell {
            seq: 1,
            unit: ("x", UnitType::County, Some("y")),
            choice: ("1", CAND),
            vote_type: total,
            votes: 1,
        },
        Cell {
            seq: 1,
            unit: ("y", UnitType::County, Some("x")),
            choice: ("1", CAND),
            vote_type: total,
            votes: 2,
        },
    ]);
    let r = roll_up(&k, &cc).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(votes(unit(&r, "x")), [("1", 1)]);
    assert_eq!(votes(unit(&r, "y")), [("1", 2)]);
}

#[test]
fn the_result_does_not_depend_on_arrival_order() {
    let p = |id| (id, UnitType::Precinct, Some("C"));
    let total = VoteType::Total;
    let cells = [
        Cell {
            seq: 3,
            unit: p("a"),
            choice: ("1", CAND),
            vote_type: total,
            votes: 3,
        },
        Cell {
            seq: 1,
            unit: p("b"),
            choice: ("1", CAND),
            vote_type: total,
            votes: 5,
        },
        Cell {
            seq: 2,
            unit: p("c"),
            choice: ("2", CAND),
            vote_type: total,
            votes: 8,
        },
    ];
    let (k, forward) = contest(&cells);
    let mut reversed = ContestCells::default();
    for c in cells.iter().rev() {
        let vc = vote_cell(c);
        reversed.apply(vc.cell_key().0, vc);
    }
    assert_eq!(
        roll_up(&k, &forward).unwrap(),
        roll_up(&k, &reversed).unwrap()
    );
}
