//! Several sources linked to one contest, computed by hand.
use super::*;
use votewire_schemas::types::{ChoiceKind, ChoiceRef, UnitType, VoteType};
use votewire_schemas::types::{
    ContestKind, ContestRef, FeedMode, PayloadHeader, Provenance, ResultLinks, VoteCell,
};

/// A cell of `feed` (priority `priority`) for the shared contest `race`.
#[allow(clippy::too_many_arguments)]
fn cell(
    feed: &str,
    priority: i32,
    unit: &str,
    unit_type: UnitType,
    parent: Option<&str>,
    unit_link: Option<&str>,
    choice: (&str, &str),
    votes: i64,
) -> VoteCell {
    VoteCell {
        header: Arc::new(PayloadHeader {
            election_id: "e".into(),
            source_feed_id: feed.into(),
            mode: FeedMode::Live,
            source_seq: 1,
            source_version: None,
            as_of: None,
            as_of_raw: None,
            fetched_at: 1,
            provenance: Provenance {
                feed_id: feed.into(),
                fetch_id: "f".into(),
                source_uri: "u".into(),
                payload_sha256: "00".into(),
                trace_id: None,
            },
        }),
        contest: Arc::new(ContestRef {
            source_id: format!("{feed}-contest").into(),
            name: "Governor".into(),
            kind: ContestKind::Candidate,
            vote_for: None,
            primary_party: None,
        }),
        unit: Arc::new(ReportingUnitRef {
            source_id: unit.into(),
            name: unit.into(),
            unit_type,
            type_raw: None,
            parent_source_id: None,
            fips: None,
        }),
        choice: Arc::new(ChoiceRef {
            source_id: choice.0.into(),
            name: choice.1.into(),
            kind: ChoiceKind::Candidate,
            party: None,
            incumbent: None,
        }),
        vote_type: VoteType::Total,
        vote_type_raw: "total".into(),
        votes,
        precincts_reporting: None,
        precincts_total: None,
        pct_expected_vote: None,
        winner: None,
        raw_ref: None,
        links: Some(Arc::new(ResultLinks {
            root_unit_id: None,
            contest_id: Some("race".into()),
            unit_id: unit_link.map(Into::into),
            parent_unit_id: parent.map(Into::into),
            choice_id: None,
            priority,
        })),
    }
}

/// Precinct cells of one feed whose links name the county and the
/// feed's root `ST`, as the ingestor stamps a precinct file with
/// `[feed.results] parent = "ST"`; `merged` links the contest too.
fn precinct_file(merged: bool, root: &str) -> Vec<VoteCell> {
    [
        ("p1", "C1", ("1", "Ann"), 10),
        ("p1", "C1", ("2", "Bo"), 4),
        ("p2", "C1", ("1", "Ann"), 5),
        ("p3", "C2", ("1", "Ann"), 7),
        ("p3", "C2", ("2", "Bo"), 20),
    ]
    .into_iter()
    .map(|(unit, county, choice, votes)| {
        let mut c = cell(
            "csv",
            5,
            unit,
            UnitType::Precinct,
            Some(county),
            None,
            choice,
            votes,
        );
        let mut links = (**c.links.as_ref().unwrap()).clone();
        links.root_unit_id = Some(root.into());
        if !merged {
            links.contest_id = None;
        }
        c.links = Some(Arc::new(links));
        c
    })
    .collect()
}

#[test]
fn a_precinct_file_rolls_up_through_its_counties_to_the_feeds_root() {
    for merged_contest in [false, true] {
        let cells = precinct_file(merged_contest, "ST");
        let key = ContestKey::of(&cells[0]);
        let mut cc = ContestCells::default();
        for c in cells {
            cc.apply(c.cell_key().0, c);
        }
        let r: BTreeMap<String, ContestResult> = roll_up(&key, &cc)
            .unwrap()
            .into_iter()
            .map(|r| (r.unit_id.clone(), r))
            .collect();
        let votes = |u: &ContestResult| -> Vec<(String, i64)> {
            u.choices
                .iter()
                .map(|c| (c.choice_name.clone(), c.votes))
                .collect()
        };
        let st = &r["ST"];
        assert_eq!(st.unit_type, UnitType::State, "{merged_contest}");
        assert_eq!(st.parent_unit_id, None);
        assert_eq!(
            votes(st),
            [("Ann".to_string(), 22), ("Bo".to_string(), 24)],
            "{merged_contest}"
        );
        // The counties, named only as parents: typed one level up from
        // their precincts and placed under the root.
        let c1 = r
            .values()
            .find(|u| u.unit_name == "C1")
            .unwrap_or_else(|| panic!("{:?}", r.keys()));
        assert_eq!(c1.unit_type, UnitType::County);
        assert_eq!(c1.parent_unit_id.as_deref(), Some("ST"));
        assert_eq!(votes(c1), [("Ann".to_string(), 15), ("Bo".to_string(), 4)]);
        assert_eq!(r.len(), 6, "3 precincts, 2 counties, the root");
    }
}

#[test]
fn a_precinct_files_counties_merge_with_a_county_site_under_the_same_root() {
    // The county's own site reports C1 under GA; the precinct file,
    // rooted at GA too, names C1 only as its precincts' parent.
    let mut cells = precinct_file(true, "GA");
    cells.push(cell(
        "county-site",
        10,
        "C1",
        UnitType::County,
        Some("GA"),
        None,
        ("1", "Ann"),
        15,
    ));
    let key = ContestKey::of(&cells[0]);
    let mut cc = ContestCells::default();
    for c in cells {
        cc.apply(c.cell_key().0, c);
    }
    let r = roll_up(&key, &cc).unwrap();
    let ids: Vec<&str> = r.iter().map(|u| u.unit_id.as_str()).collect();
    assert_eq!(
        ids,
        ["GA", "GA/C1", "GA/C1/p1", "GA/C1/p2", "GA/C2", "GA/C2/p3"],
        "one C1, both sources' precincts under it"
    );
    let c1 = r.iter().find(|u| u.unit_id == "GA/C1").unwrap();
    assert_eq!(c1.parent_unit_id.as_deref(), Some("GA"));
    assert_eq!(c1.official_feed_id, "county-site", "the higher priority");
    let c2 = r.iter().find(|u| u.unit_id == "GA/C2").unwrap();
    assert_eq!(c2.parent_unit_id.as_deref(), Some("GA"));
    assert_eq!(c2.unit_type, UnitType::County);
}

fn merged(cells: Vec<VoteCell>) -> BTreeMap<String, ContestResult> {
    let mut cc = ContestCells::default();
    let key = ContestKey::of(&cells[0]);
    assert_eq!(key.contest_id, "race");
    for c in cells.into_iter() {
        cc.apply(c.cell_key().0, c);
    }
    roll_up(&key, &cc)
        .unwrap()
        .into_iter()
        .map(|r| (r.unit_id.clone(), r))
        .collect()
}

fn night(state_priority: i32, county_priority: i32) -> BTreeMap<String, ContestResult> {
    use UnitType::{County, Precinct, State};
    // Choice ids differ per site ("1" vs "7"); names match after
    // trimming and collapsing spaces.
    let (smith, smith_county) = (("1", "Ann Smith"), ("7", " Ann  Smith"));
    merged(vec![
        // The state site: the state (its "-1" mapped to "ST") and county C.
        cell(
            "state",
            state_priority,
            "-1",
            State,
            None,
            Some("ST"),
            smith,
            100,
        ),
        cell(
            "state",
            state_priority,
            "C",
            County,
            Some("ST"),
            None,
            smith,
            60,
        ),
        cell(
            "state",
            state_priority,
            "D",
            County,
            Some("ST"),
            None,
            smith,
            40,
        ),
        // County C's own site: C (parent from config) and two precincts.
        cell(
            "site-c",
            county_priority,
            "C",
            County,
            Some("ST"),
            None,
            smith_county,
            61,
        ),
        cell(
            "site-c",
            county_priority,
            "p1",
            Precinct,
            Some("C"),
            None,
            smith_county,
            50,
        ),
        cell(
            "site-c",
            county_priority,
            "p2",
            Precinct,
            Some("C"),
            None,
            smith_county,
            11,
        ),
    ])
}

#[test]
fn the_highest_priority_source_at_a_unit_is_official_and_every_source_is_kept() {
    let r = night(10, 5);
    let c = &r["ST/C"];
    assert_eq!(c.official_feed_id, "state");
    let ann = &c.choices[0];
    assert_eq!(ann.choice_id, "Ann Smith", "matched by normalized name");
    assert_eq!(ann.votes, 60);
    assert_eq!(ann.reported, Some(60));
    assert_eq!(
        ann.sum_of_children,
        Some(61),
        "p1 + p2 from the county site"
    );
    assert!(c.aggregates_disagree);
    let by: Vec<(&str, i64)> = ann
        .by_source
        .iter()
        .map(|s| (s.feed_id.as_str(), s.votes))
        .collect();
    assert_eq!(by, [("state", 60), ("site-c", 61)]);
    assert_eq!(r["ST/C/p1"].official_feed_id, "site-c");
    assert_eq!(r["ST/C/p1"].parent_unit_id.as_deref(), Some("ST/C"));
    // The state: reported 100; its counties' official values sum to 100.
    let st = &r["ST"];
    assert_eq!(st.unit_type, UnitType::State);
    assert_eq!(
        (st.choices[0].votes, st.choices[0].sum_of_children),
        (100, Some(100))
    );
    assert!(!st.aggregates_disagree);
    let feeds: Vec<&str> = st.contributors.iter().map(|c| c.feed_id.as_str()).collect();
    assert_eq!(
        feeds,
        ["state", "site-c"],
        "both sources are below the state"
    );
}

#[test]
fn raising_the_county_sites_priority_makes_it_official_there_and_moves_the_state_sum() {
    let r = night(5, 10);
    let c = &r["ST/C"];
    assert_eq!(c.official_feed_id, "site-c");
    assert_eq!(c.choices[0].votes, 61);
    assert!(!c.aggregates_disagree, "61 = 50 + 11");
    // The state is reported only by the state site: still official
    // there, but its counties now sum to 61 + 40.
    let st = &r["ST"];
    assert_eq!(st.official_feed_id, "state");
    assert_eq!(st.choices[0].votes, 100);
    assert_eq!(st.choices[0].sum_of_children, Some(101));
    assert!(st.aggregates_disagree);
}
